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


class FakeServer(unittest.TestCase):
    """Starts one fake per test class (no tests of its own)."""
    EXTRA_ARGS = []

    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.base = f"http://127.0.0.1:{cls.port}"
        cls.logdir = tempfile.TemporaryDirectory()
        cls.log = os.path.join(cls.logdir.name, "fake.log")
        cls.proc = subprocess.Popen([sys.executable, FAKE, "--port", str(cls.port), "--provision-seconds",
                                     str(PROVISION), "--log", cls.log, *cls.EXTRA_ARGS], stdout=subprocess.DEVNULL)
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

    def list_all(self, path, query=API):
        sep = "&" if "?" in path else "?"
        status, _, page = self.req("GET", path + (sep + query if query else ""), token=self.token)
        self.assertEqual(status, 200, page)
        items = list(page["value"])
        while "nextLink" in page:
            status, _, page = self.req("GET", page["nextLink"], raw_url=True, token=self.token)
            self.assertEqual(status, 200, page)
            items += page["value"]
        return items


class FakeTest(FakeServer):
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


MSI_API = "api-version=2023-01-31"
AUTH_API = "api-version=2022-04-01"
GUID_RX = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
VAULT = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults/kv-e2e"
SECRET = VAULT + "/secrets/pg-conn"
# Key Vault Secrets User, as a subscription-qualified role definition id
SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
ROLE = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{SECRETS_USER}"
READER = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3d6f-4f8c-a3e2-e5a0b1b67f89"
ISSUER = "https://oidc.e2e.example/issuer"


def ra_body(principal, role=ROLE, ptype="ServicePrincipal", **extra):
    """Shaped like azure_mgmt_authorization's RoleAssignmentCreateParameters: createdOn/updatedOn are
    serialised as null (no skip_serializing_if on them)."""
    props = {"roleDefinitionId": role, "principalId": principal, "createdOn": None, "updatedOn": None, **extra}
    if ptype is not None:
        props["principalType"] = ptype
    return {"properties": props}


def new_guid():
    import uuid
    return str(uuid.uuid4())


class IdentityFake(FakeServer):
    """Helpers for the Microsoft.ManagedIdentity and Microsoft.Authorization routes."""

    def ipath(self, name=None, rg=RG):
        return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities" + \
            (f"/{name}" if name is not None else "")

    def fpath(self, name, fic=None):
        return self.ipath(name) + "/federatedIdentityCredentials" + (f"/{fic}" if fic is not None else "")

    @staticmethod
    def rapath(scope, name=None):
        # what azure_mgmt_authorization builds from a scope given WITHOUT its leading "/"
        return "/" + scope.lstrip("/") + ("/" if scope.strip("/") else "") + \
            "providers/Microsoft.Authorization/roleAssignments" + (f"/{name}" if name is not None else "")

    def msi(self, method, path, body=None, query=MSI_API):
        return self.arm(method, path, body, query=query)

    def authz(self, method, path, body=None, query=AUTH_API):
        return self.arm(method, path, body, query=query)

    def make_identity(self, name, **body):
        status, _, got = self.msi("PUT", self.ipath(name), {"location": "westus", "tags": {"owner": "e2e"}, **body})
        self.assertEqual(status, 201, got)
        return got

    def make_fic(self, name, fic, subject="system:serviceaccount:app:api", issuer=ISSUER):
        status, _, got = self.msi("PUT", self.fpath(name, fic), {"properties": {
            "issuer": issuer, "subject": subject, "audiences": ["api://AzureADTokenExchange"]}})
        self.assertIn(status, (200, 201), got)
        return got

    def assign(self, scope, principal, name=None, expect=201, **kw):
        name = name or new_guid()
        r = self.authz("PUT", self.rapath(scope, name), ra_body(principal, **kw))
        self.assertEqual(r[0], expect, r[2])
        return r[2]

    def fake(self, path):
        status, _, body = self.req("GET", path)
        self.assertEqual(status, 200, body)
        return body


