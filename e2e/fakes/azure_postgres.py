#!/usr/bin/env python3
"""Loopback TEST FAKE of Azure Resource Manager for Azure Database for PostgreSQL
flexible servers (api-version 2024-08-01), user-assigned managed identities with their
federated identity credentials (Microsoft.ManagedIdentity 2023-01-31), role assignments
(Microsoft.Authorization 2022-04-01), the Azure AD v2.0 token endpoint, and the Azure Key
Vault secrets data plane (served at the root path of the same port).

This is not Azure and not an emulator. It was written from the published contract
(Azure/azure-rest-api-specs, specification/postgresql/resource-manager/
Microsoft.DBforPostgreSQL/stable/2024-08-01: FlexibleServers.json, Backups.json,
Configuration.json, Databases.json and their examples/; specification/keyvault/
data-plane/Microsoft.KeyVault/stable/7.0 examples; specification/msi/resource-manager/
Microsoft.ManagedIdentity/stable/2023-01-31 and specification/authorization/resource-manager/
Microsoft.Authorization/stable/2022-04-01 with their examples) and from the request/response
shapes of the Rust crates azure_mgmt_postgresql 0.21 (package-flexibleserver-2024-08-01),
azure_mgmt_msi 0.21 (package-2023-01-31), azure_mgmt_authorization 0.21 (package-2022-04-01),
azure_security_keyvault 0.21, azure_core 0.21 and azure_identity 0.21. Where the
contract is silent the behaviour is a choice of this fake; e2e/fakes/README.md says
which is which.

Usage: python3 e2e/fakes/azure_postgres.py --port PORT [--provision-seconds 2]
           [--page-size 2] [--retry-after 1] [--principal-delay-seconds 0] [--log FILE]
Standard library only. Binds 127.0.0.1, plain HTTP. Admin passwords are checked
and then dropped: they are never stored, returned or logged. Key Vault secret values
are stored (GET returns them) but never logged or shown in /_fake/state.
"""
import argparse
import copy
import json
import re
import secrets
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

API_VERSION = "2024-08-01"
MSI_API = "2023-01-31"
AUTH_API = "2022-04-01"
PROV = "Microsoft.DBforPostgreSQL"
MSI = "Microsoft.ManagedIdentity"
AUTHZ = "Microsoft.Authorization"
# The one api-version the fake accepts, by the (last) provider namespace in the path.
API_BY_PROVIDER = {MSI.lower(): MSI_API, AUTHZ.lower(): AUTH_API}
FAKE_TENANT = "00000000-0000-0000-0000-00000000fa4e"
# Storage sizes (GB) offered by the service, with the default Premium SSD tier of each.
STORAGE = {32: "P4", 64: "P6", 128: "P10", 256: "P15", 512: "P20", 1024: "P30", 2048: "P40",
           4096: "P50", 8192: "P60", 16384: "P70", 32767: "P80"}
TIER_IOPS = {"P1": 120, "P2": 120, "P3": 120, "P4": 120, "P6": 240, "P10": 500, "P15": 1100,
             "P20": 2300, "P30": 5000, "P40": 7500, "P50": 7500, "P60": 16000, "P70": 18000,
             "P80": 20000}
