#!/usr/bin/env node
'use strict';
// Runs the Paved catalog module against a real cluster and answers questions about the
// catalog on stdin/stdout, so a test (e2e/tests/backstage.rs) can change the cluster
// between checks. Not part of `npm test`.
//
// Environment:
//   PAVED_K8S_URL              apiserver URL (required), e.g. https://127.0.0.1:6443
//   PAVED_K8S_TOKEN            bearer token of a reader (or PAVED_K8S_TOKEN_FILE); never printed
//   PAVED_K8S_CA_FILE          PEM bundle the apiserver's certificate chains to, or
//   PAVED_K8S_SKIP_TLS_VERIFY=1  (tests only)
//   PAVED_K8S_CLUSTER          cluster name in the Kubernetes plugin's config (default e2e)
//   PAVED_REFRESH_SECONDS      the module's schedule (default 2)
//
// What runs, on 127.0.0.1: a Backstage backend with the real catalog, the real Kubernetes
// backend (config cluster locator, serviceAccount auth provider with that token) and
// @paved/backstage-plugin-catalog-backend-module-paved, which reads the cluster only
// through the Kubernetes backend's proxy. The reader needs get/list on serviceclaims,
// postgresqlinstances and temporalnamespaces (teams optional).
//
// Protocol: one command per line on stdin, one JSON object per line on stdout.
//   first line out:  {"event":"ready","port":N}
//   wait-entity REF [KEY=VALUE ...] TIMEOUT_SECONDS
//       until entity REF (e.g. resource:default/svc) exists and every KEY has VALUE. KEY is
//       an annotation (ready, reason, ... short for paved.dev/ready, ...; or a full key
//       with a '/') or spec.FIELD (spec.owner, spec.type, spec.system); VALUE may be * for
//       "present". Answer: {"ok":true,"cmd":"wait-entity","ref":…,"entity":{…}}
//       or {"ok":false,"cmd":"wait-entity","ref":…,"error":"…","last":{annotations, spec}|null}
//   wait-gone REF TIMEOUT_SECONDS     until REF is not in the catalog
//   get REF                            {"ok":true,"entity":…} or {"ok":false,"error":"not found"}
//   quit                               stop and exit 0 (so does end of input)
// Malformed commands answer {"ok":false,"error":"…"}. A startup failure prints
// {"event":"error","message":"…"} and exits 1. Everything it started is stopped on exit.

const fs = require('node:fs');
const readline = require('node:readline');

const emit = obj => process.stdout.write(`${JSON.stringify(obj)}\n`);
// stdout carries only the JSON lines: the backend's log (PAVED_BACKSTAGE_LOG, default warn) goes to stderr.
console.log = (...a) => console.error(...a);
console.info = console.log;
process.env.PAVED_BACKSTAGE_LOG ??= 'warn';

function fail(message) {
  emit({ event: 'error', message });
  process.exit(1);
}

function config() {
  const url = process.env.PAVED_K8S_URL;
  if (!url) fail('PAVED_K8S_URL is not set');
  let token = process.env.PAVED_K8S_TOKEN;
  if (!token && process.env.PAVED_K8S_TOKEN_FILE) {
    try {
      token = fs.readFileSync(process.env.PAVED_K8S_TOKEN_FILE, 'utf8').trim();
    } catch (e) {
      fail(`cannot read PAVED_K8S_TOKEN_FILE: ${e.message}`);
    }
  }
  if (!token) fail('set PAVED_K8S_TOKEN or PAVED_K8S_TOKEN_FILE');
  const skipTLS = process.env.PAVED_K8S_SKIP_TLS_VERIFY === '1';
  const caFile = process.env.PAVED_K8S_CA_FILE;
  if (url.startsWith('https:') && !skipTLS && !caFile) fail('set PAVED_K8S_CA_FILE, or PAVED_K8S_SKIP_TLS_VERIFY=1');
  if (caFile && !fs.existsSync(caFile)) fail(`PAVED_K8S_CA_FILE ${caFile} does not exist`);
  const refresh = Number(process.env.PAVED_REFRESH_SECONDS ?? '2');
  if (!(refresh > 0)) fail('PAVED_REFRESH_SECONDS must be a positive number');
  const cluster = {
    name: process.env.PAVED_K8S_CLUSTER || 'e2e',
    url,
    authProvider: 'serviceAccount',
    serviceAccountToken: token,
    ...(skipTLS ? { skipTLSVerify: true } : {}),
    ...(caFile ? { caFile } : {}),
  };
  return {
    kubernetes: {
      serviceLocatorMethod: { type: 'multiTenant' },
      clusterLocatorMethods: [{ type: 'config', clusters: [cluster] }],
    },
    catalog: {
      rules: [{ allow: ['Resource'] }],
      providers: { paved: { schedule: { frequency: { seconds: refresh }, timeout: { seconds: 30 } } } },
    },
  };
}