class IdentityTest(IdentityFake):
    # ---- user-assigned identities ----
    def test_identity_create_get_update_delete(self):
        status, hdrs, created = self.msi("PUT", self.ipath("id-app"), {"location": "West US", "tags": {"owner": "e2e"}})
        self.assertEqual(status, 201, created)
        self.assertEqual(created["id"], f"/subscriptions/{SUB}/resourcegroups/{RG}/providers/"
                                        "Microsoft.ManagedIdentity/userAssignedIdentities/id-app")
        self.assertEqual((created["name"], created["type"], created["location"], created["tags"]),
                         ("id-app", "Microsoft.ManagedIdentity/userAssignedIdentities", "westus", {"owner": "e2e"}))
        props = created["properties"]
        self.assertEqual(sorted(props), ["clientId", "principalId", "tenantId"])
        for k in props:
            self.assertRegex(props[k], GUID_RX)
        self.assertNotEqual(props["principalId"], props["clientId"])
        self.assertEqual(self.msi("GET", self.ipath("id-app")), (200, unittest.mock.ANY, created))
        self.assertEqual(self.msi("GET", self.ipath("ID-APP"))[2], created)  # ARM names are case-insensitive
        # PUT of an existing identity: 200, same GUIDs, tags replaced (an omitted map empties them)
        status, _, again = self.msi("PUT", self.ipath("id-app"), {"location": "westus", "tags": {"env": "ci"}})
        self.assertEqual((status, again["properties"], again["tags"]), (200, props, {"env": "ci"}))
        status, _, again = self.msi("PUT", self.ipath("id-app"), {"location": "westus"})
        self.assertEqual((status, again["tags"]), (200, {}))
        r = self.msi("PUT", self.ipath("id-app"), {"location": "eastus"})
        self.assertEqual((r[0], self.error_code(r)), (400, "InvalidResourceLocation"))
        # PATCH (IdentityUpdate): tags only
        status, _, patched = self.msi("PATCH", self.ipath("id-app"), {"tags": {"team": "paved"}})
        self.assertEqual((status, patched["tags"], patched["properties"]), (200, {"team": "paved"}, props))
        self.assertEqual(self.msi("PATCH", self.ipath("id-app"), {"location": "westus"})[2]["tags"], {"team": "paved"})
        r = self.msi("PATCH", self.ipath("id-app"), {"location": "northeurope"})
        self.assertEqual((r[0], self.error_code(r)), (400, "InvalidResourceLocation"))
        r = self.msi("PATCH", self.ipath("absent"), {"tags": {}})
        self.assertEqual((r[0], self.error_code(r)), (404, "ResourceNotFound"))
        # DELETE: 200 without a body, then 404 / 204
        self.assertEqual(self.msi("DELETE", self.ipath("id-app")), (200, unittest.mock.ANY, None))
        r = self.msi("GET", self.ipath("id-app"))
        self.assertEqual((r[0], self.error_code(r)), (404, "ResourceNotFound"))
        self.assertIn("Microsoft.ManagedIdentity/userAssignedIdentities/id-app", r[2]["error"]["message"])
        self.assertEqual(self.msi("DELETE", self.ipath("id-app"))[0], 204)
        calls = self.fake("/_fake/calls")["calls"]
        tpl = ("/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/"
               "Microsoft.ManagedIdentity/userAssignedIdentities/{resourceName}")
        self.assertEqual((calls["PUT " + tpl], calls["GET " + tpl], calls["PATCH " + tpl], calls["DELETE " + tpl]),
                         (4, 3, 4, 2))
        with open(self.log) as fh:
            log = fh.read()
        self.assertIn(f"DELETE {self.ipath('id-app')}?{MSI_API} 204", log)
        self.assertNotIn(self.token, log)

    def test_identity_recreated_after_delete_gets_new_guids(self):
        first = self.make_identity("id-again")["properties"]
        self.assertEqual(self.msi("DELETE", self.ipath("id-again"))[0], 200)
        second = self.make_identity("id-again")["properties"]
        self.assertNotEqual(first["principalId"], second["principalId"])
        self.assertNotEqual(first["clientId"], second["clientId"])
        self.assertEqual(first["tenantId"], second["tenantId"])
        state = self.fake("/_fake/identities")
        self.assertEqual([i["principalId"] for i in state["identities"]], [second["principalId"]])
        self.assertEqual([(d["name"], d["principalId"], d["clientId"]) for d in state["deletedIdentities"]],
                         [("id-again", first["principalId"], first["clientId"])])

    def test_identity_name_and_body_validation(self):
        for name in ("ab", "a" * 129, "-abc", "_abc", "a.bc", "ab%20c", "ab~c"):
            with self.subTest(name=name):
                r = self.msi("PUT", self.ipath(name), {"location": "westus"})
                self.assertEqual((r[0], self.error_code(r)), (400, "InvalidResourceName"), r[2])
        for name in ("abc", "a" * 128, "9-id_X"):
            with self.subTest(name=name):
                self.assertEqual(self.msi("PUT", self.ipath(name), {"location": "westus"})[0], 201)
        for body, code in (({"tags": {}}, "LocationRequired"), ({"location": ""}, "LocationRequired"),
                           ({"location": None}, "LocationRequired"), (None, "InvalidRequestContent"),
                           ([], "InvalidRequestContent"), ({"location": "westus", "tags": {"n": 1}}, "InvalidParameterValue"),
                           ({"location": "westus", "tags": {f"k{i}": "v" for i in range(51)}}, "InvalidParameterValue")):
            with self.subTest(body=str(body)[:40]):
                r = self.msi("PUT", self.ipath("id-bad"), body)
                self.assertEqual((r[0], self.error_code(r)), (400, code), r[2])
        self.assertEqual(self.msi("GET", self.ipath("id-bad"))[0], 404)
        self.assertEqual(sorted(i["name"] for i in self.fake("/_fake/identities")["identities"]),
                         sorted(["abc", "a" * 128, "9-id_X"]))

    def test_identity_lists_and_api_versions(self):
        for n in ("id-c", "id-a", "id-b"):
            self.make_identity(n)
        self.msi("PUT", self.ipath("id-z", rg="rg-two"), {"location": "westus"})
        items = self.list_all(self.ipath(), query=MSI_API)
        self.assertEqual([i["name"] for i in items], ["id-a", "id-b", "id-c"])
        self.assertEqual(items[0]["type"], "Microsoft.ManagedIdentity/userAssignedIdentities")
        status, _, page = self.msi("GET", self.ipath())
        self.assertTrue(page["nextLink"].startswith(f"{self.base}{self.ipath()}?{MSI_API}&$skiptoken="), page["nextLink"])
        sub_list = f"/subscriptions/{SUB}/providers/Microsoft.ManagedIdentity/userAssignedIdentities"
        self.assertEqual([i["name"] for i in self.list_all(sub_list, query=MSI_API)], ["id-a", "id-b", "id-c", "id-z"])
        self.assertEqual(self.list_all(self.ipath(rg="rg-empty"), query=MSI_API), [])
        # each provider has its own api-version
        for query in (API, AUTH_API, "api-version=2018-11-30"):
            r = self.msi("GET", self.ipath("id-a"), query=query)
            self.assertEqual((r[0], self.error_code(r)), (400, "InvalidApiVersionParameter"))
            self.assertIn("2023-01-31", r[2]["error"]["message"])
        r = self.msi("GET", self.ipath("id-a"), query=None)
        self.assertEqual(self.error_code(r), "MissingApiVersionParameter")
        r = self.req("GET", self.ipath("id-a") + "?" + MSI_API)
        self.assertEqual((r[0], self.error_code(r)), (401, "AuthenticationFailed"))
        r = self.msi("GET", f"/subscriptions/{SUB}/providers/Microsoft.ManagedIdentity/identities/default")
        self.assertEqual(r[0], 501)

    # ---- federated identity credentials ----
    def test_federated_credentials(self):
        body = {"properties": {"issuer": ISSUER, "subject": "system:serviceaccount:app:api",
                               "audiences": ["api://AzureADTokenExchange"]}}
        for method, b in (("PUT", body), ("GET", None), ("DELETE", None)):
            with self.subTest(method=method):
                r = self.msi(method, self.fpath("id-fic", "fic-1"), b)
                self.assertEqual((r[0], self.error_code(r)), (404, "ParentResourceNotFound"))
        r = self.msi("GET", self.fpath("id-fic"))
        self.assertEqual((r[0], self.error_code(r)), (404, "ParentResourceNotFound"))
        self.make_identity("id-fic")
        status, _, fic = self.msi("PUT", self.fpath("id-fic", "fic-1"), body)
        self.assertEqual(status, 201, fic)
        self.assertEqual(fic, {"id": f"/subscriptions/{SUB}/resourcegroups/{RG}/providers/Microsoft.ManagedIdentity/"
                                     "userAssignedIdentities/id-fic/federatedIdentityCredentials/fic-1",
                               "name": "fic-1",
                               "type": "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials",
                               "properties": body["properties"]})
        self.assertEqual(self.msi("GET", self.fpath("id-fic", "fic-1")), (200, unittest.mock.ANY, fic))
        r = self.msi("GET", self.fpath("id-fic", "fic-nope"))
        self.assertEqual((r[0], self.error_code(r)), (404, "ResourceNotFound"))
        # update: 200
        body2 = {"properties": dict(body["properties"], subject="system:serviceaccount:app:worker")}
        status, _, fic = self.msi("PUT", self.fpath("id-fic", "fic-1"), body2)
        self.assertEqual((status, fic["properties"]["subject"]), (200, "system:serviceaccount:app:worker"))
        # loopback http issuers are allowed for tests
        self.make_fic("id-fic", "fic-2", issuer="http://127.0.0.1:8443/oidc")
        self.make_fic("id-fic", "fic_3", subject="system:serviceaccount:other:api")
        bad = [("f", body), ("-fic", body), ("f" * 121, body),
               ("fic-x", {"properties": dict(body["properties"], issuer="http://example.com/oidc")}),
               ("fic-x", {"properties": dict(body["properties"], issuer="not a url")}),
               ("fic-x", {"properties": dict(body["properties"], issuer="")}),
               ("fic-x", {"properties": dict(body["properties"], audiences=[])}),
               ("fic-x", {"properties": dict(body["properties"], audiences="api://AzureADTokenExchange")}),
               ("fic-x", {"properties": dict(body["properties"], audiences=[""])}),
               ("fic-x", {"properties": {k: v for k, v in body["properties"].items() if k != "subject"}}),
               ("fic-x", {"properties": dict(body["properties"], subject="")}),
               ("fic-x", {}),
               # the same issuer and subject as fic-1, under another name
               ("fic-x", body2)]
        for name, b in bad:
            with self.subTest(name=name[:10], body=str(b)[:80]):
                r = self.msi("PUT", self.fpath("id-fic", name), b)
                self.assertEqual(r[0], 400, r[2])
                self.assertTrue(r[2]["error"]["code"] and r[2]["error"]["message"])
        # list, paged by $top as the client sends it; nextLink keeps $top
        status, _, page = self.msi("GET", self.fpath("id-fic") + "?$top=1")
        self.assertEqual((status, len(page["value"])), (200, 1))
        self.assertIn("%24top=1", page["nextLink"].replace("$top", "%24top"))
        names = [f["name"] for f in self.list_all(self.fpath("id-fic") + "?$top=1", query=MSI_API)]
        self.assertEqual(names, ["fic-1", "fic-2", "fic_3"])
        self.assertEqual(self.msi("GET", self.fpath("id-fic") + "?$top=0")[0], 400)
        state = self.fake("/_fake/identities")["identities"][0]
        self.assertEqual([(f["name"], f["issuer"], f["subject"], f["audiences"]) for f in state["federatedIdentityCredentials"]],
                         [("fic-1", ISSUER, "system:serviceaccount:app:worker", ["api://AzureADTokenExchange"]),
                          ("fic-2", "http://127.0.0.1:8443/oidc", "system:serviceaccount:app:api", ["api://AzureADTokenExchange"]),
                          ("fic_3", ISSUER, "system:serviceaccount:other:api", ["api://AzureADTokenExchange"])])
        # delete: 200, then 204
        self.assertEqual(self.msi("DELETE", self.fpath("id-fic", "FIC-2")), (200, unittest.mock.ANY, None))
        self.assertEqual(self.msi("DELETE", self.fpath("id-fic", "fic-2"))[0], 204)
        # deleting the identity deletes its credentials; a new identity of that name starts with none
        self.assertEqual(self.msi("DELETE", self.ipath("id-fic"))[0], 200)
        self.assertEqual(self.msi("GET", self.fpath("id-fic", "fic-1"))[0], 404)
        self.make_identity("id-fic")
        self.assertEqual(self.list_all(self.fpath("id-fic"), query=MSI_API), [])
        calls = self.fake("/_fake/calls")["calls"]
        tpl = ("/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ManagedIdentity/"
               "userAssignedIdentities/{resourceName}/federatedIdentityCredentials")
        self.assertEqual(calls["DELETE " + tpl + "/{federatedIdentityCredentialResourceName}"], 3)
        self.assertGreaterEqual(calls["GET " + tpl], 5)

    def test_federated_credential_limit(self):
        self.make_identity("id-many")
        for i in range(20):
            self.make_fic("id-many", f"fic-{i:02}", subject=f"system:serviceaccount:ns:sa{i}")
        r = self.msi("PUT", self.fpath("id-many", "fic-20"), {"properties": {
            "issuer": ISSUER, "subject": "system:serviceaccount:ns:sa20", "audiences": ["api://AzureADTokenExchange"]}})
        self.assertEqual(r[0], 400, r[2])
        self.make_fic("id-many", "fic-00", subject="system:serviceaccount:ns:changed")  # updates still work

    # ---- role assignments ----
    def test_role_assignment_create_get_delete_and_conflicts(self):
        ident = self.make_identity("id-ra")["properties"]
        pid, name = ident["principalId"], new_guid()
        status, _, ra = self.authz("PUT", self.rapath(SECRET, name), ra_body(pid))
        self.assertEqual(status, 201, ra)
        self.assertEqual((ra["id"], ra["name"], ra["type"]),
                         (SECRET + f"/providers/Microsoft.Authorization/roleAssignments/{name}", name,
                          "Microsoft.Authorization/roleAssignments"))
        p = ra["properties"]
        self.assertEqual((p["scope"], p["roleDefinitionId"], p["principalId"], p["principalType"]),
                         (SECRET, ROLE, pid, "ServicePrincipal"))
        self.assertTrue(p["createdOn"].endswith("Z") and p["updatedOn"] == p["createdOn"])
        self.assertEqual(p["createdBy"], "cid")  # the client_id the token was issued to (F)
        for k in ("description", "condition", "conditionVersion", "delegatedManagedIdentityResourceId"):
            self.assertIsNone(p[k])
        # the same PUT again is idempotent
        self.assertEqual(self.authz("PUT", self.rapath(SECRET, name), ra_body(pid)), (200, unittest.mock.ANY, ra))
        self.assertEqual(self.authz("GET", self.rapath(SECRET, name)), (200, unittest.mock.ANY, ra))
        self.assertEqual(self.authz("GET", self.rapath(SECRET.upper(), name))[2], ra)  # scope is case-insensitive
        # the same name with other properties: not an update
        for body, scope in ((ra_body(pid, role=READER), SECRET), (ra_body(self.make_identity("id-ra2")["properties"]["principalId"]), SECRET),
                            (ra_body(pid), VAULT)):
            with self.subTest(scope=scope, body=body["properties"]["roleDefinitionId"][-8:]):
                r = self.authz("PUT", self.rapath(scope, name), body)
                self.assertEqual((r[0], self.error_code(r)), (409, "RoleAssignmentUpdateNotPermitted"))
        # the same (scope, role, principal) under another name, also when the role id is tenant-qualified
        for role in (ROLE, f"/providers/Microsoft.Authorization/roleDefinitions/{SECRETS_USER.upper()}"):
            r = self.authz("PUT", self.rapath(SECRET, new_guid()), ra_body(pid, role=role))
            self.assertEqual((r[0], self.error_code(r)), (409, "RoleAssignmentExists"))
            self.assertIn(name.replace("-", ""), r[2]["error"]["message"])
        # description and condition can change on the same assignment
        status, _, upd = self.authz("PUT", self.rapath(SECRET, name), ra_body(pid, description="app secret"))
        self.assertEqual((status, upd["properties"]["description"]), (200, "app secret"))
        # a GET or DELETE at another scope does not find it
        r = self.authz("GET", self.rapath(VAULT, name))
        self.assertEqual((r[0], self.error_code(r)), (404, "RoleAssignmentNotFound"))
        self.assertEqual(self.authz("DELETE", self.rapath(VAULT, name))[0], 204)
        status, _, deleted = self.authz("DELETE", self.rapath(SECRET, name))
        self.assertEqual((status, deleted["name"], deleted["properties"]["scope"]), (200, name, SECRET))
        self.assertEqual(self.authz("DELETE", self.rapath(SECRET, name))[0], 204)
        self.assertEqual(self.authz("GET", self.rapath(SECRET, name))[0], 404)
        # after the delete, the same triple can be assigned under a new name
        self.assign(SECRET, pid)
        calls = self.fake("/_fake/calls")["calls"]
        tpl = "/{scope}/providers/Microsoft.Authorization/roleAssignments/{roleAssignmentName}"
        self.assertEqual((calls["PUT " + tpl], calls["DELETE " + tpl]), (9, 3))

    def test_role_assignment_validation(self):
        pid = self.make_identity("id-rav")["properties"]["principalId"]
        cases = [
            (self.rapath(SECRET, "not-a-guid"), ra_body(pid), "InvalidRoleAssignmentId"),
            (self.rapath(SECRET, new_guid()), ra_body(pid, role="Key Vault Secrets User"), "InvalidRoleDefinitionId"),
            (self.rapath(SECRET, new_guid()), ra_body(pid, role=ROLE + "x"), "InvalidRoleDefinitionId"),
            (self.rapath(SECRET, new_guid()), ra_body("app-principal"), "InvalidPrincipalId"),
            (self.rapath(SECRET, new_guid()), ra_body(pid, scope=VAULT), "InvalidCreateRoleAssignmentRequest"),
            (self.rapath(f"/subscriptions/{SUB}/resourceGroups", new_guid()), ra_body(pid), "InvalidCreateRoleAssignmentRequest"),
            (self.rapath(SECRET, new_guid()), ra_body(pid, conditionVersion="1.0", condition="x"), "InvalidConditionVersion"),
            (self.rapath(SECRET, new_guid()), {}, "InvalidRequestContent"),
            (self.rapath(SECRET, new_guid()), None, "InvalidRequestContent"),
            (self.rapath(SECRET, new_guid()), ra_body(pid, ptype="User"), "UnmatchedPrincipalType"),
            (self.rapath(SECRET, new_guid()), ra_body(new_guid()), "PrincipalNotFound"),
            # a scope given with its leading "/" to the Rust client makes a "//" path
            ("/" + self.rapath(SECRET, new_guid()), ra_body(pid), "InvalidRequestUri"),
        ]
        for path, body, code in cases:
            with self.subTest(code=code, path=path[-60:]):
                r = self.authz("PUT", path, body)
                self.assertEqual((r[0], self.error_code(r)), (400, code), r[2])
        r = self.authz("PUT", self.rapath(SECRET, new_guid()), ra_body(new_guid()))
        self.assertIn("does not exist in the directory", r[2]["error"]["message"])
        self.assertEqual(self.authz("GET", "/" + self.rapath(SECRET))[0], 400)
        # principalType may be omitted; the fake resolves it, as Azure does
        status, _, ra = self.authz("PUT", self.rapath(SECRET, new_guid()), ra_body(pid, ptype=None, scope=SECRET))
        self.assertEqual((status, ra["properties"]["principalType"]), (201, "ServicePrincipal"))
        # the subscription, resource group and root scopes work too
        for scope in (f"/subscriptions/{SUB}", f"/subscriptions/{SUB}/resourceGroups/{RG}", "/"):
            with self.subTest(scope=scope):
                ra = self.assign(scope, pid)
                self.assertEqual(ra["properties"]["scope"], scope)
                self.assertEqual(ra["id"], ("" if scope == "/" else scope) +
                                 f"/providers/Microsoft.Authorization/roleAssignments/{ra['name']}")
        for query in (API, MSI_API):
            r = self.authz("GET", self.rapath(SECRET), query=query)
            self.assertEqual((r[0], self.error_code(r)), (400, "InvalidApiVersionParameter"))
        self.assertEqual(len(self.fake("/_fake/role-assignments")["roleAssignments"]), 4)

    def test_role_assignment_list_filters(self):
        a = self.make_identity("id-a")["properties"]["principalId"]
        b = self.make_identity("id-b")["properties"]["principalId"]
        sub, rg = f"/subscriptions/{SUB}", f"/subscriptions/{SUB}/resourceGroups/{RG}"
        other_rg = f"/subscriptions/{SUB}/resourceGroups/rg-other"
        secret10 = VAULT + "/secrets/pg-conn10"  # shares a string prefix with SECRET, not a path segment
        names = {}
        for key, scope, principal in (("root", "/", a), ("sub", sub, a), ("rg", rg, a), ("vault", VAULT, a),
                                      ("secret-a", SECRET, a), ("secret-b", SECRET, b), ("secret10", secret10, a),
                                      ("other-rg", other_rg, b)):
            names[self.assign(scope, principal)["name"]] = key

        def listed(scope, flt=None):
            path = self.rapath(scope) + (f"?$filter={urllib.parse.quote(flt)}" if flt else "")
            return sorted(names[r["name"]] for r in self.list_all(path, query=AUTH_API))

        # no filter: at, above and below the scope
        self.assertEqual(listed(VAULT), sorted(["root", "sub", "rg", "vault", "secret-a", "secret-b", "secret10"]))
        self.assertEqual(listed(SECRET), sorted(["root", "sub", "rg", "vault", "secret-a", "secret-b"]))
        self.assertEqual(listed(rg.upper()), sorted(["root", "sub", "rg", "vault", "secret-a", "secret-b", "secret10"]))
        self.assertEqual(listed(sub), sorted(names.values()))
        # atScope(): at and above only
        self.assertEqual(listed(SECRET, "atScope()"), sorted(["root", "sub", "rg", "vault", "secret-a", "secret-b"]))
        self.assertEqual(listed(VAULT, "atScope()"), sorted(["root", "sub", "rg", "vault"]))
        # principalId eq: at, above and below, for that principal
        self.assertEqual(listed(VAULT, f"principalId eq '{b}'"), ["secret-b"])
        self.assertEqual(listed(sub, f"principalId eq '{b.upper()}'"), ["other-rg", "secret-b"])
        self.assertEqual(listed(SECRET, f"atScope() and principalId eq '{a}'"),
                         sorted(["root", "sub", "rg", "vault", "secret-a"]))
        self.assertEqual(listed(VAULT, f"assignedTo('{a}')"),
                         sorted(["root", "sub", "rg", "vault", "secret-a", "secret10"]))
        self.assertEqual(listed(other_rg + "/providers/Microsoft.KeyVault/vaults/kv-x", "atScope()"),
                         sorted(["root", "sub", "other-rg"]))
        # nextLink keeps the filter (page size 2)
        status, _, page = self.authz("GET", self.rapath(VAULT) + f"?$filter={urllib.parse.quote('atScope()')}")
        self.assertEqual(len(page["value"]), 2)
        self.assertIn("$filter=atScope()", page["nextLink"])
        self.assertTrue(page["nextLink"].startswith(self.base + self.rapath(VAULT) + "?" + AUTH_API))
        self.assertEqual(listed(sub, "atScope()"), ["root", "sub"])
        # unsupported filters
        for flt in ("roleDefinitionId eq 'x'", "principalId eq 'not-a-guid'", "atScope() or principalId eq 'x'"):
            with self.subTest(flt=flt):
                r = self.authz("GET", self.rapath(VAULT) + f"?$filter={urllib.parse.quote(flt)}")
                self.assertEqual((r[0], self.error_code(r)), (400, "InvalidFilter"))
        # the control endpoint's own filters
        got = self.fake(f"/_fake/role-assignments?principalId={b}")["roleAssignments"]
        self.assertEqual(sorted(names[r["name"]] for r in got), ["other-rg", "secret-b"])
        got = self.fake("/_fake/role-assignments?scope=" + urllib.parse.quote(SECRET.lower()))["roleAssignments"]
        self.assertEqual(sorted(names[r["name"]] for r in got), ["secret-a", "secret-b"])
        calls = self.fake("/_fake/calls")["calls"]
        self.assertGreaterEqual(calls["GET /{scope}/providers/Microsoft.Authorization/roleAssignments"], 15)

    def test_identity_delete_leaves_orphaned_role_assignments(self):
        old = self.make_identity("id-orphan")["properties"]
        self.make_fic("id-orphan", "fic-1")
        ra = self.assign(SECRET, old["principalId"])
        self.assertEqual(self.msi("DELETE", self.ipath("id-orphan"))[0], 200)
        # the assignment survives, as in Azure ("Identity not found" in the portal)
        self.assertEqual(self.authz("GET", self.rapath(SECRET, ra["name"])), (200, unittest.mock.ANY, ra))
        self.assertEqual([r["name"] for r in self.list_all(self.rapath(SECRET), query=AUTH_API)], [ra["name"]])
        got = self.fake("/_fake/role-assignments")["roleAssignments"]
        self.assertEqual(len(got), 1)
        self.assertEqual((got[0]["name"], got[0]["scope"], got[0]["principalId"], got[0]["orphaned"], got[0]["identityId"]),
                         (ra["name"], SECRET, old["principalId"], True, f"/subscriptions/{SUB}/resourcegroups/{RG}/providers/"
                                                                      "Microsoft.ManagedIdentity/userAssignedIdentities/id-orphan"))
        # the deleted principal cannot get new assignments
        r = self.authz("PUT", self.rapath(VAULT, new_guid()), ra_body(old["principalId"]))
        self.assertEqual((r[0], self.error_code(r)), (400, "PrincipalNotFound"))
        # a new identity of the same name is a new principal; the old assignment stays orphaned
        new = self.make_identity("id-orphan")["properties"]
        ra2 = self.assign(SECRET, new["principalId"])
        got = {r["name"]: r for r in self.fake("/_fake/role-assignments")["roleAssignments"]}
        self.assertEqual((got[ra["name"]]["orphaned"], got[ra2["name"]]["orphaned"]), (True, False))
        self.assertEqual(got[ra["name"]]["identityId"], got[ra2["name"]]["identityId"])
        ident = self.fake("/_fake/identities")
        self.assertEqual(ident["identities"][0]["federatedIdentityCredentials"], [])
        self.assertEqual(ident["deletedIdentities"][0]["principalId"], old["principalId"])
        # the assignment can still be deleted by its name
        self.assertEqual(self.authz("DELETE", self.rapath(SECRET, ra["name"]))[0], 200)

    def test_faults_state_and_reset(self):
        self.req("POST", "/_fake/inject", {"status": 429, "retryAfter": 2, "match": "/userAssignedIdentities/", "method": "PUT"})
        r = self.msi("PUT", self.ipath("id-f"), {"location": "westus"})
        self.assertEqual((r[0], r[1]["Retry-After"], self.error_code(r)), (429, "2", "TooManyRequests"))
        pid = self.make_identity("id-f")["properties"]["principalId"]
        self.req("POST", "/_fake/inject", {"status": 409, "code": "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity",
                                           "match": "/federatedIdentityCredentials/"})
        r = self.msi("PUT", self.fpath("id-f", "fic-1"), {"properties": {"issuer": ISSUER, "subject": "s", "audiences": ["a"]}})
        self.assertEqual((r[0], self.error_code(r)), (409, "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity"))
        self.req("POST", "/_fake/inject", {"status": 503, "match": "/roleAssignments", "method": "PUT"})
        name = new_guid()
        r = self.authz("PUT", self.rapath(SECRET, name), ra_body(pid))
        self.assertEqual((r[0], r[1]["Retry-After"]), (503, "1"))
        self.assign(SECRET, pid, name=name)
        self.make_fic("id-f", "fic-1")
        state = self.fake("/_fake/state")
        self.assertEqual([i["name"] for i in state["identities"]], ["id-f"])
        i = state["identities"][0]
        self.assertEqual(sorted(i), ["clientId", "createdAt", "federatedIdentityCredentials", "id", "location", "name",
                                     "principalId", "resourceGroup", "subscriptionId", "tags", "tenantId"])
        self.assertEqual([r["name"] for r in state["roleAssignments"]], [name])
        self.assertEqual(sorted(state["roleAssignments"][0]),
                         sorted(["id", "name", "scope", "roleDefinitionId", "principalId", "principalType", "condition",
                                 "conditionVersion", "createdOn", "updatedOn", "createdBy", "updatedBy",
                                 "delegatedManagedIdentityResourceId", "description", "identityId", "orphaned"]))
        self.assertEqual(state["deletedIdentities"], [])
        self.req("POST", "/_fake/reset")
        state = self.fake("/_fake/state")
        self.assertEqual((state["identities"], state["deletedIdentities"], state["roleAssignments"]), ([], [], []))
        self.assertEqual(self.fake("/_fake/identities"), {"identities": [], "deletedIdentities": []})
        self.assertEqual(self.fake("/_fake/role-assignments"), {"roleAssignments": []})


class PrincipalDelayTest(IdentityFake):
    EXTRA_ARGS = ["--principal-delay-seconds", "1.5"]

    def test_principal_not_found_until_the_delay_has_passed(self):
        ident = self.make_identity("id-new")["properties"]
        self.make_fic("id-new", "fic-1")  # credentials are not delayed
        name = new_guid()
        started = time.time()
        r = self.authz("PUT", self.rapath(SECRET, name), ra_body(ident["principalId"]))
        self.assertEqual((r[0], self.error_code(r)), (400, "PrincipalNotFound"))
        self.assertIn(ident["principalId"].replace("-", ""), r[2]["error"]["message"])
        self.assertEqual(self.authz("GET", self.rapath(SECRET, name))[0], 404)
        while True:
            r = self.authz("PUT", self.rapath(SECRET, name), ra_body(ident["principalId"]))
            if r[0] == 201:
                break
            self.assertEqual((r[0], self.error_code(r)), (400, "PrincipalNotFound"))
            self.assertLess(time.time() - started, 5)
            time.sleep(0.2)
        self.assertGreaterEqual(time.time() - started, 1.3)
        self.assertEqual(r[2]["properties"]["principalId"], ident["principalId"])



if __name__ == "__main__":
    unittest.main()
