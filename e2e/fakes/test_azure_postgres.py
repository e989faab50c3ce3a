"""Tests for the Azure PostgreSQL flexible-server ARM fake (e2e/fakes/azure_postgres.py).

Run from the repository root:  python3 -m unittest e2e/fakes/test_azure_postgres.py
The fake runs as a subprocess on a free loopback port and is stopped by PID.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import unittest.mock
import urllib.error
import urllib.parse
import urllib.request

FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "azure_postgres.py")
API = "api-version=2024-08-01"
SUB = "ffffffff-ffff-ffff-ffff-ffffffffffff"
RG = "rg-e2e"
PASSWORD = "S3cret-Passw0rd!"
PROVISION = 1.0
UAI = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/pg-cmk"
KEY = "https://kv-e2e.vault.azure.net/keys/pg/0123456789abcdef0123456789abcdef"
KV_API = "api-version=7.0"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_body(**over):
    """A create body shaped like what azure_mgmt_postgresql serialises (nulls included)."""
    body = {"location": "westus", "sku": {"name": "Standard_D2ds_v5", "tier": "GeneralPurpose"},
            "tags": {"owner": "e2e"},
            "properties": {"administratorLogin": "pgadmin", "administratorLoginPassword": PASSWORD,
                           "version": "16", "storage": {"storageSizeGB": 64, "autoGrow": "Disabled"},
                           "backup": {"backupRetentionDays": 7, "geoRedundantBackup": "Disabled",
                                      "earliestRestoreDate": None},
                           "network": {"publicNetworkAccess": "Enabled"},
                           "highAvailability": {"mode": "Disabled"}, "pointInTimeUTC": None,
                           "createMode": "Create"}}
    for k, v in over.items():
        if k in body and isinstance(v, dict) and k != "tags":
            body[k] = {**body[k], **v}
        else:
            body[k] = v
    return body


class FakeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.base = f"http://127.0.0.1:{cls.port}"
        cls.logdir = tempfile.TemporaryDirectory()
        cls.log = os.path.join(cls.logdir.name, "fake.log")
        cls.proc = subprocess.Popen([sys.executable, FAKE, "--port", str(cls.port), "--provision-seconds",
                                     str(PROVISION), "--log", cls.log], stdout=subprocess.DEVNULL)
        deadline = time.time() + 10
        while True:
            try:
                urllib.request.urlopen(cls.base + "/_fake/calls", timeout=1).read()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)

    @classmethod
    def tearDownClass(cls):
        os.kill(cls.proc.pid, signal.SIGTERM)
        cls.proc.wait(timeout=10)
        cls.logdir.cleanup()

    def setUp(self):
        self.req("POST", "/_fake/reset")
        self.token = self.get_token()

    # ---- helpers ----
    def req(self, method, path, body=None, token=None, form=None, raw_url=False):
        url = path if raw_url else self.base + path
        headers = {}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        r = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(r, timeout=10) as resp:
                status, hdrs, text = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            status, hdrs, text = e.code, e.headers, e.read()
        return status, hdrs, (json.loads(text) if text else None)

    def arm(self, method, path, body=None, query=API):
        sep = "&" if "?" in path else "?"
        return self.req(method, path + (sep + query if query else ""), body, token=self.token)

    def get_token(self, **over):
        form = {"client_id": "cid", "scope": f"{self.base}/.default", "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": "eyJhbGciOiJSUzI1NiJ9.e30.sig"}
        form.update(over)
        status, _, body = self.req("POST", "/tenant-1/oauth2/v2.0/token", form={k: v for k, v in form.items() if v is not None})
        return body["access_token"] if status == 200 else (status, body)

    def spath(self, name, rg=RG):
        return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.DBforPostgreSQL/flexibleServers/{name}"

    def create(self, name, wait=True, **over):
        status, hdrs, body = self.arm("PUT", self.spath(name), server_body(**over))
        self.assertEqual(status, 201, body)
        if wait:
            self.wait_op(hdrs["Azure-AsyncOperation"])
        return hdrs, body

    def wait_op(self, url, expect="Succeeded"):
        deadline = time.time() + 10
        while True:
            status, hdrs, body = self.req("GET", url, raw_url=True, token=self.token)
            self.assertEqual(status, 200, body)
            if body["status"] != "InProgress":
                self.assertEqual(body["status"], expect, body)
                return body
            self.assertEqual(hdrs["Retry-After"], "1")
            self.assertLess(time.time(), deadline)
            time.sleep(0.1)

    def error_code(self, status_body):
        return status_body[2]["error"]["code"]

    # ---- token endpoint ----
    def test_token_success_and_errors(self):
        status, _, body = self.req("POST", "/t/oauth2/v2.0/token", form={
            "client_id": "c", "scope": "s/.default", "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion": "jwt"})
        self.assertEqual(status, 200)
        self.assertEqual(body["token_type"], "Bearer")
        self.assertEqual((body["expires_in"], body["ext_expires_in"]), (3599, 3599))
        self.assertTrue(body["access_token"])
        for over in ({"client_assertion": ""}, {"client_assertion": None}):
            status, body = self.get_token(**over)
            self.assertEqual(status, 400)
            self.assertEqual(body["error"], "invalid_request")
            self.assertIn("AADSTS900144", body["error_description"])
            self.assertEqual(body["error_codes"], [900144])
        status, body = self.get_token(grant_type="password")
        self.assertEqual((status, body["error"]), (400, "unsupported_grant_type"))

    # ---- auth and api-version ----
    def test_auth_and_api_version(self):
        path = self.spath("nothere")
        status, hdrs, body = self.req("GET", path + "?" + API)
        self.assertEqual((status, body["error"]["code"]), (401, "AuthenticationFailed"))
        status, _, body = self.req("GET", path + "?" + API, token="not-issued")
        self.assertEqual((status, body["error"]["code"]), (401, "InvalidAuthenticationToken"))
        self.assertEqual(self.error_code(self.arm("GET", path, query=None)), "MissingApiVersionParameter")
        r = self.arm("GET", path, query="api-version=2022-12-01")
        self.assertEqual((r[0], self.error_code(r)), (400, "InvalidApiVersionParameter"))
        r = self.arm("GET", path)
        self.assertEqual((r[0], self.error_code(r)), (404, "ResourceNotFound"))
        r = self.arm("GET", self.spath("x") + "/firewallRules")
        self.assertEqual(r[0], 501)

    # ---- server lifecycle ----
    def test_create_get_and_operation_polling(self):
        hdrs, body = self.create("pg-one", wait=False)
        aop, loc = hdrs["Azure-AsyncOperation"], hdrs["Location"]
        prefix = f"http://127.0.0.1:{self.port}/subscriptions/{SUB}/providers/Microsoft.DBforPostgreSQL/locations/westus/"
        self.assertTrue(aop.startswith(prefix + "azureAsyncOperation/") and aop.endswith("?" + API), aop)
        self.assertTrue(loc.startswith(prefix + "operationResults/"), loc)
        self.assertEqual(hdrs["Retry-After"], "1")
        p = body["properties"]
        self.assertEqual(p["state"], "Starting")
        self.assertEqual(p["fullyQualifiedDomainName"], "pg-one.postgres.database.azure.com")
        self.assertNotIn("administratorLoginPassword", p)
        self.assertEqual(body["id"], self.spath("pg-one"))
        self.assertEqual(body["type"], "Microsoft.DBforPostgreSQL/flexibleServers")
        self.assertEqual(p["storage"], {"storageSizeGB": 64, "autoGrow": "Disabled", "tier": "P6", "iops": 240, "type": ""})
        self.assertEqual(p["network"], {"publicNetworkAccess": "Enabled"})
        self.assertEqual(p["authConfig"], {"activeDirectoryAuth": "Disabled", "passwordAuth": "Enabled"})
        self.assertEqual(p["dataEncryption"], {"type": "SystemManaged"})
        self.assertEqual(p["highAvailability"], {"mode": "Disabled", "state": "NotEnabled"})
        self.assertEqual(self.req("GET", loc, raw_url=True, token=self.token)[0], 202)
        st, _, ob = self.req("GET", aop, raw_url=True, token=self.token)
        self.assertEqual(ob["status"], "InProgress")
        self.assertIn("startTime", ob)
        self.wait_op(aop)
        status, _, res = self.req("GET", loc, raw_url=True, token=self.token)
        self.assertEqual((status, res["properties"]["state"]), (200, "Ready"))
        status, _, got = self.arm("GET", self.spath("pg-one"))
        self.assertEqual(status, 200)
        self.assertEqual(got["properties"]["state"], "Ready")
        self.assertEqual(got["tags"], {"owner": "e2e"})
        self.assertEqual(got["sku"], {"name": "Standard_D2ds_v5", "tier": "GeneralPurpose"})
        self.assertEqual(got["properties"]["backup"]["backupRetentionDays"], 7)
        self.assertTrue(got["properties"]["backup"]["earliestRestoreDate"].endswith("Z"))

    def test_create_validation(self):
        cases = [
            ("Bad_Name", {}), ("-pg", {}), ("pg-", {}), ("pg", {}), ("p" * 64, {}),
            ("pg-v", {"location": None}),
            ("pg-v", {"sku": {"name": "Standard_B1ms", "tier": "Basic"}}),
            ("pg-v", {"sku": {"name": "Standard_D2ds_v5", "tier": "Burstable"}}),
            ("pg-v", {"properties": {"version": 16}}),
            ("pg-v", {"properties": {"version": "10"}}),
            ("pg-v", {"properties": {"storage": {"storageSizeGB": 100}}}),
            ("pg-v", {"properties": {"administratorLogin": None}}),
            ("pg-v", {"properties": {"administratorLogin": "admin"}}),
            ("pg-v", {"properties": {"administratorLoginPassword": None}}),
            ("pg-v", {"properties": {"administratorLoginPassword": "short"}}),
            ("pg-v", {"properties": {"backup": {"backupRetentionDays": 36}}}),
            ("pg-v", {"properties": {"backup": {"backupRetentionDays": 6}}}),
            ("pg-v", {"properties": {"backup": {"geoRedundantBackup": "Maybe"}}}),
            ("pg-v", {"properties": {"network": {"publicNetworkAccess": "Sometimes"}}}),
            ("pg-v", {"properties": {"network": {"delegatedSubnetResourceId": "not-an-id"}}}),
            ("pg-v", {"properties": {"highAvailability": {"mode": "Triple"}}}),
            ("pg-v", {"sku": {"name": "Standard_B1ms", "tier": "Burstable"},
                      "properties": {"highAvailability": {"mode": "ZoneRedundant"}}}),
            ("pg-v", {"properties": {"dataEncryption": {"type": "Custom"}}}),
            ("pg-v", {"properties": {"dataEncryption": {"type": "AzureKeyVault", "primaryKeyURI": KEY}}}),
            ("pg-v", {"properties": {"dataEncryption": {"type": "AzureKeyVault", "primaryKeyURI": KEY,
                                                         "primaryUserAssignedIdentityId": UAI}}}),
            ("pg-v", {"identity": {"type": "UserAssigned", "userAssignedIdentities": {}},
                      "properties": {"dataEncryption": {"type": "AzureKeyVault", "primaryKeyURI": KEY,
                                                         "primaryUserAssignedIdentityId": UAI}}}),
            ("pg-v", {"tags": {"n": 1}}),
            ("pg-v", {"properties": {"createMode": "PointInTimeRestore"}}),
        ]
        for name, over in cases:
            body = server_body()
            for k, v in over.items():
                if k == "properties":
                    for pk, pv in v.items():
                        if pv is None:
                            body["properties"].pop(pk, None)
                        elif isinstance(pv, dict):
                            body["properties"][pk] = {**body["properties"].get(pk, {}), **pv}
                        else:
                            body["properties"][pk] = pv
                elif v is None:
                    body.pop(k)
                else:
                    body[k] = v
            with self.subTest(name=name, over=over):
                status, _, resp = self.arm("PUT", self.spath(name), body)
                self.assertEqual(status, 400, resp)
                self.assertTrue(resp["error"]["code"] and resp["error"]["message"])
                self.assertNotIn(PASSWORD, json.dumps(resp))
        self.assertEqual(self.req("GET", "/_fake/state")[2]["servers"], [])

    def test_create_variants_accepted(self):
        self.create("pg-cmk", wait=False,
                    identity={"type": "UserAssigned", "userAssignedIdentities": {UAI: {}}},
                    properties={**server_body()["properties"],
                                "dataEncryption": {"type": "AzureKeyVault", "primaryKeyURI": KEY,
                                                   "primaryUserAssignedIdentityId": UAI, "geoBackupKeyURI": ""}})
        _, _, got = self.arm("GET", self.spath("pg-cmk"))
        self.assertEqual(got["identity"]["type"], "UserAssigned")
        self.assertIn(UAI, got["identity"]["userAssignedIdentities"])
        de = got["properties"]["dataEncryption"]
        self.assertEqual((de["type"], de["primaryKeyURI"], de["primaryEncryptionKeyStatus"]), ("AzureKeyVault", KEY, "Valid"))
        self.assertNotIn("geoBackupKeyURI", de)
        subnet = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/v/subnets/s"
        zone = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/privateDnsZones/z.postgres.database.azure.com"
        props = {k: v for k, v in server_body()["properties"].items() if k not in ("administratorLogin", "administratorLoginPassword")}
        self.create("pg-private", wait=False, properties={
            **props, "administratorLogin": "pgadmin",
            "authConfig": {"activeDirectoryAuth": "Enabled", "passwordAuth": "Disabled", "tenantId": "t"},
            "network": {"delegatedSubnetResourceId": subnet, "privateDnsZoneArmResourceId": zone},
            "highAvailability": {"mode": "ZoneRedundant"}, "storage": {"storageSizeGB": 32767}})
        _, _, got = self.arm("GET", self.spath("pg-private"))
        p = got["properties"]
        self.assertEqual(p["network"]["publicNetworkAccess"], "Disabled")
        self.assertEqual(p["highAvailability"]["state"], "CreatingStandby")
        self.assertEqual(p["storage"]["tier"], "P80")

    def test_put_existing_is_update(self):
        self.create("pg-put")
        status, hdrs, body = self.arm("PUT", self.spath("pg-put"), server_body(
            properties={**server_body()["properties"], "administratorLoginPassword": None,
                        "backup": {"backupRetentionDays": 14}}, tags={"owner": "e2e", "env": "ci"}))
        self.assertEqual(status, 200, body)
        self.assertEqual(body["properties"]["state"], "Updating")
        self.assertIn("Azure-AsyncOperation", hdrs)
        r = self.arm("PATCH", self.spath("pg-put"), {"tags": {"x": "y"}})
        self.assertEqual((r[0], self.error_code(r)), (409, "ServerBusy"))
        self.wait_op(hdrs["Azure-AsyncOperation"])
        _, _, got = self.arm("GET", self.spath("pg-put"))
        self.assertEqual(got["properties"]["backup"]["backupRetentionDays"], 14)
        self.assertEqual(got["tags"], {"owner": "e2e", "env": "ci"})
        self.assertEqual(got["properties"]["state"], "Ready")
        for over in ({"properties": {**server_body()["properties"], "administratorLogin": "other"}},
                     {"location": "eastus"},
                     {"properties": {**server_body()["properties"], "backup": {"geoRedundantBackup": "Enabled"}}}):
            with self.subTest(over=list(over)):
                self.assertEqual(self.arm("PUT", self.spath("pg-put"), server_body(**over))[0], 400)

    def test_patch(self):
        self.create("pg-patch")
        status, hdrs, body = self.arm("PATCH", self.spath("pg-patch"), {
            "sku": {"name": "Standard_D4ds_v5", "tier": "GeneralPurpose"},
            "properties": {"storage": {"storageSizeGB": 128}, "backup": {"backupRetentionDays": 21, "earliestRestoreDate": None},
                           "highAvailability": {"mode": "ZoneRedundant"}}, "tags": {"a": "b"}})
        self.assertEqual((status, body), (202, None))
        _, _, during = self.arm("GET", self.spath("pg-patch"))
        self.assertEqual(during["properties"]["state"], "Updating")
        self.assertEqual(during["properties"]["storage"]["storageSizeGB"], 64)
        self.wait_op(hdrs["Azure-AsyncOperation"])
        _, _, got = self.arm("GET", self.spath("pg-patch"))
        p = got["properties"]
        self.assertEqual((p["state"], p["storage"]["storageSizeGB"], p["storage"]["tier"]), ("Ready", 128, "P10"))
        self.assertEqual(p["backup"]["backupRetentionDays"], 21)
        self.assertEqual(p["highAvailability"], {"mode": "ZoneRedundant", "state": "Healthy", "standbyAvailabilityZone": "2"})
        self.assertEqual(got["sku"]["name"], "Standard_D4ds_v5")
        self.assertEqual(got["tags"], {"a": "b"})
        for patch, code in (({"properties": {"storage": {"storageSizeGB": 64}}}, "StorageSizeDecreaseNotAllowed"),
                            ({"sku": {"name": "Standard_B1ms", "tier": "Burstable"}}, "HANotSupportedForBurstableSku"),
                            ({"properties": {"version": "15"}}, "InvalidParameterValue"),
                            ({"properties": {"backup": {"backupRetentionDays": 0}}}, "InvalidParameterValue")):
            with self.subTest(patch=patch):
                r = self.arm("PATCH", self.spath("pg-patch"), patch)
                self.assertEqual((r[0], self.error_code(r)), (400, code))
        self.assertEqual(self.arm("PATCH", self.spath("absent"), {"tags": {}})[0], 404)

    def test_delete_and_retained_backups(self):
        self.create("pg-del")
        status, hdrs, _ = self.arm("PUT", self.spath("pg-del") + "/backups/ondemand-1")
        self.assertEqual(status, 202)
        self.assertEqual(self.arm("GET", self.spath("pg-del") + "/backups/ondemand-1")[0], 404)
        self.wait_op(hdrs["Azure-AsyncOperation"])
        status, _, b = self.arm("GET", self.spath("pg-del") + "/backups/ondemand-1")
        self.assertEqual(status, 200)
        self.assertEqual(b["properties"]["backupType"], "Customer On-Demand")
        self.assertEqual(b["type"], "Microsoft.DBforPostgreSQL/flexibleServers/backups")
        self.assertEqual(self.arm("PUT", self.spath("pg-del") + "/backups/ondemand-1")[0], 200)
        status, hdrs, _ = self.arm("DELETE", self.spath("pg-del"))
        self.assertEqual(status, 202)
        self.assertEqual(self.arm("GET", self.spath("pg-del"))[2]["properties"]["state"], "Dropping")
        self.assertEqual(self.arm("DELETE", self.spath("pg-del"))[0], 202)
        self.wait_op(hdrs["Azure-AsyncOperation"])
        self.assertEqual(self.req("GET", hdrs["Location"], raw_url=True, token=self.token)[0], 204)
        self.assertEqual(self.arm("GET", self.spath("pg-del"))[0], 404)
        self.assertEqual(self.arm("DELETE", self.spath("pg-del"))[0], 204)
        state = self.req("GET", "/_fake/state")[2]
        self.assertEqual(state["backups"], [])
        self.assertEqual([(b["serverName"], b["name"]) for b in state["retainedBackups"]], [("pg-del", "ondemand-1")])

    def test_list_paging(self):
        for n in ("pg-a", "pg-b", "pg-c"):
            self.create(n, wait=False)
        self.create("pg-other", wait=False)  # same subscription, another group below
        self.arm("PUT", self.spath("pg-z", rg="rg-two"), server_body())
        for path, expected in ((f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.DBforPostgreSQL/flexibleServers",
                                ["pg-a", "pg-b", "pg-c", "pg-other"]),
                               (f"/subscriptions/{SUB}/providers/Microsoft.DBforPostgreSQL/flexibleServers",
                                ["pg-a", "pg-b", "pg-c", "pg-other", "pg-z"])):
            status, _, page = self.arm("GET", path)
            names, pages = [s["name"] for s in page["value"]], 1
            while "nextLink" in page:
                self.assertTrue(page["nextLink"].startswith(self.base + path + "?" + API))
                status, _, page = self.req("GET", page["nextLink"], raw_url=True, token=self.token)
                self.assertEqual(status, 200)
                names += [s["name"] for s in page["value"]]
                pages += 1
            self.assertEqual(sorted(names), expected)
            self.assertEqual(pages, (len(expected) + 1) // 2)

    def test_configurations(self):
        self.create("pg-conf")
        cpath = self.spath("pg-conf") + "/configurations/require_secure_transport"
        status, _, c = self.arm("GET", cpath)
        self.assertEqual((status, c["properties"]["value"], c["properties"]["source"]), (200, "on", "system-default"))
        self.assertEqual(c["name"], "require_secure_transport")
        status, hdrs, _ = self.arm("PUT", cpath, {"properties": {"value": "OFF", "source": "user-override"}})
        self.assertEqual(status, 202)
        self.wait_op(hdrs["Azure-AsyncOperation"])
        _, _, c = self.arm("GET", cpath)
        self.assertEqual((c["properties"]["value"], c["properties"]["source"]), ("off", "user-override"))
        self.assertEqual(self.arm("PUT", cpath, {"properties": {"value": "maybe"}})[0], 400)
        self.assertEqual(self.arm("GET", self.spath("pg-conf") + "/configurations/nope")[0], 404)
        status, _, page = self.arm("GET", self.spath("pg-conf") + "/configurations")
        self.assertEqual((status, len(page["value"])), (200, 2))
        self.assertIn("nextLink", page)

    # ---- fault injection and control API ----
    def test_injected_http_faults_and_calls(self):
        path = self.spath("pg-f")
        self.req("POST", "/_fake/inject", {"status": 429, "count": 2, "retryAfter": 3, "match": "/flexibleServers/pg-f", "method": "GET"})
        for _ in range(2):
            status, hdrs, body = self.arm("GET", path)
            self.assertEqual((status, hdrs["Retry-After"], body["error"]["code"]), (429, "3", "TooManyRequests"))
        self.assertEqual(self.arm("GET", path)[0], 404)
        self.req("POST", "/_fake/inject", {"status": 503, "count": 1})
        r = self.arm("PUT", path, server_body())
        self.assertEqual((r[0], self.error_code(r)), (503, "InternalServerError"))
        self.assertEqual(self.arm("PUT", path, server_body())[0], 201)
        calls = self.req("GET", "/_fake/calls")[2]
        tpl = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.DBforPostgreSQL/flexibleServers/{serverName}"
        self.assertEqual(calls["calls"]["GET " + tpl], 3)
        self.assertEqual(calls["calls"]["PUT " + tpl], 2)
        self.assertEqual(calls["calls"]["POST /{tenantId}/oauth2/v2.0/token"], 1)
        self.assertEqual(calls["total"], 6)
        self.assertEqual(self.req("POST", "/_fake/inject", {"status": 200})[0], 400)

    def test_injected_operation_failure(self):
        self.req("POST", "/_fake/inject", {"asyncError": {"code": "InternalServerError", "message": "boom"}, "method": "PUT"})
        hdrs, _ = self.create("pg-fail", wait=False)
        op = self.wait_op(hdrs["Azure-AsyncOperation"], expect="Failed")
        self.assertEqual(op["error"], {"code": "InternalServerError", "message": "boom"})
        self.assertEqual(self.req("GET", hdrs["Location"], raw_url=True, token=self.token)[0], 400)
        self.assertEqual(self.arm("GET", self.spath("pg-fail"))[0], 404)

    def test_drift_and_no_secrets(self):
        self.create("pg-drift")
        status, _, body = self.req("POST", "/_fake/servers/pg-drift/set", {
            "properties": {"storage": {"storageSizeGB": 256}, "backup": {"backupRetentionDays": 30}},
            "sku": {"name": "Standard_D8ds_v5"}, "tags": {"owner": None, "portal": "yes"}})
        self.assertEqual(status, 200)
        _, _, got = self.arm("GET", self.spath("pg-drift"))
        self.assertEqual(got["properties"]["storage"]["storageSizeGB"], 256)
        self.assertEqual(got["properties"]["backup"]["backupRetentionDays"], 30)
        self.assertEqual(got["sku"], {"name": "Standard_D8ds_v5", "tier": "GeneralPurpose"})
        self.assertEqual(got["tags"], {"portal": "yes"})
        self.assertEqual(self.req("POST", "/_fake/servers/nope/set", {})[0], 404)
        state = self.req("GET", "/_fake/state")[2]
        self.assertEqual([s["name"] for s in state["servers"]], ["pg-drift"])
        self.assertNotIn(PASSWORD, json.dumps(state))
        with open(self.log) as fh:
            log = fh.read()
        self.assertIn("PUT /subscriptions/", log)
        self.assertNotIn(PASSWORD, log)
        self.assertNotIn(self.token, log)
        self.assertNotIn("eyJhbGciOiJSUzI1NiJ9", log)

    # ---- databases ----
    def dpath(self, server, db=None):
        return self.spath(server) + "/databases" + (f"/{db}" if db is not None else "")

    def list_all(self, path):
        status, _, page = self.arm("GET", path)
        self.assertEqual(status, 200, page)
        items = list(page["value"])
        while "nextLink" in page:
            status, _, page = self.req("GET", page["nextLink"], raw_url=True, token=self.token)
            self.assertEqual(status, 200, page)
            items += page["value"]
        return items

    def test_databases_lifecycle(self):
        self.create("pg-db")
        names = [d["name"] for d in self.list_all(self.dpath("pg-db"))]
        self.assertEqual(names, ["azure_maintenance", "azure_sys", "postgres"])
        status, _, got = self.arm("GET", self.dpath("pg-db", "postgres"))
        self.assertEqual(status, 200)
        self.assertEqual(got, {"id": self.dpath("pg-db", "postgres"), "name": "postgres",
                               "type": "Microsoft.DBforPostgreSQL/flexibleServers/databases",
                               "properties": {"charset": "UTF8", "collation": "en_US.utf8"}})
        body = {"properties": {"charset": "UTF8", "collation": "en_US.utf8"}}
        status, hdrs, created = self.arm("PUT", self.dpath("pg-db", "app_db"), body)
        self.assertEqual(status, 201, created)
        self.assertEqual(created, {"id": self.dpath("pg-db", "app_db"), "name": "app_db",
                                   "type": "Microsoft.DBforPostgreSQL/flexibleServers/databases",
                                   "properties": {"charset": "UTF8", "collation": "en_US.utf8"}})
        aop = hdrs["Azure-AsyncOperation"]
        self.assertIn("/locations/westus/azureAsyncOperation/", aop)
        self.assertIn("/operationResults/", hdrs["Location"])
        self.assertEqual(hdrs["Retry-After"], "1")
        r = self.arm("GET", self.dpath("pg-db", "app_db"))
        self.assertEqual((r[0], self.error_code(r)), (404, "ResourceNotFound"))
        # a repeated PUT while it runs returns the same operation; another write is refused
        status, hdrs2, _ = self.arm("PUT", self.dpath("pg-db", "app_db"), body)
        self.assertEqual((status, hdrs2["Azure-AsyncOperation"]), (201, aop))
        r = self.arm("PUT", self.dpath("pg-db", "other"), body)
        self.assertEqual((r[0], self.error_code(r)), (409, "ServerBusy"))
        r = self.arm("PATCH", self.spath("pg-db"), {"tags": {}})
        self.assertEqual((r[0], self.error_code(r)), (409, "ServerBusy"))
        self.assertEqual(self.req("GET", hdrs["Location"], raw_url=True, token=self.token)[0], 202)
        self.wait_op(aop)
        status, _, res = self.req("GET", hdrs["Location"], raw_url=True, token=self.token)
        self.assertEqual((status, res), (200, created))
        self.assertEqual(self.arm("GET", self.dpath("pg-db", "app_db")), (200, unittest.mock.ANY, created))
        # PUT of an existing database with the same properties: 200 and a (no-op) operation
        status, hdrs, again = self.arm("PUT", self.dpath("pg-db", "app_db"), {"properties": {"charset": "utf8"}})
        self.assertEqual((status, again), (200, created))
        self.wait_op(hdrs["Azure-AsyncOperation"])
        r = self.arm("PUT", self.dpath("pg-db", "app_db"), {"properties": {"collation": "C"}})
        self.assertEqual(r[0], 400)
        # defaults when the body has no properties
        status, hdrs, d2 = self.arm("PUT", self.dpath("pg-db", "Second-DB"), {})
        self.assertEqual((status, d2["properties"]), (201, {"charset": "UTF8", "collation": "en_US.utf8"}))
        self.wait_op(hdrs["Azure-AsyncOperation"])
        state = self.req("GET", "/_fake/state")[2]
        self.assertEqual(state["servers"][0]["databases"], {
            "Second-DB": {"charset": "UTF8", "collation": "en_US.utf8"},
            "app_db": {"charset": "UTF8", "collation": "en_US.utf8"},
            "azure_maintenance": {"charset": "UTF8", "collation": "en_US.utf8"},
            "azure_sys": {"charset": "UTF8", "collation": "en_US.utf8"},
            "postgres": {"charset": "UTF8", "collation": "en_US.utf8"}})
        self.assertEqual({o["kind"] for o in state["operations"]}, {"create", "database"})
        # delete
        status, hdrs, b = self.arm("DELETE", self.dpath("pg-db", "app_db"))
        self.assertEqual((status, b), (202, None))
        self.assertEqual(self.arm("DELETE", self.dpath("pg-db", "app_db"))[0], 202)
        self.assertEqual(self.arm("GET", self.dpath("pg-db", "app_db"))[0], 200)
        self.wait_op(hdrs["Azure-AsyncOperation"])
        self.assertEqual(self.req("GET", hdrs["Location"], raw_url=True, token=self.token)[0], 204)
        self.assertEqual(self.arm("GET", self.dpath("pg-db", "app_db"))[0], 404)
        self.assertEqual(self.arm("DELETE", self.dpath("pg-db", "app_db"))[0], 204)
        r = self.arm("DELETE", self.dpath("pg-db", "azure_sys"))
        self.assertEqual(r[0], 400)
        self.assertEqual([d["name"] for d in self.list_all(self.dpath("pg-db"))],
                         ["Second-DB", "azure_maintenance", "azure_sys", "postgres"])
        # deleting the server deletes its databases
        status, hdrs, _ = self.arm("DELETE", self.spath("pg-db"))
        self.wait_op(hdrs["Azure-AsyncOperation"])
        self.assertEqual(self.arm("GET", self.dpath("pg-db", "Second-DB"))[0], 404)
        self.assertEqual(self.arm("GET", self.dpath("pg-db"))[0], 404)
        self.create("pg-db")
        self.assertEqual([d["name"] for d in self.list_all(self.dpath("pg-db"))],
                         ["azure_maintenance", "azure_sys", "postgres"])

    def test_database_validation_and_server_readiness(self):
        body = {"properties": {"charset": "UTF8", "collation": "en_US.utf8"}}
        r = self.arm("PUT", self.dpath("absent", "db"), body)
        self.assertEqual((r[0], self.error_code(r)), (404, "ResourceNotFound"))
        self.assertEqual(self.arm("GET", self.dpath("absent", "db"))[0], 404)
        self.assertEqual(self.arm("DELETE", self.dpath("absent", "db"))[0], 404)
        hdrs, _ = self.create("pg-dbv", wait=False)
        self.assertEqual(self.list_all(self.dpath("pg-dbv")), [])  # system databases appear once the server is Ready
        r = self.arm("PUT", self.dpath("pg-dbv", "db"), body)
        self.assertEqual((r[0], self.error_code(r)), (409, "ServerBusy"))
        self.wait_op(hdrs["Azure-AsyncOperation"])
        for db, b in (("1db", body), ("d" * 64, body), ("bad.name", body), ("db", {"properties": {"charset": "UTF-8"}}),
                      ("db", {"properties": {"collation": "1x"}}), ("db", {"properties": []}), ("db", [])):
            with self.subTest(db=db, body=b):
                r = self.arm("PUT", self.dpath("pg-dbv", db), b)
                self.assertEqual(r[0], 400, r[2])
        self.req("POST", "/_fake/servers/pg-dbv/set", {"properties": {"state": "Stopped"}})
        r = self.arm("PUT", self.dpath("pg-dbv", "db"), body)
        self.assertEqual((r[0], self.error_code(r)), (409, "ServerBusy"))
        self.req("POST", "/_fake/servers/pg-dbv/set", {"properties": {"state": "Ready"}})
        status, hdrs, _ = self.arm("PUT", self.dpath("pg-dbv", "_d" + "x" * 61), body)
        self.assertEqual(status, 201)

    def test_database_injected_failure(self):
        self.create("pg-dbf")
        self.req("POST", "/_fake/inject", {"asyncError": {"code": "InternalServerError", "message": "db boom"},
                                           "match": "/databases/", "method": "PUT"})
        status, hdrs, _ = self.arm("PUT", self.dpath("pg-dbf", "lost"), {})
        self.assertEqual(status, 201)
        op = self.wait_op(hdrs["Azure-AsyncOperation"], expect="Failed")
        self.assertEqual(op["error"], {"code": "InternalServerError", "message": "db boom"})
        self.assertEqual(self.req("GET", hdrs["Location"], raw_url=True, token=self.token)[0], 400)
        self.assertEqual(self.arm("GET", self.dpath("pg-dbf", "lost"))[0], 404)
        self.assertEqual(self.arm("GET", self.spath("pg-dbf"))[2]["properties"]["state"], "Ready")
        self.req("POST", "/_fake/inject", {"status": 429, "match": "/databases", "method": "GET"})
        r = self.arm("GET", self.dpath("pg-dbf"))
        self.assertEqual((r[0], self.error_code(r)), (429, "TooManyRequests"))
        calls = self.req("GET", "/_fake/calls")[2]["calls"]
        tpl = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.DBforPostgreSQL/flexibleServers/{serverName}/databases"
        self.assertEqual(calls["PUT " + tpl + "/{databaseName}"], 1)
        self.assertEqual(calls["GET " + tpl + "/{databaseName}"], 1)
        self.assertEqual(calls["GET " + tpl], 1)

    # ---- Key Vault secrets ----
    def kv(self, method, path, body=None, query=KV_API, token=True):
        sep = "&" if "?" in path else "?"
        return self.req(method, path + (sep + query if query else ""), body,
                        token=self.kv_token if token is True else token)

    @property
    def kv_token(self):
        # azure_security_keyvault derives the scope from the vault host: http://127.0.0.1:P -> http://0.0.1/.default
        if not hasattr(self, "_kv_token"):
            self._kv_token = self.get_token(scope="http://0.0.1/.default")
        return self._kv_token

    def test_secrets_set_and_get(self):
        value = json.dumps({"username": "app", "password": "p@ss-Secret-1", "host": "h", "port": 5432})
        status, hdrs, b1 = self.kv("PUT", "/secrets/pg-conn", {"value": value})
        self.assertEqual(status, 200, b1)
        self.assertEqual(b1["value"], value)
        self.assertRegex(b1["id"], rf"^{self.base}/secrets/pg-conn/[0-9a-f]{{32}}$")
        a = b1["attributes"]
        self.assertIs(a["enabled"], True)
        self.assertIsInstance(a["created"], int)
        self.assertIsInstance(a["updated"], int)
        self.assertLessEqual(abs(a["created"] - time.time()), 5)
        self.assertEqual(a["recoveryLevel"], "Recoverable+Purgeable")
        self.assertNotIn("tags", b1)
        # GET as the Rust client sends it: /secrets/{name}/ (empty version) = latest
        status, _, got = self.kv("GET", "/secrets/pg-conn/")
        self.assertEqual((status, got), (200, b1))
        self.assertEqual(self.kv("GET", "/secrets/pg-conn")[2], b1)
        self.assertEqual(self.kv("GET", "/secrets/PG-CONN/")[2]["value"], value)  # names are case-insensitive
        status, _, b2 = self.kv("PUT", "/secrets/pg-conn", {"value": "v2", "tags": {"owner": "paved"},
                                                               "contentType": "text/plain"})
        self.assertEqual(status, 200)
        self.assertNotEqual(b2["id"], b1["id"])
        self.assertEqual((b2["tags"], b2["contentType"]), ({"owner": "paved"}, "text/plain"))
        self.assertEqual(self.kv("GET", "/secrets/pg-conn/")[2]["value"], "v2")
        v1 = b1["id"].rsplit("/", 1)[1]
        self.assertEqual(self.kv("GET", f"/secrets/pg-conn/{v1}")[2], b1)
        r = self.kv("GET", "/secrets/pg-conn/0123456789abcdef0123456789abcdef")
        self.assertEqual((r[0], self.error_code(r)), (404, "SecretNotFound"))
        r = self.kv("GET", "/secrets/nope/")
        self.assertEqual((r[0], self.error_code(r)), (404, "SecretNotFound"))
        self.assertTrue(r[2]["error"]["message"].startswith("A secret with (name/id) nope was not found in this key vault"))
        self.assertEqual(self.kv("PUT", "/secrets/" + "a" * 127, {"value": ""})[0], 200)
        for name in ("a" * 128, "bad_name", "bad.name"):
            with self.subTest(name=name):
                r = self.kv("PUT", f"/secrets/{name}", {"value": "x"})
                self.assertEqual((r[0], self.error_code(r)), (400, "BadParameter"))
                self.assertEqual(self.kv("GET", f"/secrets/{name}/")[0], 400)
        for body in (None, {}, {"value": 1}, {"value": "x", "tags": {"n": 1}}, {"value": "x", "contentType": 2},
                     {"value": "x" * (25 * 1024 + 1)}):
            with self.subTest(body=str(body)[:40]):
                r = self.kv("PUT", "/secrets/pg-bad", body)
                self.assertEqual((r[0], self.error_code(r)), (400, "BadParameter"))
        self.assertEqual(self.kv("GET", "/secrets/pg-bad/")[0], 404)
        status, _, d = self.kv("PUT", "/secrets/pg-off", {"value": "x", "attributes": {"enabled": False}})
        self.assertEqual((status, d["attributes"]["enabled"]), (200, False))
        self.assertEqual(self.kv("GET", "/secrets/pg-off/")[0], 403)
        self.assertEqual(self.kv("GET", "/secrets/pg-conn/versions")[0], 501)
        self.assertEqual(self.kv("DELETE", "/secrets/pg-conn")[0], 405)

    def test_secrets_auth_and_api_version(self):
        r = self.kv("GET", "/secrets/x/", token=None)
        self.assertEqual((r[0], self.error_code(r)), (401, "Unauthorized"))
        self.assertIn('Bearer authorization="', r[1]["WWW-Authenticate"])
        r = self.kv("GET", "/secrets/x/", token="not-issued")
        self.assertEqual((r[0], self.error_code(r)), (401, "Unauthorized"))
        self.assertEqual(self.kv("GET", "/secrets/x/", token=self.token)[0], 404)  # any issued token, any scope
        for query in (None, "api-version=2024-08-01"):
            r = self.kv("GET", "/secrets/x/", query=query)
            self.assertEqual((r[0], self.error_code(r)), (400, "BadParameter"))
        self.assertEqual(self.kv("GET", "/secrets/x/", query="api-version=7.4")[0], 404)
        # ARM routes still refuse the Key Vault api-version
        r = self.arm("GET", self.spath("x"), query=KV_API)
        self.assertEqual(self.error_code(r), "InvalidApiVersionParameter")

    def test_secrets_state_faults_and_control_delete(self):
        value = json.dumps({"username": "app", "password": "p@ss-Secret-1", "host": "h", "dbname": "d"})
        self.kv("PUT", "/secrets/pg-conn", {"value": "first-plain-value"})
        self.kv("PUT", "/secrets/pg-conn", {"value": value})
        self.kv("PUT", "/secrets/plain", {"value": "just-text-value", "contentType": "text/plain"})
        state = self.req("GET", "/_fake/state")[2]
        dump = json.dumps(state)
        for v in ("p@ss-Secret-1", "first-plain-value", "just-text-value"):
            self.assertNotIn(v, dump)
        by_name = {s["name"]: s for s in state["secrets"]}
        self.assertEqual(list(by_name), ["pg-conn", "plain"])
        self.assertEqual(by_name["pg-conn"]["versions"], 2)
        self.assertEqual(by_name["pg-conn"]["keys"], ["dbname", "host", "password", "username"])
        self.assertRegex(by_name["pg-conn"]["latestVersion"], r"^[0-9a-f]{32}$")
        self.assertIs(by_name["pg-conn"]["enabled"], True)
        self.assertNotIn("value", by_name["pg-conn"])
        self.assertEqual((by_name["plain"]["keys"], by_name["plain"]["contentType"]), (None, "text/plain"))
        # fault injection and call counting apply to the data plane too
        self.req("POST", "/_fake/inject", {"status": 503, "match": "/secrets/pg-conn", "method": "GET"})
        r = self.kv("GET", "/secrets/pg-conn/")
        self.assertEqual((r[0], r[1]["Retry-After"]), (503, "1"))
        self.assertEqual(self.kv("GET", "/secrets/pg-conn/")[0], 200)
        calls = self.req("GET", "/_fake/calls")[2]["calls"]
        self.assertEqual(calls["PUT /secrets/{secret-name}"], 3)
        self.assertEqual(calls["GET /secrets/{secret-name}/{secret-version}"], 2)
        # a lost secret
        status, _, body = self.req("POST", "/_fake/secrets/pg-conn/delete")
        self.assertEqual((status, body), (200, {"deleted": "pg-conn"}))
        self.assertEqual(self.kv("GET", "/secrets/pg-conn/")[0], 404)
        self.assertEqual(self.req("POST", "/_fake/secrets/pg-conn/delete")[0], 404)
        self.assertEqual([s["name"] for s in self.req("GET", "/_fake/state")[2]["secrets"]], ["plain"])
        with open(self.log) as fh:
            log = fh.read()
        self.assertIn("PUT /secrets/pg-conn?api-version=7.0 200", log)
        for v in ("p@ss-Secret-1", "first-plain-value", "just-text-value", self.kv_token):
            self.assertNotIn(v, log)
        self.req("POST", "/_fake/reset")
        self.assertEqual(self.req("GET", "/_fake/state")[2]["secrets"], [])


if __name__ == "__main__":
    unittest.main()
