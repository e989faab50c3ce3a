"""Tests of fault_proxy.py against a small upstream on loopback."""
import json
import os
import sys
import threading
import unittest
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fault_proxy  # noqa: E402


class Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        out = json.dumps({"path": self.path, "body": body.decode(),
                          "auth": self.headers.get("Authorization")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("x-upstream", "yes")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


class FaultProxyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
        threading.Thread(target=cls.upstream.serve_forever, daemon=True).start()
        cls.proxy = fault_proxy.serve(f"http://127.0.0.1:{cls.upstream.server_address[1]}")
        cls.base = f"http://127.0.0.1:{cls.proxy.server_address[1]}"

    @classmethod
    def tearDownClass(cls):
        cls.proxy.shutdown()
        cls.upstream.shutdown()

    def setUp(self):
        self.post("/_fake/reset", b"")

    def post(self, path, body, headers=None):
        req = urllib.request.Request(self.base + path, data=body, method="POST", headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def action(self, name):
        return self.post("/", f"Action={name}&Version=2014-10-31".encode(),
                         {"Authorization": "AWS4-HMAC-SHA256 Credential=testing"})

    def calls(self):
        with urllib.request.urlopen(self.base + "/_fake/calls", timeout=10) as r:
            return json.load(r)

    def test_forwards_requests_unchanged(self):
        status, headers, body = self.action("DescribeDBInstances")
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("x-upstream"), "yes")
        doc = json.loads(body)
        self.assertEqual(doc["body"], "Action=DescribeDBInstances&Version=2014-10-31")
        self.assertIn("AWS4-HMAC-SHA256", doc["auth"], "signed headers reach the upstream")
        self.assertEqual(self.calls()["calls"], {"DescribeDBInstances": 1})

    def test_injects_count_faults_for_matching_actions_only(self):
        status, _, _ = self.post("/_fake/inject", json.dumps(
            {"status": 503, "count": 2, "match": "CreateDBInstance"}).encode())
        self.assertEqual(status, 200)
        self.assertEqual(self.action("DescribeDBInstances")[0], 200, "other actions pass")
        for _ in range(2):
            status, headers, body = self.action("CreateDBInstance")
            self.assertEqual(status, 503)
            self.assertIn(b"<Code>ServiceUnavailable</Code>", body)
            self.assertIn(b"<Type>Receiver</Type>", body)
            self.assertNotIn("Retry-After", headers)
        self.assertEqual(self.action("CreateDBInstance")[0], 200, "the third one passes")
        c = self.calls()
        self.assertEqual(c["faults"], {"CreateDBInstance": 2})
        self.assertEqual(c["calls"], {"DescribeDBInstances": 1, "CreateDBInstance": 3})
        self.assertEqual([e["status"] for e in c["log"]], [200, 503, 503, 200])

    def test_throttling_carries_retry_after_and_the_aws_code(self):
        self.post("/_fake/inject", json.dumps({"status": 400, "retryAfter": 2}).encode())
        status, headers, body = self.action("ListTagsForResource")
        self.assertEqual(status, 400)
        self.assertEqual(headers.get("Retry-After"), "2")
        self.assertIn(b"<Code>Throttling</Code>", body)
        self.assertIn(b"<Type>Sender</Type>", body)

    def test_json_protocol_errors_are_json(self):
        self.post("/_fake/inject", json.dumps({"status": 429, "match": "GetSecretValue"}).encode())
        status, _, body = self.post("/", b"{}", {"X-Amz-Target": "secretsmanager.GetSecretValue",
                                                 "Content-Type": "application/x-amz-json-1.1"})
        self.assertEqual(status, 429)
        self.assertEqual(json.loads(body)["__type"], "Throttling")

    def test_bad_injections_are_refused(self):
        for bad in [{"status": 200}, {"status": 503, "count": 0}, {"status": 503, "retryAfter": -1}, [1]]:
            status, _, body = self.post("/_fake/inject", json.dumps(bad).encode())
            self.assertEqual(status, 400, bad)
            self.assertIn("error", json.loads(body))
        self.assertEqual(self.post("/_fake/inject", b"not json")[0], 400)


if __name__ == "__main__":
    unittest.main()
