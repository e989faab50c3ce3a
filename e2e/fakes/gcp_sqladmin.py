#!/usr/bin/env python3
"""Loopback fake of the Cloud SQL Admin API v1 (PostgreSQL only: instances,
databases, users, backups), a small part of the Secret Manager API v1 (with secret
IAM policies), IAM service accounts and their IAM policies, and the GCE metadata
server's token endpoints, for Paved's e2e tests.

This is a TEST FAKE. It is not Google, not an emulator and not a complete model
of Cloud SQL, Secret Manager or IAM. Its Cloud SQL shapes come from the published
sqladmin v1 discovery document (googleapiclient/discovery_cache/documents/sqladmin.v1.json,
revision 20261018) and its enum integers from the generated model of the Rust crate
google-cloud-sql-v1 2.12.0 (the discovery document carries names only). Its Secret
Manager paths and shapes come from the Rust crate google-cloud-secretmanager-v1 1.14.0
(transport.rs, model.rs, model/serialize.rs). Its IAM paths and shapes come from
google-cloud-iam-admin-v1 1.13.0 and google-cloud-iam-v1 1.13.0 (Policy, Binding) the same way.
See e2e/fakes/README.md for what is modelled and where each rule comes from.

Usage: python3 e2e/fakes/gcp_sqladmin.py --port PORT [--provision-seconds 2] [--log FILE]
Point clients at it with GCE_METADATA_HOST=127.0.0.1:PORT and the SQL, Secret
Manager and IAM clients' endpoints set to http://127.0.0.1:PORT (all on the same port). Binds 127.0.0.1 only, plain HTTP.
"""
import argparse, base64, copy, datetime, hashlib, ipaddress, json, re, secrets, sys, threading, time, uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


class Enum(dict):
    """name -> proto number, plus the proto type name for error messages."""
    def __init__(self, type_name, pairs):
        super().__init__(pairs)
        self.type_name, self.rev = type_name, {v: k for k, v in pairs.items()}


def E(type_name, spec):
    return Enum(type_name, {k: int(v) for k, v in (p.split("=") for p in spec.split())})


DB_VERSION = E("SqlDatabaseVersion", "SQL_DATABASE_VERSION_UNSPECIFIED=0 MYSQL_8_0=20 POSTGRES_9_6=9 POSTGRES_10=18 "
               "POSTGRES_11=10 POSTGRES_12=19 POSTGRES_13=23 POSTGRES_14=110 POSTGRES_15=172 POSTGRES_16=272 "
               "POSTGRES_17=408 POSTGRES_18=557")
PG_VERSIONS = [f"POSTGRES_{n}" for n in range(11, 18)]
INSTANCE_STATE = E("SqlInstanceState", "SQL_INSTANCE_STATE_UNSPECIFIED=0 RUNNABLE=1 SUSPENDED=2 PENDING_DELETE=3 "
                   "PENDING_CREATE=4 MAINTENANCE=5 FAILED=6 ONLINE_MAINTENANCE=7 REPAIRING=8")
AVAILABILITY = E("SqlAvailabilityType", "SQL_AVAILABILITY_TYPE_UNSPECIFIED=0 ZONAL=1 REGIONAL=2")
DISK_TYPE = E("SqlDataDiskType", "SQL_DATA_DISK_TYPE_UNSPECIFIED=0 PD_SSD=1 PD_HDD=2 OBSOLETE_LOCAL_SSD=3 HYPERDISK_BALANCED=4")
SSL_MODE = E("SslMode", "SSL_MODE_UNSPECIFIED=0 ALLOW_UNENCRYPTED_AND_ENCRYPTED=1 ENCRYPTED_ONLY=2 TRUSTED_CLIENT_CERTIFICATE_REQUIRED=3")
RETENTION_UNIT = E("RetentionUnit", "RETENTION_UNIT_UNSPECIFIED=0 COUNT=1")
EDITION = E("Edition", "EDITION_UNSPECIFIED=0 ENTERPRISE=2 ENTERPRISE_PLUS=3 DEVELOPER=5")
ACTIVATION = E("SqlActivationPolicy", "SQL_ACTIVATION_POLICY_UNSPECIFIED=0 ALWAYS=1 NEVER=2 ON_DEMAND=3")
PRICING = E("SqlPricingPlan", "SQL_PRICING_PLAN_UNSPECIFIED=0 PACKAGE=1 PER_USE=2")
BACKEND = E("SqlBackendType", "SQL_BACKEND_TYPE_UNSPECIFIED=0 FIRST_GEN=1 SECOND_GEN=2 EXTERNAL=3")
INSTANCE_TYPE = E("SqlInstanceType", "SQL_INSTANCE_TYPE_UNSPECIFIED=0 CLOUD_SQL_INSTANCE=1 ON_PREMISES_INSTANCE=2 "
                  "READ_REPLICA_INSTANCE=3 READ_POOL_INSTANCE=5 GREEN_INSTANCE=7")
IP_TYPE = E("SqlIpAddressType", "SQL_IP_ADDRESS_TYPE_UNSPECIFIED=0 PRIMARY=1 OUTGOING=2 PRIVATE=3 MIGRATED_1ST_GEN=4")
OP_STATUS = E("SqlOperationStatus", "SQL_OPERATION_STATUS_UNSPECIFIED=0 PENDING=1 RUNNING=2 DONE=3")
OP_TYPE = E("SqlOperationType", "SQL_OPERATION_TYPE_UNSPECIFIED=0 CREATE=3 UPDATE=4 DELETE=5 BACKUP_VOLUME=9 "
            "CREATE_USER=19 DELETE_USER=20 UPDATE_USER=21 CREATE_DATABASE=22 DELETE_DATABASE=23 "
            "UPDATE_DATABASE=24 MAJOR_VERSION_UPGRADE=48")
RUN_STATUS = E("SqlBackupRunStatus", "SQL_BACKUP_RUN_STATUS_UNSPECIFIED=0 ENQUEUED=1 OVERDUE=2 RUNNING=3 FAILED=4 "
               "SUCCESSFUL=5 SKIPPED=6 DELETION_PENDING=7 DELETION_FAILED=8 DELETED=9")
RUN_TYPE = E("SqlBackupRunType", "SQL_BACKUP_RUN_TYPE_UNSPECIFIED=0 AUTOMATED=1 ON_DEMAND=2")
BACKUP_KIND = E("SqlBackupKind", "SQL_BACKUP_KIND_UNSPECIFIED=0 SNAPSHOT=1 PHYSICAL=2")
BACKUP_TYPE = E("SqlBackupType", "SQL_BACKUP_TYPE_UNSPECIFIED=0 AUTOMATED=1 ON_DEMAND=2 FINAL=3")
BACKUP_STATE = E("SqlBackupState", "SQL_BACKUP_STATE_UNSPECIFIED=0 ENQUEUED=1 RUNNING=2 FAILED=3 SUCCESSFUL=4 DELETING=5 DELETION_FAILED=6")
USER_TYPE = E("SqlUserType", "BUILT_IN=0 CLOUD_IAM_USER=1 CLOUD_IAM_SERVICE_ACCOUNT=2 CLOUD_IAM_GROUP=3")
# Secret Manager (google-cloud-secretmanager-v1 1.14.0 model.rs, secret_version::State).
SECRET_VERSION_STATE = E("SecretVersion.State", "STATE_UNSPECIFIED=0 ENABLED=1 DISABLED=2 DESTROYED=3")

# Where enums sit inside each resource (field -> Enum, or field -> nested schema).
SETTINGS = {"availabilityType": AVAILABILITY, "dataDiskType": DISK_TYPE, "edition": EDITION,
            "activationPolicy": ACTIVATION, "pricingPlan": PRICING, "ipConfiguration": {"sslMode": SSL_MODE},
            "backupConfiguration": {"backupRetentionSettings": {"retentionUnit": RETENTION_UNIT}}}
INSTANCE = {"state": INSTANCE_STATE, "databaseVersion": DB_VERSION, "backendType": BACKEND,
            "instanceType": INSTANCE_TYPE, "settings": SETTINGS, "ipAddresses": {"type": IP_TYPE}}
OPERATION = {"status": OP_STATUS, "operationType": OP_TYPE}
BACKUP_RUN = {"status": RUN_STATUS, "type": RUN_TYPE, "databaseVersion": DB_VERSION, "backupKind": BACKUP_KIND}
BACKUP = {"type": BACKUP_TYPE, "state": BACKUP_STATE, "databaseVersion": DB_VERSION, "backupKind": BACKUP_KIND,
          "instanceSettings": INSTANCE}
USER = {"type": USER_TYPE}
DATABASE = {}
SECRET = {}
SECRET_VERSION = {"state": SECRET_VERSION_STATE}
INT64_FIELDS = {"settingsVersion", "dataDiskSizeGb", "storageAutoResizeLimit", "maxDiskSize", "id", "backupId",
                "dataCrc32c"}

NAME_RE = re.compile(r"^[a-z][a-z0-9-]*$")
REGION_RE = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
LABEL_KEY_RE, LABEL_VALUE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$"), re.compile(r"^[a-z0-9_-]{0,63}$")
NETWORK_RE = re.compile(r"^/?projects/[^/]+/global/networks/[^/]+$")
KMS_RE = re.compile(r"^projects/[^/]+/locations/([^/]+)/keyRings/[^/]+/cryptoKeys/[^/]+$")
START_TIME_RE = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
SECRET_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
DB_NAME_RE = re.compile(r"^[^/\x00-\x1f\x7f]{1,63}$")
COLLATION_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,63}$")
MAX_SECRET_BYTES = 65536
# IAM (google-cloud-iam-admin-v1 1.13.0, google-cloud-iam-v1 1.13.0).
ACCOUNT_ID_RE = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")  # 6-30 characters, [a-z]([-a-z0-9]*[a-z0-9])
SA_DOMAIN = ".iam.gserviceaccount.com"
SA_ETAG = "MDEwMjE5MjA="  # ServiceAccount.etag is deprecated; real IAM returns this constant (from memory)
EMPTY_POLICY_ETAG = "ACAB"  # etag of a resource whose policy was never set (from memory)
EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
WI_MEMBER_RE = re.compile(r"^[a-z][a-z0-9.:-]*\.svc\.id\.goog\[([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)/"
                          r"([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?)\]$")  # {project}.svc.id.goog[{namespace}/{ksa}]