SKU_PREFIX = {"Burstable": "Standard_B", "GeneralPurpose": "Standard_D", "MemoryOptimized": "Standard_E"}
MINOR = {"11": "22", "12": "22", "13": "18", "14": "15", "15": "10", "16": "8"}
RESERVED_LOGINS = {"azure_superuser", "azure_pg_admin", "admin", "administrator", "root", "guest", "public"}
CONFIGS = {
    "require_secure_transport": {"defaultValue": "on", "dataType": "Boolean", "allowedValues": "on,off",
                                 "description": "Whether client connections to the server are required to use some form of secure transport."},
    "ssl_min_protocol_version": {"defaultValue": "TLSv1.2", "dataType": "Enumeration", "allowedValues": "TLSv1.2,TLSv1.3",
                                 "description": "Sets the minimum SSL/TLS protocol version to use."},
    "log_min_duration_statement": {"defaultValue": "-1", "dataType": "Integer", "allowedValues": "-1-2147483647",
                                   "description": "Sets the minimum execution time above which statements will be logged."},
}
NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{1,61})[a-z0-9]$")
CHILD_NAME_RE = re.compile(r"^[-\w._]+$")
DB_NAME_RE = re.compile(r"^[a-zA-Z_][\w\-]{0,62}$", re.ASCII)
CHARSET_RE = re.compile(r"^[a-zA-Z]+\w*$", re.ASCII)
COLLATION_RE = re.compile(r"^[a-zA-Z\-]+([. ]|\w)*$", re.ASCII)
# Databases every new server has once it is Ready; the azure_* ones cannot be dropped.
SYSTEM_DBS = ("azure_maintenance", "azure_sys", "postgres")
UNDROPPABLE_DBS = ("azure_maintenance", "azure_sys")
DEFAULT_DB = {"charset": "UTF8", "collation": "en_US.utf8"}
SECRET_NAME_RE = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
KV_API_RE = re.compile(r"^7\.[0-6](-preview(\.\d+)?)?$")
KV_MAX_VALUE = 25 * 1024
SUBNET_RE = re.compile(r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Network/virtualNetworks/[^/]+/subnets/[^/]+$", re.I)
DNS_RE = re.compile(r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Network/privateDnsZones/[^/]+$", re.I)
UAI_RE = re.compile(r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.ManagedIdentity/userAssignedIdentities/[^/]+$", re.I)
KEY_RE = re.compile(r"^https://[^/]+\.vault\.azure\.net/keys/[^/]+(/[^/]*)?$", re.I)
IDENTITY_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,127}$")
FIC_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,119}$")  # swagger pattern
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
ROLE_DEF_RE = re.compile(r"^(?:/subscriptions/[^/]+)?/providers/Microsoft\.Authorization/roleDefinitions/"
                         r"([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$", re.I)
# Scopes a role assignment can be created at: root, management group, subscription, resource group, resource
# (nested child resources included, e.g. a Key Vault secret).
SCOPE_RE = re.compile(r"^(?:/|/providers/Microsoft\.Management/managementGroups/[^/]+|/subscriptions/[^/]+"
                      r"(?:/resourceGroups/[^/]+(?:/providers/[^/]+(?:/[^/]+/[^/]+)+)?)?)$", re.I)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_FICS = 20

S = r"([^/]+)"
SRV = rf"/subscriptions/{S}/resourceGroups/{S}/providers/Microsoft\.DBforPostgreSQL/flexibleServers"
OPS = rf"/subscriptions/{S}/providers/Microsoft\.DBforPostgreSQL/locations/{S}"
P_SRV = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.DBforPostgreSQL/flexibleServers"
P_OPS = "/subscriptions/{subscriptionId}/providers/Microsoft.DBforPostgreSQL/locations/{locationName}"
UAI_PATH = rf"/subscriptions/{S}/resourceGroups/{S}/providers/Microsoft\.ManagedIdentity/userAssignedIdentities"
P_UAI = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ManagedIdentity/userAssignedIdentities"
P_RA = "/{scope}/providers/Microsoft.Authorization/roleAssignments"
# (handler prefix, path regex, template counted in /_fake/calls, "arm" | "kv")
ROUTES = [(name, re.compile(rx, re.I), tpl, "kv" if tpl.startswith("/secrets/") else "arm") for name, rx, tpl in [
    ("token", r"/([^/]+)/oauth2/v2\.0/token", "/{tenantId}/oauth2/v2.0/token"),
    ("servers_sub", rf"/subscriptions/{S}/providers/Microsoft\.DBforPostgreSQL/flexibleServers",
     "/subscriptions/{subscriptionId}/providers/Microsoft.DBforPostgreSQL/flexibleServers"),
    ("servers_rg", SRV, P_SRV),
    ("server", rf"{SRV}/{S}", P_SRV + "/{serverName}"),
    ("backups", rf"{SRV}/{S}/backups", P_SRV + "/{serverName}/backups"),
    ("backup", rf"{SRV}/{S}/backups/{S}", P_SRV + "/{serverName}/backups/{backupName}"),
    ("configs", rf"{SRV}/{S}/configurations", P_SRV + "/{serverName}/configurations"),
    ("config", rf"{SRV}/{S}/configurations/{S}", P_SRV + "/{serverName}/configurations/{configurationName}"),
    ("databases", rf"{SRV}/{S}/databases", P_SRV + "/{serverName}/databases"),
    ("database", rf"{SRV}/{S}/databases/{S}", P_SRV + "/{serverName}/databases/{databaseName}"),
    ("op_status", rf"{OPS}/azureAsyncOperation/{S}", P_OPS + "/azureAsyncOperation/{operationId}"),
    ("op_result", rf"{OPS}/operationResults/{S}", P_OPS + "/operationResults/{operationId}"),
    # Microsoft.ManagedIdentity 2023-01-31
    ("identities_sub", rf"/subscriptions/{S}/providers/Microsoft\.ManagedIdentity/userAssignedIdentities",
     "/subscriptions/{subscriptionId}/providers/Microsoft.ManagedIdentity/userAssignedIdentities"),
    ("identities_rg", UAI_PATH, P_UAI),
    ("identity", rf"{UAI_PATH}/{S}", P_UAI + "/{resourceName}"),
    ("fics", rf"{UAI_PATH}/{S}/federatedIdentityCredentials", P_UAI + "/{resourceName}/federatedIdentityCredentials"),
    ("fic", rf"{UAI_PATH}/{S}/federatedIdentityCredentials/{S}",
     P_UAI + "/{resourceName}/federatedIdentityCredentials/{federatedIdentityCredentialResourceName}"),
    # Microsoft.Authorization 2022-04-01; {scope} is "" (root) or a path starting with "/"
    ("role_assignments", r"(.*)/providers/Microsoft\.Authorization/roleAssignments", P_RA),
    ("role_assignment", r"(.*)/providers/Microsoft\.Authorization/roleAssignments/([^/]+)", P_RA + "/{roleAssignmentName}"),
    # Key Vault data plane. GET /secrets/{name}/versions is not implemented (501), so it is not a version.
    ("secret", rf"/secrets/{S}", "/secrets/{secret-name}"),
    ("secret_version", r"/secrets/([^/]+)/((?!versions$)[^/]*)", "/secrets/{secret-name}/{secret-version}"),
]]


class ApiError(Exception):
    def __init__(self, status, code, message, headers=None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def bad(message, code="InvalidParameterValue"):
    return ApiError(400, code, message)


def now_iso(t=None):
    return datetime.fromtimestamp(t if t is not None else time.time(), timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def strip_nulls(v):
    """The Rust client serialises some absent Options as JSON null (pointInTimeUTC,
    backup.earliestRestoreDate); treat null exactly like an absent field."""
    if isinstance(v, dict):
        return {k: strip_nulls(x) for k, x in v.items() if x is not None}
    return v


def obj(v, what):
    if not isinstance(v, dict):
        raise bad(f"'{what}' must be a JSON object.", "InvalidRequestContent")
    return v


def enum(d, key, allowed, what):
    if key in d and d[key] not in allowed:
        raise bad(f"Invalid value '{d[key]}' for {what}.{key}; allowed: {', '.join(allowed)}.")
    return d.get(key)


def integer(d, key, what, lo=None, hi=None):
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or (lo is not None and v < lo) or (hi is not None and v > hi):
        raise bad(f"Invalid value '{v}' for {what}.{key}" + (f"; must be an integer in {lo}..{hi}." if lo is not None else "."))
    return v


def string(d, key, what):
    v = d.get(key)
    if v is not None and not isinstance(v, str):
        raise bad(f"'{what}.{key}' must be a string.")
    return v or None  # "" counts as absent (the examples send geoBackupKeyURI: "")


def check_password(pw, login):
    classes = sum(bool(re.search(rx, pw)) for rx in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^a-zA-Z0-9]"))
    if not 8 <= len(pw) <= 128 or classes < 3 or (login and login.lower() in pw.lower()):
        raise bad("The password does not meet the complexity requirements: 8-128 characters from at least "
                  "three of: uppercase, lowercase, digits, non-alphanumeric; it must not contain the login.",
                  "PasswordNotComplex")


def default_doc():
    return {"location": None, "sku": None, "identity": None, "tags": {}, "props": {
        "version": "16", "availabilityZone": "1",
        "storage": {"storageSizeGB": 128, "autoGrow": "Disabled", "tier": "P10", "iops": 500, "type": ""},
        "authConfig": {"activeDirectoryAuth": "Disabled", "passwordAuth": "Enabled"},
        "dataEncryption": {"type": "SystemManaged"},
        "backup": {"backupRetentionDays": 7, "geoRedundantBackup": "Disabled"},
        "network": {}, "highAvailability": {"mode": "Disabled"},
        "maintenanceWindow": {"customWindow": "Disabled", "dayOfWeek": 0, "startHour": 0, "startMinute": 0}}}


def build(body, old, mode):
    """Validate a Server (mode create/put) or ServerForUpdate (mode patch) body and
    return the resulting document. `old` is the current document or None."""
    b = strip_nulls(obj(body, "body"))
    p_in = obj(b.get("properties", {}), "properties")
    doc = copy.deepcopy(old) if old else default_doc()
    p = doc["props"]
    if mode != "patch":
        loc = b.get("location")
        if not isinstance(loc, str) or not loc.strip():
            raise ApiError(400, "LocationRequired", "The location property is required for this definition.")
        loc = loc.replace(" ", "").lower()
        if old and loc != old["location"]:
            raise bad(f"The resource already exists in location '{old['location']}'; it cannot be moved to '{loc}'.",
                      "InvalidResourceLocation")
        doc["location"] = loc
        cm = p_in.get("createMode", "Default")
        if cm not in ("Default", "Create", "Update"):
            raise bad(f"createMode '{cm}' is not implemented by this fake (only Default, Create, Update).")
    else:
        enum(p_in, "createMode", ("Default", "Update"), "properties")
    if "sku" in b:
        sku = obj(b["sku"], "sku")
        tier = enum(sku, "tier", tuple(SKU_PREFIX), "sku")
        if not isinstance(sku.get("name"), str) or not tier:
            raise bad("sku.name and sku.tier are required.", "MissingRequiredParameter")
        if not sku["name"].startswith(SKU_PREFIX[tier]):
            raise bad(f"SKU '{sku['name']}' is not available in tier '{tier}'.", "InvalidSkuName")
        doc["sku"] = {"name": sku["name"], "tier": tier}
    elif not old:
        raise bad("sku is required.", "MissingRequiredParameter")
    if "tags" in b:
        tags = obj(b["tags"], "tags")
        if not all(isinstance(v, str) for v in tags.values()):
            raise bad("Tag values must be strings.")
        doc["tags"] = dict(tags)
    if "identity" in b:
        ident = obj(b["identity"], "identity")
        itype = enum(ident, "type", ("None", "UserAssigned", "SystemAssigned"), "identity")
        uais = obj(ident.get("userAssignedIdentities", {}), "identity.userAssignedIdentities")
        if itype is None:
            raise bad("identity.type is required.", "MissingRequiredParameter")
        for k in uais:
            if not UAI_RE.match(k):
                raise bad(f"'{k}' is not a user-assigned identity resource id.")
        if itype == "UserAssigned" and not uais:
            raise bad("identity.userAssignedIdentities must list at least one identity when type is UserAssigned.")
        doc["identity"] = {"type": itype, "ids": sorted(uais)}
    if "version" in p_in:
        v = p_in["version"]
        if not isinstance(v, str) or v not in MINOR:
            raise bad(f"Invalid value {json.dumps(v)} for properties.version; allowed: JSON strings \"11\"..\"16\".")
        if old and int(v) < int(old["props"]["version"]):
            raise bad("Downgrading the major version is not supported.")
        p["version"] = v
    login = string(p_in, "administratorLogin", "properties")
    if login is not None:
        if old and old["props"].get("administratorLogin") and login != old["props"]["administratorLogin"]:
            raise bad("administratorLogin cannot be changed after the server is created.")
        if login.lower() in RESERVED_LOGINS or login.lower().startswith("pg_") or not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$", login):
            raise bad(f"'{login}' is not a valid administrator login.", "InvalidAdministratorLogin")
        p["administratorLogin"] = login
    if "availabilityZone" in p_in:
        az = string(p_in, "availabilityZone", "properties") or ""
        if az not in ("", "1", "2", "3") or (old and az and az != old["props"]["availabilityZone"]):
            raise bad(f"Invalid or immutable availabilityZone '{az}'.")
        p["availabilityZone"] = az or p["availabilityZone"]
    if "storage" in p_in:
        st, cur = obj(p_in["storage"], "properties.storage"), p["storage"]
        size = integer(st, "storageSizeGB", "properties.storage")
        if size is not None:
            if size not in STORAGE:
                raise bad(f"Invalid storageSizeGB {size}; allowed: {', '.join(map(str, STORAGE))}.")
            if old and size < old["props"]["storage"]["storageSizeGB"]:
                raise bad("Storage size cannot be decreased.", "StorageSizeDecreaseNotAllowed")
            if size != cur["storageSizeGB"] and "tier" not in st:
                cur["tier"] = STORAGE[size]
                cur["iops"] = TIER_IOPS[STORAGE[size]]
            cur["storageSizeGB"] = size
        if enum(st, "autoGrow", ("Enabled", "Disabled"), "properties.storage"):
            cur["autoGrow"] = st["autoGrow"]
        if enum(st, "tier", tuple(TIER_IOPS), "properties.storage"):
            cur["tier"], cur["iops"] = st["tier"], TIER_IOPS[st["tier"]]
        if enum(st, "type", ("Premium_LRS", "PremiumV2_LRS", ""), "properties.storage") is not None:
            cur["type"] = st["type"]
        for k in ("iops", "throughput"):
            if integer(st, k, "properties.storage", 0, 1_000_000) is not None:
                cur[k] = st[k]
    if "backup" in p_in:
        bk, cur = obj(p_in["backup"], "properties.backup"), p["backup"]
        if integer(bk, "backupRetentionDays", "properties.backup", 7, 35) is not None:
            cur["backupRetentionDays"] = bk["backupRetentionDays"]
        geo = enum(bk, "geoRedundantBackup", ("Enabled", "Disabled"), "properties.backup")
        if geo and old and geo != old["props"]["backup"]["geoRedundantBackup"]:
            raise bad("geoRedundantBackup can only be set when the server is created.")
        cur["geoRedundantBackup"] = geo or cur["geoRedundantBackup"]
    if "highAvailability" in p_in:
        ha = obj(p_in["highAvailability"], "properties.highAvailability")
        mode_ = enum(ha, "mode", ("Disabled", "ZoneRedundant", "SameZone"), "properties.highAvailability")
        p["highAvailability"] = {"mode": mode_ or p["highAvailability"]["mode"]}
        if string(ha, "standbyAvailabilityZone", "properties.highAvailability"):
            p["highAvailability"]["standbyAvailabilityZone"] = ha["standbyAvailabilityZone"]
    if "maintenanceWindow" in p_in:
        mw = obj(p_in["maintenanceWindow"], "properties.maintenanceWindow")
        enum(mw, "customWindow", ("Enabled", "Disabled"), "properties.maintenanceWindow")
        for k, hi in (("dayOfWeek", 6), ("startHour", 23), ("startMinute", 59)):
            integer(mw, k, "properties.maintenanceWindow", 0, hi)
        p["maintenanceWindow"].update({k: mw[k] for k in ("customWindow", "dayOfWeek", "startHour", "startMinute") if k in mw})
    if "authConfig" in p_in:
        ac = obj(p_in["authConfig"], "properties.authConfig")
        for k in ("activeDirectoryAuth", "passwordAuth"):
            if enum(ac, k, ("Enabled", "Disabled"), "properties.authConfig"):
                p["authConfig"][k] = ac[k]
        if string(ac, "tenantId", "properties.authConfig"):
            p["authConfig"]["tenantId"] = ac["tenantId"]
    if "network" in p_in:
        nw, cur = obj(p_in["network"], "properties.network"), p["network"]
        pna = enum(nw, "publicNetworkAccess", ("Enabled", "Disabled"), "properties.network")
        subnet = string(nw, "delegatedSubnetResourceId", "properties.network")
        dns = string(nw, "privateDnsZoneArmResourceId", "properties.network")
        if subnet and not SUBNET_RE.match(subnet):
            raise bad(f"'{subnet}' is not a subnet resource id.")
        if dns and not DNS_RE.match(dns):
            raise bad(f"'{dns}' is not a private DNS zone resource id.")
        if old and subnet and subnet.lower() != (cur.get("delegatedSubnetResourceId") or "").lower():
            raise bad("The delegated subnet of a server cannot be changed.")
        if subnet:
            cur["delegatedSubnetResourceId"] = subnet
        if dns:
            cur["privateDnsZoneArmResourceId"] = dns
        if pna:
            cur["publicNetworkAccess"] = pna
    net = p["network"]
    if net.get("delegatedSubnetResourceId"):
        if net.get("publicNetworkAccess") == "Enabled":
            raise bad("A server in a delegated subnet (private access) cannot have publicNetworkAccess Enabled.")
        net["publicNetworkAccess"] = "Disabled"
    else:
        net.setdefault("publicNetworkAccess", "Enabled")
    if "dataEncryption" in p_in:
        de = obj(p_in["dataEncryption"], "properties.dataEncryption")
        dtype = enum(de, "type", ("SystemManaged", "AzureKeyVault"), "properties.dataEncryption") or p["dataEncryption"]["type"]
        if old and dtype != old["props"]["dataEncryption"]["type"]:
            raise bad("The data encryption type can only be chosen when the server is created.")
        new_de = {"type": dtype}
        for k in ("primaryKeyURI", "primaryUserAssignedIdentityId", "geoBackupKeyURI", "geoBackupUserAssignedIdentityId"):
            if string(de, k, "properties.dataEncryption"):
                new_de[k] = de[k]
        p["dataEncryption"] = new_de if dtype == "AzureKeyVault" else {"type": dtype}
    de, ident = p["dataEncryption"], doc["identity"] or {"type": "None", "ids": []}
    if de["type"] == "AzureKeyVault":
        need = [("primaryKeyURI", "primaryUserAssignedIdentityId")]
        if p["backup"]["geoRedundantBackup"] == "Enabled":
            need.append(("geoBackupKeyURI", "geoBackupUserAssignedIdentityId"))
        for key_f, id_f in need:
            if not de.get(key_f) or not de.get(id_f):
                raise bad(f"dataEncryption type AzureKeyVault requires {key_f} and {id_f}.", "MissingRequiredParameter")
            if not KEY_RE.match(de[key_f]):
                raise bad(f"'{de[key_f]}' is not a Key Vault key URI.")
            if ident["type"] != "UserAssigned" or de[id_f].lower() not in {i.lower() for i in ident["ids"]}:
                raise bad(f"{id_f} '{de[id_f]}' must be listed in identity.userAssignedIdentities "
                          "with identity.type UserAssigned.", "InvalidUserAssignedIdentity")
    if p["highAvailability"]["mode"] != "Disabled" and doc["sku"]["tier"] == "Burstable":
        raise bad("High availability is not supported for the Burstable tier.", "HANotSupportedForBurstableSku")
    ac = p["authConfig"]
    if ac["passwordAuth"] == "Disabled" and ac["activeDirectoryAuth"] == "Disabled":
        raise bad("At least one of password and Microsoft Entra authentication must be enabled.")
    pw = p_in.get("administratorLoginPassword")
    if ac["passwordAuth"] == "Enabled":
        if not p.get("administratorLogin"):
            raise bad("administratorLogin is required when password authentication is enabled.", "MissingRequiredParameter")
        if not old or old["props"]["authConfig"]["passwordAuth"] == "Disabled":
            if not pw:
                raise bad("administratorLoginPassword is required when password authentication is enabled.",
                          "MissingRequiredParameter")
    if pw is not None:
        if not isinstance(pw, str):
            raise bad("administratorLoginPassword must be a string.")
        check_password(pw, p.get("administratorLogin"))
    return doc


class State:
    def __init__(self, provision_seconds, page_size, principal_delay=0.0):
        self.lock = threading.Lock()
        self.provision_seconds, self.page_size = provision_seconds, page_size
        self.principal_delay = principal_delay  # seconds a new identity's principal is unknown to RBAC
        self.tokens = {}  # token -> client_id; tokens survive /_fake/reset so a running client keeps working
        self.reset()

    def reset(self):
        self.servers, self.backups, self.retained, self.ops, self.faults = {}, {}, [], {}, []
        self.secrets = {}  # lower-case name -> {"name", "versions": [{version, value, created, ...}]}
        # (sub, rg, name) lower-case -> identity record with its "fics" {lower-case name: credential}
        self.identities, self.deleted_identities = {}, []
        # lower-case principalId -> {"identityId", "created" (epoch), "deleted"}; kept after the identity is deleted
        self.principals = {}
        self.role_assignments = {}  # lower-case assignment name (GUID, unique in the tenant) -> record
        self.calls, self.total = Counter(), 0

    def take_fault(self, kind, method, path):
        for f in self.faults:
            if f["remaining"] > 0 and f["kind"] == kind and f.get("method", method).upper() == method \
                    and f.get("match", "") in path:
                f["remaining"] -= 1
                return f
        return None

    def tick(self):
        now = time.time()
        for op in self.ops.values():
            if op["status"] == "InProgress" and now >= op["due"]:
                self.finish(op, now)

    def finish(self, op, now):
        rec = self.servers.get(op["key"])
        op["endTime"] = now_iso(now)
        if rec is not None and rec.get("busy") == op["id"]:
            rec["busy"] = None
        if op["fail"]:
            op["status"], op["error"] = "Failed", op["fail"]
            if op["kind"] == "create":
                self.servers.pop(op["key"], None)
            elif rec is not None:
                rec["state"] = "Ready"
            return
        op["status"] = "Succeeded"
        kind = op["kind"]
        if rec is None:
            return
        if kind in ("create", "update"):
            if kind == "update":
                rec["doc"] = op["doc"]
            else:
                rec["databases"] = {n: dict(DEFAULT_DB) for n in SYSTEM_DBS}
            rec["state"] = "Ready"
        elif kind == "delete":
            del self.servers[op["key"]]
            for bk in self.backups.pop(op["key"], {}).values():
                self.retained.append(dict(bk, serverDeletedAt=now_iso(now)))
        elif kind == "backup":
            self.backups.setdefault(op["key"], {})[op["child"]] = {
                "subscriptionId": rec["sub"], "resourceGroup": rec["rg"], "serverName": rec["name"],
                "name": op["child"], "completedTime": now_iso(now)}
        elif kind == "config":
            rec["configs"][op["child"]] = op["value"]
        elif kind == "database":
            rec["databases"].setdefault(op["child"], dict(op["db"]))
        elif kind == "database_delete":
            rec["databases"].pop(op["child"], None)

    def start_op(self, kind, rec, key, method, path, **extra):
        f = self.take_fault("async", method, path)
        op = {"id": str(uuid.uuid4()), "kind": kind, "key": key, "sub": rec["sub"], "location": rec["doc"]["location"],
              "startTime": now_iso(), "due": time.time() + self.provision_seconds, "status": "InProgress",
              "fail": f and f["asyncError"], "error": None, **extra}
        self.ops[op["id"]] = op
        rec["busy"] = op["id"]
        return op


def render(rec):
    doc = rec["doc"]
    p = copy.deepcopy(doc["props"])
    ha = p["highAvailability"]
    if ha["mode"] == "Disabled":
        ha.pop("standbyAvailabilityZone", None)
        ha["state"] = "NotEnabled"
    else:
        ha["state"] = "CreatingStandby" if rec["state"] == "Starting" else "Healthy"
        az = p.get("availabilityZone") or "1"
        ha.setdefault("standbyAvailabilityZone", az if ha["mode"] == "SameZone" else ("2" if az == "1" else "1"))
    if p["dataEncryption"]["type"] == "AzureKeyVault":
        p["dataEncryption"]["primaryEncryptionKeyStatus"] = "Valid"
    p["backup"]["earliestRestoreDate"] = rec["createdAt"]
    p.update({"replica": {"role": "Primary", "capacity": 5}, "privateEndpointConnections": [],
              "fullyQualifiedDomainName": f"{rec['name']}.postgres.database.azure.com",
              "minorVersion": MINOR.get(p.get("version"), "0"), "state": rec["state"],
              "replicationRole": "Primary", "replicaCapacity": 5})
    body = {"sku": doc["sku"], "systemData": {"createdAt": rec["createdAt"]}, "properties": p,
            "location": doc["location"], "tags": doc["tags"], "id": rec["id"], "name": rec["name"],
            "type": f"{PROV}/flexibleServers"}
    if doc["identity"]:
        body["identity"] = {"type": doc["identity"]["type"], "tenantId": FAKE_TENANT, "userAssignedIdentities": {
            i: {"principalId": str(uuid.uuid5(uuid.NAMESPACE_URL, "p" + i.lower())),
                "clientId": str(uuid.uuid5(uuid.NAMESPACE_URL, "c" + i.lower()))} for i in doc["identity"]["ids"]}}
    return body


def render_backup(b):
    return {"properties": {"backupType": "Customer On-Demand", "source": "Customer Initiated",
                           "completedTime": b["completedTime"]},
            "id": f"/subscriptions/{b['subscriptionId']}/resourceGroups/{b['resourceGroup']}/providers/{PROV}"
                  f"/flexibleServers/{b['serverName']}/backups/{b['name']}",
            "name": b["name"], "type": f"{PROV}/flexibleServers/backups"}


def render_config(rec, name):
    meta, cur = CONFIGS[name], rec["configs"].get(name)
    return {"properties": {"value": cur or meta["defaultValue"], "description": meta["description"],
                           "defaultValue": meta["defaultValue"], "dataType": meta["dataType"],
                           "allowedValues": meta["allowedValues"],
                           "source": "user-override" if cur is not None else "system-default",
                           "isDynamicConfig": True, "isReadOnly": False, "isConfigPendingRestart": False},
            "id": f"{rec['id']}/configurations/{name}", "name": name, "type": f"{PROV}/flexibleServers/configurations"}


def render_database(rec, name):
    return {"id": f"{rec['id']}/databases/{name}", "name": name, "type": f"{PROV}/flexibleServers/databases",
            "properties": dict(rec["databases"][name])}


def identity_id(rec):
    # The MSI examples return ids with a lower-case "resourcegroups" segment (E); compare ids case-insensitively.
    return f"/subscriptions/{rec['sub']}/resourcegroups/{rec['rg']}/providers/{MSI}/userAssignedIdentities/{rec['name']}"


def render_identity(rec):
    return {"id": identity_id(rec), "name": rec["name"], "type": f"{MSI}/userAssignedIdentities",
            "location": rec["location"], "tags": dict(rec["tags"]),
            "properties": {"tenantId": FAKE_TENANT, "principalId": rec["principalId"], "clientId": rec["clientId"]}}


def render_fic(rec, fic):
    return {"id": f"{identity_id(rec)}/federatedIdentityCredentials/{fic['name']}", "name": fic["name"],
            "type": f"{MSI}/userAssignedIdentities/federatedIdentityCredentials",
            "properties": {"issuer": fic["issuer"], "subject": fic["subject"], "audiences": list(fic["audiences"])}}


def identity_summary(rec):
    """What /_fake/identities shows of a live identity."""
    return {"id": identity_id(rec), "name": rec["name"], "subscriptionId": rec["sub"], "resourceGroup": rec["rg"],
            "location": rec["location"], "tags": dict(rec["tags"]), "tenantId": FAKE_TENANT,
            "principalId": rec["principalId"], "clientId": rec["clientId"], "createdAt": rec["createdAt"],
            "federatedIdentityCredentials": [
                {"id": f"{identity_id(rec)}/federatedIdentityCredentials/{f['name']}", "name": f["name"],
                 "issuer": f["issuer"], "subject": f["subject"], "audiences": list(f["audiences"]),
                 "createdAt": f["createdAt"], "updatedAt": f["updatedAt"]}
                for _, f in sorted(rec["fics"].items())]}


def ra_id(ra):
    return f"{'' if ra['scope'] == '/' else ra['scope']}/providers/{AUTHZ}/roleAssignments/{ra['name']}"


def render_ra(ra):
    props = {k: ra[k] for k in ("roleDefinitionId", "principalId", "principalType", "scope", "condition",
                                "conditionVersion", "createdOn", "updatedOn", "createdBy", "updatedBy",
                                "delegatedManagedIdentityResourceId", "description")}
    return {"properties": props, "id": ra_id(ra), "type": f"{AUTHZ}/roleAssignments", "name": ra["name"]}


def scope_segments(scope):
    return [x.lower() for x in scope.split("/") if x]


def scope_relation(assignment_scope, query_scope):
    """'at', 'above' or 'below' when one scope is a prefix of the other on whole path segments
    (case-insensitive, as ARM compares ids), else None."""
    a, q = scope_segments(assignment_scope), scope_segments(query_scope)
    if a == q:
        return "at"
    if q[:len(a)] == a:
        return "above"
    if a[:len(q)] == q:
        return "below"
    return None


def parse_ra_filter(flt):
    """Role-assignment $filter: terms joined by 'and': atScope(), principalId eq '{id}', assignedTo('{id}').
    Returns (at_scope, principal_id or None)."""
    at_scope, pid = False, None
    if not flt.strip():
        return at_scope, pid
    for term in re.split(r"\s+and\s+", flt.strip(), flags=re.I):
        term = term.strip()
        m = re.fullmatch(r"principalId\s+eq\s+'([^']*)'", term, re.I) or re.fullmatch(r"assignedTo\('([^']*)'\)", term, re.I)
        if re.fullmatch(r"atScope\(\)", term, re.I):
            at_scope = True
        elif m and GUID_RE.match(m.group(1)):
            pid = m.group(1).lower()
        else:
            raise bad(f"The filter '{flt}' is not supported. Supported filters are atScope(), "
                      "principalId eq '{objectId}' and assignedTo('{objectId}'), joined by 'and'.", "InvalidFilter")
    return at_scope, pid


def check_tags(tags):
    tags = obj(tags, "tags")
    if len(tags) > 50 or not all(isinstance(v, str) for v in tags.values()):
        raise bad("Tags must be an object of at most 50 string values.")
    return dict(tags)


def check_db_props(body):
    """Validate a Database body; return {"charset", "collation"} with the defaults filled in."""
    props = obj(strip_nulls(obj(body if body is not None else {}, "body")).get("properties", {}), "properties")
    out = dict(DEFAULT_DB)
    for k, rx in (("charset", CHARSET_RE), ("collation", COLLATION_RE)):
        v = string(props, k, "properties")
        if v is not None:
            if not rx.match(v):
                raise bad(f"Invalid value '{v}' for properties.{k}.")
            out[k] = v
    return out


def secret_not_found(ref):
    return ApiError(404, "SecretNotFound", f"A secret with (name/id) {ref} was not found in this key vault. If you "
                                           "recently deleted this secret you may be able to recover it using the "
                                           "correct recovery command. For help resolving this issue, please see "
                                           "https://go.microsoft.com/fwlink/?linkid=2125182")


def kv_name(name):
    if not SECRET_NAME_RE.match(name):
        raise ApiError(400, "BadParameter", f"The request URI contains an invalid name: {name}")
    return name


def secret_summary(ent):
    """What /_fake/state shows of a secret: never the value, only the keys of a JSON-object value."""
    latest = ent["versions"][-1]
    try:
        parsed = json.loads(latest["value"])
    except ValueError:
        parsed = None
    out = {"name": ent["name"], "versions": len(ent["versions"]), "latestVersion": latest["version"],
           "enabled": latest["enabled"], "keys": sorted(parsed) if isinstance(parsed, dict) else None,
           "created": latest["created"], "updated": latest["updated"], "tags": dict(latest["tags"] or {})}
    if latest["contentType"] is not None:
        out["contentType"] = latest["contentType"]
    return out


def check_config_value(name, value):
    meta = CONFIGS[name]
    if not isinstance(value, str):
        raise bad(f"properties.value of '{name}' must be a string.")
    if meta["dataType"] == "Integer":
        lo, hi = -1, 2147483647
        if not re.fullmatch(r"-?\d+", value) or not lo <= int(value) <= hi:
            raise bad(f"Value '{value}' is out of range for '{name}' ({meta['allowedValues']}).")
        return value
    allowed = {a.lower(): a for a in meta["allowedValues"].split(",")}
    if value.lower() not in allowed:
        raise bad(f"Value '{value}' is not allowed for '{name}' ({meta['allowedValues']}).")
    return allowed[value.lower()]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "azure-postgres-fake/1"

    def log_message(self, *args):  # the default logger prints every request to stderr
        pass

    def do_GET(self):
        self.dispatch()

    do_PUT = do_PATCH = do_POST = do_DELETE = do_GET

    @property
    def st(self):
        return self.server.state

    def base(self):
        return "http://" + (self.headers.get("Host") or f"127.0.0.1:{self.server.server_port}")

    def dispatch(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        # http.server collapses a leading "//" in self.path; take the target as sent from the request line.
        # Split by hand: urlsplit("//subscriptions/…") would take "subscriptions" for a host name.
        parts = self.requestline.split(" ")
        if len(parts) == 3 and parts[1].startswith("/"):
            self.path = parts[1]
        self.raw_path, _, qs = self.path.partition("?")
        path, query = unquote(self.raw_path), parse_qs(qs)
        try:
            with self.st.lock:
                self.st.tick()
                status, body, headers = self.route(path, query, raw)
        except ApiError as e:
            status, body, headers = e.status, {"error": {"code": e.code, "message": e.message}}, e.headers
        except Exception as e:  # a bug in the fake: say so instead of dropping the connection
            status, body, headers = 500, {"error": {"code": "FakeInternalError", "message": repr(e)}}, {}
        self.reply(status, body, headers)

    def reply(self, status, body, headers):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        if self.server.log_path:  # method, path (query has no secrets), status; never headers or bodies
            with self.server.log_lock, open(self.server.log_path, "a") as fh:
                fh.write(f"{now_iso()} {self.command} {self.path} {status}\n")

    def json_body(self, raw):
        try:
            return json.loads(raw or b"null")
        except ValueError:
            raise bad("The request content was invalid and could not be deserialized.", "InvalidRequestContent")

    def route(self, path, query, raw):
        m = self.command
        if path.startswith("/_fake/"):
            return self.control(path, query, raw)
        st = self.st
        for name, rx, tpl, api in ROUTES:
            match = rx.fullmatch(path)
            if match:
                break
        else:
            name, match, tpl = None, None, path if len(st.calls) < 1000 else "(other)"
            # Everything outside /subscriptions/ and /providers/ is treated as the Key Vault data plane
            # (its vault URL is this root).
            api = "arm" if re.match(r"/+(subscriptions|providers)/", path, re.I) else "kv"
        st.calls[f"{m} {tpl}"] += 1
        st.total += 1
        f = st.take_fault("http", m, path)
        if f:
            code = f.get("code") or ("TooManyRequests" if f["status"] == 429 else
                                     "InternalServerError" if f["status"] >= 500 else "InjectedFault")
            hdrs = {"Retry-After": str(f.get("retryAfter", 1))} if f["status"] in (429, 503) else {}
            raise ApiError(f["status"], code, f.get("message", f"Injected fault ({f['status']})."), hdrs)
        if name == "token":
            if m != "POST":
                raise ApiError(405, "MethodNotAllowed", "Use POST.")
            return self.token(match.group(1), raw)
        (self.kv_auth if api == "kv" else self.arm_auth)(self.headers.get("Authorization", ""), query, path)
        if path.startswith("//"):
            # azure_mgmt_authorization formats "/{scope}/providers/…", so a scope given with its leading "/"
            # (as ids are written) produces "//subscriptions/…". The examples pass "subscriptions/…".
            raise bad(f"The request path '{path}' starts with '//'. Pass the scope without its leading '/' "
                      "(for example 'subscriptions/{id}/resourceGroups/{rg}').", "InvalidRequestUri")
        if name is None:
            raise ApiError(501, "NotImplementedInFake", f"{m} {path} is not implemented by the test fake.")
        g = match.groups()
        handler = getattr(self, f"{name}_{m.lower()}", None)
        if handler is None:
            raise ApiError(405, "MethodNotAllowed", f"{m} is not supported on {tpl}.")
        return handler(g, query, raw)

    def arm_auth(self, auth, query, path):
        if not auth:
            raise ApiError(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.",
                           {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if not auth.startswith("Bearer ") or auth[7:] not in self.st.tokens:
            raise ApiError(401, "InvalidAuthenticationToken", "The access token is invalid.",
                           {"WWW-Authenticate": 'Bearer error="invalid_token", error_description="The access token is invalid"'})
        self.caller = self.st.tokens[auth[7:]]
        versions, want = query.get("api-version"), self.api_for(path)
        if not versions:
            raise bad("The api-version query parameter (?api-version=) is required for all requests.",
                      "MissingApiVersionParameter")
        if versions[0] != want:
            raise bad(f"The api-version '{versions[0]}' is invalid. The supported versions are '{want}'.",
                      "InvalidApiVersionParameter")

    @staticmethod
    def api_for(path):
        """The api-version of the resource provider that the path addresses: its last /providers/{namespace}."""
        spaces = re.findall(r"/providers/([^/]+)", path, re.I)
        return API_BY_PROVIDER.get(spaces[-1].lower(), API_VERSION) if spaces else API_VERSION

    def kv_auth(self, auth, query, path=None):
        """Key Vault data plane: the same bearer check as ARM (any token this fake issued, any scope),
        with Key Vault's error codes; api-version 7.x."""
        challenge = {"WWW-Authenticate": f'Bearer authorization="{self.base()}/{FAKE_TENANT}", '
                                         f'resource="https://vault.azure.net"'}
        if not auth:
            raise ApiError(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.", challenge)
        if not auth.startswith("Bearer ") or auth[7:] not in self.st.tokens:
            raise ApiError(401, "Unauthorized", "The access token is invalid.", challenge)
        versions = query.get("api-version")
        if not versions:
            raise ApiError(400, "BadParameter", "The api-version query parameter is required.")
        if not KV_API_RE.match(versions[0]):
            raise ApiError(400, "BadParameter", f"The specified version ({versions[0]}) is not recognized. "
                                                "Consider using the latest supported version (7.5).")

    # ---- Azure AD ----
    def token(self, tenant, raw):
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}

        def aad(code, num, desc):
            ts = now_iso()
            return 400, {"error": code, "error_description": f"AADSTS{num}: {desc}\r\nTimestamp: {ts}",
                         "error_codes": [num], "timestamp": ts, "trace_id": str(uuid.uuid4()),
                         "correlation_id": str(uuid.uuid4()),
                         "error_uri": f"{self.base()}/error?code={num}"}, {}
        for p in ("client_id", "scope", "grant_type", "client_assertion_type", "client_assertion"):
            if not form.get(p):
                return aad("invalid_request", 900144, f"The request body must contain the following parameter: '{p}'.")
        if form["grant_type"] != "client_credentials":
            return aad("unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
        if form["client_assertion_type"] != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            return aad("invalid_request", 50027, "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.")
        tok = "fake-aad." + secrets.token_urlsafe(32)
        self.st.tokens[tok] = form["client_id"]
        return 200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": tok}, {}

    # ---- helpers ----
    def op_headers(self, op):
        loc = f"{self.base()}/subscriptions/{op['sub']}/providers/{PROV}/locations/{op['location']}"
        return {"Azure-AsyncOperation": f"{loc}/azureAsyncOperation/{op['id']}?api-version={API_VERSION}",
                "Location": f"{loc}/operationResults/{op['id']}?api-version={API_VERSION}",
                "Retry-After": str(self.server.retry_after)}

    def page(self, items, query, size=None):
        """One page of a list. nextLink is absolute and keeps the request's other query parameters
        ($filter, $top, …) so that following it gives the same list."""
        size = size or self.st.page_size
        token = (query.get("$skiptoken") or query.get("$skipToken") or ["0"])[0] or "0"
        if not token.isdigit():
            raise bad(f"Invalid $skiptoken '{token}'.")
        skip = int(token)
        body = {"value": items[skip:skip + size]}
        if skip + size < len(items):
            keep = [(k, v[0]) for k, v in query.items() if k not in ("api-version", "$skiptoken", "$skipToken")]
            qs = urlencode([("api-version", query["api-version"][0])] + keep + [("$skiptoken", str(skip + size))],
                           quote_via=quote, safe="$'()")
            body["nextLink"] = f"{self.base()}{self.raw_path}?{qs}"
        return 200, body, {}

    def find(self, sub, rg, name, busy_ok=True):
        rec = self.st.servers.get((sub.lower(), rg.lower(), name.lower()))
        if rec is None:
            raise ApiError(404, "ResourceNotFound", f"The Resource '{PROV}/flexibleServers/{name}' under resource "
                                                    f"group '{rg}' was not found.")
        if not busy_ok and rec["busy"]:
            state = "dropping" if rec["state"] == "Dropping" else "busy with another operation"
            raise ApiError(409, "ServerBusy", f"Server '{name}' is {state}. Please try again later.")
        return rec

    # ---- servers ----
    def server_get(self, g, q, raw):
        return 200, render(self.find(*g)), {}

    def server_put(self, g, q, raw):
        sub, rg, name = g
        if not NAME_RE.match(name):
            raise bad(f"Server name '{name}' is invalid: 3-63 characters, lowercase letters, digits and hyphens, "
                      "not starting or ending with a hyphen.", "InvalidServerName")
        key = (sub.lower(), rg.lower(), name)
        rec = self.st.servers.get(key)
        body = self.json_body(raw)
        if rec is not None:
            self.find(sub, rg, name, busy_ok=False)
            doc = build(body, rec["doc"], "put")
            op = self.st.start_op("update", rec, key, "PUT", self.path, doc=doc)
            rec["state"] = "Updating"
            return 200, render(rec), self.op_headers(op)
        doc = build(body, None, "create")
        rec = {"sub": sub, "rg": rg, "name": name, "doc": doc, "state": "Starting", "createdAt": now_iso(),
               "configs": {}, "databases": {}, "busy": None,
               "id": f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{PROV}/flexibleServers/{name}"}
        self.st.servers[key] = rec
        op = self.st.start_op("create", rec, key, "PUT", self.path)
        return 201, render(rec), self.op_headers(op)

    def server_patch(self, g, q, raw):
        rec = self.find(*g, busy_ok=False)
        doc = build(self.json_body(raw), rec["doc"], "patch")
        op = self.st.start_op("update", rec, (g[0].lower(), g[1].lower(), g[2].lower()), "PATCH", self.path, doc=doc)
        rec["state"] = "Updating"
        return 202, None, self.op_headers(op)

    def server_delete(self, g, q, raw):
        key = (g[0].lower(), g[1].lower(), g[2].lower())
        rec = self.st.servers.get(key)
        if rec is None:
            return 204, None, {}
        if rec["state"] == "Dropping":
            return 202, None, self.op_headers(self.st.ops[rec["busy"]])
        self.find(*g, busy_ok=False)
        op = self.st.start_op("delete", rec, key, "DELETE", self.path)
        rec["state"] = "Dropping"
        return 202, None, self.op_headers(op)

    def servers_rg_get(self, g, q, raw):
        sub, rg = g[0].lower(), g[1].lower()
        recs = [r for k, r in sorted(self.st.servers.items()) if k[0] == sub and k[1] == rg]
        return self.page([render(r) for r in recs], q)

    def servers_sub_get(self, g, q, raw):
        recs = [r for k, r in sorted(self.st.servers.items()) if k[0] == g[0].lower()]
        return self.page([render(r) for r in recs], q)

    # ---- backups ----
    def backup_put(self, g, q, raw):
        sub, rg, name, bname = g
        if not CHILD_NAME_RE.match(bname):
            raise bad(f"Backup name '{bname}' is invalid.")
        key = (sub.lower(), rg.lower(), name.lower())
        done = self.st.backups.get(key, {}).get(bname)
        rec = self.find(sub, rg, name)
        if done:
            return 200, render_backup(done), {}
        running = [o for o in self.st.ops.values() if o["status"] == "InProgress" and o["kind"] == "backup"
                   and o["key"] == key and o["child"] == bname]
        if running:
            return 202, None, self.op_headers(running[0])
        self.find(sub, rg, name, busy_ok=False)
        if rec["state"] != "Ready":
            raise ApiError(409, "ServerBusy", f"Server '{name}' is in state {rec['state']}; backups need a Ready server.")
        return 202, None, self.op_headers(self.st.start_op("backup", rec, key, "PUT", self.path, child=bname))

    def backup_get(self, g, q, raw):
        self.find(*g[:3])
        b = self.st.backups.get((g[0].lower(), g[1].lower(), g[2].lower()), {}).get(g[3])
        if b is None:
            raise ApiError(404, "ResourceNotFound", f"Backup '{g[3]}' of server '{g[2]}' was not found.")
        return 200, render_backup(b), {}

    def backups_get(self, g, q, raw):
        self.find(*g)
        items = self.st.backups.get((g[0].lower(), g[1].lower(), g[2].lower()), {})
        return self.page([render_backup(b) for _, b in sorted(items.items())], q)

    # ---- configurations ----
    def config_get(self, g, q, raw):
        rec = self.find(*g[:3])
        if g[3] not in CONFIGS:
            raise ApiError(404, "ResourceNotFound", f"Configuration '{g[3]}' does not exist for server '{g[2]}'.")
        return 200, render_config(rec, g[3]), {}

    def config_put(self, g, q, raw):
        self.config_get(g, q, raw)  # 404 for an unknown server or parameter
        rec = self.find(*g[:3], busy_ok=False)
        body = strip_nulls(obj(self.json_body(raw), "body"))
        props = obj(body.get("properties", {}), "properties")
        if "value" not in props:
            raise bad("properties.value is required.", "MissingRequiredParameter")
        value = check_config_value(g[3], props["value"])
        key = (g[0].lower(), g[1].lower(), g[2].lower())
        return 202, None, self.op_headers(self.st.start_op("config", rec, key, self.command, self.path,
                                                           child=g[3], value=value))

    config_patch = config_put

    def configs_get(self, g, q, raw):
        rec = self.find(*g)
        return self.page([render_config(rec, n) for n in sorted(CONFIGS)], q)

    # ---- databases ----
    def db_running(self, key, kind, db):
        return next((o for o in self.st.ops.values() if o["status"] == "InProgress" and o["kind"] == kind
                     and o["key"] == key and o["child"] == db), None)

    def need_ready(self, rec, sub, rg, name):
        self.find(sub, rg, name, busy_ok=False)
        if rec["state"] != "Ready":
            raise ApiError(409, "ServerBusy", f"Server '{name}' is in state {rec['state']}; "
                                              "database operations need a Ready server.")

    def database_put(self, g, q, raw):
        sub, rg, name, db = g
        if not DB_NAME_RE.match(db):
            raise bad(f"Database name '{db}' is invalid: 1-63 characters, letters, digits, '_' and '-', "
                      "starting with a letter or '_'.", "InvalidDatabaseName")
        want = check_db_props(self.json_body(raw))
        rec = self.find(sub, rg, name)
        key = (sub.lower(), rg.lower(), name.lower())
        have = rec["databases"].get(db)
        if have is not None:
            if {k: v.lower() for k, v in have.items()} != {k: v.lower() for k, v in want.items()}:
                raise bad(f"The charset and collation of database '{db}' cannot be changed "
                          f"(it has {have['charset']} / {have['collation']}).")
            self.need_ready(rec, sub, rg, name)
            op = self.st.start_op("database", rec, key, "PUT", self.path, child=db, db=have)
            return 200, render_database(rec, db), self.op_headers(op)
        running = self.db_running(key, "database", db)
        if running is None:
            self.need_ready(rec, sub, rg, name)
            running = self.st.start_op("database", rec, key, "PUT", self.path, child=db, db=want)
        body = {"id": f"{rec['id']}/databases/{db}", "name": db, "type": f"{PROV}/flexibleServers/databases",
                "properties": dict(running["db"])}
        return 201, body, self.op_headers(running)

    def database_get(self, g, q, raw):
        rec = self.find(*g[:3])
        if g[3] not in rec["databases"]:
            raise ApiError(404, "ResourceNotFound", f"The Resource '{PROV}/flexibleServers/{g[2]}/databases/{g[3]}' "
                                                    f"under resource group '{g[1]}' was not found.")
        return 200, render_database(rec, g[3]), {}

    def database_delete(self, g, q, raw):
        sub, rg, name, db = g
        rec = self.find(sub, rg, name)
        key = (sub.lower(), rg.lower(), name.lower())
        running = self.db_running(key, "database_delete", db)
        if running is not None:
            return 202, None, self.op_headers(running)
        if db not in rec["databases"]:
            return 204, None, {}
        if db in UNDROPPABLE_DBS:
            raise bad(f"Database '{db}' is a system database and cannot be dropped.", "CannotDropSystemDatabase")
        self.need_ready(rec, sub, rg, name)
        return 202, None, self.op_headers(self.st.start_op("database_delete", rec, key, "DELETE", self.path, child=db))

    def databases_get(self, g, q, raw):
        rec = self.find(*g)
        return self.page([render_database(rec, n) for n in sorted(rec["databases"])], q)

    # ---- user-assigned managed identities (Microsoft.ManagedIdentity 2023-01-31) ----
    def find_identity(self, sub, rg, name, child=False):
        rec = self.st.identities.get((sub.lower(), rg.lower(), name.lower()))
        if rec is None:
            if child:
                raise ApiError(404, "ParentResourceNotFound", "Can not perform requested operation on nested resource. "
                                                              f"Parent resource '{name}' not found.")
            raise ApiError(404, "ResourceNotFound", f"The Resource '{MSI}/userAssignedIdentities/{name}' under resource "
                                                    f"group '{rg}' was not found. For more details please go to "
                                                    "https://aka.ms/ARMResourceNotFoundFix")
        return rec

    def identity_get(self, g, q, raw):
        return 200, render_identity(self.find_identity(*g)), {}

    def identity_put(self, g, q, raw):
        sub, rg, name = g
        if not IDENTITY_NAME_RE.match(name):
            raise bad(f"Resource name '{name}' is invalid. The name can be 3-128 characters long, may contain letters, "
                      "digits, '-' and '_', and must start with a letter or digit.", "InvalidResourceName")
        body = strip_nulls(obj(self.json_body(raw), "body"))
        loc = body.get("location")
        if not isinstance(loc, str) or not loc.strip():
            raise ApiError(400, "LocationRequired", "The location property is required for this definition.")
        loc = loc.replace(" ", "").lower()
        tags = check_tags(body.get("tags", {}))
        key = (sub.lower(), rg.lower(), name.lower())
        rec = self.st.identities.get(key)
        if rec is not None:
            if loc != rec["location"]:
                raise bad(f"The resource '{name}' already exists in location '{rec['location']}' in resource group "
                          f"'{rg}'. A resource with the same name cannot be created in location '{loc}'.",
                          "InvalidResourceLocation")
            rec["tags"] = tags  # PUT replaces the whole resource; an omitted tags map empties it
            return 200, render_identity(rec), {}
        now = time.time()
        rec = {"sub": sub, "rg": rg, "name": name, "location": loc, "tags": tags, "principalId": str(uuid.uuid4()),
               "clientId": str(uuid.uuid4()), "createdAt": now_iso(now), "fics": {}}
        self.st.identities[key] = rec
        self.st.principals[rec["principalId"]] = {"identityId": identity_id(rec), "created": now, "deleted": False}
        return 201, render_identity(rec), {}

    def identity_patch(self, g, q, raw):
        rec = self.find_identity(*g)
        body = strip_nulls(obj(self.json_body(raw), "body"))
        loc = body.get("location")
        if loc is not None and (not isinstance(loc, str) or loc.replace(" ", "").lower() != rec["location"]):
            raise bad(f"The location of identity '{rec['name']}' cannot be changed (it is '{rec['location']}').",
                      "InvalidResourceLocation")
        if "tags" in body:
            rec["tags"] = check_tags(body["tags"])
        return 200, render_identity(rec), {}

    def identity_delete(self, g, q, raw):
        rec = self.st.identities.pop((g[0].lower(), g[1].lower(), g[2].lower()), None)
        if rec is None:
            return 204, None, {}
        # The identity's service principal goes with it, and so do its federated credentials. Role assignments
        # that name the principal stay behind ("Identity not found" in the portal).
        self.st.principals[rec["principalId"]]["deleted"] = True
        self.st.deleted_identities.append({"id": identity_id(rec), "name": rec["name"], "subscriptionId": rec["sub"],
                                           "resourceGroup": rec["rg"], "principalId": rec["principalId"],
                                           "clientId": rec["clientId"], "deletedAt": now_iso()})
        return 200, None, {}

    def identities_rg_get(self, g, q, raw):
        sub, rg = g[0].lower(), g[1].lower()
        return self.page([render_identity(r) for k, r in sorted(self.st.identities.items())
                          if k[0] == sub and k[1] == rg], q)

    def identities_sub_get(self, g, q, raw):
        return self.page([render_identity(r) for k, r in sorted(self.st.identities.items()) if k[0] == g[0].lower()], q)

    # ---- federated identity credentials ----
    def fic_get(self, g, q, raw):
        rec = self.find_identity(*g[:3], child=True)
        fic = rec["fics"].get(g[3].lower())
        if fic is None:
            raise ApiError(404, "ResourceNotFound", f"The Resource '{MSI}/userAssignedIdentities/{g[2]}/"
                                                    f"federatedIdentityCredentials/{g[3]}' under resource group "
                                                    f"'{g[1]}' was not found.")
        return 200, render_fic(rec, fic), {}

    def fic_put(self, g, q, raw):
        sub, rg, name, fname = g
        rec = self.find_identity(sub, rg, name, child=True)
        if not FIC_NAME_RE.match(fname):
            raise bad(f"Federated identity credential name '{fname}' is invalid: 3-120 characters, letters, digits, "
                      "'-' and '_', starting with a letter or digit.", "InvalidResourceName")
        body = strip_nulls(obj(self.json_body(raw), "body"))
        props = obj(body.get("properties"), "properties")
        issuer, subject, audiences = props.get("issuer"), props.get("subject"), props.get("audiences")
        if not isinstance(issuer, str) or not issuer or len(issuer) > 600:
            raise bad("properties.issuer is required: a URL of at most 600 characters.", "BadRequest")
        u = urlsplit(issuer)
        if not u.hostname or not (u.scheme == "https" or (u.scheme == "http" and u.hostname in LOOPBACK_HOSTS)):
            raise bad(f"Issuer '{issuer}' is not a valid https URL.", "BadRequest")
        if not isinstance(subject, str) or not subject.strip() or len(subject) > 600:
            raise bad("properties.subject is required: a non-empty string of at most 600 characters.", "BadRequest")
        if not isinstance(audiences, list) or not audiences or \
                not all(isinstance(a, str) and a.strip() and len(a) <= 600 for a in audiences):
            raise bad("properties.audiences is required: a non-empty list of non-empty strings.", "BadRequest")
        old = rec["fics"].get(fname.lower())
        for k, f in rec["fics"].items():
            if k != fname.lower() and f["issuer"] == issuer and f["subject"] == subject:
                raise bad(f"Federated identity credential '{f['name']}' of identity '{rec['name']}' already has "
                          "this issuer and subject; the pair must be unique per identity.", "BadRequest")
        if old is None and len(rec["fics"]) >= MAX_FICS:
            raise bad(f"Identity '{rec['name']}' already has the maximum of {MAX_FICS} federated identity credentials.",
                      "BadRequest")
        now = now_iso()
        fic = {"name": old["name"] if old else fname, "issuer": issuer, "subject": subject, "audiences": list(audiences),
               "createdAt": old["createdAt"] if old else now, "updatedAt": now}
        rec["fics"][fname.lower()] = fic
        return (200 if old else 201), render_fic(rec, fic), {}

    def fic_delete(self, g, q, raw):
        rec = self.find_identity(*g[:3], child=True)
        return (200 if rec["fics"].pop(g[3].lower(), None) else 204), None, {}

    def fics_get(self, g, q, raw):
        rec = self.find_identity(*g, child=True)
        top = (q.get("$top") or [None])[0]
        if top is not None and (not top.isdigit() or int(top) < 1):
            raise bad(f"Invalid $top '{top}': must be an integer of at least 1.")
        return self.page([render_fic(rec, f) for _, f in sorted(rec["fics"].items())], q, size=int(top) if top else None)

    # ---- role assignments (Microsoft.Authorization 2022-04-01) ----
    def ra_name(self, name):
        if not GUID_RE.match(name):
            raise bad(f"The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID.",
                      "InvalidRoleAssignmentId")
        return name

    def ra_find(self, scope, name):
        ra = self.st.role_assignments.get(self.ra_name(name).lower())
        return ra if ra is not None and scope_segments(ra["scope"]) == scope_segments(scope) else None

    def role_assignment_get(self, g, q, raw):
        ra = self.ra_find(g[0] or "/", g[1])
        if ra is None:
            raise ApiError(404, "RoleAssignmentNotFound", f"The role assignment '{g[1]}' is not found.")
        return 200, render_ra(ra), {}

    def role_assignment_delete(self, g, q, raw):
        ra = self.ra_find(g[0] or "/", g[1])
        if ra is None:
            return 204, None, {}
        del self.st.role_assignments[ra["name"].lower()]
        return 200, render_ra(ra), {}

    def role_assignment_put(self, g, q, raw):
        scope, name = g[0] or "/", self.ra_name(g[1])
        if not SCOPE_RE.match(scope):
            raise bad(f"The request to create role assignment '{name}' is not valid. '{scope}' is not a valid scope: "
                      "use /subscriptions/{id}, /subscriptions/{id}/resourceGroups/{rg} or a resource id.",
                      "InvalidCreateRoleAssignmentRequest")
        body = strip_nulls(obj(self.json_body(raw), "body"))
        props = obj(body.get("properties"), "properties")
        for k in ("roleDefinitionId", "principalId", "principalType", "scope", "description", "condition",
                  "conditionVersion", "delegatedManagedIdentityResourceId"):
            if k in props and not isinstance(props[k], str):
                raise bad(f"properties.{k} must be a string.", "InvalidRequestContent")
        rd, pid, ptype = props.get("roleDefinitionId"), props.get("principalId"), props.get("principalType")
        m = ROLE_DEF_RE.match(rd or "")
        if not m:
            raise bad(f"The role definition ID '{rd}' is not valid. It must look like "
                      "/subscriptions/{id}/providers/Microsoft.Authorization/roleDefinitions/{guid}.",
                      "InvalidRoleDefinitionId")
        if not GUID_RE.match(pid or ""):
            raise bad(f"The principal ID '{pid}' is not valid. It must be a GUID.", "InvalidPrincipalId")
        if "scope" in props and scope_segments(props["scope"]) != scope_segments(scope):
            raise bad(f"The request to create role assignment '{name}' is not valid. Role assignment scope "
                      f"'{props['scope']}' must match the scope specified on the URI '{scope}'.",
                      "InvalidCreateRoleAssignmentRequest")
        cond, cver = props.get("condition"), props.get("conditionVersion")
        if cver is not None and cver != "2.0":
            raise bad(f"conditionVersion '{cver}' is not supported; the only accepted value is '2.0'.",
                      "InvalidConditionVersion")
        cver = cver or ("2.0" if cond else None)
        now = now_iso()
        ra = self.st.role_assignments.get(name.lower())
        if ra is not None:
            if scope_segments(ra["scope"]) != scope_segments(scope) or ra["principalId"].lower() != pid.lower() \
                    or ra["roleGuid"] != m.group(1).lower():
                raise ApiError(409, "RoleAssignmentUpdateNotPermitted",
                               "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.")
            new = {"description": props.get("description"), "condition": cond, "conditionVersion": cver}
            if any(ra[k] != v for k, v in new.items()):
                ra.update(new, updatedOn=now, updatedBy=self.caller)
            return 200, render_ra(ra), {}
        p = self.st.principals.get(pid.lower())
        if p is None or p["deleted"] or time.time() - p["created"] < self.st.principal_delay:
            raise bad(f"Principal {pid.replace('-', '')} does not exist in the directory {FAKE_TENANT}. Check that you "
                      "have the correct principal ID. If you are creating this principal and then immediately "
                      "assigning a role, this error might be related to a replication delay. In this case, set the "
                      "role assignment principalType property to a value, such as ServicePrincipal, User, or Group.  "
                      "See https://aka.ms/docs-principaltype", "PrincipalNotFound")
        if ptype is not None and ptype != "ServicePrincipal":
            raise bad(f"The PrincipalId '{pid.replace('-', '')}' has type 'ServicePrincipal' , which is different from "
                      f"specified PrincipalType '{ptype}'.", "UnmatchedPrincipalType")
        for other in self.st.role_assignments.values():
            if scope_segments(other["scope"]) == scope_segments(scope) and other["roleGuid"] == m.group(1).lower() \
                    and other["principalId"].lower() == pid.lower():
                raise ApiError(409, "RoleAssignmentExists", "The role assignment already exists. The ID of the "
                                                            f"existing role assignment is {other['name'].replace('-', '').lower()}.")
        ra = {"name": name, "scope": scope, "roleDefinitionId": rd, "roleGuid": m.group(1).lower(), "principalId": pid,
              "principalType": "ServicePrincipal", "description": props.get("description"), "condition": cond,
              "conditionVersion": cver, "delegatedManagedIdentityResourceId": props.get("delegatedManagedIdentityResourceId"),
              "createdOn": now, "updatedOn": now, "createdBy": self.caller, "updatedBy": self.caller}
        self.st.role_assignments[name.lower()] = ra
        return 201, render_ra(ra), {}

    def role_assignments_get(self, g, q, raw):
        scope = g[0] or "/"
        at_scope, pid = parse_ra_filter((q.get("$filter") or [""])[0])
        want = ("at", "above") if at_scope else ("at", "above", "below")
        items = [ra for _, ra in sorted(self.st.role_assignments.items(), key=lambda kv: (kv[1]["scope"].lower(), kv[0]))
                 if scope_relation(ra["scope"], scope) in want and (pid is None or ra["principalId"].lower() == pid)]
        return self.page([render_ra(ra) for ra in items], q)

    def ra_summary(self, ra):
        """What /_fake/role-assignments shows: the assignment plus whose principal it names."""
        p = self.st.principals.get(ra["principalId"].lower()) or {}
        return dict(render_ra(ra)["properties"], id=ra_id(ra), name=ra["name"], identityId=p.get("identityId"),
                    orphaned=not p or p["deleted"])

    # ---- Key Vault secrets (data plane) ----
    def secret_bundle(self, ent, ver):
        body = {"value": ver["value"], "id": f"{self.base()}/secrets/{ent['name']}/{ver['version']}",
                "attributes": {"enabled": ver["enabled"], "created": ver["created"], "updated": ver["updated"],
                               "recoveryLevel": "Recoverable+Purgeable"}}
        if ver["tags"] is not None:
            body["tags"] = dict(ver["tags"])
        if ver["contentType"] is not None:
            body["contentType"] = ver["contentType"]
        return body

    def secret_put(self, g, q, raw):
        name = kv_name(g[0])
        try:
            body = strip_nulls(json.loads(raw or b"null"))
        except ValueError:
            raise ApiError(400, "BadParameter", "The request body is not valid JSON.")
        if not isinstance(body, dict) or not isinstance(body.get("value"), str):
            raise ApiError(400, "BadParameter", "Property 'value' is required and must be a string.")
        if len(body["value"].encode("utf-8")) > KV_MAX_VALUE:
            raise ApiError(400, "BadParameter", f"The secret value exceeds the maximum size of {KV_MAX_VALUE} bytes.")
        tags, ctype, attrs = body.get("tags"), body.get("contentType"), body.get("attributes", {})
        if tags is not None and (not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values())):
            raise ApiError(400, "BadParameter", "Property 'tags' must be an object of strings.")
        if ctype is not None and not isinstance(ctype, str):
            raise ApiError(400, "BadParameter", "Property 'contentType' must be a string.")
        if not isinstance(attrs, dict) or not isinstance(attrs.get("enabled", True), bool):
            raise ApiError(400, "BadParameter", "Property 'attributes' must be an object; attributes.enabled a boolean.")
        ent = self.st.secrets.setdefault(name.lower(), {"name": name, "versions": []})
        t = int(time.time())
        ver = {"version": uuid.uuid4().hex, "value": body["value"], "created": t, "updated": t,
               "enabled": attrs.get("enabled", True), "tags": tags, "contentType": ctype}
        ent["versions"].append(ver)
        return 200, self.secret_bundle(ent, ver), {}

    def secret_version_get(self, g, q, raw):
        name, version = kv_name(g[0]), g[1]
        ent = self.st.secrets.get(name.lower())
        if ent is None:
            raise secret_not_found(name)
        if not version:
            ver = ent["versions"][-1]
        else:
            ver = next((v for v in ent["versions"] if v["version"] == version.lower()), None)
            if ver is None:
                raise secret_not_found(f"{name}/{version}")
        if not ver["enabled"]:
            raise ApiError(403, "Forbidden", "Operation get is not allowed on a disabled secret.")
        return 200, self.secret_bundle(ent, ver), {}

    def secret_get(self, g, q, raw):
        return self.secret_version_get((g[0], ""), q, raw)

    # ---- long-running operations ----
    def op(self, g):
        op = self.st.ops.get(g[2])
        if op is None or op["sub"].lower() != g[0].lower():
            raise ApiError(404, "ResourceNotFound", f"Operation '{g[2]}' was not found.")
        return op

    def op_status_get(self, g, q, raw):
        op = self.op(g)
        body = {"name": op["id"], "status": op["status"], "startTime": op["startTime"]}
        if op["status"] != "InProgress":
            body["endTime"] = op["endTime"]
        if op["error"]:
            body["error"] = op["error"]
        return 200, body, {"Retry-After": str(self.server.retry_after)} if op["status"] == "InProgress" else {}

    def op_result_get(self, g, q, raw):
        op = self.op(g)
        if op["status"] == "InProgress":
            return 202, None, {"Location": self.op_headers(op)["Location"], "Retry-After": str(self.server.retry_after)}
        if op["status"] == "Failed":
            return 400, {"error": op["error"]}, {}
        rec = self.st.servers.get(op["key"])
        if op["kind"] in ("delete", "database_delete") or rec is None:
            return 204, None, {}
        if op["kind"] == "database":
            return (200, render_database(rec, op["child"]), {}) if op["child"] in rec["databases"] else (204, None, {})
        if op["kind"] == "backup":
            return 200, render_backup(self.st.backups[op["key"]][op["child"]]), {}
        if op["kind"] == "config":
            return 200, render_config(rec, op["child"]), {}
        return 200, render(rec), {}

    # ---- control API (no auth) ----
    def fake_identities(self):
        return {"identities": [identity_summary(r) for _, r in sorted(self.st.identities.items())],
                "deletedIdentities": copy.deepcopy(self.st.deleted_identities)}

    def fake_role_assignments(self, query):
        pid = (query.get("principalId") or [""])[0].lower()
        scope = (query.get("scope") or [None])[0]
        items = sorted(self.st.role_assignments.items(), key=lambda kv: (kv[1]["scope"].lower(), kv[0]))
        return [self.ra_summary(ra) for _, ra in items if (not pid or ra["principalId"].lower() == pid)
                and (scope is None or scope_segments(ra["scope"]) == scope_segments(scope))]

    def control(self, path, query, raw):
        st, m = self.st, self.command
        if path == "/_fake/calls" and m == "GET":
            return 200, {"total": st.total, "calls": dict(st.calls)}, {}
        if path == "/_fake/identities" and m == "GET":
            return 200, self.fake_identities(), {}
        if path == "/_fake/role-assignments" and m == "GET":
            return 200, {"roleAssignments": self.fake_role_assignments(query)}, {}
        if path == "/_fake/state" and m == "GET":
            servers = [dict(render(r), resourceGroup=r["rg"], subscriptionId=r["sub"],
                            configurations={n: r["configs"].get(n, c["defaultValue"]) for n, c in CONFIGS.items()},
                            databases={n: dict(d) for n, d in sorted(r["databases"].items())})
                       for _, r in sorted(st.servers.items())]
            backups = [dict(render_backup(b), serverName=b["serverName"]) for bs in st.backups.values() for b in bs.values()]
            ops = [{k: o[k] for k in ("id", "kind", "status", "startTime", "child") if k in o} for o in st.ops.values()]
            secrets_ = [secret_summary(e) for _, e in sorted(st.secrets.items())]
            return 200, {"servers": servers, "backups": backups, "retainedBackups": copy.deepcopy(st.retained),
                         "operations": ops, "secrets": secrets_, **self.fake_identities(),
                         "roleAssignments": self.fake_role_assignments({}),
                         "faults": [f for f in st.faults if f["remaining"] > 0]}, {}
        if path == "/_fake/reset" and m == "POST":
            st.reset()
            return 200, {"reset": True}, {}
        if path == "/_fake/inject" and m == "POST":
            f = obj(self.json_body(raw), "body")
            count = f.get("count", 1)
            if not isinstance(count, int) or count < 1:
                raise bad("count must be a positive integer.")
            if isinstance(f.get("asyncError"), dict):
                kind = "async"
                f["asyncError"] = {"code": f["asyncError"].get("code", "InternalServerError"),
                                   "message": f["asyncError"].get("message", "Injected operation failure.")}
            elif isinstance(f.get("status"), int) and 400 <= f["status"] <= 599:
                kind = "http"
            else:
                raise bad("Give either status (400-599) or asyncError {code, message}.")
            f.update(kind=kind, remaining=count)
            if "method" in f:
                f["method"] = str(f["method"]).upper()
            st.faults.append(f)
            return 200, f, {}
        mt = re.fullmatch(r"/_fake/secrets/([^/]+)/delete", path)
        if mt and m == "POST":
            if st.secrets.pop(mt.group(1).lower(), None) is None:
                raise secret_not_found(mt.group(1))
            return 200, {"deleted": mt.group(1)}, {}
        mt = re.fullmatch(r"/_fake/servers/([^/]+)/set", path)
        if mt and m == "POST":
            recs = [r for r in st.servers.values() if r["name"] == mt.group(1).lower()]
            if not recs:
                raise ApiError(404, "ResourceNotFound", f"No server named '{mt.group(1)}'.")
            patch = obj(self.json_body(raw), "body")
            for k in ("properties", "sku", "tags"):
                obj(patch.get(k) or {}, k)
            for rec in recs:
                props = dict(patch.get("properties") or {})
                if "state" in props:
                    rec["state"] = props.pop("state")
                props.pop("administratorLoginPassword", None)
                merge(rec["doc"]["props"], props)
                if "sku" in patch:
                    merge(rec["doc"]["sku"], patch["sku"])
                if "tags" in patch:
                    merge(rec["doc"]["tags"], patch["tags"])
                for name, value in (patch.get("configurations") or {}).items():
                    if name not in CONFIGS:
                        raise ApiError(400, "InvalidParameter", f"Unknown configuration '{name}'.")
                    rec["configs"][name] = str(value)
            return 200, render(recs[0]), {}
        raise ApiError(404, "NotFound", f"No control endpoint {m} {path}.")


def merge(dst, src):
    """Deep merge; a null value removes the key."""
    for k, v in src.items():
        if v is None:
            dst.pop(k, None)
        elif isinstance(v, dict) and isinstance(dst.get(k), dict):
            merge(dst[k], v)
        else:
            dst[k] = copy.deepcopy(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--provision-seconds", type=float, default=2.0, help="time every long-running operation takes")
    ap.add_argument("--page-size", type=int, default=2, help="items per list page (clients must follow nextLink)")
    ap.add_argument("--retry-after", type=int, default=1, help="Retry-After seconds on 201/202 and InProgress polls")
    ap.add_argument("--principal-delay-seconds", type=float, default=0.0,
                    help="a new identity's principalId is refused by role assignments (PrincipalNotFound) this long")
    ap.add_argument("--log", help="append one line per request (time, method, path, status)")
    a = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    srv.state = State(a.provision_seconds, max(1, a.page_size), max(0.0, a.principal_delay_seconds))
    srv.retry_after, srv.log_path, srv.log_lock = a.retry_after, a.log, threading.Lock()
    print(f"azure_postgres fake listening on http://127.0.0.1:{srv.server_port}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
