'use strict';
// Shared by the tests and the e2e scripts: the template as the catalog would serve it,
// the example Groups, and small HTTP helpers for the scaffolder API.

const fs = require('node:fs');
const path = require('node:path');
const YAML = require('yaml');
const net = require('node:net');
const util = require('node:util');
const { mockCredentials, mockServices } = require('@backstage/backend-test-utils');
const { createServiceFactory, coreServices } = require('@backstage/backend-plugin-api');

const ROOT = path.join(__dirname, '..');
const TEMPLATE_DIR = path.join(ROOT, 'templates', 'paved-service');
const TEMPLATE_FILE = path.join(TEMPLATE_DIR, 'template.yaml');
const GROUPS_FILE = path.join(ROOT, 'examples', 'groups.yaml');
const CRDS = path.join(ROOT, '..', 'crds');

/** The stored version's openAPIV3Schema of crds/<file>. */
function crdSchema(file) {
  const crd = YAML.parse(fs.readFileSync(path.join(CRDS, file), 'utf8'));
  const v = crd.spec.versions.find(x => x.storage) ?? crd.spec.versions[0];
  return v.schema.openAPIV3Schema;
}

/**
 * The template entity. `githubHost` points both repoUrl inputs (written for
 * git.example.com) at a stand-in; nothing else is changed.
 * @param {{githubHost?: string}} [options]
 */
function loadTemplate({ githubHost } = {}) {
  let text = fs.readFileSync(TEMPLATE_FILE, 'utf8');
  if (githubHost) text = text.replaceAll('git.example.com', githubHost);
  const template = YAML.parse(text);
  template.metadata.namespace = 'default';
  // As the catalog annotates a template read from disk: fetch:template's ./claims and
  // ./skeleton resolve against it.
  template.metadata.annotations = {
    ...template.metadata.annotations,
    'backstage.io/managed-by-location': `file:${TEMPLATE_FILE}`,
    'backstage.io/managed-by-origin-location': `file:${TEMPLATE_FILE}`,
  };
  return template;
}

/** The template directory as the dry-run API takes it. */
function templateDirectoryContents() {
  const out = [];
  const walk = dir => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else out.push({ path: path.relative(TEMPLATE_DIR, p), base64Content: fs.readFileSync(p).toString('base64') });
    }
  };
  walk(TEMPLATE_DIR);
  return out;
}

function loadGroups(file = GROUPS_FILE) {
  return YAML.parseAllDocuments(fs.readFileSync(file, 'utf8')).map(d => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
    return d.toJS();
  });
}