DELETED_MEMBER_RE = re.compile(r"^deleted:(user|serviceAccount|group):([^?\s]+)\?uid=[0-9]+$")
PRINCIPAL_RE = re.compile(r"^principal(Set)?://iam\.googleapis\.com/\S+$")
DOMAIN_RE = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
ROLE_RE = re.compile(r"^(roles/[A-Za-z0-9_.]+|projects/[^/]+/roles/[A-Za-z0-9_.]+|organizations/[0-9]+/roles/[A-Za-z0-9_.]+)$")
BASIC_ROLES = {"roles/owner", "roles/editor", "roles/viewer"}
ROLE_PREFIX = {"serviceAccount": "roles/iam.", "secret": "roles/secretmanager."}  # predefined roles grantable there (F)
PERF_VCPUS = {2, 4, 8, 16, 32, 48, 64, 80, 96, 128}
SSL_PAIRS = {"ALLOW_UNENCRYPTED_AND_ENCRYPTED": False, "ENCRYPTED_ONLY": False, "TRUSTED_CLIENT_CERTIFICATE_REQUIRED": True}
HTTP_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
               409: "ABORTED", 412: "FAILED_PRECONDITION", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
               501: "UNIMPLEMENTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
SELF = "https://sqladmin.googleapis.com/v1"


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC32C_TABLE = _crc32c_table()


