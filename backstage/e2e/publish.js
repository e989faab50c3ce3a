#!/usr/bin/env node
'use strict';
// Runs the paved-service template as a real scaffolder task and writes the files of the
// claims pull request it opened into a directory, for a test that applies them to a
// real cluster (e2e/tests/backstage.rs). Not part of `npm test`.
//
//   node backstage/e2e/publish.js --out DIR --name NAME [--owner group:default/team-claims]
//        [--cloud local] [--classification internal] [--tier silver]
//        [--database SIZE:STORAGE_GB] [--temporal RETENTION_DAYS] [--groups FILE]
//        [--user user:default/NAME]
//
// --user is the signed-in requester (the template lets only the owner team's members, or
// the platform group's, open its claim). Default: the first User in the Groups file that
// is a member of --owner (spec.memberOf, or the Group's spec.members); e.g.
// user:default/alice for team-claims in backstage/examples/groups.yaml.
//
// What runs, all on 127.0.0.1: a Backstage backend (the real catalog, scaffolder and
// GitHub actions, in-memory SQLite) that reads the template and the Groups and Users
// (default backstage/examples/groups.yaml) from disk, and the loopback GitHub stand-in
// (test/fake-github.js) over real git repositories in a temporary directory: the claims
// repository platform/claims, and the service repository the template creates.
//
// Output: DIR/<path in the claims repository> for every file the pull request adds
// (e.g. DIR/teams/claims/NAME.yaml, with the ServiceClaim and, when asked, the
// PostgreSQLInstance and TemporalNamespace in the service's namespace: apply the
// ServiceClaim first; the others need its namespace).
//
// stdout: one JSON object per line, nothing else:
//   {"event":"backend","port":N}
//   {"event":"task","id":"…","status":"completed"}
//   {"event":"pull-request","repo":"platform/claims","number":1,"head":"paved/NAME-TASK_ID","base":"main","url":"…"}
//   {"event":"file","path":"teams/claims/NAME.yaml","written":"/abs/DIR/teams/claims/NAME.yaml"}
//   {"event":"done"}
// On failure: {"event":"error","message":"…"} (with the task log on stderr) and exit 1.
// Exit 2: bad arguments. Everything it started is stopped before it exits.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');
const { parseArgs } = require('node:util');

const emit = obj => process.stdout.write(`${JSON.stringify(obj)}\n`);
// stdout carries only the JSON lines: the backend's log (PAVED_BACKSTAGE_LOG, default warn) goes to stderr.
console.log = (...a) => console.error(...a);
console.info = console.log;
process.env.PAVED_BACKSTAGE_LOG ??= 'warn';

function usage(message) {
  process.stderr.write(`publish.js: ${message}\nusage: publish.js --out DIR --name NAME [--owner REF] [--cloud C] [--classification C] [--tier T] [--database SIZE:GB] [--temporal DAYS] [--groups FILE] [--user REF]\n`);
  process.exit(2);
}

