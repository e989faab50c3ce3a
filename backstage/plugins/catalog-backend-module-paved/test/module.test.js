'use strict';
// The module wired as an adopter wires it: the real catalog backend, the real Kubernetes
// backend (config cluster locator, serviceAccount auth) and the real scheduler, reading
// through the Kubernetes proxy from a loopback HTTP stand-in of the apiserver that serves
// list responses. The same module against a real apiserver: backstage/e2e/catalog.js.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { mockCredentials } = require('@backstage/backend-test-utils');
const { startLoopbackBackend } = require('../../../test/support');
const { startApiserver, backendConfig, waitForEntity, getEntity, claim, database, ann } = require('./apiserver');

const SA_TOKEN = 'sa-token-of-the-reader';
const headers = { authorization: mockCredentials.user.header() };

let apiserver;
let state;
let backend;
let port;

before(async () => {
  apiserver = await startApiserver();
  state = apiserver.state;
  // The real scheduler (the mock one runs a task once; the short schedule is the point).
  ({ backend, port } = await startLoopbackBackend({
    features: [require('@backstage/plugin-catalog-backend'), require('@backstage/plugin-kubernetes-backend'), require('../src/index')],
    config: backendConfig(apiserver.url, SA_TOKEN),
  }));
});

after(async () => {
  await backend?.stop();
  await apiserver?.close();
});

const get = ref => getEntity(port, headers, ref);
const waitFor = (what, ref, pred, timeoutMs) => waitForEntity(port, headers, what, ref, pred, timeoutMs);

test('claims appear, follow their status within seconds, and go when deleted', async () => {
  state.serviceclaims = [claim('svc-a', 'False')];
  state.postgresqlinstances = [database('svc-a', 'main', 'False')];
  const svc = await waitFor('svc-a appears', 'default/svc-a', e => e);
  assert.equal(ann(svc, 'ready'), 'False');
  assert.equal(ann(svc, 'health'), 'Progressing');
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
  const ready = await waitFor('svc-a turns Ready', 'default/svc-a', e => ann(e, 'ready') === 'True');
  assert.equal(ann(ready, 'health'), 'Healthy');
  assert.ok(Date.now() - t0 < 15000);

  // A new generation the operator has not written status for: no longer Ready.
  state.serviceclaims = [{ ...claim('svc-a', 'True'), metadata: { name: 'svc-a', generation: 2 } }];
  await waitFor('svc-a at an unobserved generation', 'default/svc-a', e => ann(e, 'ready') === 'Unknown' && ann(e, 'reason') === 'GenerationNotObserved');

  // Being deleted (a finalizer holds it): Deleting.
  state.serviceclaims = [{ ...claim('svc-a', 'True'), metadata: { name: 'svc-a', generation: 1, deletionTimestamp: '2026-12-07T00:00:00Z' } }];
  await waitFor('svc-a deleting', 'default/svc-a', e => ann(e, 'health') === 'Deleting');

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