def crc32c(data):
    """CRC-32C (Castagnoli), as Secret Manager's SecretPayload.dataCrc32c."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = CRC32C_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


class ApiError(Exception):
    def __init__(self, code, message, reason="invalid", status=None, field=None, headers=None, details=()):
        super().__init__(message)
        self.code, self.message, self.reason, self.field = code, message, reason, field
        self.status, self.headers, self.details = status or HTTP_STATUS.get(code, "UNKNOWN"), headers or {}, list(details)

    def body(self):
        err = {"code": self.code, "message": self.message, "status": self.status,
               "errors": [{"message": self.message, "domain": "global", "reason": self.reason}]}
        details = list(self.details)
        if self.field:
            details.append({"@type": "type.googleapis.com/google.rpc.BadRequest",
                            "fieldViolations": [{"field": self.field, "description": self.message}]})
        if details:
            err["details"] = details
        return {"error": err}


def bad(message, field=None):
    raise ApiError(400, "Invalid request: " + message, field=field)


def invalid(message, field=None):
    """400 INVALID_ARGUMENT with the message as given (IAM texts are quoted without Cloud SQL's prefix)."""
    raise ApiError(400, message, field=field)


def now_ts(t=None):
    return datetime.datetime.fromtimestamp(time.time() if t is None else t, datetime.timezone.utc) \
        .strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def conv(value, schema, to_int, path="body"):
    """Re-encode enums: names -> ints (output with enum-encoding=int) or ints/names -> names (input)."""
    if isinstance(schema, Enum):
        if to_int:
            return schema.get(value, value)
        if isinstance(value, int) and not isinstance(value, bool) and value in schema.rev:
            return schema.rev[value]
        if isinstance(value, str) and value in schema:
            return value
        raise ApiError(400, f"Invalid value at '{path}' (type.googleapis.com/google.cloud.sql.v1.{schema.type_name}), "
                            f"{json.dumps(value)}", field=path.removeprefix("body."))
    if isinstance(value, list):
        return [conv(v, schema, to_int, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict) and isinstance(schema, dict):
        return {k: conv(v, schema[k], to_int, f"{path}.{k}") if k in schema and v is not None else v
                for k, v in value.items()}
    return value


def finish(value):
    """Drop private keys (leading '_') and write int64 fields as JSON strings (proto3 JSON mapping)."""
    if isinstance(value, list):
        return [finish(v) for v in value]
    if isinstance(value, dict):
        return {k: (str(v) if k in INT64_FIELDS and isinstance(v, int) and not isinstance(v, bool) else finish(v))
                for k, v in value.items() if not k.startswith("_")}
    return value


def i64(value, field):
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"Invalid value at '{field}' (TYPE_INT64), {json.dumps(value)}", field=field)


def qint(q, key):
    try:
        return int(q.get(key) or 0)
    except ValueError:
        raise ApiError(400, f"Invalid value at '{key}' (TYPE_INT32), {json.dumps(q[key])}", field=key)


def deep_merge(dst, src):
    for k, v in src.items():
        if v is None:
            dst.pop(k, None)
        elif isinstance(v, dict) and isinstance(dst.get(k), dict):
            deep_merge(dst[k], v)
        else:
            dst[k] = copy.deepcopy(v)
    return dst


def clean_settings(s):
    """Type-check the numeric/map fields of an incoming Settings object (names already normalized)."""
    if not isinstance(s, dict):
        bad("settings must be an object.", "settings")
    s = copy.deepcopy(s)
    for f in ("dataDiskSizeGb", "storageAutoResizeLimit", "settingsVersion"):
        if f in s:
            s[f] = i64(s[f], f"settings.{f}")
    bc = s.get("backupConfiguration") or {}
    if "transactionLogRetentionDays" in bc:
        bc["transactionLogRetentionDays"] = i64(bc["transactionLogRetentionDays"], "settings.backupConfiguration.transactionLogRetentionDays")
    rs = bc.get("backupRetentionSettings") or {}
    if "retainedBackups" in rs:
        rs["retainedBackups"] = i64(rs["retainedBackups"], "settings.backupConfiguration.backupRetentionSettings.retainedBackups")
    labels = s.get("userLabels")
    if labels is not None and (not isinstance(labels, dict) or not all(isinstance(v, (str, type(None))) for v in labels.values())):
        bad("userLabels must be a map of strings.", "settings.userLabels")
    ip = s.get("ipConfiguration")
    if isinstance(ip, dict):  # sslMode and requireSsl travel together; derive whichever is missing
        if ip.get("sslMode") == "SSL_MODE_UNSPECIFIED":
            ip.pop("sslMode")
        if "sslMode" in ip and "requireSsl" not in ip:
            ip["requireSsl"] = SSL_PAIRS.get(ip["sslMode"], False)
        elif "requireSsl" in ip and "sslMode" not in ip:
            ip["sslMode"] = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED" if ip["requireSsl"] else "ALLOW_UNENCRYPTED_AND_ENCRYPTED"
        elif "sslMode" in ip and SSL_PAIRS.get(ip["sslMode"]) != bool(ip["requireSsl"]):
            bad(f"sslMode {ip['sslMode']} is not valid with requireSsl={str(bool(ip['requireSsl'])).lower()} for PostgreSQL.",
                "settings.ipConfiguration.sslMode")
    s.pop("kind", None)
    return s


def check_labels(labels, field):
    """GCP label rules, shared by Cloud SQL settings.userLabels and Secret Manager Secret.labels."""
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        bad("labels must be a map of strings.", field)
    if len(labels) > 64:
        bad("at most 64 labels are allowed.", field)
    for k, v in labels.items():
        if not LABEL_KEY_RE.match(k):
            bad(f"label key '{k}' must be 1-63 characters of [a-z0-9_-] starting with a lowercase letter.", field)
        if not LABEL_VALUE_RE.match(v):
            bad(f"label value '{v}' for key '{k}' must be 0-63 characters of [a-z0-9_-].", field)


def validate_settings(s, region):
    tier, edition = s.get("tier", ""), s.get("edition")
    m = re.fullmatch(r"db-custom-(\d+)-(\d+)", tier)
    p = re.fullmatch(r"db-perf-optimized-N-(\d+)", tier)
    if tier in ("db-f1-micro", "db-g1-small"):
        if edition != "ENTERPRISE":
            bad(f"Invalid Tier ({tier}) for ({edition}) Edition.", "settings.tier")
    elif m:
        cpus, mem = int(m.group(1)), int(m.group(2))
        if edition != "ENTERPRISE":
            bad(f"Invalid Tier ({tier}) for ({edition}) Edition.", "settings.tier")
        if not (cpus == 1 or (cpus % 2 == 0 and 2 <= cpus <= 96)):
            bad(f"Invalid Tier ({tier}): vCPUs must be 1 or an even number up to 96.", "settings.tier")
        if mem % 256 or mem < 3840 or not (0.9 * 1024 * cpus <= mem <= 6.5 * 1024 * cpus):
            bad(f"Invalid Tier ({tier}): memory must be a multiple of 256 MB, at least 3840 MB and 0.9-6.5 GB per vCPU.",
                "settings.tier")
    elif p:
        if int(p.group(1)) not in PERF_VCPUS:
            bad(f"Invalid Tier ({tier}).", "settings.tier")
        if edition != "ENTERPRISE_PLUS":
            bad(f"Invalid Tier ({tier}) for ({edition}) Edition.", "settings.tier")
    else:
        bad(f"Invalid Tier ({tier}) for PostgreSQL.", "settings.tier")
    size = s.get("dataDiskSizeGb", 10)
    if not 10 <= size <= 65536:
        bad(f"dataDiskSizeGb must be between 10 and 65536, got {size}.", "settings.dataDiskSizeGb")
    if s.get("dataDiskType") not in ("PD_SSD", "PD_HDD", "HYPERDISK_BALANCED"):
        bad(f"dataDiskType {s.get('dataDiskType')} is not supported.", "settings.dataDiskType")
    if s.get("availabilityType") not in ("ZONAL", "REGIONAL"):
        bad("availabilityType must be ZONAL or REGIONAL.", "settings.availabilityType")
    check_labels(s.get("userLabels") or {}, "settings.userLabels")
    ip = s.get("ipConfiguration") or {}
    net = ip.get("privateNetwork", "")
    if net and not NETWORK_RE.match(net):
        bad(f"privateNetwork '{net}' must look like projects/PROJECT/global/networks/NETWORK.", "settings.ipConfiguration.privateNetwork")
    if not ip.get("ipv4Enabled", True) and not net:
        bad("At least one of public IP or private IP connectivity must be enabled "
            "(ipv4Enabled=false requires privateNetwork).", "settings.ipConfiguration.ipv4Enabled")
    for i, an in enumerate(ip.get("authorizedNetworks") or []):
        try:
            ipaddress.ip_network(str(an.get("value", "")), strict=False)
        except ValueError:
            bad(f"authorizedNetworks[{i}].value is not a CIDR range.", f"settings.ipConfiguration.authorizedNetworks[{i}].value")
    bc = s.get("backupConfiguration") or {}
    if "startTime" in bc and not START_TIME_RE.match(str(bc["startTime"])):
        bad(f"backup startTime '{bc['startTime']}' must be HH:MM (24-hour, UTC).", "settings.backupConfiguration.startTime")
    if bc.get("pointInTimeRecoveryEnabled") and not bc.get("enabled"):
        bad("point-in-time recovery requires backups to be enabled.", "settings.backupConfiguration.pointInTimeRecoveryEnabled")
    max_days = 35 if edition == "ENTERPRISE_PLUS" else 7
    if not 1 <= bc.get("transactionLogRetentionDays", 7) <= max_days:
        bad(f"transactionLogRetentionDays must be between 1 and {max_days}.", "settings.backupConfiguration.transactionLogRetentionDays")
    rs = bc.get("backupRetentionSettings") or {}
    if rs and rs.get("retentionUnit") != "COUNT":
        bad("backupRetentionSettings.retentionUnit must be COUNT.", "settings.backupConfiguration.backupRetentionSettings.retentionUnit")
    if not 1 <= rs.get("retainedBackups", 7) <= 365:
        bad("retainedBackups must be between 1 and 365.", "settings.backupConfiguration.backupRetentionSettings.retainedBackups")


class Fake:
    def __init__(self, provision_seconds, op_seconds, page_size, block_deleted_names, iam_propagation=0.0):
        self.lock = threading.Lock()
        self.provision, self.op_seconds, self.page_size = provision_seconds, op_seconds, page_size
        self.block_deleted, self.default_iam_propagation = block_deleted_names, iam_propagation
        self.tokens = set()
        self.reset()

    def reset(self):
        self.instances, self.users, self.runs, self.operations = {}, {}, {}, {}
        self.databases, self.secrets = {}, {}
        self.service_accounts, self.deleted_accounts = {}, []  # email -> account; tombstones of deleted ones
        self.iam_propagation = self.default_iam_propagation
        self.final_backups, self.deleted, self.injections, self.op_failures = [], set(), [], []
        self.calls, self.seq = Counter(), 0

    # ---------- helpers ----------
    def next_id(self):
        self.seq += 1
        return int(time.time() * 1000) * 1000 + self.seq

    def instance(self, project, name):
        inst = self.instances.get((project, name))
        if inst is None:
            raise ApiError(404, "The Cloud SQL instance does not exist.", "instanceDoesNotExist")
        return inst

    def ensure_idle(self, project, name):
        if any(o["_key"] == (project, name) and o["status"] != "DONE" for o in self.operations.values()):
            raise ApiError(409, "Operation failed because another operation was already in progress.", "operationInProgress")

    def ensure_runnable(self, inst):
        if inst["state"] != "RUNNABLE":
            raise ApiError(400, "Invalid request: Invalid request since instance is not running.")

    def touch(self, inst):
        inst["etag"] = hashlib.sha256(json.dumps(inst["settings"], sort_keys=True).encode()).hexdigest()

    def assign_ips(self, inst):
        n = 10 + inst["_index"] % 240
        ips = []
        if inst["settings"]["ipConfiguration"].get("ipv4Enabled", True):
            ips.append({"type": "PRIMARY", "ipAddress": f"203.0.113.{n}"})
        if inst["settings"]["ipConfiguration"].get("privateNetwork"):
            ips.append({"type": "PRIVATE", "ipAddress": f"10.{20 + inst['_index'] // 240 % 200}.0.{n}"})
        inst["ipAddresses"] = ips

    def new_op(self, key, op_type, seconds, on_done=None, on_fail=None, extra=None):
        name, t = str(uuid.uuid4()), time.time()
        project, instance = key
        op = {"kind": "sql#operation", "name": name, "operationType": op_type, "status": "PENDING",
              "insertTime": now_ts(t), "targetId": instance, "targetProject": project,
              "targetLink": f"{SELF}/projects/{project}/instances/{instance}",
              "selfLink": f"{SELF}/projects/{project}/operations/{name}", "user": "paved-e2e@fake.iam.gserviceaccount.com",
              "_key": key, "_start": t + min(0.2, seconds / 4), "_end": t + seconds, "_done": on_done, "_fail": on_fail}
        op.update(extra or {})
        for f in self.op_failures:
            if f.get("operationType") in (None, op_type) and f["count"] > 0:
                f["count"] -= 1
                op["_error"] = {"code": f.get("code", "INTERNAL_ERROR"), "message": f.get("message", "Injected operation failure.")}
                break
        self.op_failures = [f for f in self.op_failures if f["count"] > 0]
        self.operations[name] = op
        return op

    def advance(self):
        t = time.time()
        for op in list(self.operations.values()):
            if op["status"] == "DONE":
                continue
            if t >= op["_start"] and op["status"] == "PENDING":
                op["status"], op["startTime"] = "RUNNING", now_ts(op["_start"])
            if t >= op["_end"]:
                op["status"], op["endTime"] = "DONE", now_ts(op["_end"])
                if "_error" in op:
                    e = op.pop("_error")
                    op["error"] = {"kind": "sql#operationErrors", "errors": [dict(kind="sql#operationError", **e)]}
                    if op["_fail"]:
                        op["_fail"]()
                elif op["_done"]:
                    op["_done"]()

    def paginate(self, items, token, size):
        size = size if size and size > 0 else self.page_size
        try:
            start = int(token.removeprefix("page-")) if token else 0
        except ValueError:
            raise ApiError(400, "Invalid request: invalid page token.", field="pageToken")
        nxt = f"page-{start + size}" if start + size < len(items) else None
        return items[start:start + size], nxt

    def default_settings(self, region):
        return {"kind": "sql#settings", "tier": "", "dataDiskSizeGb": 10, "dataDiskType": "PD_SSD",
                "availabilityType": "ZONAL", "activationPolicy": "ALWAYS", "pricingPlan": "PER_USE",
                "storageAutoResize": True, "storageAutoResizeLimit": 0, "deletionProtectionEnabled": False,
                "userLabels": {}, "locationPreference": {"kind": "sql#locationPreference", "zone": f"{region}-a"},
                "ipConfiguration": {"ipv4Enabled": True, "requireSsl": False, "sslMode": "ALLOW_UNENCRYPTED_AND_ENCRYPTED"},
                "backupConfiguration": {"kind": "sql#backupConfiguration", "enabled": False, "startTime": "07:00",
                                        "pointInTimeRecoveryEnabled": False, "transactionLogRetentionDays": 7,
                                        "backupRetentionSettings": {"retentionUnit": "COUNT", "retainedBackups": 7}}}

    @staticmethod
    def default_edition(settings):
        settings.setdefault("edition", "ENTERPRISE_PLUS" if settings.get("tier", "").startswith("db-perf-optimized") else "ENTERPRISE")

    def check_kms(self, dec, region, field="diskEncryptionConfiguration.kmsKeyName"):
        key = (dec or {}).get("kmsKeyName", "")
        if key:
            m = KMS_RE.match(key)
            if not m:
                bad(f"kmsKeyName '{key}' must look like projects/*/locations/*/keyRings/*/cryptoKeys/*.", field)
            if m.group(1) != region:
                bad(f"the KMS key location ({m.group(1)}) must match the instance region ({region}).", field)
        return key

    # ---------- instances ----------
    def insert_instance(self, p, q, body):
        project = p[0]
        b = conv(body, INSTANCE, False)
        name = b.get("name") or ""
        if not name:
            bad("Missing parameter: name.", "name")
        if not NAME_RE.match(name) or len(project) + 1 + len(name) > 98:
            bad(f"instance name '{name}' must use lowercase letters, digits and hyphens, start with a letter, "
                "and project-id:instance-id must be at most 98 characters.", "name")
        if (project, name) in self.instances or (self.block_deleted and (project, name) in self.deleted):
            raise ApiError(409, "The Cloud SQL instance already exists. When you delete an instance, you can't reuse "
                                "the name of the deleted instance until one week from the deletion date.", "instanceAlreadyExists",
                           status="ALREADY_EXISTS")
        if b.get("databaseVersion") not in PG_VERSIONS:
            bad(f"databaseVersion must be one of {', '.join(PG_VERSIONS)} (this fake models PostgreSQL only).", "databaseVersion")
        region = b.get("region") or "us-central1"
        if not REGION_RE.match(region):
            bad(f"region '{region}' is not a valid region.", "region")
        incoming = clean_settings(b.get("settings") or {})
        if not incoming.get("tier"):
            bad("Missing parameter: settings.tier.", "settings.tier")
        settings = deep_merge(self.default_settings(region), incoming)
        self.default_edition(settings)
        settings.pop("settingsVersion", None)
        validate_settings(settings, region)
        kms = self.check_kms(b.get("diskEncryptionConfiguration"), region)
        settings["settingsVersion"] = 1
        key = (project, name)
        inst = {"kind": "sql#instance", "name": name, "project": project, "region": region,
                "databaseVersion": b["databaseVersion"], "state": "PENDING_CREATE", "backendType": "SECOND_GEN",
                "instanceType": "CLOUD_SQL_INSTANCE", "connectionName": f"{project}:{region}:{name}",
                "selfLink": f"{SELF}/projects/{project}/instances/{name}", "gceZone": settings["locationPreference"]["zone"],
                "createTime": now_ts(), "settings": settings, "ipAddresses": [],
                "maxDiskSize": settings["dataDiskSizeGb"] * 1024 ** 3, "_index": self.next_id() % 48000}
        if kms:
            inst["diskEncryptionConfiguration"] = {"kind": "sql#diskEncryptionConfiguration", "kmsKeyName": kms}
            inst["diskEncryptionStatus"] = {"kind": "sql#diskEncryptionStatus", "kmsKeyVersionName": kms + "/cryptoKeyVersions/1"}
        self.touch(inst)
        self.instances[key] = inst
        self.users[key] = {"postgres": {"passwordSet": bool(b.get("rootPassword")), "passwordChanges": 0, "type": "BUILT_IN"}}
        self.databases[key] = {"postgres": {"charset": "UTF8", "collation": "en_US.UTF8"}}
        self.runs[key] = []

        def done():
            inst["state"] = "RUNNABLE"
            self.assign_ips(inst)

        def fail():
            inst["state"] = "FAILED"
        return self.new_op(key, "CREATE", self.provision, done, fail), OPERATION

    def get_instance(self, p, q, body):
        return self.instance(*p), INSTANCE

    def list_instances(self, p, q, body):
        items = [i for (proj, _), i in sorted(self.instances.items()) if proj == p[0]]
        page, nxt = self.paginate(items, q.get("pageToken", ""), qint(q, "maxResults"))
        out = {"kind": "sql#instancesList", "items": page}
        if nxt:
            out["nextPageToken"] = nxt
        return out, {"items": INSTANCE}

    def modify_instance(self, p, q, body, full):
        key = tuple(p)
        inst = self.instance(*key)
        b = conv(body, INSTANCE, False)
        if b.get("name") not in (None, "", inst["name"]):
            bad("the instance name in the body does not match the URL.", "name")
        if b.get("region") not in (None, "", inst["region"]):
            bad("region cannot be changed after creation.", "region")
        incoming = clean_settings(b.get("settings") or {})
        version = incoming.pop("settingsVersion", None)
        if full and version is None:
            raise ApiError(400, "Missing parameter: Settings version.", "required", field="settings.settingsVersion")
        if version is not None and version != inst["settings"]["settingsVersion"]:
            raise ApiError(412, "Condition does not match.", "staleData", status="FAILED_PRECONDITION")
        self.ensure_idle(*key)
        if inst["state"] not in ("RUNNABLE", "SUSPENDED"):
            bad("Invalid request since instance is not running.")
        old = inst["settings"]
        if full:  # PUT replaces settings; fields that cannot be unset keep their current value
            new = self.default_settings(inst["region"])
            for f in ("tier", "dataDiskSizeGb", "dataDiskType", "edition"):
                new[f] = old[f]
            new["ipConfiguration"]["privateNetwork"] = old["ipConfiguration"].get("privateNetwork", "")
            deep_merge(new, incoming)
            if not new["ipConfiguration"]["privateNetwork"]:
                new["ipConfiguration"].pop("privateNetwork")
        else:
            new = deep_merge(copy.deepcopy(old), incoming)
        validate_settings(new, inst["region"])
        if new["dataDiskSizeGb"] < old["dataDiskSizeGb"]:
            bad(f"dataDiskSizeGb cannot be decreased (current {old['dataDiskSizeGb']}, requested {new['dataDiskSizeGb']}).",
                "settings.dataDiskSizeGb")
        if new["dataDiskType"] != old["dataDiskType"]:
            bad("dataDiskType cannot be changed after creation.", "settings.dataDiskType")
        if old["ipConfiguration"].get("privateNetwork") and not new["ipConfiguration"].get("privateNetwork"):
            bad("privateNetwork cannot be removed after it is set.", "settings.ipConfiguration.privateNetwork")
        if "diskEncryptionConfiguration" in b and (b["diskEncryptionConfiguration"] or {}).get("kmsKeyName", "") != \
                inst.get("diskEncryptionConfiguration", {}).get("kmsKeyName", ""):
            bad("diskEncryptionConfiguration cannot be changed after creation.", "diskEncryptionConfiguration.kmsKeyName")
        op_type, version_to = "UPDATE", inst["databaseVersion"]
        if b.get("databaseVersion") not in (None, inst["databaseVersion"]):
            if b["databaseVersion"] not in PG_VERSIONS or PG_VERSIONS.index(b["databaseVersion"]) < PG_VERSIONS.index(inst["databaseVersion"]):
                bad(f"databaseVersion can only be upgraded within PostgreSQL ({inst['databaseVersion']} -> {b['databaseVersion']}).",
                    "databaseVersion")
            op_type, version_to = "MAJOR_VERSION_UPGRADE", b["databaseVersion"]

        def done():
            new["settingsVersion"] = inst["settings"]["settingsVersion"] + 1
            inst["settings"], inst["databaseVersion"] = new, version_to
            inst["maxDiskSize"] = new["dataDiskSizeGb"] * 1024 ** 3
            self.assign_ips(inst)
            self.touch(inst)
        return self.new_op(key, op_type, self.op_seconds, done), OPERATION

    def delete_instance(self, p, q, body):
        key = tuple(p)
        inst = self.instance(*key)
        self.ensure_idle(*key)
        if inst["settings"].get("deletionProtectionEnabled"):
            raise ApiError(400, "Invalid request: The instance is protected from deletion "
                                "(settings.deletionProtectionEnabled is true). Disable deletion protection first.",
                           "failedPrecondition", status="FAILED_PRECONDITION", field="settings.deletionProtectionEnabled")
        fbc = inst["settings"].get("finalBackupConfig") or {}
        enabled = q["enableFinalBackup"] == "true" if "enableFinalBackup" in q else bool(fbc.get("enabled"))
        if "finalBackupTtlDays" in q and q.get("finalBackupExpiryTime"):
            bad("only one of finalBackupTtlDays and finalBackupExpiryTime may be set.", "finalBackupTtlDays")
        ttl = i64(q["finalBackupTtlDays"], "finalBackupTtlDays") if "finalBackupTtlDays" in q else fbc.get("retentionDays", 30)
        if enabled and not 1 <= ttl <= 365:
            bad("finalBackupTtlDays must be between 1 and 365.", "finalBackupTtlDays")
        expiry = q.get("finalBackupExpiryTime") or None
        description, prior_state = q.get("finalBackupDescription", ""), inst["state"]
        inst["state"] = "PENDING_DELETE"

        def done():
            t = time.time()
            self.instances.pop(key, None)
            self.users.pop(key, None)
            self.databases.pop(key, None)
            self.runs.pop(key, None)
            self.deleted.add(key)
            if enabled:
                bid = self.next_id()
                snapshot = {k: copy.deepcopy(v) for k, v in inst.items() if not k.startswith("_")}
                self.final_backups.append({
                    "kind": "sql#backup", "name": f"projects/{key[0]}/backups/{bid}", "type": "FINAL",
                    "selfLink": f"{SELF}/projects/{key[0]}/backups/{bid}", "description": description,
                    "instance": key[1], "location": inst["region"], "state": "SUCCESSFUL", "backupKind": "SNAPSHOT",
                    "databaseVersion": inst["databaseVersion"], "expiryTime": expiry or now_ts(t + ttl * 86400),
                    "instanceDeletionTime": now_ts(t), "instanceSettings": snapshot, "_project": key[0]})

        def fail():
            inst["state"] = prior_state
        return self.new_op(key, "DELETE", self.op_seconds, done, fail), OPERATION

    # ---------- backups ----------
    def insert_backup_run(self, p, q, body):
        key = tuple(p)
        inst = self.instance(*key)
        self.ensure_idle(*key)
        self.ensure_runnable(inst)
        rid, t = self.next_id(), now_ts()
        run = {"kind": "sql#backupRun", "id": rid, "status": "ENQUEUED", "type": "ON_DEMAND", "enqueuedTime": t,
               "description": str((body or {}).get("description", "")), "instance": key[1], "location": inst["region"],
               "backupKind": "SNAPSHOT", "databaseVersion": inst["databaseVersion"],
               "selfLink": f"{SELF}/projects/{key[0]}/instances/{key[1]}/backupRuns/{rid}"}
        self.runs[key].insert(0, run)

        def done():
            run.update(status="SUCCESSFUL", startTime=t, endTime=now_ts())

        def fail():
            run["status"] = "FAILED"
        extra = {"backupContext": {"kind": "sql#backupContext", "backupId": rid}}
        return self.new_op(key, "BACKUP_VOLUME", self.op_seconds, done, fail, extra), OPERATION

    def list_backup_runs(self, p, q, body):
        self.instance(*p)
        page, nxt = self.paginate(self.runs[tuple(p)], q.get("pageToken", ""), qint(q, "maxResults"))
        out = {"kind": "sql#backupRunsList", "items": page}
        if nxt:
            out["nextPageToken"] = nxt
        return out, {"items": BACKUP_RUN}

    def get_backup_run(self, p, q, body):
        self.instance(p[0], p[1])
        for run in self.runs[(p[0], p[1])]:
            if str(run["id"]) == p[2]:
                return run, BACKUP_RUN
        raise ApiError(404, "The backup run does not exist.", "backupRunDoesNotExist")

    def all_backups(self, project):
        out = []
        for (proj, name), runs in sorted(self.runs.items()):
            for r in runs if proj == project else []:
                out.append({"kind": "sql#backup", "name": f"projects/{proj}/backups/{r['id']}", "type": "ON_DEMAND",
                            "selfLink": f"{SELF}/projects/{proj}/backups/{r['id']}", "description": r["description"],
                            "instance": name, "location": r["location"], "backupKind": "SNAPSHOT",
                            "databaseVersion": r["databaseVersion"], "backupRun": r["selfLink"],
                            "state": {"SUCCESSFUL": "SUCCESSFUL", "FAILED": "FAILED"}.get(r["status"], "ENQUEUED")})
        return out + [b for b in self.final_backups if b["_project"] == project]

    def list_backups(self, p, q, body):
        page, nxt = self.paginate(self.all_backups(p[0]), q.get("pageToken", ""), qint(q, "pageSize"))
        out = {"backups": page}
        if nxt:
            out["nextPageToken"] = nxt
        return out, {"backups": BACKUP}

    def get_backup(self, p, q, body):
        for b in self.all_backups(p[0]):
            if b["name"] == f"projects/{p[0]}/backups/{p[1]}":
                return b, BACKUP
        raise ApiError(404, "The backup does not exist.", "backupDoesNotExist")

    # ---------- users ----------
    def user_view(self, key, name, u):
        return {"kind": "sql#user", "name": name, "host": "", "instance": key[1], "project": key[0],
                "type": u["type"], "etag": hashlib.sha256(f"{key}{name}{u['passwordChanges']}".encode()).hexdigest()[:16]}

    def list_users(self, p, q, body):
        key = tuple(p)
        self.ensure_runnable(self.instance(*key))
        return {"kind": "sql#usersList", "items": [self.user_view(key, n, u) for n, u in sorted(self.users[key].items())]}, {"items": USER}

    def get_user(self, p, q, body):
        key = (p[0], p[1])
        self.ensure_runnable(self.instance(*key))
        if p[2] not in self.users[key]:
            raise ApiError(404, "The Cloud SQL user does not exist.", "userDoesNotExist")
        return self.user_view(key, p[2], self.users[key][p[2]]), USER

    def insert_user(self, p, q, body):
        key = tuple(p)
        inst = self.instance(*key)
        b = conv(body, USER, False)
        name = b.get("name") or ""
        if not name or len(name) > 63:
            bad("user name is required and must be at most 63 characters.", "name")
        if b.get("type", "BUILT_IN") != "BUILT_IN":
            bad("this fake only models BUILT_IN users.", "type")
        self.ensure_idle(*key)
        self.ensure_runnable(inst)
        if name in self.users[key]:
            raise ApiError(409, f"The user {name} already exists.", "alreadyExists", status="ALREADY_EXISTS")
        has_pw = bool(b.get("password"))

        def done():
            self.users[key][name] = {"passwordSet": has_pw, "passwordChanges": 0, "type": "BUILT_IN"}
        return self.new_op(key, "CREATE_USER", self.op_seconds, done), OPERATION

    def update_user(self, p, q, body):
        key, name = tuple(p), q.get("name", "")
        inst = self.instance(*key)
        if not name:
            raise ApiError(400, "Missing parameter: name.", "required", field="name")
        self.ensure_idle(*key)
        self.ensure_runnable(inst)
        if name not in self.users[key]:
            raise ApiError(404, "The Cloud SQL user does not exist.", "userDoesNotExist")
        has_pw = bool((body or {}).get("password"))

        def done():
            u = self.users[key].get(name)
            if u is not None and has_pw:
                u["passwordSet"], u["passwordChanges"] = True, u["passwordChanges"] + 1
        return self.new_op(key, "UPDATE_USER", self.op_seconds, done), OPERATION

    def delete_user(self, p, q, body):
        key, name = tuple(p), q.get("name", "")
        inst = self.instance(*key)
        self.ensure_idle(*key)
        self.ensure_runnable(inst)
        if name not in self.users[key]:
            raise ApiError(404, "The Cloud SQL user does not exist.", "userDoesNotExist")
        return self.new_op(key, "DELETE_USER", self.op_seconds, lambda: self.users[key].pop(name, None)), OPERATION

    # ---------- databases ----------
    def database_view(self, key, name, d):
        project, instance = key
        return {"kind": "sql#database", "name": name, "instance": instance, "project": project,
                "charset": d["charset"], "collation": d["collation"],
                "selfLink": f"{SELF}/projects/{project}/instances/{instance}/databases/{name}",
                "etag": hashlib.sha256(f"{key}{name}{d['charset']}{d['collation']}".encode()).hexdigest()[:16]}

    def list_databases(self, p, q, body):
        key = tuple(p)
        self.ensure_runnable(self.instance(*key))
        items = [self.database_view(key, n, d) for n, d in sorted(self.databases[key].items())]
        return {"kind": "sql#databasesList", "items": items}, {"items": DATABASE}

    def get_database(self, p, q, body):
        key = (p[0], p[1])
        self.ensure_runnable(self.instance(*key))
        if p[2] not in self.databases[key]:
            raise ApiError(404, f"The Cloud SQL database {p[2]} does not exist.", "notFound")
        return self.database_view(key, p[2], self.databases[key][p[2]]), DATABASE

    def insert_database(self, p, q, body):
        key = tuple(p)
        inst = self.instance(*key)
        name = body.get("name") or ""
        if not isinstance(name, str) or not DB_NAME_RE.match(name):
            bad("database name is required and must be 1-63 characters without '/' or control characters.", "name")
        for f, want in (("instance", key[1]), ("project", key[0])):
            if body.get(f) not in (None, "", want):
                bad(f"the database {f} in the body does not match the URL.", f)
        charset = body.get("charset") or "UTF8"
        if charset not in ("UTF8", "utf8", "UTF-8", "utf-8"):
            bad(f"charset '{charset}' is not supported; PostgreSQL databases use UTF8.", "charset")
        collation = body.get("collation") or "en_US.UTF8"
        if not isinstance(collation, str) or not COLLATION_RE.match(collation):
            bad(f"collation '{collation}' is not valid.", "collation")
        self.ensure_idle(*key)
        self.ensure_runnable(inst)
        if name in self.databases[key]:
            raise ApiError(409, f"The database {name} already exists.", "alreadyExists", status="ALREADY_EXISTS")

        def done():
            if key in self.databases:
                self.databases[key][name] = {"charset": "UTF8", "collation": collation}
        return self.new_op(key, "CREATE_DATABASE", self.op_seconds, done), OPERATION

    def delete_database(self, p, q, body):
        key, name = (p[0], p[1]), p[2]
        inst = self.instance(*key)
        self.ensure_idle(*key)
        self.ensure_runnable(inst)
        if name not in self.databases[key]:
            raise ApiError(404, f"The Cloud SQL database {name} does not exist.", "notFound")

        def done():
            self.databases.get(key, {}).pop(name, None)
        return self.new_op(key, "DELETE_DATABASE", self.op_seconds, done), OPERATION

    # ---------- Secret Manager ----------
    def secret(self, project, sid):
        sec = self.secrets.get((project, sid))
        if sec is None:
            raise ApiError(404, f"Secret [projects/{project}/secrets/{sid}] not found.", "notFound")
        return sec

    @staticmethod
    def secret_view(sec):
        return {k: copy.deepcopy(v) for k, v in sec.items() if not k.startswith("_")}

    def version_view(self, sec, v):
        rep = sec["replication"]
        status = {"automatic": {}} if "automatic" in rep else \
            {"userManaged": {"replicas": [{"location": r.get("location", "")} for r in rep["userManaged"]["replicas"]]}}
        out = {"name": f"{sec['name']}/versions/{v['n']}", "createTime": v["createTime"], "state": "ENABLED",
               "replicationStatus": status, "etag": v["etag"]}
        if v["clientChecksum"]:
            out["clientSpecifiedPayloadChecksum"] = True
        return out

    def create_secret(self, p, q, body):
        project, sid = p[0], q.get("secretId", "")
        if not SECRET_ID_RE.match(sid):
            bad("secretId must be 1-255 characters of letters, digits, '-' and '_'.", "secret_id")
        replication = body.get("replication")
        if not isinstance(replication, dict) or ("automatic" in replication) == ("userManaged" in replication):
            bad("Secret.replication must set exactly one of automatic or userManaged.", "secret.replication")
        replicas = (replication.get("userManaged") or {}).get("replicas") if "userManaged" in replication else None
        if "userManaged" in replication and (not isinstance(replicas, list) or not replicas or
                                             not all(isinstance(r, dict) and r.get("location") for r in replicas)):
            bad("Secret.replication.userManaged.replicas must be a non-empty list of {location}.",
                "secret.replication.user_managed.replicas")
        labels = body.get("labels") or {}
        check_labels(labels, "secret.labels")
        if (project, sid) in self.secrets:
            raise ApiError(409, f"Secret [projects/{project}/secrets/{sid}] already exists.", "alreadyExists",
                           status="ALREADY_EXISTS")
        t = now_ts()
        sec = {"name": f"projects/{project}/secrets/{sid}", "replication": copy.deepcopy(replication), "createTime": t,
               "etag": '"' + hashlib.sha256(f"{project}{sid}{t}".encode()).hexdigest()[:16] + '"',
               "_project": project, "_id": sid, "_versions": []}
        if labels:
            sec["labels"] = dict(labels)
        for f in ("annotations", "topics", "versionAliases", "ttl", "expireTime"):  # stored and echoed, not modelled
            if body.get(f):
                sec[f] = copy.deepcopy(body[f])
        self.secrets[(project, sid)] = sec
        return self.secret_view(sec), SECRET

    def get_secret(self, p, q, body):
        return self.secret_view(self.secret(*p)), SECRET

    def delete_secret(self, p, q, body):
        sec = self.secret(*p)
        etag = q.get("etag", "")
        if etag and etag != sec["etag"]:
            raise ApiError(409, "The etag provided does not match the etag of the secret.", "aborted", status="ABORTED")
        del self.secrets[tuple(p)]
        return {}, {}

    def add_secret_version(self, p, q, body):
        sec = self.secret(*p)
        payload = body.get("payload")
        if not isinstance(payload, dict):
            bad("payload is required.", "payload")
        raw = payload.get("data") or ""
        if not isinstance(raw, str):
            bad("payload.data must be a base64 string.", "payload.data")
        try:  # proto3 JSON accepts standard and URL-safe base64, with or without padding
            data = base64.b64decode(raw.replace("-", "+").replace("_", "/") + "=" * (-len(raw) % 4), validate=True)
        except ValueError:
            raise ApiError(400, "Invalid value at 'payload.data' (TYPE_BYTES), Base64 decoding failed.", field="payload.data")
        if len(data) > MAX_SECRET_BYTES:
            bad(f"Secret payload data must be at most {MAX_SECRET_BYTES} bytes.", "payload.data")
        crc, given = crc32c(data), payload.get("dataCrc32c")
        if given is not None and i64(given, "payload.dataCrc32c") != crc:
            bad("Checksum mismatch: payload.dataCrc32c does not match the CRC32C of payload.data.", "payload.data_crc32c")
        n = len(sec["_versions"]) + 1
        t = now_ts()
        v = {"n": n, "data": data, "crc": crc, "createTime": t, "clientChecksum": given is not None,
             "etag": '"' + hashlib.sha256(f"{sec['name']}{n}{t}".encode()).hexdigest()[:16] + '"'}
        sec["_versions"].append(v)
        return self.version_view(sec, v), SECRET_VERSION

    def access_secret_version(self, p, q, body):
        project, sid, ver = p
        sec = self.secrets.get((project, sid))
        versions = sec["_versions"] if sec else []
        v = None
        if ver == "latest":
            v = versions[-1] if versions else None
        elif ver.isdigit() and 1 <= int(ver) <= len(versions):
            v = versions[int(ver) - 1]
        if v is None:
            if ver == "latest":
                raise ApiError(404, f"Secret [projects/{project}/secrets/{sid}] not found or has no versions.", "notFound")
            raise ApiError(404, f"Secret Version [projects/{project}/secrets/{sid}/versions/{ver}] not found.", "notFound")
        return {"name": f"{sec['name']}/versions/{v['n']}",
                "payload": {"data": base64.b64encode(v["data"]).decode(), "dataCrc32c": v["crc"]}}, {}

    # ---------- IAM: service accounts and IAM policies ----------
    def service_account(self, project, ident, permission):
        """Look an account up by email or uniqueId; project '-' means any project (R)."""
        ident_l = ident.lower()
        sa = next((a for a in self.service_accounts.values()
                   if (a["uniqueId"] == ident if ident.isdigit() else a["email"] == ident_l)), None)
        if sa is not None and project not in ("-", sa["projectId"]):
            sa = None
        if sa is None:
            if project == "-" and not ident.isdigit():  # R: '-' with an unknown email is a 403, not a 404
                raise ApiError(403, f"Permission '{permission}' denied on resource (or it may not exist).",
                               "forbidden", details=[{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                                      "reason": "IAM_PERMISSION_DENIED", "domain": "iam.googleapis.com",
                                                      "metadata": {"permission": permission}}])
            raise ApiError(404, f"Service account projects/{project}/serviceAccounts/{ident} does not exist.", "notFound")
        return sa

    @staticmethod
    def sa_view(sa):
        out = {"name": f"projects/{sa['projectId']}/serviceAccounts/{sa['email']}", "projectId": sa["projectId"],
               "uniqueId": sa["uniqueId"], "email": sa["email"]}
        for f in ("displayName", "description"):  # proto3 JSON: empty strings are omitted
            if sa[f]:
                out[f] = sa[f]
        out.update(etag=SA_ETAG, oauth2ClientId=sa["uniqueId"])
        return out

    def new_unique_id(self):
        used = {a["uniqueId"] for a in self.service_accounts.values()} | {d["uniqueId"] for d in self.deleted_accounts}
        while True:
            uid = "1" + "".join(secrets.choice("0123456789") for _ in range(20))  # 21 digits
            if uid not in used:
                return uid

    @staticmethod
    def check_sa_text(sa_body, field, limit):
        value = sa_body.get(field) or ""
        if not isinstance(value, str) or len(value.encode("utf-8")) > limit:
            invalid(f"serviceAccount.{field} must be a string of at most {limit} UTF-8 bytes.", f"service_account.{field}")
        return value

    def create_service_account(self, p, q, body):
        project, aid = p[0], body.get("accountId")
        if project == "-":
            invalid("a project ID is required to create a service account ('-' is not allowed).", "name")
        if not isinstance(aid, str) or not ACCOUNT_ID_RE.match(aid):
            invalid(f"Account ID {json.dumps(aid)} must be 6-30 characters of lowercase letters, digits and hyphens, "
                    "start with a letter and not end with a hyphen.", "account_id")
        sa_body = body.get("serviceAccount") or {}
        if not isinstance(sa_body, dict):
            invalid("serviceAccount must be an object.", "service_account")
        display, desc = self.check_sa_text(sa_body, "displayName", 100), self.check_sa_text(sa_body, "description", 256)
        email = f"{aid}@{project}{SA_DOMAIN}"
        if email in self.service_accounts:
            raise ApiError(409, f"Service account {aid} already exists within project projects/{project}.", "alreadyExists",
                           status="ALREADY_EXISTS",
                           details=[{"@type": "type.googleapis.com/google.rpc.ResourceInfo",
                                     "resourceName": f"projects/{project}/serviceAccounts/{email}"}])
        sa = {"projectId": project, "accountId": aid, "email": email, "uniqueId": self.new_unique_id(),
              "displayName": display, "description": desc, "createTime": now_ts(),
              "_usable": time.time() + self.iam_propagation, "_policy": None}
        self.service_accounts[email] = sa
        return self.sa_view(sa), {}

    def get_service_account(self, p, q, body):
        return self.sa_view(self.service_account(p[0], p[1], "iam.serviceAccounts.get")), {}

    def list_service_accounts(self, p, q, body):
        items = [self.sa_view(a) for e, a in sorted(self.service_accounts.items()) if a["projectId"] == p[0]]
        size = qint(q, "pageSize")
        page, nxt = self.paginate(items, q.get("pageToken", ""), min(size, 100))  # R: default 20, maximum 100
        out = {"accounts": page} if page else {}
        if nxt:
            out["nextPageToken"] = nxt
        return out, {}

    def patch_service_account(self, p, q, body):
        sa = self.service_account(p[0], p[1], "iam.serviceAccounts.update")
        sa_body = body.get("serviceAccount") or {}
        if not isinstance(sa_body, dict):
            invalid("serviceAccount must be an object.", "service_account")
        mask = body.get("updateMask")
        if mask is not None and not isinstance(mask, str):
            invalid("updateMask must be a FieldMask string such as \"displayName,description\".", "update_mask")
        paths = [x.strip() for x in mask.split(",") if x.strip()] if mask else \
            [f for f in ("displayName", "description") if f in sa_body]
        names = {"displayName": "displayName", "display_name": "displayName", "description": "description"}
        changes = {}
        for path in paths:
            if path not in names:
                invalid(f"updateMask path '{path}' cannot be updated; only displayName and description can.", "update_mask")
            f = names[path]
            changes[f] = self.check_sa_text(sa_body, f, 100 if f == "displayName" else 256)
        sa.update(changes)
        return self.sa_view(sa), {}

    def delete_service_account(self, p, q, body):
        self.drop_service_account(self.service_account(p[0], p[1], "iam.serviceAccounts.delete"))
        return {}, {}

    def drop_service_account(self, sa):
        """Delete the account and its own policy. Bindings naming it elsewhere stay, as deleted:serviceAccount:…?uid=… (R)."""
        del self.service_accounts[sa["email"]]
        self.deleted_accounts.append({"email": sa["email"], "uniqueId": sa["uniqueId"], "projectId": sa["projectId"],
                                      "deleteTime": now_ts()})
        live, dead = f"serviceAccount:{sa['email']}", f"deleted:serviceAccount:{sa['email']}?uid={sa['uniqueId']}"
        for holder in list(self.service_accounts.values()) + list(self.secrets.values()):
            pol = holder.get("_policy")
            if pol and any(live in b.get("members", []) for b in pol["bindings"]):
                for b in pol["bindings"]:
                    b["members"] = sorted({dead if m == live else m for m in b.get("members", [])})

    @staticmethod
    def requested_version(q):
        raw = q.get("options.requestedPolicyVersion", "") or "0"
        if raw not in ("0", "1", "3"):
            invalid(f"options.requestedPolicyVersion must be 0, 1 or 3, got {raw}.", "options.requested_policy_version")
        return int(raw)

    @staticmethod
    def policy_view(pol, requested=3):
        if pol is None:
            return {"version": 1, "etag": EMPTY_POLICY_ETAG}
        conditional = any("condition" in b for b in pol["bindings"])
        if conditional and requested < 3:
            invalid("the policy has conditional role bindings; request policy version 3 (options.requestedPolicyVersion=3).",
                    "options.requested_policy_version")
        out = {"version": 3 if conditional else 1}
        if pol["bindings"]:
            out["bindings"] = copy.deepcopy(pol["bindings"])
        out["etag"] = pol["etag"]
        return out

    def check_member(self, m):
        if m in ("allUsers", "allAuthenticatedUsers"):
            return
        if not isinstance(m, str) or ":" not in m:
            invalid(f"Policy members must be of the form \"<type>:<value>\", got {json.dumps(m)}.", "policy.bindings.members")
        kind, _, value = m.partition(":")
        ok = {"user": EMAIL_RE.match(value), "group": EMAIL_RE.match(value), "domain": DOMAIN_RE.match(value),
              "serviceAccount": EMAIL_RE.match(value) or WI_MEMBER_RE.match(value),
              "deleted": DELETED_MEMBER_RE.match(m), "principal": PRINCIPAL_RE.match(m),
              "principalSet": PRINCIPAL_RE.match(m)}.get(kind)
        if not ok:
            invalid(f"Invalid member {json.dumps(m)}: members are user:, serviceAccount:, group:, domain:, principal://, "
                    "principalSet://, deleted:…?uid=…, allUsers or allAuthenticatedUsers.", "policy.bindings.members")
        if kind == "serviceAccount" and value.lower().endswith(SA_DOMAIN) and \
                value.lower() != METADATA_TEXT["/computeMetadata/v1/instance/service-accounts/default/email"]:
            sa = self.service_accounts.get(value.lower())
            if sa is None or time.time() < sa["_usable"]:  # I: also right after create, until IAM has propagated
                invalid(f"Service account {value} does not exist.", "policy.bindings.members")

    def apply_policy(self, holder, body, resource_kind):
        """setIamPolicy: validate, check the etag, normalise and store; returns the new policy view."""
        pol = body.get("policy")
        if not isinstance(pol, dict):
            invalid("policy is required.", "policy")
        mask = body.get("updateMask")
        if mask is not None and not isinstance(mask, str):
            invalid("updateMask must be a FieldMask string.", "update_mask")
        paths = {x.strip() for x in mask.split(",") if x.strip()} if mask else {"bindings", "etag"}
        unknown = paths - {"bindings", "etag", "version", "auditConfigs", "audit_configs"}
        if unknown:
            invalid(f"updateMask paths {sorted(unknown)} are not policy fields.", "update_mask")
        if pol.get("auditConfigs") and paths & {"auditConfigs", "audit_configs"}:
            invalid("auditConfigs are not supported for this resource.", "policy.audit_configs")
        version = i64(pol.get("version") or 0, "policy.version")
        if version not in (0, 1, 3):
            invalid(f"policy.version must be 0, 1 or 3, got {version}.", "policy.version")
        current = holder.get("_policy")
        etag = pol.get("etag") or ""
        if etag:
            try:
                given = base64.b64decode(etag.replace("-", "+").replace("_", "/") + "=" * (-len(etag) % 4), validate=True)
            except ValueError:
                raise ApiError(400, "Invalid value at 'policy.etag' (TYPE_BYTES), Base64 decoding failed.", field="policy.etag")
            cur = current["etag"] if current else EMPTY_POLICY_ETAG
            if given != base64.b64decode(cur):
                raise ApiError(409, "There were concurrent policy changes. Please retry the whole read-modify-write with "
                                    f"exponential backoff. The request's ETag '{etag}' did not match the current policy's "
                                    f"ETag '{cur}'.", "aborted", status="ABORTED")
        if "bindings" not in paths:
            return self.policy_view(current)
        bindings = pol.get("bindings") or []
        if not isinstance(bindings, list):
            invalid("policy.bindings must be a list.", "policy.bindings")
        merged = {}
        for i, b in enumerate(bindings):
            if not isinstance(b, dict):
                invalid(f"policy.bindings[{i}] must be an object.", f"policy.bindings[{i}]")
            role, members, cond = b.get("role") or "", b.get("members") or [], b.get("condition")
            if not isinstance(role, str) or not ROLE_RE.match(role):
                invalid(f"Role ({role}) does not exist in the resource's hierarchy.", f"policy.bindings[{i}].role")
            if role.startswith("roles/") and role not in BASIC_ROLES and not role.startswith(ROLE_PREFIX[resource_kind]):
                invalid(f"Role {role} is not supported for this resource.", f"policy.bindings[{i}].role")
            if not isinstance(members, list) or not members:
                invalid(f"policy.bindings[{i}] (role {role}) must name at least one member.", f"policy.bindings[{i}].members")
            for m in members:
                self.check_member(m)
            members = ["serviceAccount:" + m[15:].lower() if m.startswith("serviceAccount:") and m.lower().endswith(SA_DOMAIN)
                       else m for m in members]  # service account emails are stored lower-case (F)
            if cond is not None:
                if not isinstance(cond, dict) or not isinstance(cond.get("expression"), str) or not cond.get("expression") \
                        or not isinstance(cond.get("title"), str) or not cond.get("title"):
                    invalid("a binding condition needs a non-empty expression and title.", f"policy.bindings[{i}].condition")
                if version != 3:
                    invalid("conditional role bindings require policy version 3.", "policy.version")
                cond = {k: cond[k] for k in ("expression", "title", "description", "location") if cond.get(k)}
            key = (role, json.dumps(cond, sort_keys=True))
            merged.setdefault(key, (cond, set()))[1].update(members)
        out = []
        for (role, _), (cond, members) in sorted(merged.items()):
            b = {"role": role, "members": sorted(members)}
            if cond:
                b["condition"] = cond
            out.append(b)
        holder["_policy"] = {"bindings": out, "etag": base64.b64encode(b"\x07" + secrets.token_bytes(7)).decode()}
        return self.policy_view(holder["_policy"])

    def get_sa_policy(self, p, q, body):
        sa = self.service_account(p[0], p[1], "iam.serviceAccounts.getIamPolicy")
        return self.policy_view(sa["_policy"], self.requested_version(q)), {}

    def set_sa_policy(self, p, q, body):
        sa = self.service_account(p[0], p[1], "iam.serviceAccounts.setIamPolicy")
        return self.apply_policy(sa, body, "serviceAccount"), {}

    def get_secret_policy(self, p, q, body):
        return self.policy_view(self.secret(*p).get("_policy"), self.requested_version(q)), {}

    def set_secret_policy(self, p, q, body):
        return self.apply_policy(self.secret(*p), body, "secret"), {}

    # ---------- operations ----------
    def get_operation(self, p, q, body):
        op = self.operations.get(p[1])
        if op is None or op["targetProject"] != p[0]:
            raise ApiError(404, "The Cloud SQL operation does not exist.", "operationDoesNotExist")
        return op, OPERATION

    def list_operations(self, p, q, body):
        inst = q.get("instance", "")
        items = [o for o in reversed(list(self.operations.values()))
                 if o["targetProject"] == p[0] and (not inst or o["targetId"] == inst)]
        page, nxt = self.paginate(items, q.get("pageToken", ""), qint(q, "maxResults"))
        out = {"kind": "sql#operationsList", "items": page}
        if nxt:
            out["nextPageToken"] = nxt
        return out, {"items": OPERATION}

    # ---------- fake admin ----------
    def state(self):
        users = {f"{k[0]}/{k[1]}": {n: dict(u) for n, u in v.items()} for k, v in self.users.items()}
        databases = {f"{k[0]}/{k[1]}": {n: dict(d) for n, d in sorted(v.items())} for k, v in self.databases.items()}
        return {"instances": [finish(i) for i in self.instances.values()], "users": users, "databases": databases,
                "secrets": self.secrets_state(),
                "operations": [finish(o) for o in self.operations.values()],
                "backupRuns": {f"{k[0]}/{k[1]}": finish(v) for k, v in self.runs.items()},
                "retainedFinalBackups": finish(self.final_backups),
                "deletedInstances": sorted(f"{k[0]}/{k[1]}" for k in self.deleted),
                "injections": self.injections + self.op_failures}

    def secrets_state(self):
        """Secret metadata by id (by 'project/id' when one id exists in several projects). Never a value."""
        ids = Counter(sid for _, sid in self.secrets)
        out = {}
        for (project, sid), sec in sorted(self.secrets.items()):
            keys = None
            if sec["_versions"]:
                try:
                    latest = json.loads(sec["_versions"][-1]["data"].decode("utf-8"))
                    keys = sorted(latest) if isinstance(latest, dict) else None
                except ValueError:
                    keys = None
            out[sid if ids[sid] == 1 else f"{project}/{sid}"] = {
                "project": project, "name": sec["name"], "labels": dict(sec.get("labels") or {}),
                "versions": len(sec["_versions"]), "jsonKeys": keys, "createTime": sec["createTime"]}
        return out

    def service_accounts_state(self):
        accounts = []
        for _, sa in sorted(self.service_accounts.items()):
            view = self.sa_view(sa)
            view.update(createTime=sa["createTime"], policy=self.policy_view(sa["_policy"]))
            accounts.append(view)
        return {"accounts": accounts, "deleted": copy.deepcopy(self.deleted_accounts)}

    def secret_policies_state(self):
        """Every secret's IAM policy, keyed like /_fake/state's secrets (ID, or project/ID when ambiguous)."""
        ids = Counter(sid for _, sid in self.secrets)
        return {(sid if ids[sid] == 1 else f"{project}/{sid}"): dict(name=sec["name"], **self.policy_view(sec.get("_policy")))
                for (project, sid), sec in sorted(self.secrets.items())}

    def fake_admin(self, method, path, q, body):
        if method == "GET" and path == "/_fake/calls":
            return {"total": sum(self.calls.values()), "calls": dict(self.calls)}
        if method == "GET" and path == "/_fake/state":
            return self.state()
        if method == "POST" and path == "/_fake/reset":
            self.reset()
            return {}
        if method == "GET" and path == "/_fake/service-accounts":
            return self.service_accounts_state()
        if method == "GET" and path == "/_fake/secret-policies":
            return self.secret_policies_state()
        if method == "POST" and path == "/_fake/inject":
            if body.get("clear"):  # every injected failure taken back; nothing else changes
                self.injections, self.op_failures = [], []
                return {"injections": self.injections, "operationFailures": self.op_failures}
            rule = dict(body, count=int(body.get("count", 1)))
            if "iamPropagationSeconds" in body:  # a setting, not a counted rule; /_fake/reset restores the default
                self.iam_propagation = float(body["iamPropagationSeconds"])
                return {"iamPropagationSeconds": self.iam_propagation}
            if "operationError" in body:
                self.op_failures.append(dict(body["operationError"], count=rule["count"], operationType=body.get("operationType")))
            else:
                rule["status"] = int(body.get("status", 503))
                self.injections.append(rule)
            return {"injections": self.injections, "operationFailures": self.op_failures}
        m = re.fullmatch(r"/_fake/instances/([^/]+)/set", path)
        if method == "POST" and m:
            name, project = unquote(m.group(1)), q.get("project")
            hits = [i for (pr, n), i in self.instances.items() if n == name and project in (None, pr)]
            if not hits:
                raise ApiError(404, f"no instance named {name}")
            inst, b = hits[0], conv(body, INSTANCE, False)
            if "settings" in b:
                b["settings"] = clean_settings(b["settings"])
                b["settings"].pop("settingsVersion", None)
            deep_merge(inst, b)
            if "settings" in body:
                inst["settings"]["settingsVersion"] = inst["settings"].get("settingsVersion", 0) + 1
            self.touch(inst)
            return finish(inst)
        m = re.fullmatch(r"/_fake/secrets/([^/]+)/delete", path)
        if method == "POST" and m:
            sid, project = unquote(m.group(1)), q.get("project")
            hits = sorted(k for k in self.secrets if k[1] == sid and project in (None, k[0]))
            if not hits:
                raise ApiError(404, f"no secret named {sid}")
            self.secrets.pop(hits[0])
            return {"deleted": f"projects/{hits[0][0]}/secrets/{sid}"}
        m = re.fullmatch(r"/_fake/service-accounts/([^/]+)/delete", path)
        if method == "POST" and m:
            sa = self.service_accounts.get(unquote(m.group(1)).lower())
            if sa is None:
                raise ApiError(404, f"no service account {unquote(m.group(1))}")
            self.drop_service_account(sa)
            return {"deleted": self.sa_view(sa)["name"], "uniqueId": sa["uniqueId"]}
        m = re.fullmatch(r"/_fake/secret-policies/([^/]+)/set", path)
        if method == "POST" and m:
            sid, project = unquote(m.group(1)), q.get("project")
            hits = sorted(k for k in self.secrets if k[1] == sid and project in (None, k[0]))
            if not hits:
                raise ApiError(404, f"no secret named {sid}")
            self.secrets[hits[0]]["_policy"] = {"bindings": copy.deepcopy(body.get("bindings") or []),
                                                "etag": base64.b64encode(b"\x07" + secrets.token_bytes(7)).decode()}
            return self.policy_view(self.secrets[hits[0]]["_policy"])
        raise ApiError(404, f"fake: no admin route {method} {path}", "notFound")

    def take_injection(self, method, path):
        for rule in self.injections:
            where = rule.get("match")
            if (where and where not in path) or (not where and not path.startswith("/v1/")):
                continue
            if rule.get("method") and rule["method"].upper() != method:
                continue
            rule["count"] -= 1
            self.injections = [r for r in self.injections if r["count"] > 0]
            code = rule["status"]
            headers, details = {}, []
            service = "secretmanager.googleapis.com" if re.match(r"^/v1/projects/[^/]+/secrets", path) else \
                "iam.googleapis.com" if re.match(r"^/v1/projects/[^/]+/serviceAccounts", path) else "sqladmin.googleapis.com"
            if code == 429:
                retry = int(rule.get("retryAfter", 1))
                headers["Retry-After"] = str(retry)
                details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED",
                            "domain": "googleapis.com", "metadata": {"service": service}},
                           {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry}s"}]
            msg = rule.get("message") or (f"Quota exceeded for quota metric 'Queries' of service '{service}'."
                                          if code == 429 else f"Injected failure ({code}).")
            reason = {429: "rateLimitExceeded"}.get(code, "backendError" if code >= 500 else "injected")
            return ApiError(code, msg, reason, status=rule.get("grpcStatus"), headers=headers, details=details)
        return None


