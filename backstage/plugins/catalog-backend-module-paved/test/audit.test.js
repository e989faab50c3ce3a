'use strict';
// The Kubernetes proxy puts the cluster's token in the request's Authorization header, and
// the auditor resolves the caller of that same request. With backend-defaults' own auth,
// httpAuth and auditor (as in production) the caller is resolved, and cached for the
// request, before the proxy rewrites the header: the reader's token must reach no log line.
// The second test shows the check can see a leak: with backend-test-utils' mock httpAuth
// (no per-request cache) the auditor resolves the caller again after the rewrite, and the
// mock's error quotes the token; this is why the other tests use a no-op auditor.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { mockCredentials } = require('@backstage/backend-test-utils');
const { startLoopbackBackend, capturingLogger } = require('../../../test/support');
const { startApiserver, backendConfig, waitForEntity, claim, database, ann } = require('./apiserver');

const SA_TOKEN = `sa-token-${crypto.randomBytes(12).toString('hex')}`;
let apiserver;
const running = [];

after(async () => {
  for (const b of running) await b.stop().catch(() => {});
  await apiserver?.close();
});

async function waitForLine(lines, what, pred, timeoutMs = 30000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const hit = lines.find(pred);
    if (hit) return hit;
    if (Date.now() > end) throw new Error(`no log line ${what} within ${timeoutMs} ms`);
    await new Promise(r => setTimeout(r, 200));
  }
}

const features = () => [require('@backstage/plugin-catalog-backend'), require('@backstage/plugin-kubernetes-backend'), require('../src/index')];

test('production auth and auditor: the proxy is audited, and the reader token is in no log line', async () => {
  apiserver = await startApiserver();
  apiserver.state.serviceclaims = [claim('svc-audit', 'True')];
  apiserver.state.postgresqlinstances = [database('svc-audit', 'main', 'True')];
  const { logger, lines } = capturingLogger();
  // Production auth: tests reach the catalog with a static external-access token.
  const caller = crypto.randomBytes(24).toString('hex');
  const config = backendConfig(apiserver.url, SA_TOKEN);
  config.backend = { auth: { externalAccess: [{ type: 'static', options: { token: caller, subject: 'paved-tests' } }] } };
  const { backend, port } = await startLoopbackBackend({ features: features(), config, auth: 'production', rootLogger: logger });
  running.push(backend);

  const headers = { authorization: `Bearer ${caller}` };
  await waitForEntity(port, headers, 'svc-audit Ready', 'default/svc-audit', e => ann(e, 'ready') === 'True');
  await waitForEntity(port, headers, 'its database Ready', 'svc-audit/main', e => ann(e, 'ready') === 'True');
  // The proxy's audit events were written, with the catalog as the caller, both when the
  // request started and when it succeeded (the second is when a leak happened).
  const audited = status => l =>
    l.includes("'kubernetes.cluster-fetch'") && l.includes("queryType: 'proxy'") && l.includes(`status: '${status}'`);
  const started = await waitForLine(lines, 'auditing a proxy request', audited('initiated'));
  assert.match(started, /actorId: 'plugin:catalog'/);
  await waitForLine(lines, 'auditing a proxied read that succeeded', audited('succeeded'));
  // The apiserver saw the reader's token, so it was in play...
  assert.ok(apiserver.state.seenAuth.has(`Bearer ${SA_TOKEN}`));
  // ...and no line of any log holds it.
  const leaks = lines.filter(l => l.includes(SA_TOKEN));
  assert.deepEqual(leaks, [], `the reader token reached the log:\n${leaks.join('\n')}`);
  await backend.stop();
  running.pop();
});

test('the check sees a leak: the mock httpAuth with the real auditor logs the token', async () => {
  apiserver ??= await startApiserver();
  apiserver.state.serviceclaims = [claim('svc-audit', 'True')];
  const { logger, lines } = capturingLogger();
  const { backend, port } = await startLoopbackBackend({
    features: features(),
    config: backendConfig(apiserver.url, SA_TOKEN),
    auth: 'mock',
    auditor: 'production',
    rootLogger: logger,
  });
  running.push(backend);
  await waitForEntity(port, { authorization: mockCredentials.user.header() }, 'svc-audit', 'default/svc-audit', e => e);
  // The proxy's audit event, resolving the caller again once the header holds the token:
  const leak = await waitForLine(lines, 'quoting the reader token', l => l.includes(SA_TOKEN));
  assert.match(leak, /Failed to emit proxy audit event/);
  assert.ok(leak.includes(`Unknown mock token '${SA_TOKEN}'`), leak);
});
