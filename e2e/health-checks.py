"""The test runner behind e2e/health-checks (run that, not this).

For every resource_customizations/paved.dev/<Kind>/health_test.yaml it converts each
test's input object to a Lua table literal and runs the Kind's health.lua on lua5.1 the
way Argo CD does: `obj` is a global, the script's chunk returns the health table. The
script sees only the libraries Argo CD opens for a resource.customizations script
(base, table, package and a safe os; no string, math, io or debug, and no string
methods), so a check that passes here does not depend on useOpenLibs.
"""
import os
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GROUP = "paved.dev"
CHECKS = os.path.join(ROOT, "resource_customizations", GROUP)
ARGOCD_CM = os.path.join(ROOT, "examples", "gitops", "argocd-cm.yaml")
# The statuses Argo CD accepts from a script; anything else becomes Unknown.
VALID_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


class Loader(yaml.SafeLoader):
    """YAML as Kubernetes reads it: timestamps stay strings."""


Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=Loader)


def lua_string(s):
    out = ['"']
    for b in s.encode("utf-8"):
        c = chr(b)
        if 32 <= b < 127 and c not in '"\\':
            out.append(c)
        else:
            out.append("\\%03d" % b)
    out.append('"')
    return "".join(out)


def lua_value(v):
    """A Lua literal for a JSON-shaped value, as Argo CD's decodeValue builds it."""
    if v is None:
        return "nil"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError(f"{v} has no JSON form")
        return repr(v)
    if isinstance(v, str):
        return lua_string(v)
    if isinstance(v, list):
        return "{" + ", ".join(lua_value(x) for x in v) + "}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"[{lua_string(str(k))}] = {lua_value(x)}" for k, x in v.items()) + "}"
    raise ValueError(f"unsupported YAML value {v!r}")


HARNESS = r"""
local obj = %(obj)s
local chunk, err = loadfile(%(script)s)
if not chunk then
  io.stderr:write(err, "\n")
  os.exit(2)
end
local env = {
  obj = obj, _VERSION = _VERSION, assert = assert, error = error, getmetatable = getmetatable,
  ipairs = ipairs, next = next, pairs = pairs, pcall = pcall, print = print,
  rawequal = rawequal, rawget = rawget, rawset = rawset, select = select,
  setmetatable = setmetatable, tonumber = tonumber, tostring = tostring, type = type,
  unpack = unpack, xpcall = xpcall, table = table,
  os = { clock = os.clock, date = os.date, difftime = os.difftime, time = os.time },
}
env._G = env
setfenv(chunk, env)
local write, stderr, exit, type, tostring = io.write, io.stderr, os.exit, type, tostring
getmetatable("").__index = nil
local ok, hs = pcall(chunk)
if not ok then
  stderr:write("health.lua failed: ", tostring(hs), "\n")
  exit(3)
end
if type(hs) ~= "table" then
  stderr:write("health.lua returned a ", type(hs), ", not a table\n")
  exit(4)
end
if hs.message ~= nil and type(hs.message) ~= "string" then
  stderr:write("health.lua returned a ", type(hs.message), " message, not a string\n")
  exit(4)
end
write(tostring(hs.status), "\0", hs.message or "")
"""


def run_check(script, obj):
    """(status, message) from the health script, or raises with lua's complaint."""
    src = HARNESS % {"obj": lua_value(obj), "script": lua_string(script)}
    p = subprocess.run(["lua5.1", "-"], input=src.encode("utf-8"), capture_output=True)
    if p.returncode != 0:
        raise RuntimeError(p.stderr.decode("utf-8", "replace").strip() or f"lua5.1 exited {p.returncode}")
    status, _, message = p.stdout.decode("utf-8").partition("\0")
    if status not in VALID_STATUSES:
        return "Unknown", "Lua returned an invalid health status"
    return status, message


def load_crds():
    """kind -> (scope, apiVersions, required top-level fields, required spec fields, has a status)."""
    crds = {}
    crd_dir = os.path.join(ROOT, "crds")
    for name in sorted(os.listdir(crd_dir)):
        if not name.endswith(".yaml"):
            continue
        crd = load_yaml(os.path.join(crd_dir, name))
        spec = crd["spec"]
        if spec["group"] != GROUP:
            continue
        versions, top_required, spec_required, has_status = set(), set(), set(), False
        for v in spec["versions"]:
            if not v.get("served"):
                continue
            versions.add(f"{GROUP}/{v['name']}")
            has_status |= "status" in (v.get("subresources") or {})
            schema = v["schema"]["openAPIV3Schema"]
            top_required |= set(schema.get("required", []))
            spec_required |= set(schema.get("properties", {}).get("spec", {}).get("required", []))
        crds[spec["names"]["kind"]] = (spec["scope"], versions, top_required, spec_required, has_status)
    return crds


def testdata_problems(kind, crd, obj):
    """What makes obj an impossible object of this kind (structure only; --kubectl
    has the API server check the full schema)."""
    scope, versions, top_required, spec_required, _ = crd
    if not isinstance(obj, dict):
        return ["not a YAML mapping"]
    problems = []
    if obj.get("apiVersion") not in versions:
        problems.append(f"apiVersion {obj.get('apiVersion')!r}, want one of {sorted(versions)}")
    if obj.get("kind") != kind:
        problems.append(f"kind {obj.get('kind')!r}, want {kind!r} (the directory's name)")
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return problems + ["no metadata"]
    if not meta.get("name"):
        problems.append("no metadata.name")
    gen = meta.get("generation")
    if not isinstance(gen, int) or isinstance(gen, bool) or gen < 1:
        problems.append("metadata.generation must be a positive integer")
    if scope == "Namespaced" and not meta.get("namespace"):
        problems.append(f"{kind} is namespaced: metadata.namespace is missing")
    if scope == "Cluster" and "namespace" in meta:
        problems.append(f"{kind} is cluster-scoped: metadata.namespace must not be set")
    for field in sorted(top_required):
        if field not in obj:
            problems.append(f"required field {field} is missing")
    spec = obj.get("spec")
    if isinstance(spec, dict):
        for field in sorted(spec_required):
            if field not in spec:
                problems.append(f"required field spec.{field} is missing")
    return problems


