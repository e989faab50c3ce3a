'use strict';
// A restart while the apiserver fails: the module has read nothing yet, so it has nothing
// to say about the kind it cannot read, and must not tell the catalog (a full mutation)
// that those entities are gone. Two backends in turn over one SQLite directory: the
// catalog keeps what the first stored.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { mockCredentials } = require('@backstage/backend-test-utils');
const { startLoopbackBackend } = require('../../../test/support');
const { startApiserver, backendConfig, waitForEntity, getEntity, claim, database, ann } = require('./apiserver');

const headers = { authorization: mockCredentials.user.header() };
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'paved-cold-'));
let apiserver;
let backend;

after(async () => {
  await backend?.stop();
  await apiserver?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const start = () =>
  startLoopbackBackend({
    features: [require('@backstage/plugin-catalog-backend'), require('@backstage/plugin-kubernetes-backend'), require('../src/index')],
    config: backendConfig(apiserver.url, 'sa-token-of-the-reader'),
    databaseDirectory: tmp,
  });

test('started while a kind cannot be read: the catalog keeps its entities until a read succeeds', async () => {
  apiserver = await startApiserver();
  const { state } = apiserver;
  state.serviceclaims = [claim('svc-c', 'True')];
  state.postgresqlinstances = [database('svc-c', 'main', 'True')];

  // A first run stores the service and its database.
  let port;
  ({ backend, port } = await start());
  await waitForEntity(port, headers, 'svc-c/main stored', 'svc-c/main', e => ann(e, 'ready') === 'True');
  await waitForEntity(port, headers, 'svc-c stored', 'default/svc-c', e => ann(e, 'ready') === 'True');
  await backend.stop();
  backend = undefined;

  // Restarted while the databases cannot be listed; the service changed meanwhile.
  state.failing.add('postgresqlinstances');
  state.serviceclaims = [claim('svc-c', 'False')];
  const before = apiserver.count('postgresqlinstances');
  ({ backend, port } = await start());
  // Several refreshes (one a second) fail on the databases...
  const end = Date.now() + 30000;
  while (apiserver.count('postgresqlinstances') < before + 4) {
    if (Date.now() > end) throw new Error('the module did not try to list the databases four times');
    await new Promise(r => setTimeout(r, 200));
  }
  await new Promise(r => setTimeout(r, 2000)); // what a mutation would change is processed by now
  // ...and the catalog still holds what it stored: the database is not deleted, and nothing
  // half-read was applied.
  const db = await getEntity(port, headers, 'svc-c/main');
  assert.ok(db, 'the database entity must not be removed while its kind was never read');
  assert.equal(ann(db, 'ready'), 'True');
  assert.equal(ann(await getEntity(port, headers, 'default/svc-c'), 'ready'), 'True');

  // Readable again: the catalog follows the cluster.
  state.failing.delete('postgresqlinstances');
  await waitForEntity(port, headers, 'svc-c not Ready', 'default/svc-c', e => ann(e, 'ready') === 'False');
  assert.equal(ann(await getEntity(port, headers, 'svc-c/main'), 'ready'), 'True');

  // Once read, a later failure keeps the last items (Unknown), as before.
  state.failing.add('postgresqlinstances');
  await waitForEntity(port, headers, 'svc-c/main Unknown', 'svc-c/main', e => ann(e, 'ready') === 'Unknown' && ann(e, 'reason') === 'StatusUnavailable');
});
