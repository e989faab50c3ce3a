#!/usr/bin/env python3
"""A loopback HTTP proxy that injects faults in front of a real service (moto).

Every request is forwarded to --upstream unchanged, unless an injected fault matches it;
then the proxy answers in the upstream's place, the way AWS's query APIs (RDS, STS,
Secrets Manager's JSON API is answered the same way) fail:

  POST /_fake/inject {"status": 503, "count": 2, "match": "CreateDBInstance",
                      "code": "ServiceUnavailable", "retryAfter": 1}
      the next `count` requests whose AWS action (query `Action=`, or the JSON
      X-Amz-Target's operation) contains `match` (all requests when empty) get HTTP
      `status` with an AWS error document of `code` (default: Throttling for 400/429,
      ServiceUnavailable for 503, InternalFailure otherwise) and, when given, a
      Retry-After header.
  GET  /_fake/calls     {"total": n, "calls": {action: n}, "faults": {action: n},
                         "log": [{"action", "status", "t"}]}  (t: seconds since start)
  POST /_fake/reset     forget faults and counts

Standard library only; listens on 127.0.0.1.
"""
import argparse
import json
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_CODE = {400: "Throttling", 429: "Throttling", 503: "ServiceUnavailable"}
# Headers that describe one hop, not the message (RFC 9110 7.6.1), or that urllib sets.
# Host is passed on as the client sent it: SigV4 signs it, and an upstream that checks
# signatures (moto with IAM authorization) would refuse a rewritten one.
HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
       "upgrade", "content-length"}


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.start = time.monotonic()
        self.reset()

    def reset(self):
        self.faults, self.calls, self.injected, self.log = [], Counter(), Counter(), []

    def take(self, action):
        for f in self.faults:
            if f["remaining"] > 0 and f.get("match", "") in action:
                f["remaining"] -= 1
                return dict(f)
        return None

    def record(self, action, status):
        self.calls[action] += 1
        self.log.append({"action": action, "status": status,
                         "t": round(time.monotonic() - self.start, 3)})


def action_of(headers, body):
    target = headers.get("X-Amz-Target", "")
    if target:
        return target.rsplit(".", 1)[-1]
    try:
        form = urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return ""
    return (form.get("Action") or [""])[0]


def error_document(status, code, message, json_protocol):
    """The error body AWS sends: XML for query APIs, JSON for JSON ones."""
    if json_protocol:
        return "application/x-amz-json-1.1", json.dumps({"__type": code, "message": message}).encode()
    kind = "Sender" if status < 500 else "Receiver"
    xml = (f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code>"
           f"<Message>{message}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>")
    return "text/xml", xml.encode()


def make_handler(state, upstream):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def body(self):
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def reply(self, status, body, ctype, extra=()):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in extra:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def control(self, method, raw):
            path = urllib.parse.urlsplit(self.path).path
            with state.lock:
                if path == "/_fake/calls" and method == "GET":
                    return 200, {"total": sum(state.calls.values()), "calls": dict(state.calls),
                                 "faults": dict(state.injected), "log": list(state.log)}
                if path == "/_fake/reset" and method == "POST":
                    state.reset()
                    return 200, {"reset": True}
                if path == "/_fake/inject" and method == "POST":
                    try:
                        f = json.loads(raw or b"{}")
                    except ValueError as e:
                        return 400, {"error": f"the body is not JSON: {e}"}
                    if not isinstance(f, dict):
                        return 400, {"error": "the body must be a JSON object"}
                    status, count = f.get("status"), f.get("count", 1)
                    if not isinstance(status, int) or not 400 <= status <= 599:
                        return 400, {"error": "status must be an HTTP error status (400-599)"}
                    if not isinstance(count, int) or count < 1:
                        return 400, {"error": "count must be a positive integer"}
                    ra = f.get("retryAfter")
                    if ra is not None and (not isinstance(ra, int) or ra < 0):
                        return 400, {"error": "retryAfter must be a non-negative integer (seconds)"}
                    f.update(remaining=count, code=f.get("code") or DEFAULT_CODE.get(status, "InternalFailure"))
                    state.faults.append(f)
                    return 200, f
            return 404, {"error": f"no control endpoint {method} {path}"}

        def handle_any(self, method):
            raw = self.body()
            if self.path.startswith("/_fake/"):
                status, doc = self.control(method, raw)
                return self.reply(status, json.dumps(doc).encode(), "application/json")
            action = action_of(self.headers, raw) or f"{method} {urllib.parse.urlsplit(self.path).path}"
            with state.lock:
                fault = state.take(action)
                if fault:
                    state.injected[action] += 1
                    state.record(action, fault["status"])
            if fault:
                ctype, body = error_document(fault["status"], fault["code"],
                                             f"Injected by fault_proxy: {fault['code']}",
                                             bool(self.headers.get("X-Amz-Target")))
                extra = [("x-amzn-RequestId", str(uuid.uuid4()))]
                if fault.get("retryAfter") is not None:
                    extra.append(("Retry-After", str(fault["retryAfter"])))
                return self.reply(fault["status"], body, ctype, extra)
            req = urllib.request.Request(upstream + self.path, data=raw if raw or method in ("POST", "PUT") else None,
                                         method=method)
            for k, v in self.headers.items():
                if k.lower() not in HOP:
                    req.add_header(k, v)
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    status, headers, body = r.status, r.headers, r.read()
            except urllib.error.HTTPError as e:
                status, headers, body = e.code, e.headers, e.read()
            except OSError as e:
                with state.lock:
                    state.record(action, 502)
                return self.reply(502, f"upstream unreachable: {e}".encode(), "text/plain")
            with state.lock:
                state.record(action, status)
            self.send_response(status)
            for k, v in headers.items():
                if k.lower() not in HOP:
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self.handle_any("GET")

        def do_POST(self):
            self.handle_any("POST")

        def do_PUT(self):
            self.handle_any("PUT")

        def do_DELETE(self):
            self.handle_any("DELETE")

    return Handler


def serve(upstream, port=0):
    """Starts the proxy on 127.0.0.1:port in a thread; returns the server."""
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(State(), upstream.rstrip("/")))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", required=True, help="the service to forward to, e.g. http://127.0.0.1:5000")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free one)")
    a = ap.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", a.port), make_handler(State(), a.upstream.rstrip("/")))
    server.daemon_threads = True
    # The port on stdout, so a caller that asked for any port learns which.
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
