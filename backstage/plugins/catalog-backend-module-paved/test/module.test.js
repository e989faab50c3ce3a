'use strict';
// The module wired as an adopter wires it: the real catalog backend, the real Kubernetes
// backend (config cluster locator, serviceAccount auth) and the real scheduler, reading
// through the Kubernetes proxy from a loopback HTTP stand-in of the apiserver that serves
// list responses. The same module against a real apiserver: backstage/e2e/catalog.js.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { mockCredentials } = require('@backstage/backend-test-utils');
const { startLoopbackBackend } = require('../../../test/support');

const SA_TOKEN = 'sa-token-of-the-reader';
const state = {
  serviceclaims: [],
  postgresqlinstances: [],
  temporalnamespaces: [],
  failing: new Set(),
  seenAuth: new Set(),
  paths: [],
};

const apiserver = http.createServer((req, res) => {
  state.seenAuth.add(req.headers.authorization);
  const url = new URL(req.url, 'http://x');
  state.paths.push(url.pathname);
  const m = /^\/apis\/paved\.dev\/v1alpha1\/([a-z]+)$/.exec(url.pathname);
  if (!m || !(m[1] in state)) {
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

const condition = (type, status, reason, generation) => ({ type, status, reason, message: '', observedGeneration: generation, lastTransitionTime: '2026-12-07T00:00:00Z' });
const claim = (name, ready, generation = 1) => ({
  metadata: { name, generation },
  spec: { owner: 'team-claims', system: 'claims-platform', costCenter: 'CC-1', dataClassification: 'internal', sloTier: 'silver', cloud: 'local' },
  status: { observedGeneration: generation, namespace: name, conditions: [condition('Ready', ready, ready === 'True' ? 'Available' : 'ChildNotReady', generation), condition('Synced', 'True', 'ReconcileSuccess', generation)] },
});
const database = (namespace, name, ready) => ({
  metadata: { name, namespace, generation: 1 },
  spec: {},
  status: { observedGeneration: 1, endpoint: '127.0.0.1', port: 5432, conditions: [condition('Ready', ready, 'Available', 1), condition('Synced', 'True', 'ReconcileSuccess', 1)] },
});

let backend;
let port;

before(async () => {
  await new Promise(r => apiserver.listen(0, '127.0.0.1', r));
  // The real scheduler (the mock one runs a task once; the short schedule is the point).
  ({ backend, port } = await startLoopbackBackend({
    features: [
      require('@backstage/plugin-catalog-backend'),
      require('@backstage/plugin-kubernetes-backend'),
      require('../src/index'),
    ],
    config: {
      kubernetes: {
        serviceLocatorMethod: { type: 'multiTenant' },
        clusterLocatorMethods: [
          {
            type: 'config',
            clusters: [{ name: 'e2e', url: `http://127.0.0.1:${apiserver.address().port}`, authProvider: 'serviceAccount', serviceAccountToken: SA_TOKEN }],
          },
        ],
      },
      catalog: {
        rules: [{ allow: ['Resource'] }],
        providers: { paved: { schedule: { frequency: { seconds: 1 }, timeout: { seconds: 10 } } } },
      },
    },
  }));
});

after(async () => {
  await backend?.stop();
  apiserver.closeAllConnections?.();
  await new Promise(r => apiserver.close(r));
});

async function get(ref) {
  const [ns, name] = ref.split('/');
  const res = await fetch(`http://127.0.0.1:${port}/api/catalog/entities/by-name/resource/${ns}/${name}`, {
    headers: { authorization: mockCredentials.user.header() },
  });
  if (res.status === 404) return null;
  assert.equal(res.status, 200);
  return res.json();
}

async function waitFor(what, ref, pred, timeoutMs = 30000) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await get(ref);
    if (pred(last)) return last;
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs} ms; last seen ${JSON.stringify(last?.metadata?.annotations)}`);
    await new Promise(r => setTimeout(r, 200));
  }
}

const ann = (e, k) => e?.metadata?.annotations?.[`paved.dev/${k}`];

test('claims appear, follow their status within seconds, and go when deleted', async () => {
  state.serviceclaims = [claim('svc-a', 'False')];
  state.postgresqlinstances = [database('svc-a', 'main', 'False')];
  const svc = await waitFor('svc-a appears', 'default/svc-a', e => e);
  assert.equal(ann(svc, 'ready'), 'False');
  assert.equal(svc.spec.owner, 'group:default/team-claims');
  const db = await waitFor('its database appears', 'svc-a/main', e => e);
  assert.equal(db.spec.type, 'database');
  assert.ok(db.relations.some(r => r.type === 'dependencyOf' && r.targetRef === 'resource:default/svc-a'), JSON.stringify(db.relations));

  // Through the proxy with the cluster's own credentials: the apiserver never sees a Backstage token.
  assert.deepEqual([...state.seenAuth], [`Bearer ${SA_TOKEN}`]);
  assert.ok(state.paths.includes('/apis/paved.dev/v1alpha1/temporalnamespaces'));

  const t0 = Date.now();
  state.serviceclaims = [claim('svc-a', 'True')];
  state.postgresqlinstances = [database('svc-a', 'main', 'True')];
  await waitFor('svc-a turns Ready', 'default/svc-a', e => ann(e, 'ready') === 'True');
  assert.ok(Date.now() - t0 < 15000);

  // A new generation the operator has not written status for: no longer Ready.
  state.serviceclaims = [{ ...claim('svc-a', 'True'), metadata: { name: 'svc-a', generation: 2 } }];
  await waitFor('svc-a at an unobserved generation', 'default/svc-a', e => ann(e, 'ready') === 'Unknown' && ann(e, 'reason') === 'GenerationNotObserved');

  state.serviceclaims = [];
  state.postgresqlinstances = [];
  await waitFor('svc-a goes', 'default/svc-a', e => e === null);
  await waitFor('its database goes', 'svc-a/main', e => e === null);
});

test('a kind the apiserver cannot list stays in the catalog, Unknown, and recovers', async () => {
  state.serviceclaims = [claim('svc-b', 'True')];
  state.postgresqlinstances = [database('svc-b', 'main', 'True')];
  await waitFor('svc-b database Ready', 'svc-b/main', e => ann(e, 'ready') === 'True');
  state.failing.add('postgresqlinstances');
  const e = await waitFor('database Unknown while unreadable', 'svc-b/main', x => ann(x, 'ready') === 'Unknown');
  assert.equal(ann(e, 'reason'), 'StatusUnavailable');
  assert.match(ann(e, 'message'), /503/);
  assert.equal(ann(await get('default/svc-b'), 'ready'), 'True');
  state.failing.delete('postgresqlinstances');
  await waitFor('database Ready again', 'svc-b/main', x => ann(x, 'ready') === 'True');
});