function parseRef(ref) {
  const m = /^([a-zA-Z]+):([a-z0-9-]+)\/([A-Za-z0-9._-]+)$/.exec(ref ?? '');
  if (!m) throw new Error(`not an entity ref (kind:namespace/name): ${ref}`);
  return { kind: m[1].toLowerCase(), namespace: m[2], name: m[3] };
}

function parseTimeout(s) {
  const n = Number(s);
  if (!(n > 0)) throw new Error(`the last argument must be a timeout in seconds, got ${s}`);
  return n * 1000;
}

function matches(entity, expect) {
  return expect.every(([key, value]) => {
    let actual;
    if (key.startsWith('spec.')) actual = entity.spec?.[key.slice(5)];
    else actual = entity.metadata?.annotations?.[key.includes('/') ? key : `paved.dev/${key}`];
    if (Array.isArray(actual)) actual = actual.join(',');
    return value === '*' ? actual !== undefined : actual === value;
  });
}

const brief = e => (e ? { annotations: e.metadata?.annotations, spec: e.spec, relations: e.relations } : null);

async function main() {
  const cfg = config();
  const support = require('../test/support');
  let backend;
  let port;
  try {
    ({ backend, port } = await support.startLoopbackBackend({
      features: [
        require('@backstage/plugin-catalog-backend'),
        require('@backstage/plugin-kubernetes-backend'),
        require('@paved/backstage-plugin-catalog-backend-module-paved'),
      ],
      config: cfg,
    }));
  } catch (e) {
    fail(`starting the backend: ${e.message}`);
  }
  let stopping = false;
  const stop = async code => {
    if (stopping) return;
    stopping = true;
    await backend.stop().catch(() => {});
    process.exit(code);
  };
  process.on('SIGTERM', () => stop(0));
  process.on('SIGINT', () => stop(0));
  emit({ event: 'ready', port });

  const get = async ref => {
    const { kind, namespace, name } = parseRef(ref);
    const r = await support.api(port, 'GET', `/api/catalog/entities/by-name/${kind}/${namespace}/${name}`);
    if (r.status === 404) return null;
    if (r.status !== 200) throw new Error(`catalog answered ${r.status}`);
    return r.body;
  };
  const poll = async (deadline, check) => {
    for (;;) {
      const result = await check();
      if (result.done) return result;
      if (Date.now() > deadline) return result;
      await new Promise(r => setTimeout(r, 250));
    }
  };

  const commands = {
    async 'wait-entity'(args) {
      if (args.length < 2) throw new Error('wait-entity REF [KEY=VALUE ...] TIMEOUT_SECONDS');
      const ref = args[0];
      parseRef(ref);
      const timeout = parseTimeout(args[args.length - 1]);
      const expect = args.slice(1, -1).map(kv => {
        const i = kv.indexOf('=');
        if (i < 1) throw new Error(`expected KEY=VALUE, got ${kv}`);
        return [kv.slice(0, i), kv.slice(i + 1)];
      });
      const started = Date.now();
      let last = null;
      const r = await poll(started + timeout, async () => {
        last = await get(ref);
        return { done: !!last && matches(last, expect) };
      });
      if (r.done) return { ok: true, cmd: 'wait-entity', ref, seconds: (Date.now() - started) / 1000, entity: brief(last) };
      return { ok: false, cmd: 'wait-entity', ref, error: `not as expected after ${timeout / 1000} s`, last: brief(last) };
    },
    async 'wait-gone'(args) {
      if (args.length !== 2) throw new Error('wait-gone REF TIMEOUT_SECONDS');
      const [ref, t] = args;
      parseRef(ref);
      const started = Date.now();
      let last = null;
      const r = await poll(started + parseTimeout(t), async () => {
        last = await get(ref);
        return { done: last === null };
      });
      if (r.done) return { ok: true, cmd: 'wait-gone', ref, seconds: (Date.now() - started) / 1000 };
      return { ok: false, cmd: 'wait-gone', ref, error: `still there after ${t} s`, last: brief(last) };
    },
    async get(args) {
      if (args.length !== 1) throw new Error('get REF');
      const e = await get(args[0]);
      return e ? { ok: true, cmd: 'get', ref: args[0], entity: e } : { ok: false, cmd: 'get', ref: args[0], error: 'not found' };
    },
  };

  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  for await (const line of rl) {
    const words = line.trim().split(/\s+/).filter(Boolean);
    if (words.length === 0) continue;
    const [cmd, ...args] = words;
    if (cmd === 'quit') break;
    const fn = commands[cmd];
    if (!fn) {
      emit({ ok: false, error: `unknown command ${cmd}` });
      continue;
    }
    try {
      emit(await fn(args));
    } catch (e) {
      emit({ ok: false, cmd, error: e instanceof Error ? e.message : String(e) });
    }
  }
  await stop(0);
}

main().catch(e => fail(e instanceof Error ? e.message : String(e)));