/** The first User in `entities` that is a member of Group `owner` (an entity ref). */
function memberOf(entities, owner) {
  const name = String(owner).replace(/^group:default\//, '');
  const group = entities.find(e => e?.kind === 'Group' && e.metadata?.name === name);
  const listed = new Set((group?.spec?.members ?? []).map(m => String(m).replace(/^user:(default\/)?/, '')));
  const user = entities.find(
    e =>
      e?.kind === 'User' &&
      ((e.spec?.memberOf ?? []).some(g => String(g).replace(/^group:(default\/)?/, '') === name) || listed.has(e.metadata?.name)),
  );
  return user && `user:default/${user.metadata.name}`;
}

async function main() {
  let args;
  try {
    ({ values: args } = parseArgs({
      options: {
        out: { type: 'string' },
        name: { type: 'string' },
        owner: { type: 'string', default: 'group:default/team-claims' },
        cloud: { type: 'string', default: 'local' },
        classification: { type: 'string', default: 'internal' },
        tier: { type: 'string', default: 'silver' },
        database: { type: 'string' },
        temporal: { type: 'string' },
        groups: { type: 'string' },
        user: { type: 'string' },
      },
      strict: true,
    }));
  } catch (e) {
    usage(e.message);
  }
  if (!args.out) usage('--out DIR is required');
  if (!args.name) usage('--name NAME is required');
  const values = {
    name: args.name,
    owner: args.owner,
    cloud: args.cloud || undefined,
    dataClassification: args.classification,
    sloTier: args.tier,
  };
  if (args.database) {
    const [size, gb] = args.database.split(':');
    if (!size || !/^\d+$/.test(gb ?? '')) usage('--database takes SIZE:STORAGE_GB, e.g. small:10');
    Object.assign(values, { database: true, databaseSize: size, databaseStorageGB: Number(gb) });
  }
  if (args.temporal) {
    if (!/^\d+$/.test(args.temporal)) usage('--temporal takes the retention in days');
    Object.assign(values, { temporal: true, temporalRetentionDays: Number(args.temporal) });
  }

  const support = require('../test/support');
  const { startFakeGithub } = require('../test/fake-github');
  const groupsFile = path.resolve(args.groups ?? support.GROUPS_FILE);
  const user = args.user ?? memberOf(support.loadGroups(groupsFile), values.owner);
  if (!user) usage(`no User in ${groupsFile} is a member of ${values.owner}; pass --user`);
  if (!/^user:[a-z0-9-]+\/[A-Za-z0-9._-]+$/.test(user)) usage(`--user takes an entity ref, e.g. user:default/alice; got ${user}`);
  const out = path.resolve(args.out);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'paved-publish-'));
  // A token of this run only: the stand-in refuses anything else.
  const token = crypto.randomBytes(20).toString('hex');
  let gh;
  let backend;
  try {
    gh = await startFakeGithub({ root: path.join(tmp, 'git'), token });
    const main = gh.createRepo('platform', 'claims', { 'README.md': 'Paved claims\n' });
    let port;
    ({ backend, port } = await support.startLoopbackBackend({
      features: [
        require('@backstage/plugin-catalog-backend'),
        require('@backstage/plugin-catalog-backend-module-scaffolder-entity-model'),
        require('@backstage/plugin-scaffolder-backend'),
        require('@backstage/plugin-scaffolder-backend-module-github'),
      ],
      config: {
        integrations: { github: [{ host: 'git.example.com', apiBaseUrl: gh.apiBaseUrl, token }] },
        scaffolder: { defaultAuthor: { name: 'Backstage', email: 'backstage@example.com' } },
        catalog: {
          rules: [{ allow: ['Component', 'Location'] }],
          locations: [
            { type: 'file', target: groupsFile, rules: [{ allow: ['Group', 'User'] }] },
            { type: 'file', target: support.TEMPLATE_FILE, rules: [{ allow: ['Template'] }] },
          ],
        },
      },
    }));
    emit({ event: 'backend', port });

    // The template, the owner Group and the requester with its memberOf relations (the
    // catalog processes them after it reads the file).
    const end = Date.now() + 60000;
    for (;;) {
      const t = await support.api(port, 'GET', '/api/catalog/entities/by-name/template/default/paved-service');
      const g = await support.api(port, 'GET', `/api/catalog/entities/by-name/group/default/${values.owner.split('/').pop()}`);
      const [uKind, uRest] = user.split(':');
      const u = await support.api(port, 'GET', `/api/catalog/entities/by-name/${uKind}/${uRest}`);
      const related = (u.body?.relations ?? []).some(r => r.type === 'memberOf');
      if (t.status === 200 && g.status === 200 && u.status === 200 && related) break;
      if (Date.now() > end) throw new Error(`the catalog did not load the template, ${values.owner} and ${user} from disk within 60 s`);
      await new Promise(r => setTimeout(r, 250));
    }

    const task = await support.runTask(port, 'template:default/paved-service', values, { user });
    emit({ event: 'task', id: task.id, status: task.status });
    if (task.status !== 'completed') {
      process.stderr.write(`${task.log.join('\n')}\n`);
      throw new Error(`the template task ${task.status}; its log is on stderr`);
    }
    if (gh.pulls.length !== 1) throw new Error(`expected one pull request, the stand-in holds ${gh.pulls.length}`);
    const pr = gh.pulls[0];
    const link = task.output?.links?.find(l => l.title === 'Claims pull request')?.url;
    emit({ event: 'pull-request', repo: `${pr.owner}/${pr.repo}`, number: pr.number, head: pr.head, base: pr.base, url: link });
    if (pr.base !== 'main') throw new Error(`the pull request targets ${pr.base}, not main`);

    const head = `refs/heads/${pr.head}`;
    if (gh.git('platform', 'claims', 'rev-parse', `${head}^`) !== main) throw new Error('the pull request branch is not one commit on main');
    const changed = gh.git('platform', 'claims', 'diff', '--name-only', '--diff-filter=AM', main, head).split('\n').filter(Boolean);
    if (changed.length === 0) throw new Error('the pull request changes no file');
    for (const file of changed) {
      const dest = path.join(out, file);
      if (!dest.startsWith(out + path.sep)) throw new Error(`refusing to write ${file} outside ${out}`);
      fs.mkdirSync(path.dirname(dest), { recursive: true });
      fs.writeFileSync(dest, gh.git('platform', 'claims', 'show', `${head}:${file}`) + '\n');
      emit({ event: 'file', path: file, written: dest });
    }
    emit({ event: 'done' });
    return 0;
  } catch (e) {
    emit({ event: 'error', message: e instanceof Error ? e.message : String(e) });
    return 1;
  } finally {
    await backend?.stop().catch(() => {});
    await gh?.close().catch(() => {});
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().then(
  code => process.exit(code),
  e => {
    emit({ event: 'error', message: String(e?.message ?? e) });
    process.exit(1);
  },
);