/** A free port on 127.0.0.1 (closed again at once; the backend takes it next). */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * A headless backend as the tests need it, listening on 127.0.0.1 only: the production
 * wiring of @backstage/backend-defaults (its HTTP router reads backend.listen, where the
 * test backend's listens on every interface), a quiet logger and `config` as the whole
 * root config. The real scheduler, as in production.
 *
 *   auth: 'mock' (default)  backend-test-utils' mock auth, httpAuth and userInfo: any
 *                           mockCredentials header is a signed-in user (`api` below)
 *         'production'      backend-defaults' own auth, httpAuth, userInfo and permissions
 *                           (plugin-to-plugin tokens signed with keys in the database);
 *                           callers use a static external-access token they configure
 *   auditor: 'none'         a no-op auditor (default with mock auth: the real auditor asks
 *                           httpAuth again after the Kubernetes proxy has put the cluster's
 *                           token in the Authorization header, and the mock httpAuth, which
 *                           keeps no per-request cache, fails quoting that token)
 *            'production'   backend-defaults' auditor (default with production auth)
 *   databaseDirectory       SQLite files there, kept across backends (default: in memory)
 *   rootLogger              a LoggerService to use as the root logger (default: mock, logLevel)
 * @returns {Promise<{backend: {stop(): Promise<void>}, port: number}>}
 */
async function startLoopbackBackend({
  features,
  config = {},
  logLevel = process.env.PAVED_BACKSTAGE_LOG ?? 'none',
  auth = 'mock',
  auditor = auth === 'mock' ? 'none' : 'production',
  databaseDirectory,
  rootLogger,
}) {
  const { createBackend } = require('@backstage/backend-defaults');
  const port = await freePort();
  const backend = createBackend();
  const backendConfig = {
    ...config.backend,
    baseUrl: `http://127.0.0.1:${port}`,
    listen: { host: '127.0.0.1', port },
    ...(databaseDirectory && { database: { client: 'better-sqlite3', connection: { directory: databaseDirectory } } }),
  };
  for (const f of [
    mockServices.rootConfig.factory({ data: { ...config, backend: backendConfig } }),
    rootLogger
      ? createServiceFactory({ service: coreServices.rootLogger, deps: {}, factory: () => rootLogger })
      : mockServices.rootLogger.factory({ level: logLevel }),
    ...(databaseDirectory ? [] : [mockServices.database.factory()]),
    ...(auditor === 'none'
      ? [
          createServiceFactory({
            service: coreServices.auditor,
            deps: {},
            factory: () => ({ createEvent: async () => ({ success: async () => {}, fail: async () => {} }) }),
          }),
        ]
      : []),
    ...(auth === 'mock' ? [mockServices.auth.factory(), mockServices.httpAuth.factory(), mockServices.userInfo.factory()] : []),
    ...features,
  ]) {
    backend.add(f);
  }
  await backend.start();
  return { backend, port };
}

/**
 * A root logger that keeps every line it is given (message, fields and errors, with their
 * stacks and causes), for tests that check what would reach a log.
 */
function capturingLogger() {
  const lines = [];
  const make = fields => {
    const log = level => (message, meta) => {
      lines.push(
        util.inspect({ level, message, fields, meta }, { depth: 20, breakLength: Infinity, showHidden: false, getters: true }) +
          (meta instanceof Error ? ` ${meta.stack} ${util.inspect(meta.cause, { depth: 20 })}` : ''),
      );
    };
    return {
      error: log('error'),
      warn: log('warn'),
      info: log('info'),
      debug: log('debug'),
      child: more => make({ ...fields, ...more }),
    };
  };
  return { logger: make({}), lines };
}

/** A signed-in user of the mock auth: `user:default/mock` unless another ref is given. */
const userHeaders = user => ({ 'content-type': 'application/json', authorization: mockCredentials.user.header(user) });

/**
 * @param {number} port
 * @param {string} method
 * @param {string} path_
 * @param {unknown} [body]
 * @param {{user?: string, headers?: Record<string, string>}} [as]  the caller: a mock user
 *   (default user:default/mock), or headers of its own
 */
async function api(port, method, path_, body, { user, headers } = {}) {
  const res = await fetch(`http://127.0.0.1:${port}${path_}`, {
    method,
    headers: headers ?? userHeaders(user),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = { text };
  }
  return { status: res.status, body: json };
}

/** POST /v2/dry-run with the template directory as it is on disk. */
function dryRun(port, template, values, { user } = {}) {
  return api(
    port,
    'POST',
    '/api/scaffolder/v2/dry-run',
    { template, values, secrets: {}, directoryContents: templateDirectoryContents() },
    { user },
  );
}

/**
 * Runs a template as a real task and waits for it to end.
 * @returns {Promise<{id: string, status: string, output: any, log: string[]}>}
 */
async function runTask(port, templateRef, values, { timeoutMs = 120000, user } = {}) {
  const created = await api(port, 'POST', '/api/scaffolder/v2/tasks', { templateRef, values }, { user });
  if (created.status !== 201) {
    throw new Error(`creating the task: ${created.status} ${JSON.stringify(created.body)}`);
  }
  const { id } = created.body;
  const end = Date.now() + timeoutMs;
  let task;
  for (;;) {
    task = (await api(port, 'GET', `/api/scaffolder/v2/tasks/${id}`, undefined, { user })).body;
    if (['completed', 'failed', 'cancelled'].includes(task.status)) break;
    if (Date.now() > end) throw new Error(`task ${id} still ${task.status} after ${timeoutMs} ms`);
    await new Promise(r => setTimeout(r, 200));
  }
  const events = (await api(port, 'GET', `/api/scaffolder/v2/tasks/${id}/events`, undefined, { user })).body;
  const list = Array.isArray(events) ? events : [];
  const log = list.map(e => e?.body?.message).filter(Boolean);
  // The rendered output travels in the completion event.
  const output = list.find(e => e?.type === 'completion')?.body?.output;
  return { id, status: task.status, output, log };
}

module.exports = {
  ROOT,
  TEMPLATE_DIR,
  TEMPLATE_FILE,
  GROUPS_FILE,
  loadTemplate,
  templateDirectoryContents,
  loadGroups,
  crdSchema,
  startLoopbackBackend,
  capturingLogger,
  api,
  dryRun,
  runTask,
};
