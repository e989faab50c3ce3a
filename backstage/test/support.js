'use strict';
// Shared by the tests and the e2e scripts: the template as the catalog would serve it,
// the example Groups, and small HTTP helpers for the scaffolder API.

const fs = require('node:fs');
const path = require('node:path');
const YAML = require('yaml');
const net = require('node:net');
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
 * test backend's listens on every interface), with backend-test-utils' mock auth, an
 * in-memory SQLite database, a quiet logger and `config` as the whole root config. The
 * real scheduler, as in production.
 * @returns {Promise<{backend: {stop(): Promise<void>}, port: number}>}
 */
async function startLoopbackBackend({ features, config = {}, logLevel = process.env.PAVED_BACKSTAGE_LOG ?? 'none' }) {
  const { createBackend } = require('@backstage/backend-defaults');
  const port = await freePort();
  const backend = createBackend();
  for (const f of [
    mockServices.rootConfig.factory({
      data: { ...config, backend: { baseUrl: `http://127.0.0.1:${port}`, listen: { host: '127.0.0.1', port } } },
    }),
    mockServices.rootLogger.factory({ level: logLevel }),
    mockServices.database.factory(),
    // The real auditor resolves the caller from the Authorization header, which the
    // Kubernetes proxy has already replaced with the cluster's token, and the mock auth
    // then fails quoting that token in the log. No audit trail is wanted here.
    createServiceFactory({
      service: coreServices.auditor,
      deps: {},
      factory: () => ({ createEvent: async () => ({ success: async () => {}, fail: async () => {} }) }),
    }),
    mockServices.auth.factory(),
    mockServices.httpAuth.factory(),
    mockServices.userInfo.factory(),
    ...features,
  ]) {
    backend.add(f);
  }
  await backend.start();
  return { backend, port };
}

const userHeaders = () => ({ 'content-type': 'application/json', authorization: mockCredentials.user.header() });

async function api(port, method, path_, body) {
  const res = await fetch(`http://127.0.0.1:${port}${path_}`, {
    method,
    headers: userHeaders(),
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
function dryRun(port, template, values) {
  return api(port, 'POST', '/api/scaffolder/v2/dry-run', {
    template,
    values,
    secrets: {},
    directoryContents: templateDirectoryContents(),
  });
}

/**
 * Runs a template as a real task and waits for it to end.
 * @returns {Promise<{id: string, status: string, output: any, log: string[]}>}
 */
async function runTask(port, templateRef, values, { timeoutMs = 120000 } = {}) {
  const created = await api(port, 'POST', '/api/scaffolder/v2/tasks', { templateRef, values });
  if (created.status !== 201) {
    throw new Error(`creating the task: ${created.status} ${JSON.stringify(created.body)}`);
  }
  const { id } = created.body;
  const end = Date.now() + timeoutMs;
  let task;
  for (;;) {
    task = (await api(port, 'GET', `/api/scaffolder/v2/tasks/${id}`)).body;
    if (['completed', 'failed', 'cancelled'].includes(task.status)) break;
    if (Date.now() > end) throw new Error(`task ${id} still ${task.status} after ${timeoutMs} ms`);
    await new Promise(r => setTimeout(r, 200));
  }
  const events = (await api(port, 'GET', `/api/scaffolder/v2/tasks/${id}/events`)).body;
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
  api,
  dryRun,
  runTask,
};