ROUTES = [(m, re.compile("^" + re.sub(r"\{[^}]+\}", "([^/]+)", t) + "$"), t, h) for m, t, h in [
    ("POST", "/v1/projects/{project}/instances", "insert_instance"),
    ("GET", "/v1/projects/{project}/instances", "list_instances"),
    ("GET", "/v1/projects/{project}/instances/{instance}", "get_instance"),
    ("PATCH", "/v1/projects/{project}/instances/{instance}", "patch"),
    ("PUT", "/v1/projects/{project}/instances/{instance}", "update"),
    ("DELETE", "/v1/projects/{project}/instances/{instance}", "delete_instance"),
    ("POST", "/v1/projects/{project}/instances/{instance}/backupRuns", "insert_backup_run"),
    ("GET", "/v1/projects/{project}/instances/{instance}/backupRuns", "list_backup_runs"),
    ("GET", "/v1/projects/{project}/instances/{instance}/backupRuns/{id}", "get_backup_run"),
    ("GET", "/v1/projects/{project}/instances/{instance}/users", "list_users"),
    ("POST", "/v1/projects/{project}/instances/{instance}/users", "insert_user"),
    ("PUT", "/v1/projects/{project}/instances/{instance}/users", "update_user"),
    ("DELETE", "/v1/projects/{project}/instances/{instance}/users", "delete_user"),
    ("GET", "/v1/projects/{project}/instances/{instance}/users/{name}", "get_user"),
    ("POST", "/v1/projects/{project}/instances/{instance}/databases", "insert_database"),
    ("GET", "/v1/projects/{project}/instances/{instance}/databases", "list_databases"),
    ("GET", "/v1/projects/{project}/instances/{instance}/databases/{database}", "get_database"),
    ("DELETE", "/v1/projects/{project}/instances/{instance}/databases/{database}", "delete_database"),
    ("GET", "/v1/projects/{project}/operations", "list_operations"),
    ("GET", "/v1/projects/{project}/operations/{operation}", "get_operation"),
    ("GET", "/v1/projects/{project}/backups", "list_backups"),
    ("GET", "/v1/projects/{project}/backups/{backup}", "get_backup"),
    # IAM policies first: the generic {secret} / {account} patterns below would also match "x:getIamPolicy".
    # iam-admin-v1's transport.rs sends getIamPolicy as a POST (empty body); secretmanager-v1's as a GET.
    ("POST", "/v1/projects/{project}/serviceAccounts/{account}:getIamPolicy", "get_sa_policy"),
    ("POST", "/v1/projects/{project}/serviceAccounts/{account}:setIamPolicy", "set_sa_policy"),
    ("GET", "/v1/projects/{project}/secrets/{secret}:getIamPolicy", "get_secret_policy"),
    ("POST", "/v1/projects/{project}/secrets/{secret}:setIamPolicy", "set_secret_policy"),
    # IAM v1 service accounts; transport.rs names these /v1/{name}/serviceAccounts and /v1/{name}.
    ("POST", "/v1/projects/{project}/serviceAccounts", "create_service_account"),
    ("GET", "/v1/projects/{project}/serviceAccounts", "list_service_accounts"),
    ("GET", "/v1/projects/{project}/serviceAccounts/{account}", "get_service_account"),
    ("PATCH", "/v1/projects/{project}/serviceAccounts/{account}", "patch_service_account"),
    ("DELETE", "/v1/projects/{project}/serviceAccounts/{account}", "delete_service_account"),
    # Secret Manager v1; transport.rs names these /v1/{parent}/secrets, /v1/{parent}:addVersion, /v1/{name}
    # and /v1/{name}:access (project-level forms only).
    ("POST", "/v1/projects/{project}/secrets", "create_secret"),
    ("GET", "/v1/projects/{project}/secrets/{secret}", "get_secret"),
    ("DELETE", "/v1/projects/{project}/secrets/{secret}", "delete_secret"),
    ("POST", "/v1/projects/{project}/secrets/{secret}:addVersion", "add_secret_version"),
    ("GET", "/v1/projects/{project}/secrets/{secret}/versions/{version}:access", "access_secret_version"),
]]
METADATA_TEXT = {
    "/computeMetadata/v1/universe/universe-domain": "googleapis.com",
    "/computeMetadata/v1/instance/service-accounts/default/email": "paved-e2e@fake.iam.gserviceaccount.com",
    "/computeMetadata/v1/instance/service-accounts/default/scopes": "https://www.googleapis.com/auth/cloud-platform",
    "/computeMetadata/v1/project/project-id": "fake-project",
    "/computeMetadata/v1/project/numeric-project-id": "123456789012",
    "/computeMetadata/v1/instance/zone": "projects/123456789012/zones/us-central1-a",
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-sqladmin"
    fake: Fake = None
    log_file = None
    log_lock = threading.Lock()

    def log_message(self, *args):
        pass

    def do_GET(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            status, payload, ctype, headers = self.route(self.command, url.path, q, raw)
        except ApiError as e:
            status, payload, ctype, headers = e.code, json.dumps(e.body()), "application/json; charset=UTF-8", e.headers
        except Exception as e:  # a bug in the fake: say so rather than hang the client
            err = ApiError(500, f"fake internal error: {type(e).__name__}: {e}", "backendError")
            status, payload, ctype, headers = 500, json.dumps(err.body()), "application/json; charset=UTF-8", {}
        data = payload.encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if self.log_file:  # method, path (no query, no headers, no body), status
            with self.log_lock:
                self.log_file.write(f"{now_ts()} {self.command} {url.path} {status}\n")
                self.log_file.flush()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def route(self, method, path, q, raw):
        fake = self.fake
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError as e:
            raise ApiError(400, f"Invalid JSON payload received. {e}")
        with fake.lock:
            fake.advance()
            if path.startswith("/_fake/"):
                return 200, json.dumps(fake.fake_admin(method, path, q, body)), "application/json", {}
            tmpl, handler, params = path, None, []
            for m, rx, t, h in ROUTES:
                hit = rx.match(path)
                if hit and m == method:
                    tmpl, handler, params = t, h, [unquote(g) for g in hit.groups()]
                    break
            fake.calls[f"{method} {tmpl}"] += 1
            injected = fake.take_injection(method, path)
            if injected:
                raise injected
            if path == "/" or path.startswith("/computeMetadata/"):
                return self.metadata(path)
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or auth[7:] not in fake.tokens:
                raise ApiError(401, "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                                    "login cookie or other valid authentication credential.", "authError",
                               headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'})
            if handler is None:
                raise ApiError(404, f"fake: no route for {method} {path}", "notFound")
            if not isinstance(body, dict):
                raise ApiError(400, "Invalid JSON payload received. Expected an object.")
            if handler in ("patch", "update"):
                result, schema = fake.modify_instance(params, q, body, handler == "update")
            else:
                result, schema = getattr(fake, handler)(params, q, body)
            int_enums = "enum-encoding=int" in q.get("$alt", "")
            return 200, json.dumps(finish(conv(result, schema, int_enums))), "application/json; charset=UTF-8", {}

    def metadata(self, path):
        hdr = {"Metadata-Flavor": "Google"}
        if self.headers.get("Metadata-Flavor") != "Google":
            return 403, "Missing required header: Metadata-Flavor: Google\n", "text/plain", hdr
        if path == "/computeMetadata/v1/instance/service-accounts/default/token":
            token = "ya29.fake-" + secrets.token_urlsafe(24)
            self.fake.tokens.add(token)
            return 200, json.dumps({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}), "application/json", hdr
        if path in METADATA_TEXT:
            return 200, METADATA_TEXT[path], "application/text", hdr
        if path in ("/", "/computeMetadata/v1/", "/computeMetadata/v1"):
            return 200, "instance/\nproject/\nuniverse/\n", "application/text", hdr
        return 404, "Not Found\n", "text/plain", hdr


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--provision-seconds", type=float, default=2.0, help="CREATE operation duration")
    ap.add_argument("--op-seconds", type=float, default=None, help="other operations' duration (default: half of --provision-seconds)")
    ap.add_argument("--page-size", type=int, default=2, help="default page size when maxResults/pageSize is 0")
    ap.add_argument("--block-deleted-names", action="store_true", help="409 on re-creating a deleted instance name (as the real service does for a week)")
    ap.add_argument("--iam-propagation-seconds", type=float, default=0.0,
                    help="a new service account cannot be named in IAM policies for this long (real IAM is eventually consistent)")
    ap.add_argument("--log", help="append one line per request: time method path status")
    a = ap.parse_args(argv)
    op_seconds = a.provision_seconds / 2 if a.op_seconds is None else a.op_seconds
    Handler.fake = Fake(a.provision_seconds, op_seconds, a.page_size, a.block_deleted_names, a.iam_propagation_seconds)
    Handler.log_file = open(a.log, "a", encoding="utf-8") if a.log else None
    server = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    server.daemon_threads = True
    print(f"gcp_sqladmin fake listening on http://127.0.0.1:{server.server_address[1]}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
