'use strict';
// A loopback HTTP stand-in of the apiserver for the module's tests: serves Paved's list
// responses from `state`, fails the kinds in `state.failing` with 503, and records what it
// was asked (paths, Authorization headers). Kinds not in `state` (teams) are 404, as on a
// cluster without that CRD.

const http = require('node:http');

const condition = (type, status, reason, generation) => ({
  type,
  status,
  reason,
  message: '',
  observedGeneration: generation,
  lastTransitionTime: '2026-12-07T00:00:00Z',
});

/** A ServiceClaim Paved accepted (Synced=True), Ready as given. */
const claim = (name, ready, generation = 1) => ({
  metadata: { name, generation },
  spec: { owner: 'team-claims', system: 'claims-platform', costCenter: 'CC-1', dataClassification: 'internal', sloTier: 'silver', cloud: 'local' },
  status: {
    observedGeneration: generation,
    namespace: name,
    conditions: [
      condition('Ready', ready, ready === 'True' ? 'Available' : 'ChildNotReady', generation),
      condition('Synced', 'True', 'ReconcileSuccess', generation),
    ],
  },
});

const database = (namespace, name, ready) => ({
  metadata: { name, namespace, generation: 1 },
  spec: {},
  status: {
    observedGeneration: 1,
    endpoint: '127.0.0.1',
    port: 5432,
    conditions: [condition('Ready', ready, 'Available', 1), condition('Synced', 'True', 'ReconcileSuccess', 1)],
  },
});

/** @returns {Promise<{url: string, state: any, count(plural: string): number, close(): Promise<void>}>} */
async function startApiserver() {
  const state = {
    serviceclaims: [],
    postgresqlinstances: [],
    temporalnamespaces: [],
    failing: new Set(),
    seenAuth: new Set(),
    paths: [],
  };
  const server = http.createServer((req, res) => {
    state.seenAuth.add(req.headers.authorization);
    const url = new URL(req.url, 'http://x');
    state.paths.push(url.pathname);
    const m = /^\/apis\/paved\.dev\/v1alpha1\/([a-z]+)$/.exec(url.pathname);
    if (!m || !Array.isArray(state[m[1]])) {
      res.writeHead(404, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ kind: 'Status', status: 'Failure', message: 'not found', code: 404 }));
    }
    if (state.failing.has(m[1])) {
      res.writeHead(503, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ kind: 'Status', status: 'Failure', message: 'etcd is unhappy', code: 503 }));
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'List', apiVersion: 'paved.dev/v1alpha1', metadata: {}, items: state[m[1]] }));
  });
  await new Promise(r => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    state,
    count: plural => state.paths.filter(p => p === `/apis/paved.dev/v1alpha1/${plural}`).length,
    close: async () => {
      server.closeAllConnections?.();
      await new Promise(r => server.close(r));
    },
  };
}

/** The Kubernetes plugin's config for one cluster behind the stand-in, and the module's. */
function backendConfig(apiserverUrl, token, { frequencySeconds = 1 } = {}) {
  return {
    kubernetes: {
      serviceLocatorMethod: { type: 'multiTenant' },
      clusterLocatorMethods: [
        { type: 'config', clusters: [{ name: 'e2e', url: apiserverUrl, authProvider: 'serviceAccount', serviceAccountToken: token }] },
      ],
    },
    catalog: {
      rules: [{ allow: ['Resource'] }],
      providers: { paved: { schedule: { frequency: { seconds: frequencySeconds }, timeout: { seconds: 10 } } } },
    },
  };
}

/** Polls the catalog for resource:<ref> until `pred` holds. `headers`: the caller's. */
async function waitForEntity(port, headers, what, ref, pred, timeoutMs = 30000) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await getEntity(port, headers, ref);
    if (pred(last)) return last;
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs} ms; last seen ${JSON.stringify(last?.metadata?.annotations)}`);
    await new Promise(r => setTimeout(r, 200));
  }
}

async function getEntity(port, headers, ref) {
  const [ns, name] = ref.split('/');
  const res = await fetch(`http://127.0.0.1:${port}/api/catalog/entities/by-name/resource/${ns}/${name}`, { headers });
  if (res.status === 404) return null;
  if (res.status !== 200) throw new Error(`the catalog answered ${res.status} for ${ref}`);
  return res.json();
}

const ann = (e, k) => e?.metadata?.annotations?.[`paved.dev/${k}`];

module.exports = { startApiserver, backendConfig, waitForEntity, getEntity, claim, database, condition, ann };