def kubectl_problem(obj):
    """The API server's verdict on creating obj (dry run), or None when accepted.
    The schema does not depend on where an object lives or what it is called, so it
    is checked under a generated name (the testdata may name an object that exists,
    such as a default Composition) and, if namespaced, in `default` (its own namespace
    may not exist)."""
    obj = dict(obj)
    meta = obj["metadata"] = dict(obj["metadata"])
    meta["generateName"] = meta.pop("name")[:40] + "-"
    if "namespace" in meta:
        meta["namespace"] = "default"
    p = subprocess.run(
        ["kubectl", "create", "--dry-run=server", "-o", "name", "-f", "-"],
        input=yaml.safe_dump(obj).encode("utf-8"),
        capture_output=True,
    )
    if p.returncode != 0:
        return p.stderr.decode("utf-8", "replace").strip()
    return None


def main(argv):
    use_kubectl = False
    for arg in argv:
        if arg == "--kubectl":
            use_kubectl = True
        else:
            sys.exit("usage: e2e/health-checks [--kubectl]")
    passed, failed = 0, 0

    def report(ok, what, detail=""):
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1
        print(f"{'ok  ' if ok else 'FAIL'} {what}{': ' + detail if detail else ''}", flush=True)

    crds = load_crds()
    kinds = sorted(k for k in os.listdir(CHECKS) if os.path.isdir(os.path.join(CHECKS, k)))
    # Every kind with a status has a health check; Team has none (configuration, not
    # a claim), and Argo CD needs no check for it.
    with_status = {k for k, (_, _, _, _, has_status) in crds.items() if has_status}
    for kind in sorted(with_status - set(kinds)):
        report(False, f"{kind}", f"no health check: add {os.path.relpath(CHECKS, ROOT)}/{kind}/")
    for kind in kinds:
        rel = os.path.relpath(os.path.join(CHECKS, kind), ROOT)
        base = os.path.join(CHECKS, kind)
        script = os.path.join(base, "health.lua")
        if kind not in crds:
            report(False, rel, f"crds/ has no {GROUP} kind {kind}")
            continue
        if not os.path.isfile(script):
            report(False, rel, "no health.lua")
            continue
        try:
            tests = load_yaml(os.path.join(base, "health_test.yaml"))["tests"]
        except Exception as e:  # a missing or malformed test list fails, never skips
            report(False, f"{rel}/health_test.yaml", str(e))
            continue
        used = set()
        for test in tests:
            input_path = test.get("inputPath", "")
            want = test.get("healthStatus") or {}
            want = (want.get("status", ""), want.get("message", ""))
            what = f"{rel}/{input_path}"
            used.add(os.path.normpath(input_path))
            try:
                obj = load_yaml(os.path.join(base, input_path))
            except Exception as e:
                report(False, what, f"cannot read the testdata: {e}")
                continue
            problems = testdata_problems(kind, crds[kind], obj)
            if problems:
                report(False, what, "invalid testdata: " + "; ".join(problems))
                continue
            if use_kubectl:
                verdict = kubectl_problem(obj)
                report(verdict is None, f"{what} (API server)", verdict or "")
            try:
                got = run_check(script, obj)
            except Exception as e:
                report(False, what, str(e))
                continue
            if got == want:
                report(True, what, f"{got[0]}: {got[1]}")
            else:
                report(False, what, f"got {got[0]} {got[1]!r}, want {want[0]} {want[1]!r}")
        testdata = os.path.join(base, "testdata")
        for name in sorted(os.listdir(testdata)) if os.path.isdir(testdata) else []:
            if os.path.normpath(os.path.join("testdata", name)) not in used:
                report(False, f"{rel}/testdata/{name}", "not used by health_test.yaml")

    # argocd-cm.yaml carries the same scripts; it must never drift from them.
    gen = subprocess.run(
        [os.path.join(ROOT, "e2e", "gen-argocd-cm"), "--stdout"], capture_output=True
    )
    rel_cm = os.path.relpath(ARGOCD_CM, ROOT)
    if gen.returncode != 0:
        report(False, rel_cm, "e2e/gen-argocd-cm failed: " + gen.stderr.decode().strip())
    else:
        try:
            with open(ARGOCD_CM, "rb") as f:
                current = f.read()
        except OSError:
            current = None
        if current != gen.stdout:
            report(False, rel_cm, "differs from the health.lua files: run e2e/gen-argocd-cm")
        else:
            # And Argo CD reads back exactly the scripts tested above.
            data = (yaml.safe_load(current) or {}).get("data") or {}
            differ = [
                kind
                for kind in kinds
                if data.get(f"resource.customizations.health.{GROUP}_{kind}")
                != open(os.path.join(CHECKS, kind, "health.lua"), encoding="utf-8").read()
            ]
            if differ:
                report(False, rel_cm, "does not carry health.lua byte for byte for " + ", ".join(differ))
            else:
                report(True, rel_cm, "matches the health.lua files")

    print(f"health checks: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
