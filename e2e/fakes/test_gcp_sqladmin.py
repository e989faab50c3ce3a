"""Tests for the Cloud SQL Admin API fake (e2e/fakes/gcp_sqladmin.py).

Run from the repository root: python3 -m unittest e2e/fakes/test_gcp_sqladmin.py
Each run starts the fake as a subprocess on a free loopback port and stops it by PID.
"""
import base64
import http.client
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gcp_sqladmin.py")
INT = "%24alt=json%3Benum-encoding%3Dint"  # what google-cloud-sql-v1 appends to every request
PROVISION, OP = 0.8, 0.5
SECRETS = ("root-Secret-123", "app-Secret-456", "app-Secret-789")
_spec = importlib.util.spec_from_file_location("gcp_sqladmin", FAKE)
fake_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fake_module)  # for crc32c only; the server under test runs as a subprocess


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def b64(data):
    return base64.b64encode(data).decode()


def secret_body(**labels):
    return {"replication": {"automatic": {}}, "labels": labels or {"team": "paved"}}


def instance_body(name, **settings):
    body = {"name": name, "databaseVersion": 272, "region": "europe-west1", "rootPassword": SECRETS[0],
            "settings": {"tier": "db-custom-2-7680", "dataDiskSizeGb": "20", "availabilityType": 2,
                         "ipConfiguration": {"ipv4Enabled": False, "privateNetwork": "projects/p/global/networks/default",
                                             "sslMode": 2},
                         "backupConfiguration": {"enabled": True, "startTime": "03:00", "pointInTimeRecoveryEnabled": True,
                                                 "transactionLogRetentionDays": 7,
                                                 "backupRetentionSettings": {"retentionUnit": 1, "retainedBackups": 14}},
                         "userLabels": {"team": "paved"}, "deletionProtectionEnabled": False}}
    body["settings"].update(settings)
    return body


class FakeSqlAdminTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.base = f"http://127.0.0.1:{cls.port}"
        cls.log = tempfile.NamedTemporaryFile(prefix="gcp_sqladmin_", suffix=".log", delete=False).name
        cls.proc = subprocess.Popen([sys.executable, FAKE, "--port", str(cls.port), "--provision-seconds", str(PROVISION),
                                     "--op-seconds", str(OP), "--log", cls.log],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", cls.port), timeout=0.2).close()
                break
            except OSError:
                if time.time() > deadline or cls.proc.poll() is not None:
                    raise RuntimeError("fake did not start")
                time.sleep(0.05)

    @classmethod
    def tearDownClass(cls):
        os.kill(cls.proc.pid, signal.SIGTERM)
        cls.proc.wait(timeout=10)
        os.unlink(cls.log)

    def setUp(self):
        self.call("POST", "/_fake/reset", auth=False)
        status, body, _ = self.call("GET", "/computeMetadata/v1/instance/service-accounts/default/token",
                                    headers={"Metadata-Flavor": "Google"}, auth=False)
        self.assertEqual(status, 200)
        self.token = body["access_token"]

    # ---------- helpers ----------
    def call(self, method, path, body=None, headers=None, auth=True, enum_int=True):
        if path.startswith("/v1/") and enum_int:
            path += ("&" if "?" in path else "?") + INT
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if auth:
            hdrs["Authorization"] = "Bearer " + self.token
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status, raw, rh = resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as e:
            status, raw, rh = e.code, e.read(), e.headers
        text = raw.decode()
        try:
            return status, json.loads(text), rh
        except ValueError:
            return status, text, rh

    def ok(self, method, path, body=None, **kw):
        status, out, _ = self.call(method, path, body, **kw)
        self.assertEqual(status, 200, out)
        return out

    def error(self, expected, method, path, body=None, **kw):
        status, out, headers = self.call(method, path, body, **kw)
        self.assertEqual(status, expected, out)
        self.assertEqual(out["error"]["code"], expected)
        return out["error"], headers

    def wait_op(self, op, project="p"):
        deadline = time.time() + 10
        while True:
            got = self.ok("GET", f"/v1/projects/{project}/operations/{op['name']}")
            if got["status"] == 3:  # DONE
                return got
            self.assertLess(time.time(), deadline, "operation did not finish")
            time.sleep(0.05)

    def create(self, name="db-one", **settings):
        op = self.ok("POST", "/v1/projects/p/instances", instance_body(name, **settings))
        self.wait_op(op)
        return self.ok("GET", f"/v1/projects/p/instances/{name}")

    # ---------- metadata server and auth ----------
    def test_metadata_server(self):
        status, text, headers = self.call("GET", "/computeMetadata/v1/instance/service-accounts/default/token", auth=False)
        self.assertEqual(status, 403)
        status, tok, headers = self.call("GET", "/computeMetadata/v1/instance/service-accounts/default/token?scopes=a,b",
                                         headers={"Metadata-Flavor": "Google"}, auth=False)
        self.assertEqual(status, 200)
        self.assertEqual(headers["Metadata-Flavor"], "Google")
        self.assertEqual((tok["token_type"], tok["expires_in"]), ("Bearer", 3599))
        for path, want in [("/computeMetadata/v1/universe/universe-domain", "googleapis.com"),
                           ("/computeMetadata/v1/instance/service-accounts/default/email", "paved-e2e@fake.iam.gserviceaccount.com")]:
            status, text, _ = self.call("GET", path, headers={"Metadata-Flavor": "Google"}, auth=False)
            self.assertEqual((status, text), (200, want))

    def test_sqladmin_requires_issued_bearer_token(self):
        err, headers = self.error(401, "GET", "/v1/projects/p/instances", auth=False)
        self.assertEqual(err["status"], "UNAUTHENTICATED")
        self.assertIn("Bearer", headers["WWW-Authenticate"])
        self.error(401, "GET", "/v1/projects/p/instances", headers={"Authorization": "Bearer made-up"}, auth=False)

    # ---------- instances ----------
    def test_create_lifecycle_with_int_enums(self):
        op = self.ok("POST", "/v1/projects/p/instances", instance_body("db-one"))
        self.assertEqual((op["kind"], op["operationType"], op["status"]), ("sql#operation", 3, 1))
        self.assertEqual((op["targetId"], op["targetProject"]), ("db-one", "p"))
        self.assertTrue(op["selfLink"].endswith("/v1/projects/p/operations/" + op["name"]))
        inst = self.ok("GET", "/v1/projects/p/instances/db-one")
        self.assertEqual(inst["state"], 4)  # PENDING_CREATE
        err, _ = self.error(409, "PATCH", "/v1/projects/p/instances/db-one", {"settings": {"userLabels": {"a": "b"}}})
        self.assertEqual(err["errors"][0]["reason"], "operationInProgress")
        self.error(400, "GET", "/v1/projects/p/instances/db-one/users")  # instance not running yet
        done = self.wait_op(op)
        self.assertNotIn("error", done)
        inst = self.ok("GET", "/v1/projects/p/instances/db-one")
        s = inst["settings"]
        self.assertEqual((inst["state"], inst["databaseVersion"], inst["connectionName"]), (1, 272, "p:europe-west1:db-one"))
        self.assertEqual((s["availabilityType"], s["dataDiskType"], s["ipConfiguration"]["sslMode"]), (2, 1, 2))
        self.assertEqual(s["backupConfiguration"]["backupRetentionSettings"], {"retentionUnit": 1, "retainedBackups": 14})
        self.assertEqual((s["settingsVersion"], s["dataDiskSizeGb"]), ("1", "20"))  # int64 as JSON strings
        self.assertEqual(inst["ipAddresses"][0]["type"], 3)
        self.assertTrue(inst["ipAddresses"][0]["ipAddress"].startswith("10."))
        self.assertNotIn("serverCaCert", inst)
        self.assertNotIn("rootPassword", inst)
        named = self.ok("GET", "/v1/projects/p/instances/db-one", enum_int=False)
        self.assertEqual((named["state"], named["databaseVersion"], named["settings"]["availabilityType"]),
                         ("RUNNABLE", "POSTGRES_16", "REGIONAL"))
        self.error(409, "POST", "/v1/projects/p/instances", instance_body("db-one"))
        self.error(404, "GET", "/v1/projects/p/instances/nope")

    def test_insert_validation(self):
        base = instance_body("db-x")
        cases = {
            "name": dict(base, name="DB-Upper"), "name ": dict(base, name="1db"), "name  ": dict(base, name="a" * 98),
            "databaseVersion": dict(base, databaseVersion=20), "databaseVersion ": dict(base, databaseVersion="POSTGRES_10"),
            "settings.availabilityType": instance_body("db-x", availabilityType=7),
            "settings.tier": instance_body("db-x", tier="db-n1-standard-1"),
            "settings.tier ": instance_body("db-x", tier="db-custom-3-7680"),
            "settings.tier  ": instance_body("db-x", tier="db-perf-optimized-N-4", edition=2),
            "settings.dataDiskSizeGb": instance_body("db-x", dataDiskSizeGb="9"),
            "settings.ipConfiguration.ipv4Enabled": instance_body("db-x", ipConfiguration={"ipv4Enabled": False}),
            "settings.ipConfiguration.sslMode": instance_body("db-x", ipConfiguration={"sslMode": 2, "requireSsl": True}),
            "settings.userLabels": instance_body("db-x", userLabels={"Team": "x"}),
            "settings.userLabels ": instance_body("db-x", userLabels={"team": "X"}),
            "settings.userLabels  ": instance_body("db-x", userLabels={f"k{i}": "v" for i in range(65)}),
            "settings.backupConfiguration.startTime": instance_body("db-x", backupConfiguration={"enabled": True, "startTime": "25:00"}),
            "settings.backupConfiguration.pointInTimeRecoveryEnabled":
                instance_body("db-x", backupConfiguration={"enabled": False, "pointInTimeRecoveryEnabled": True}),
            "settings.backupConfiguration.transactionLogRetentionDays":
                instance_body("db-x", backupConfiguration={"enabled": True, "transactionLogRetentionDays": 8}),
            "settings.backupConfiguration.backupRetentionSettings.retentionUnit":
                instance_body("db-x", backupConfiguration={"backupRetentionSettings": {"retentionUnit": "RETENTION_UNIT_UNSPECIFIED"}}),
            "diskEncryptionConfiguration.kmsKeyName": dict(base, diskEncryptionConfiguration={"kmsKeyName": "my-key"}),
            "diskEncryptionConfiguration.kmsKeyName ":
                dict(base, diskEncryptionConfiguration={"kmsKeyName": "projects/k/locations/us-east1/keyRings/r/cryptoKeys/c"}),
        }
        for field, body in cases.items():
            with self.subTest(field=field):
                err, _ = self.error(400, "POST", "/v1/projects/p/instances", body)
                self.assertEqual(err["status"], "INVALID_ARGUMENT")
                violation = [d for d in err["details"] if d["@type"].endswith("BadRequest")][0]["fieldViolations"][0]
                self.assertEqual(violation["field"], field.strip())
        self.assertEqual(self.ok("GET", "/_fake/state", auth=False)["instances"], [])
        good = instance_body("db-plus", tier="db-perf-optimized-N-8", edition=3)
        good["diskEncryptionConfiguration"] = {"kmsKeyName": "projects/k/locations/europe-west1/keyRings/r/cryptoKeys/c"}
        self.ok("POST", "/v1/projects/p/instances", good)

    def test_patch_merges_and_bumps_settings_version(self):
        self.create()
        op = self.ok("PATCH", "/v1/projects/p/instances/db-one",
                     {"settings": {"userLabels": {"env": "prod"}, "dataDiskSizeGb": "30", "settingsVersion": "1"}})
        self.assertEqual(op["operationType"], 4)  # UPDATE
        self.assertEqual(self.ok("GET", "/v1/projects/p/instances/db-one")["state"], 1)  # stays RUNNABLE
        self.wait_op(op)
        s = self.ok("GET", "/v1/projects/p/instances/db-one")["settings"]
        self.assertEqual((s["userLabels"], s["dataDiskSizeGb"], s["settingsVersion"]), ({"team": "paved", "env": "prod"}, "30", "2"))
        self.assertEqual(s["availabilityType"], 2)  # untouched fields survive a patch
        err, _ = self.error(400, "PATCH", "/v1/projects/p/instances/db-one", {"settings": {"dataDiskSizeGb": "25"}})
        self.assertIn("dataDiskSizeGb", err["message"])
        self.error(400, "PATCH", "/v1/projects/p/instances/db-one", {"settings": {"dataDiskType": 2}})
        err, _ = self.error(412, "PATCH", "/v1/projects/p/instances/db-one", {"settings": {"settingsVersion": "1"}})
        self.assertEqual(err["errors"][0]["reason"], "staleData")
        self.error(400, "PATCH", "/v1/projects/p/instances/db-one", {"region": "us-east1"})
        self.error(400, "PATCH", "/v1/projects/p/instances/db-one", {"databaseVersion": 172})  # no downgrade
        op = self.ok("PATCH", "/v1/projects/p/instances/db-one", {"databaseVersion": 408})
        self.assertEqual(op["operationType"], 48)  # MAJOR_VERSION_UPGRADE
        self.wait_op(op)
        self.assertEqual(self.ok("GET", "/v1/projects/p/instances/db-one")["databaseVersion"], 408)
        self.error(404, "PATCH", "/v1/projects/p/instances/nope", {"settings": {}})

    def test_put_update_replaces_settings(self):
        self.create()
        err, _ = self.error(400, "PUT", "/v1/projects/p/instances/db-one", {"settings": {"tier": "db-custom-2-7680"}})
        self.assertIn("Settings version", err["message"])
        op = self.ok("PUT", "/v1/projects/p/instances/db-one",
                     {"settings": {"settingsVersion": "1", "userLabels": {"env": "dev"},
                                   "ipConfiguration": {"ipv4Enabled": False}}})
        self.wait_op(op)
        s = self.ok("GET", "/v1/projects/p/instances/db-one")["settings"]
        self.assertEqual((s["userLabels"], s["settingsVersion"], s["tier"]), ({"env": "dev"}, "2", "db-custom-2-7680"))
        self.assertEqual(s["availabilityType"], 1)  # omitted -> default ZONAL
        self.assertEqual(s["ipConfiguration"]["privateNetwork"], "projects/p/global/networks/default")

    def test_list_paging(self):
        for n in ("db-a", "db-b", "db-c"):
            self.ok("POST", "/v1/projects/p/instances", instance_body(n))
        self.ok("POST", "/v1/projects/other/instances", instance_body("db-z"))
        first = self.ok("GET", "/v1/projects/p/instances?filter=&maxResults=0&pageToken=&location=")
        self.assertEqual([i["name"] for i in first["items"]], ["db-a", "db-b"])
        second = self.ok("GET", f"/v1/projects/p/instances?maxResults=0&pageToken={first['nextPageToken']}")
        self.assertEqual([i["name"] for i in second["items"]], ["db-c"])
        self.assertNotIn("nextPageToken", second)
        everything = self.ok("GET", "/v1/projects/p/instances?maxResults=10&filter=settings.userLabels.team%3Dpaved")
        self.assertEqual(len(everything["items"]), 3)
        self.assertEqual(self.ok("GET", "/v1/projects/empty/instances"), {"kind": "sql#instancesList", "items": []})
        ops = self.ok("GET", "/v1/projects/p/operations?instance=db-b&maxResults=0&pageToken=")
        self.assertEqual([(o["targetId"], o["operationType"]) for o in ops["items"]], [("db-b", 3)])

    def test_delete_protection_and_final_backup(self):
        self.create(deletionProtectionEnabled=True)
        err, _ = self.error(400, "DELETE", "/v1/projects/p/instances/db-one?finalBackupDescription=&location=")
        self.assertEqual(err["status"], "FAILED_PRECONDITION")
        self.wait_op(self.ok("PATCH", "/v1/projects/p/instances/db-one", {"settings": {"deletionProtectionEnabled": False}}))
        op = self.ok("DELETE", "/v1/projects/p/instances/db-one?enableFinalBackup=true&finalBackupTtlDays=7"
                               "&finalBackupDescription=&location=")
        self.assertEqual(op["operationType"], 5)
        self.assertEqual(self.ok("GET", "/v1/projects/p/instances/db-one")["state"], 3)  # PENDING_DELETE
        self.wait_op(op)
        self.error(404, "GET", "/v1/projects/p/instances/db-one")
        backups = self.ok("GET", "/v1/projects/p/backups?pageSize=0&pageToken=&filter=")["backups"]
        self.assertEqual([(b["type"], b["state"], b["instance"]) for b in backups], [(3, 4, "db-one")])
        self.assertEqual(backups[0]["instanceSettings"]["databaseVersion"], 272)
        self.assertNotIn("ttlDays", backups[0])  # oneof with expiryTime: only one may be sent
        self.assertEqual(self.ok("GET", "/" + backups[0]["name"].join(["v1/", ""]))["name"], backups[0]["name"])
        state = self.ok("GET", "/_fake/state", auth=False)
        self.assertEqual(len(state["retainedFinalBackups"]), 1)
        # A second instance deleted without a final backup leaves none behind.
        self.create("db-two")
        self.wait_op(self.ok("DELETE", "/v1/projects/p/instances/db-two?finalBackupDescription=&location="))
        self.assertEqual(len(self.ok("GET", "/_fake/state", auth=False)["retainedFinalBackups"]), 1)

    def test_backup_runs(self):
        self.create()
        op = self.ok("POST", "/v1/projects/p/instances/db-one/backupRuns", {"description": "before upgrade"})
        self.assertEqual(op["operationType"], 9)  # BACKUP_VOLUME
        backup_id = op["backupContext"]["backupId"]
        self.assertIsInstance(backup_id, str)
        runs = self.ok("GET", "/v1/projects/p/instances/db-one/backupRuns?maxResults=0&pageToken=")["items"]
        self.assertEqual((runs[0]["id"], runs[0]["status"], runs[0]["type"]), (backup_id, 1, 2))
        self.wait_op(op)
        run = self.ok("GET", f"/v1/projects/p/instances/db-one/backupRuns/{backup_id}")
        self.assertEqual(run["status"], 5)  # SUCCESSFUL
        backups = self.ok("GET", "/v1/projects/p/backups?pageSize=0&pageToken=&filter=")["backups"]
        self.assertEqual([(b["type"], b["description"]) for b in backups], [(2, "before upgrade")])

    def test_users_and_password_hygiene(self):
        self.create()
        users = self.ok("GET", "/v1/projects/p/instances/db-one/users?location=")["items"]
        self.assertEqual([u["name"] for u in users], ["postgres"])
        op = self.ok("POST", "/v1/projects/p/instances/db-one/users?location=", {"name": "app", "password": SECRETS[1]})
        self.assertEqual(op["operationType"], 19)
        self.wait_op(op)
        self.error(409, "POST", "/v1/projects/p/instances/db-one/users", {"name": "app", "password": "x"})
        op = self.ok("PUT", "/v1/projects/p/instances/db-one/users?host=&name=app&location=", {"name": "app", "password": SECRETS[2]})
        self.assertEqual(op["operationType"], 21)
        self.wait_op(op)
        self.error(404, "PUT", "/v1/projects/p/instances/db-one/users?host=&name=ghost", {"password": "x"})
        users = self.ok("GET", "/v1/projects/p/instances/db-one/users")["items"]
        self.assertEqual([u["name"] for u in users], ["app", "postgres"])
        self.assertTrue(all("password" not in u for u in users))
        state = self.ok("GET", "/_fake/state", auth=False)
        self.assertEqual(state["users"]["p/db-one"]["app"]["passwordChanges"], 1)
        with open(self.log) as f:
            log = f.read()
        for secret in SECRETS + (self.token,):
            self.assertNotIn(secret, json.dumps(state))
            self.assertNotIn(secret, log)
        self.assertRegex(log, r"(?m)^\S+ PUT /v1/projects/p/instances/db-one/users 200$")
        self.assertEqual(self.ok("GET", "/v1/projects/p/instances/db-one/users/app")["name"], "app")
        self.wait_op(self.ok("DELETE", "/v1/projects/p/instances/db-one/users?host=&name=app&location="))
        self.error(404, "GET", "/v1/projects/p/instances/db-one/users/app")

    def test_keep_alive_framing_and_concurrency(self):
        # reqwest pools HTTP/1.1 connections: errors and successes must share one connection cleanly.
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        hdrs = {"Authorization": "Bearer " + self.token, "Content-Type": "application/json"}
        for body, want in ((instance_body("BAD"), 400), (instance_body("db-k"), 200), ({"name": "x"}, 400)):
            conn.request("POST", "/v1/projects/p/instances?" + INT, json.dumps(body), hdrs)
            resp = conn.getresponse()
            self.assertEqual(resp.status, want)
            json.loads(resp.read())
        conn.request("GET", "/v1/projects/p/instances/db-k?" + INT, headers=hdrs)
        self.assertEqual(conn.getresponse().status, 200)
        conn.close()
        results = []
        threads = [threading.Thread(target=lambda n=n: results.append(
            self.call("POST", "/v1/projects/c/instances", instance_body(f"db-{n}"))[0])) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(results, [200] * 8)
        self.assertEqual(len(self.ok("GET", "/v1/projects/c/instances?maxResults=100")["items"]), 8)

    # ---------- databases ----------
    def test_databases_lifecycle(self):
        self.create()
        listed = self.ok("GET", "/v1/projects/p/instances/db-one/databases?location=")
        self.assertEqual(listed["kind"], "sql#databasesList")
        self.assertEqual([d["name"] for d in listed["items"]], ["postgres"])
        pg = self.ok("GET", "/v1/projects/p/instances/db-one/databases/postgres?location=")
        self.assertEqual({k: pg[k] for k in ("kind", "name", "instance", "project", "charset", "collation")},
                         {"kind": "sql#database", "name": "postgres", "instance": "db-one", "project": "p",
                          "charset": "UTF8", "collation": "en_US.UTF8"})
        self.assertTrue(pg["selfLink"].endswith("/v1/projects/p/instances/db-one/databases/postgres"))
        self.assertTrue(pg["etag"])
        op = self.ok("POST", "/v1/projects/p/instances/db-one/databases?location=",
                     {"name": "app", "instance": "db-one", "project": "p"})
        self.assertEqual((op["operationType"], op["status"], op["targetId"]), (22, 1, "db-one"))  # CREATE_DATABASE, PENDING
        err, _ = self.error(409, "POST", "/v1/projects/p/instances/db-one/databases", {"name": "other"})
        self.assertEqual(err["errors"][0]["reason"], "operationInProgress")
        err, _ = self.error(404, "GET", "/v1/projects/p/instances/db-one/databases/app")  # not until DONE
        self.assertEqual(err["status"], "NOT_FOUND")
        done = self.wait_op(op)
        self.assertNotIn("error", done)
        self.assertEqual(self.ok("GET", f"/v1/projects/p/operations/{op['name']}", enum_int=False)["operationType"],
                         "CREATE_DATABASE")
        app = self.ok("GET", "/v1/projects/p/instances/db-one/databases/app")
        self.assertEqual((app["name"], app["charset"], app["collation"]), ("app", "UTF8", "en_US.UTF8"))
        err, _ = self.error(409, "POST", "/v1/projects/p/instances/db-one/databases", {"name": "app"})
        self.assertEqual(err["status"], "ALREADY_EXISTS")
        self.assertEqual([d["name"] for d in self.ok("GET", "/v1/projects/p/instances/db-one/databases")["items"]],
                         ["app", "postgres"])
        self.assertEqual(self.ok("GET", "/_fake/state", auth=False)["databases"]["p/db-one"],
                         {"app": {"charset": "UTF8", "collation": "en_US.UTF8"},
                          "postgres": {"charset": "UTF8", "collation": "en_US.UTF8"}})
        self.error(404, "DELETE", "/v1/projects/p/instances/db-one/databases/ghost?location=")
        op = self.ok("DELETE", "/v1/projects/p/instances/db-one/databases/app?location=")
        self.assertEqual(op["operationType"], 23)  # DELETE_DATABASE
        self.wait_op(op)
        self.error(404, "GET", "/v1/projects/p/instances/db-one/databases/app")
        calls = self.ok("GET", "/_fake/calls", auth=False)["calls"]
        self.assertEqual(calls["POST /v1/projects/{project}/instances/{instance}/databases"], 3)
        self.assertEqual(calls["DELETE /v1/projects/{project}/instances/{instance}/databases/{database}"], 2)

    def test_database_validation_and_instance_state(self):
        self.ok("POST", "/v1/projects/p/instances", instance_body("db-one"))
        err, _ = self.error(409, "POST", "/v1/projects/p/instances/db-one/databases", {"name": "app"})  # CREATE running
        self.assertEqual(err["errors"][0]["reason"], "operationInProgress")
        self.error(404, "POST", "/v1/projects/p/instances/nope/databases", {"name": "app"})
        self.wait_op(self.ok("GET", "/v1/projects/p/operations?instance=db-one")["items"][0])
        for field, body in {"name": {}, "name ": {"name": "a" * 64}, "name  ": {"name": "a/b"},
                            "instance": {"name": "app", "instance": "db-two"}, "project": {"name": "app", "project": "q"},
                            "charset": {"name": "app", "charset": "LATIN1"}}.items():
            with self.subTest(field=field):
                err, _ = self.error(400, "POST", "/v1/projects/p/instances/db-one/databases", body)
                violation = [d for d in err["details"] if d["@type"].endswith("BadRequest")][0]["fieldViolations"][0]
                self.assertEqual(violation["field"], field.strip())
        op = self.ok("POST", "/v1/projects/p/instances/db-one/databases", {"name": "app", "collation": "C.UTF8"})
        self.wait_op(op)
        self.assertEqual(self.ok("GET", "/v1/projects/p/instances/db-one/databases/app")["collation"], "C.UTF8")
        # A failed CREATE_DATABASE creates nothing; a FAILED instance refuses database calls with 400.
        self.ok("POST", "/_fake/inject", {"operationError": {"code": "INTERNAL_ERROR"}, "operationType": "CREATE_DATABASE"},
                auth=False)
        done = self.wait_op(self.ok("POST", "/v1/projects/p/instances/db-one/databases", {"name": "broken"}))
        self.assertEqual(done["error"]["errors"][0]["code"], "INTERNAL_ERROR")
        self.error(404, "GET", "/v1/projects/p/instances/db-one/databases/broken")
        self.ok("POST", "/_fake/instances/db-one/set", {"state": "FAILED"}, auth=False)
        err, _ = self.error(400, "POST", "/v1/projects/p/instances/db-one/databases", {"name": "late"})
        self.assertIn("not running", err["message"])
        self.error(400, "GET", "/v1/projects/p/instances/db-one/databases")
        # Databases go with their instance.
        self.ok("POST", "/_fake/instances/db-one/set", {"state": "RUNNABLE"}, auth=False)
        self.wait_op(self.ok("DELETE", "/v1/projects/p/instances/db-one?finalBackupDescription=&location="))
        self.assertEqual(self.ok("GET", "/_fake/state", auth=False)["databases"], {})
        self.create()
        self.assertEqual([d["name"] for d in self.ok("GET", "/v1/projects/p/instances/db-one/databases")["items"]],
                         ["postgres"])

    def test_database_routes_take_injected_faults(self):
        self.create()
        self.ok("POST", "/_fake/inject", {"status": 503, "count": 1, "match": "/databases"}, auth=False)
        err, _ = self.error(503, "GET", "/v1/projects/p/instances/db-one/databases")
        self.assertEqual(err["status"], "UNAVAILABLE")
        self.ok("GET", "/v1/projects/p/instances/db-one/databases")
        self.error(401, "GET", "/v1/projects/p/instances/db-one/databases", auth=False)

    # ---------- Secret Manager ----------
    def test_crc32c(self):
        self.assertEqual(fake_module.crc32c(b"123456789"), 0xE3069283)  # the standard CRC-32C check value
        self.assertEqual(fake_module.crc32c(b""), 0)

    def test_secret_lifecycle(self):
        created = self.ok("POST", "/v1/projects/p/secrets?secretId=db-one-app", secret_body(team="paved", env="dev"))
        self.assertEqual((created["name"], created["labels"], created["replication"]),
                         ("projects/p/secrets/db-one-app", {"team": "paved", "env": "dev"}, {"automatic": {}}))
        self.assertTrue(created["createTime"].endswith("Z") and created["etag"])
        err, _ = self.error(409, "POST", "/v1/projects/p/secrets?secretId=db-one-app", secret_body())
        self.assertEqual(err["status"], "ALREADY_EXISTS")
        self.assertEqual(self.ok("GET", "/v1/projects/p/secrets/db-one-app"), created)
        err, _ = self.error(404, "GET", "/v1/projects/p/secrets/db-one-app/versions/latest:access")  # no versions yet
        self.assertEqual(err["status"], "NOT_FOUND")
        value = json.dumps({"username": "app", "password": SECRETS[1], "host": "10.0.0.1"}).encode()
        crc = fake_module.crc32c(value)
        v1 = self.ok("POST", "/v1/projects/p/secrets/db-one-app:addVersion",
                     {"payload": {"data": b64(value), "dataCrc32c": str(crc)}})
        self.assertEqual((v1["name"], v1["state"], v1["clientSpecifiedPayloadChecksum"]),
                         ("projects/p/secrets/db-one-app/versions/1", 1, True))  # ENABLED
        self.assertTrue(v1["createTime"].endswith("Z"))
        got = self.ok("GET", "/v1/projects/p/secrets/db-one-app/versions/latest:access")
        self.assertEqual(got["name"], "projects/p/secrets/db-one-app/versions/1")
        self.assertEqual(base64.b64decode(got["payload"]["data"]), value)
        self.assertEqual(got["payload"]["dataCrc32c"], str(crc))  # int64 as a JSON string
        value2 = json.dumps({"username": "app", "password": SECRETS[2]}).encode()
        v2 = self.ok("POST", "/v1/projects/p/secrets/db-one-app:addVersion", {"payload": {"data": b64(value2)}},
                     enum_int=False)
        self.assertEqual((v2["name"], v2["state"]), ("projects/p/secrets/db-one-app/versions/2", "ENABLED"))
        self.assertNotIn("clientSpecifiedPayloadChecksum", v2)
        self.assertEqual(base64.b64decode(self.ok("GET", "/v1/projects/p/secrets/db-one-app/versions/1:access")
                                          ["payload"]["data"]), value)
        latest = self.ok("GET", "/v1/projects/p/secrets/db-one-app/versions/latest:access")
        self.assertEqual((latest["name"], base64.b64decode(latest["payload"]["data"])),
                         ("projects/p/secrets/db-one-app/versions/2", value2))
        for v in ("3", "0", "newest"):
            self.error(404, "GET", f"/v1/projects/p/secrets/db-one-app/versions/{v}:access")
        self.error(404, "GET", "/v1/projects/other/secrets/db-one-app/versions/latest:access")  # per project
        state = self.ok("GET", "/_fake/state", auth=False)["secrets"]
        self.assertEqual(state, {"db-one-app": {"project": "p", "name": "projects/p/secrets/db-one-app",
                                                "labels": {"team": "paved", "env": "dev"}, "versions": 2,
                                                "jsonKeys": ["password", "username"],
                                                "createTime": created["createTime"]}})
        with open(self.log) as f:
            log = f.read()
        for secret in (SECRETS[1], SECRETS[2], b64(value), b64(value2)):
            self.assertNotIn(secret, json.dumps(self.ok("GET", "/_fake/state", auth=False)))
            self.assertNotIn(secret, log)
        self.assertRegex(log, r"(?m)^\S+ POST /v1/projects/p/secrets/db-one-app:addVersion 200$")
        calls = self.ok("GET", "/_fake/calls", auth=False)["calls"]
        self.assertEqual(calls["POST /v1/projects/{project}/secrets/{secret}:addVersion"], 2)
        self.assertEqual(calls["GET /v1/projects/{project}/secrets/{secret}/versions/{version}:access"], 8)
        err, _ = self.error(409, "DELETE", "/v1/projects/p/secrets/db-one-app?etag=%22stale%22")
        self.assertEqual(err["status"], "ABORTED")
        self.assertEqual(self.ok("DELETE", "/v1/projects/p/secrets/db-one-app?etag="), {})
        self.error(404, "GET", "/v1/projects/p/secrets/db-one-app")
        self.error(404, "DELETE", "/v1/projects/p/secrets/db-one-app?etag=")
        self.error(404, "GET", "/v1/projects/p/secrets/db-one-app/versions/1:access")
        self.error(404, "POST", "/v1/projects/p/secrets/db-one-app:addVersion", {"payload": {"data": b64(b"x")}})
        self.assertEqual(self.ok("GET", "/_fake/state", auth=False)["secrets"], {})

    def test_secret_validation(self):
        for sid in ("", "has%20space", "dot.ted", "a" * 256):
            with self.subTest(secret_id=sid):
                err, _ = self.error(400, "POST", f"/v1/projects/p/secrets?secretId={sid}", secret_body())
                self.assertEqual(err["status"], "INVALID_ARGUMENT")
        self.error(400, "POST", "/v1/projects/p/secrets", secret_body())  # secretId missing
        self.ok("POST", "/v1/projects/p/secrets?secretId=" + "A_b-9" * 51, secret_body())  # 255 characters
        for name, body in {"no replication": {"labels": {"a": "b"}},
                           "both replications": {"replication": {"automatic": {}, "userManaged": {"replicas": [{"location": "x"}]}}},
                           "no replicas": {"replication": {"userManaged": {"replicas": []}}},
                           "upper key": secret_body(Team="x"), "upper value": secret_body(team="X"),
                           "too many": {"replication": {"automatic": {}}, "labels": {f"k{i}": "v" for i in range(65)}},
                           "non-string": {"replication": {"automatic": {}}, "labels": {"a": 1}}}.items():
            with self.subTest(body=name):
                self.error(400, "POST", "/v1/projects/p/secrets?secretId=s1", body)
        self.error(404, "GET", "/v1/projects/p/secrets/s1")
        self.ok("POST", "/v1/projects/p/secrets?secretId=s1",
                {"replication": {"userManaged": {"replicas": [{"location": "europe-west1"}]}}})
        self.error(404, "POST", "/v1/projects/p/secrets/nope:addVersion", {"payload": {"data": b64(b"x")}})
        self.error(400, "POST", "/v1/projects/p/secrets/s1:addVersion", {})
        err, _ = self.error(400, "POST", "/v1/projects/p/secrets/s1:addVersion", {"payload": {"data": "%%%"}})
        self.assertNotIn("%%%", err["message"])
        err, _ = self.error(400, "POST", "/v1/projects/p/secrets/s1:addVersion",
                            {"payload": {"data": b64(b"123456789"), "dataCrc32c": str(0xE3069283 + 1)}})
        self.assertEqual(err["status"], "INVALID_ARGUMENT")
        self.error(400, "POST", "/v1/projects/p/secrets/s1:addVersion", {"payload": {"data": b64(b"x" * 65537)}})
        self.assertEqual(self.ok("GET", "/_fake/state", auth=False)["secrets"]["s1"]["versions"], 0)
        v = self.ok("POST", "/v1/projects/p/secrets/s1:addVersion",
                    {"payload": {"data": b64(b"123456789"), "dataCrc32c": 0xE3069283}})  # number accepted too
        self.assertEqual(v["replicationStatus"], {"userManaged": {"replicas": [{"location": "europe-west1"}]}})
        urlsafe = base64.urlsafe_b64encode(b"\xfb\xff").decode().rstrip("=")
        self.ok("POST", "/v1/projects/p/secrets/s1:addVersion", {"payload": {"data": urlsafe}})
        got = self.ok("GET", "/v1/projects/p/secrets/s1/versions/2:access")["payload"]
        self.assertEqual((base64.b64decode(got["data"]), got["dataCrc32c"]), (b"\xfb\xff", str(fake_module.crc32c(b"\xfb\xff"))))
        self.assertIsNone(self.ok("GET", "/_fake/state", auth=False)["secrets"]["s1"]["jsonKeys"])  # not JSON
        self.ok("POST", "/v1/projects/p/secrets/s1:addVersion", {"payload": {"data": b64(b'["a", "b"]')}})
        self.assertIsNone(self.ok("GET", "/_fake/state", auth=False)["secrets"]["s1"]["jsonKeys"])  # not an object

    def test_secret_auth_faults_and_fake_delete(self):
        self.error(401, "POST", "/v1/projects/p/secrets?secretId=s1", secret_body(), auth=False)
        self.error(401, "GET", "/v1/projects/p/secrets/s1", headers={"Authorization": "Bearer made-up"}, auth=False)
        self.ok("POST", "/_fake/inject", {"status": 429, "count": 1, "match": "/secrets", "method": "POST"}, auth=False)
        err, headers = self.error(429, "POST", "/v1/projects/p/secrets?secretId=s1", secret_body())
        self.assertEqual(headers["Retry-After"], "1")
        self.assertEqual(err["details"][0]["metadata"], {"service": "secretmanager.googleapis.com"})
        self.ok("POST", "/v1/projects/p/secrets?secretId=s1", secret_body())
        self.ok("POST", "/v1/projects/q/secrets?secretId=s1", secret_body())
        self.ok("POST", "/v1/projects/p/secrets/s1:addVersion", {"payload": {"data": b64(b'{"password": "x"}')}})
        state = self.ok("GET", "/_fake/state", auth=False)["secrets"]
        self.assertEqual(sorted(state), ["p/s1", "q/s1"])  # one id in two projects: keyed project/id
        self.assertEqual(self.ok("POST", "/_fake/secrets/s1/delete?project=p", auth=False),
                         {"deleted": "projects/p/secrets/s1"})
        self.error(404, "GET", "/v1/projects/p/secrets/s1/versions/latest:access")
        self.assertEqual(self.ok("GET", "/v1/projects/q/secrets/s1")["name"], "projects/q/secrets/s1")
        self.assertEqual(list(self.ok("GET", "/_fake/state", auth=False)["secrets"]), ["s1"])
        self.ok("POST", "/_fake/secrets/s1/delete", auth=False)
        self.error(404, "POST", "/_fake/secrets/s1/delete", auth=False)
        self.ok("POST", "/v1/projects/p/secrets?secretId=s2", secret_body())
        self.ok("POST", "/_fake/reset", auth=False)
        self.assertEqual(self.ok("GET", "/_fake/state", auth=False)["secrets"], {})
        self.error(404, "GET", "/v1/projects/p/secrets/s2")

    # ---------- IAM service accounts and IAM policies ----------
    def sa_create(self, account_id="svc-orders", project="p", **sa):
        return self.ok("POST", f"/v1/projects/{project}/serviceAccounts",
                       {"accountId": account_id, "serviceAccount": sa or {"displayName": "Orders", "description": "paved"}})

    def wi(self, namespace="shop", ksa="orders", project="p"):
        return f"serviceAccount:{project}.svc.id.goog[{namespace}/{ksa}]"

    def test_service_account_lifecycle(self):
        sa = self.sa_create()
        email = "svc-orders@p.iam.gserviceaccount.com"
        self.assertEqual({k: sa[k] for k in ("name", "projectId", "email", "displayName", "description")},
                         {"name": f"projects/p/serviceAccounts/{email}", "projectId": "p", "email": email,
                          "displayName": "Orders", "description": "paved"})
        self.assertRegex(sa["uniqueId"], r"^[0-9]{21}$")
        self.assertEqual(sa["oauth2ClientId"], sa["uniqueId"])
        base64.b64decode(sa["etag"], validate=True)  # bytes in the model: must be base64
        self.assertNotIn("disabled", sa)
        for ident in (email, sa["uniqueId"]):
            self.assertEqual(self.ok("GET", f"/v1/projects/p/serviceAccounts/{ident}"), sa)
            self.assertEqual(self.ok("GET", f"/v1/projects/-/serviceAccounts/{ident}"), sa)  # '-' infers the project
        self.assertEqual(self.ok("GET", "/v1/projects/p/serviceAccounts/svc-orders%40p.iam.gserviceaccount.com"), sa)
        self.error(404, "GET", f"/v1/projects/other/serviceAccounts/{email}")  # wrong project
        # list: the client always sends pageSize (0 = --page-size, 2) and pageToken
        for aid in ("svc-billing", "svc-carts"):
            self.sa_create(aid)
        self.sa_create("svc-elsewhere", project="q")
        first = self.ok("GET", "/v1/projects/p/serviceAccounts?pageSize=0&pageToken=")
        self.assertEqual([a["email"].split("@")[0] for a in first["accounts"]], ["svc-billing", "svc-carts"])
        rest = self.ok("GET", f"/v1/projects/p/serviceAccounts?pageSize=0&pageToken={first['nextPageToken']}")
        self.assertEqual(([a["email"] for a in rest["accounts"]], rest.get("nextPageToken")), ([email], None))
        self.assertEqual(len(self.ok("GET", "/v1/projects/p/serviceAccounts?pageSize=5&pageToken=")["accounts"]), 3)
        self.assertEqual(self.ok("GET", "/v1/projects/empty/serviceAccounts?pageSize=0&pageToken="), {})
        # patch (body as the client sends it: no name inside serviceAccount, FieldMask as a string)
        patched = self.ok("PATCH", f"/v1/projects/p/serviceAccounts/{email}",
                          {"serviceAccount": {"displayName": "Orders v2"}, "updateMask": "displayName,description"})
        self.assertEqual((patched["displayName"], "description" in patched, patched["uniqueId"]),
                         ("Orders v2", False, sa["uniqueId"]))
        self.error(400, "PATCH", f"/v1/projects/p/serviceAccounts/{email}",
                   {"serviceAccount": {"email": "x@y.z"}, "updateMask": "email"})
        # delete
        self.assertEqual(self.ok("DELETE", f"/v1/projects/p/serviceAccounts/{email}"), {})
        err, _ = self.error(404, "GET", f"/v1/projects/p/serviceAccounts/{email}")
        self.assertEqual(err["status"], "NOT_FOUND")
        self.error(404, "DELETE", f"/v1/projects/p/serviceAccounts/{email}")
        self.error(404, "POST", f"/v1/projects/p/serviceAccounts/{email}:getIamPolicy", {})
        err, _ = self.error(403, "GET", f"/v1/projects/-/serviceAccounts/{email}")  # R: '-' hides the 404
        self.assertEqual((err["status"], err["details"][0]["metadata"]),
                         ("PERMISSION_DENIED", {"permission": "iam.serviceAccounts.get"}))
        self.error(404, "GET", f"/v1/projects/-/serviceAccounts/{sa['uniqueId']}")
        calls = self.ok("GET", "/_fake/calls", auth=False)["calls"]
        self.assertEqual(calls["POST /v1/projects/{project}/serviceAccounts"], 4)
        self.assertEqual(calls["GET /v1/projects/{project}/serviceAccounts"], 4)
        self.assertEqual(calls["DELETE /v1/projects/{project}/serviceAccounts/{account}"], 2)
        self.assertEqual(calls["PATCH /v1/projects/{project}/serviceAccounts/{account}"], 2)
        with open(self.log) as f:
            self.assertRegex(f.read(), rf"(?m)^\S+ DELETE /v1/projects/p/serviceAccounts/{email} 200$")

    def test_service_account_validation(self):
        for aid in ("short", "Upper-case1", "1starts-digit", "ends-hyphen-", "a" * 31, "has_underscore", "", None):
            with self.subTest(account_id=aid):
                err, _ = self.error(400, "POST", "/v1/projects/p/serviceAccounts", {"accountId": aid})
                self.assertEqual(err["status"], "INVALID_ARGUMENT")
        self.sa_create("a" * 30)
        self.sa_create("six-ch")
        self.error(400, "POST", "/v1/projects/p/serviceAccounts",
                   {"accountId": "svc-long", "serviceAccount": {"displayName": "x" * 101}})
        self.error(400, "POST", "/v1/projects/p/serviceAccounts",
                   {"accountId": "svc-long", "serviceAccount": {"description": "x" * 257}})
        self.sa_create("svc-orders")
        err, _ = self.error(409, "POST", "/v1/projects/p/serviceAccounts", {"accountId": "svc-orders"})
        self.assertEqual(err["status"], "ALREADY_EXISTS")
        self.assertEqual(err["message"], "Service account svc-orders already exists within project projects/p.")
        self.assertEqual(err["details"][0]["resourceName"], "projects/p/serviceAccounts/svc-orders@p.iam.gserviceaccount.com")
        self.sa_create("svc-orders", project="q")  # unique per project only
        self.error(401, "POST", "/v1/projects/p/serviceAccounts", {"accountId": "svc-noauth"}, auth=False)

    def test_recreated_service_account_gets_a_new_unique_id(self):
        email = "svc-orders@p.iam.gserviceaccount.com"
        first = self.sa_create()
        self.ok("DELETE", f"/v1/projects/p/serviceAccounts/{first['uniqueId']}")  # delete by uniqueId
        second = self.sa_create()
        self.assertEqual(second["email"], email)
        self.assertNotEqual(second["uniqueId"], first["uniqueId"])
        self.assertRegex(second["uniqueId"], r"^[0-9]{21}$")
        self.error(404, "GET", f"/v1/projects/p/serviceAccounts/{first['uniqueId']}")
        state = self.ok("GET", "/_fake/service-accounts", auth=False)
        self.assertEqual([(a["email"], a["uniqueId"]) for a in state["accounts"]], [(email, second["uniqueId"])])
        self.assertEqual([(d["email"], d["uniqueId"], d["projectId"]) for d in state["deleted"]],
                         [(email, first["uniqueId"], "p")])

    def test_service_account_policy_and_etag(self):
        sa = self.sa_create()
        path = f"/v1/projects/p/serviceAccounts/{sa['email']}"
        # iam-admin-v1 sends getIamPolicy as a POST with an empty body; options only when set
        empty = self.ok("POST", path + ":getIamPolicy", {})
        self.assertEqual((empty["version"], empty.get("bindings")), (1, None))
        self.ok("GET", "/_fake/calls", auth=False)
        self.error(404, "GET", path + ":getIamPolicy")  # not a GET for service accounts
        binding = {"role": "roles/iam.workloadIdentityUser", "members": [self.wi()]}
        set1 = self.ok("POST", path + ":setIamPolicy", {"policy": {"bindings": [binding], "etag": empty["etag"]}})
        self.assertEqual((set1["version"], set1["bindings"]), (1, [binding]))
        self.assertNotEqual(set1["etag"], empty["etag"])
        self.assertEqual(len(base64.b64decode(set1["etag"])), 8)
        self.assertEqual(self.ok("POST", path + ":getIamPolicy?options.requestedPolicyVersion=3", {}), set1)
        # a stale etag is a 409 ABORTED; nothing changes
        err, _ = self.error(409, "POST", path + ":setIamPolicy", {"policy": {"bindings": [], "etag": empty["etag"]}})
        self.assertEqual(err["status"], "ABORTED")
        self.assertIn("concurrent policy changes", err["message"])
        self.assertEqual(self.ok("POST", path + ":getIamPolicy", {}), set1)
        # without an etag the policy is overwritten; duplicates are merged and members sorted
        two = self.wi(ksa="orders-2")
        blind = self.ok("POST", path + ":setIamPolicy", {"policy": {"bindings": [
            {"role": "roles/iam.workloadIdentityUser", "members": [two]},
            {"role": "roles/iam.workloadIdentityUser", "members": [self.wi(), two]}]}, "updateMask": "bindings,etag"})
        self.assertEqual(blind["bindings"], [{"role": "roles/iam.workloadIdentityUser", "members": sorted([self.wi(), two])}])
        self.assertNotEqual(blind["etag"], set1["etag"])
        self.error(400, "POST", path + ":getIamPolicy?options.requestedPolicyVersion=2", {})
        # the fake's view from outside
        state = self.ok("GET", "/_fake/service-accounts", auth=False)["accounts"]
        self.assertEqual(state[0]["policy"], blind)
        # deleting the account deletes its own policy; a re-created account starts empty
        self.ok("DELETE", path)
        self.assertEqual(self.ok("POST", f"/v1/projects/p/serviceAccounts/{self.sa_create()['email']}:getIamPolicy", {}),
                         {"version": 1, "etag": empty["etag"]})
        calls = self.ok("GET", "/_fake/calls", auth=False)["calls"]
        self.assertEqual(calls["POST /v1/projects/{project}/serviceAccounts/{account}:setIamPolicy"], 3)

    def test_invalid_members_and_roles_are_refused(self):
        sa = self.sa_create()
        path = f"/v1/projects/p/serviceAccounts/{sa['email']}:setIamPolicy"
        role = "roles/iam.workloadIdentityUser"
        for member in ("orders", "svc-orders@p.iam.gserviceaccount.com", "serviceAccount:not-an-email",
                       "serviceAccount:p.svc.id.goog[shop]", "serviceAccount:p.svc.id.goog[Shop/orders]",
                       "serviceAccount:p.svc.id.goog[shop/orders", "robot:x@example.com", "user:nobody",
                       "principal://example.com/x", "deleted:serviceAccount:x@example.com", "",
                       "serviceAccount:ghost@p.iam.gserviceaccount.com"):  # the last one does not exist
            with self.subTest(member=member):
                err, _ = self.error(400, "POST", path, {"policy": {"bindings": [{"role": role, "members": [member]}]}})
                self.assertEqual(err["status"], "INVALID_ARGUMENT")
        good = ["user:alice@example.com", "group:admins@example.com", "domain:example.com", "allUsers",
                "allAuthenticatedUsers", f"serviceAccount:{sa['email']}", self.wi(),
                "principal://iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/p.svc.id.goog/subject/ns/shop/sa/orders",
                "principalSet://iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/p.svc.id.goog/namespace/shop",
                "deleted:serviceAccount:old@p.iam.gserviceaccount.com?uid=123456789012345678901",
                "serviceAccount:paved-e2e@fake.iam.gserviceaccount.com", "serviceAccount:123-compute@developer.gserviceaccount.com"]
        got = self.ok("POST", path, {"policy": {"bindings": [{"role": role, "members": good}]}})
        self.assertEqual(got["bindings"][0]["members"], sorted(good))
        for bad_binding in ({"role": "roles/secretmanager.secretAccessor", "members": [self.wi()]},  # not for this resource
                            {"role": "iam.workloadIdentityUser", "members": [self.wi()]},
                            {"role": role, "members": []}, {"members": [self.wi()]}):
            with self.subTest(binding=bad_binding):
                self.error(400, "POST", path, {"policy": {"bindings": [bad_binding]}})
        for r in ("roles/iam.serviceAccountTokenCreator", "roles/viewer", "projects/p/roles/custom.role"):
            self.ok("POST", path, {"policy": {"bindings": [{"role": r, "members": [self.wi()]}]}})
        # conditions need policy version 3, and must be read with requestedPolicyVersion=3
        cond = {"role": role, "members": [self.wi()], "condition": {"title": "t", "expression": "request.time < timestamp('2030-01-01T00:00:00Z')"}}
        self.error(400, "POST", path, {"policy": {"bindings": [cond]}})
        self.error(400, "POST", path, {"policy": {"version": 2, "bindings": [{"role": role, "members": [self.wi()]}]}})
        v3 = self.ok("POST", path, {"policy": {"version": 3, "bindings": [cond]}})
        self.assertEqual((v3["version"], v3["bindings"]), (3, [cond]))
        self.error(400, "POST", path.replace(":setIamPolicy", ":getIamPolicy"), {})
        self.assertEqual(self.ok("POST", path.replace(":setIamPolicy", ":getIamPolicy?options.requestedPolicyVersion=3"), {}), v3)

    def test_secret_policy(self):
        accessor = "roles/secretmanager.secretAccessor"
        err, _ = self.error(404, "GET", "/v1/projects/p/secrets/db-one-app:getIamPolicy")
        self.assertEqual(err["status"], "NOT_FOUND")
        self.error(404, "POST", "/v1/projects/p/secrets/db-one-app:setIamPolicy", {"policy": {}})
        self.ok("POST", "/v1/projects/p/secrets?secretId=db-one-app", secret_body())
        self.ok("POST", "/v1/projects/p/secrets?secretId=unbound", secret_body())
        sa = self.sa_create()
        member = f"serviceAccount:{sa['email']}"
        # secretmanager-v1 sends getIamPolicy as a GET
        empty = self.ok("GET", "/v1/projects/p/secrets/db-one-app:getIamPolicy")
        self.assertEqual(empty, {"version": 1, "etag": "ACAB"})
        self.error(404, "POST", "/v1/projects/p/secrets/db-one-app:getIamPolicy", {})
        pol = self.ok("POST", "/v1/projects/p/secrets/db-one-app:setIamPolicy",
                      {"policy": {"bindings": [{"role": accessor, "members": [member]}], "etag": empty["etag"]}})
        self.assertEqual(pol["bindings"], [{"role": accessor, "members": [member]}])
        self.assertEqual(self.ok("GET", "/v1/projects/p/secrets/db-one-app:getIamPolicy?options.requestedPolicyVersion=3"), pol)
        err, _ = self.error(409, "POST", "/v1/projects/p/secrets/db-one-app:setIamPolicy",
                            {"policy": {"bindings": [], "etag": empty["etag"]}})
        self.assertEqual(err["status"], "ABORTED")
        self.error(400, "POST", "/v1/projects/p/secrets/db-one-app:setIamPolicy",
                   {"policy": {"bindings": [{"role": "roles/iam.workloadIdentityUser", "members": [member]}]}})
        self.error(400, "POST", "/v1/projects/p/secrets/db-one-app:setIamPolicy",
                   {"policy": {"bindings": [{"role": accessor, "members": ["serviceAccount:ghost@p.iam.gserviceaccount.com"]}]}})
        self.assertEqual(self.ok("GET", "/_fake/secret-policies", auth=False),
                         {"db-one-app": {"name": "projects/p/secrets/db-one-app", **pol},
                          "unbound": {"name": "projects/p/secrets/unbound", "version": 1, "etag": "ACAB"}})
        # deleting the account leaves the binding, shown as deleted:serviceAccount:{email}?uid={uniqueId}
        self.ok("DELETE", f"/v1/projects/p/serviceAccounts/{sa['email']}")
        dead = f"deleted:serviceAccount:{sa['email']}?uid={sa['uniqueId']}"
        after = self.ok("GET", "/v1/projects/p/secrets/db-one-app:getIamPolicy")
        self.assertEqual(after["bindings"], [{"role": accessor, "members": [dead]}])
        # naming the deleted account is refused; a re-created account with the same email is not bound
        self.error(400, "POST", "/v1/projects/p/secrets/db-one-app:setIamPolicy",
                   {"policy": {"bindings": [{"role": accessor, "members": [member]}]}})
        again = self.sa_create()
        self.assertEqual(self.ok("GET", "/v1/projects/p/secrets/db-one-app:getIamPolicy")["bindings"],
                         [{"role": accessor, "members": [dead]}])
        # read-modify-write with the tombstone kept, as a client would send it back
        rmw = self.ok("POST", "/v1/projects/p/secrets/db-one-app:setIamPolicy", {"policy": {
            "bindings": [{"role": accessor, "members": [dead, member]}], "etag": after["etag"]}})
        self.assertEqual(rmw["bindings"][0]["members"], sorted([dead, member]))
        self.assertEqual(self.ok("GET", "/_fake/secret-policies", auth=False)["db-one-app"]["bindings"], rmw["bindings"])
        self.assertNotEqual(again["uniqueId"], sa["uniqueId"])
        # a secret's deletion drops its policy
        self.ok("DELETE", "/v1/projects/p/secrets/db-one-app?etag=")
        self.assertNotIn("db-one-app", self.ok("GET", "/_fake/secret-policies", auth=False))
        self.ok("POST", "/v1/projects/p/secrets?secretId=db-one-app", secret_body())
        self.assertEqual(self.ok("GET", "/v1/projects/p/secrets/db-one-app:getIamPolicy"), {"version": 1, "etag": "ACAB"})
        calls = self.ok("GET", "/_fake/calls", auth=False)["calls"]
        self.assertEqual(calls["GET /v1/projects/{project}/secrets/{secret}:getIamPolicy"], 6)
        self.assertNotIn("GET /v1/projects/{project}/secrets/{secret}", calls)  # not mistaken for get_secret

    def test_iam_auth_faults_propagation_and_fake_endpoints(self):
        self.error(401, "GET", "/v1/projects/p/serviceAccounts?pageSize=0&pageToken=", auth=False)
        self.error(401, "GET", "/v1/projects/p/secrets/s1:getIamPolicy", headers={"Authorization": "Bearer made-up"}, auth=False)
        self.ok("POST", "/_fake/inject", {"status": 429, "count": 1, "match": "/serviceAccounts", "method": "POST"}, auth=False)
        err, headers = self.error(429, "POST", "/v1/projects/p/serviceAccounts", {"accountId": "svc-orders"})
        self.assertEqual((headers["Retry-After"], err["details"][0]["metadata"]), ("1", {"service": "iam.googleapis.com"}))
        sa = self.sa_create()
        self.ok("POST", "/_fake/inject", {"status": 503, "count": 1}, auth=False)  # no match: any /v1/ route
        err, _ = self.error(503, "POST", f"/v1/projects/p/serviceAccounts/{sa['email']}:getIamPolicy", {})
        self.assertEqual(err["status"], "UNAVAILABLE")
        self.ok("POST", "/_fake/inject", {"status": 500, "count": 1, "match": ":setIamPolicy"}, auth=False)
        self.ok("POST", "/v1/projects/p/secrets?secretId=s1", secret_body())
        self.error(500, "POST", "/v1/projects/p/secrets/s1:setIamPolicy", {"policy": {}})
        # eventual consistency: a new account cannot be named in a policy until IAM has propagated
        self.assertEqual(self.ok("POST", "/_fake/inject", {"iamPropagationSeconds": 0.5}, auth=False),
                         {"iamPropagationSeconds": 0.5})
        fresh = self.sa_create("svc-fresh")
        body = {"policy": {"bindings": [{"role": "roles/secretmanager.secretAccessor",
                                         "members": [f"serviceAccount:{fresh['email']}"]}]}}
        err, _ = self.error(400, "POST", "/v1/projects/p/secrets/s1:setIamPolicy", body)
        self.assertEqual(err["message"], f"Service account {fresh['email']} does not exist.")
        self.ok("GET", f"/v1/projects/p/serviceAccounts/{fresh['email']}")  # GET already works
        time.sleep(0.6)
        self.ok("POST", "/v1/projects/p/secrets/s1:setIamPolicy", body)
        # out-of-band drift: delete an account, overwrite a secret's bindings
        self.assertEqual(self.ok("POST", f"/_fake/service-accounts/{fresh['email']}/delete", auth=False),
                         {"deleted": fresh["name"], "uniqueId": fresh["uniqueId"]})
        self.error(404, "POST", f"/_fake/service-accounts/{fresh['email']}/delete", auth=False)
        self.assertEqual(self.ok("GET", "/_fake/secret-policies", auth=False)["s1"]["bindings"][0]["members"],
                         [f"deleted:serviceAccount:{fresh['email']}?uid={fresh['uniqueId']}"])
        drift = self.ok("POST", "/_fake/secret-policies/s1/set", {"bindings": []}, auth=False)
        self.assertNotIn("bindings", drift)
        self.assertEqual(self.ok("GET", "/v1/projects/p/secrets/s1:getIamPolicy")["etag"], drift["etag"])
        self.error(404, "POST", "/_fake/secret-policies/nope/set", {"bindings": []}, auth=False)
        state = self.ok("GET", "/_fake/service-accounts", auth=False)
        self.assertEqual([a["email"] for a in state["accounts"]], [sa["email"]])
        self.assertEqual(set(state["accounts"][0]), {"name", "projectId", "uniqueId", "email", "displayName", "description",
                                                     "etag", "oauth2ClientId", "createTime", "policy"})
        self.ok("POST", "/_fake/reset", auth=False)
        self.assertEqual(self.ok("GET", "/_fake/service-accounts", auth=False), {"accounts": [], "deleted": []})
        self.assertEqual(self.ok("GET", "/_fake/secret-policies", auth=False), {})
        self.sa_create("svc-after-reset")  # propagation back to the default (0): usable at once
        self.ok("POST", "/v1/projects/p/secrets?secretId=s1", secret_body())
        self.ok("POST", "/v1/projects/p/secrets/s1:setIamPolicy", {"policy": {"bindings": [
            {"role": "roles/secretmanager.secretAccessor", "members": ["serviceAccount:svc-after-reset@p.iam.gserviceaccount.com"]}]}})

    # ---------- fault injection and introspection ----------
    def test_inject_429_then_recover(self):
        self.ok("POST", "/_fake/inject", {"status": 429, "count": 2, "retryAfter": 3, "match": "/instances", "method": "GET"}, auth=False)
        self.ok("POST", "/v1/projects/p/instances", instance_body("db-one"))  # POST does not match
        for _ in range(2):
            err, headers = self.error(429, "GET", "/v1/projects/p/instances")
            self.assertEqual((err["status"], headers["Retry-After"]), ("RESOURCE_EXHAUSTED", "3"))
            self.assertIn({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3s"}, err["details"])
        self.ok("GET", "/v1/projects/p/instances")
        for code, status in ((503, "UNAVAILABLE"), (500, "INTERNAL")):
            self.ok("POST", "/_fake/inject", {"status": code, "count": 1}, auth=False)
            err, _ = self.error(code, "GET", "/v1/projects/p/operations")
            self.assertEqual(err["status"], status)
        self.ok("GET", "/v1/projects/p/operations")

    def test_injected_operation_failure(self):
        self.ok("POST", "/_fake/inject", {"operationError": {"code": "INTERNAL_ERROR", "message": "boom"},
                                          "operationType": "CREATE"}, auth=False)
        done = self.wait_op(self.ok("POST", "/v1/projects/p/instances", instance_body("db-one")))
        self.assertEqual(done["error"]["errors"][0]["code"], "INTERNAL_ERROR")
        self.assertEqual(self.ok("GET", "/v1/projects/p/instances/db-one")["state"], 6)  # FAILED

    def test_calls_state_drift_and_reset(self):
        self.create()
        calls = self.ok("GET", "/_fake/calls", auth=False)
        self.assertEqual(calls["calls"]["POST /v1/projects/{project}/instances"], 1)
        self.assertGreaterEqual(calls["calls"]["GET /v1/projects/{project}/operations/{operation}"], 1)
        self.assertEqual(calls["total"], sum(calls["calls"].values()))
        drift = self.ok("POST", "/_fake/instances/db-one/set", {"settings": {"userLabels": {"team": "console"}, "availabilityType": "ZONAL"}}, auth=False)
        self.assertEqual(drift["settings"]["settingsVersion"], "2")
        s = self.ok("GET", "/v1/projects/p/instances/db-one")["settings"]
        self.assertEqual((s["userLabels"], s["availabilityType"]), ({"team": "console"}, 1))
        self.ok("POST", "/_fake/reset", auth=False)
        self.assertEqual(self.ok("GET", "/_fake/calls", auth=False)["total"], 0)
        self.error(404, "GET", "/v1/projects/p/instances/db-one")


if __name__ == "__main__":
    unittest.main()
