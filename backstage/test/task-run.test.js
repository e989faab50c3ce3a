'use strict';
// The template as a real scaffolder task: the real catalog backend reads the template and
// the example Groups from disk, publish:github:pull-request opens the claims pull request
// and publish:github creates the service repository against a loopback GitHub stand-in
// over real git repositories, and catalog:register makes the catalog read the new
// repository's catalog-info.yaml back through the GitHub URL reader.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const YAML = require('yaml');
const { startFakeGithub } = require('./fake-github');
const { GROUPS_FILE, TEMPLATE_FILE, api, runTask, startLoopbackBackend } = require('./support');

const EXISTING_FILE = path.join(__dirname, 'fixtures', 'existing-service.yaml');
const ALICE = 'user:default/alice'; // examples/groups.yaml: team-claims
const BOB = 'user:default/bob'; // team-members
const PAT = 'user:default/pat'; // platform

const TOKEN = 'ghp_fake_token_for_tests';
let tmp;
let gh;
let backend;
let port;
let mainBefore;

async function waitFor(what, fn, timeoutMs = 60000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise(r => setTimeout(r, 250));
  }
}

const entity = async ref => {
  const [kind, rest] = ref.split(':');
  const [ns, name] = rest.split('/');
  const r = await api(port, 'GET', `/api/catalog/entities/by-name/${kind}/${ns}/${name}`);
  return r.status === 200 ? r.body : undefined;
};

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'paved-task-'));
  gh = await startFakeGithub({ root: path.join(tmp, 'git'), token: TOKEN });
  mainBefore = gh.createRepo('platform', 'claims', {
    'README.md': 'claims\n',
    'teams/claims/claims-older-api.yaml': 'kind: ServiceClaim\n',
  });
  ({ backend, port } = await startLoopbackBackend({
    features: [
      require('@backstage/plugin-catalog-backend'),
      require('@backstage/plugin-catalog-backend-module-scaffolder-entity-model'),
      require('@backstage/plugin-scaffolder-backend'),
      require('@backstage/plugin-scaffolder-backend-module-github'),
    ],
    config: {
      // The template's host, served by the stand-in: nothing leaves the machine.
      integrations: { github: [{ host: 'git.example.com', apiBaseUrl: gh.apiBaseUrl, token: TOKEN }] },
      scaffolder: { defaultAuthor: { name: 'Backstage', email: 'backstage@example.com' } },
      catalog: {
        rules: [{ allow: ['Component', 'Location'] }],
        locations: [
          { type: 'file', target: GROUPS_FILE, rules: [{ allow: ['Group', 'User'] }] },
          { type: 'file', target: TEMPLATE_FILE, rules: [{ allow: ['Template'] }] },
          // What the Paved module would show for a claim already on a cluster.
          { type: 'file', target: EXISTING_FILE, rules: [{ allow: ['Resource'] }] },
        ],
      },
    },
  }));
  // The Users with their memberOf relations, as the catalog's processing makes them.
  const member = async (user, group) =>
    (await entity(user))?.relations?.some(r => r.type === 'memberOf' && r.targetRef === group);
  await waitFor(
    'the template, the teams, their members and the existing service in the catalog',
    async () =>
      (await entity('template:default/paved-service')) &&
      (await entity('group:default/team-claims')) &&
      (await entity('resource:default/claims-existing-api')) &&
      (await member(ALICE, 'group:default/team-claims')) &&
      (await member(BOB, 'group:default/team-members')) &&
      (await member(PAT, 'group:default/platform')),
  );
});

after(async () => {
  await backend?.stop();
  await gh?.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('five answers and a database from a member of the team: a claims pull request, a service repository, a catalog entry', async () => {
  const task = await runTask(
    port,
    'template:default/paved-service',
    {
      name: 'claims-intake-api',
      owner: 'group:default/team-claims',
      cloud: 'local',
      dataClassification: 'internal',
      sloTier: 'silver',
      database: true,
      databaseSize: 'small',
      databaseStorageGB: 10,
    },
    { user: ALICE },
  );
  assert.equal(task.status, 'completed', task.log.join('\n'));

  // The pull request: a head branch of this task's own on the claims repository, against main.
  const head = `paved/claims-intake-api-${task.id}`;
  assert.deepEqual(
    gh.pulls.map(({ owner, repo, number, head, base, title }) => ({ owner, repo, number, head, base, title })),
    [{ owner: 'platform', repo: 'claims', number: 1, head, base: 'main', title: 'Paved: new service claims-intake-api' }],
  );
  assert.match(gh.pulls[0].body, /\| cloud \| `local` \|/);
  assert.match(gh.pulls[0].body, /^Opened from Backstage \(template paved-service\) for `user:default\/alice`\./);
  assert.match(gh.pulls[0].body, /\| requested by \| `user:default\/alice` /);
  const links = Object.fromEntries(task.output.links.map(l => [l.title, l.url ?? l.entityRef]));
  assert.equal(links['Claims pull request'], 'https://git.example.com/platform/claims/pull/1');

  // The branch: main plus one commit adding exactly the claim file, in teams/claims/.
  const branch = `refs/heads/${head}`;
  assert.equal(gh.git('platform', 'claims', 'rev-parse', 'refs/heads/main'), mainBefore, 'main must not move');
  assert.equal(gh.git('platform', 'claims', 'rev-parse', `${branch}^`), mainBefore);
  assert.deepEqual(gh.git('platform', 'claims', 'ls-tree', '-r', '--name-only', branch).split('\n'), [
    'README.md',
    'teams/claims/claims-intake-api.yaml',
    'teams/claims/claims-older-api.yaml',
  ]);
  assert.equal(gh.git('platform', 'claims', 'log', '-1', '--format=%an <%ae>|%s', branch), 'Backstage <backstage@example.com>|Paved: claim claims-intake-api for team-claims, requested by user:default/alice');
  const claims = YAML.parseAllDocuments(gh.git('platform', 'claims', 'show', `${branch}:teams/claims/claims-intake-api.yaml`)).map(d => d.toJS());
  assert.deepEqual(claims, [
    {
      apiVersion: 'paved.dev/v1alpha1',
      kind: 'ServiceClaim',
      metadata: { name: 'claims-intake-api', annotations: { 'argocd.argoproj.io/sync-wave': '0' } },
      spec: { owner: 'team-claims', system: 'claims-platform', cloud: 'local', dataClassification: 'internal', sloTier: 'silver', costCenter: 'CC-4410' },
    },
    {
      apiVersion: 'paved.dev/v1alpha1',
      kind: 'PostgreSQLInstance',
      metadata: {
        name: 'main',
        namespace: 'claims-intake-api',
        annotations: { 'argocd.argoproj.io/sync-wave': '1', 'argocd.argoproj.io/sync-options': 'SkipDryRunOnMissingResource=true' },
      },
      spec: { parameters: { size: 'small', storageGB: 10 }, writeConnectionSecretToRef: { name: 'main-connection' } },
    },
  ]);

  // The service repository: created private, pushed over git's smart HTTP, main protected.
  assert.deepEqual(gh.repos, [{ owner: 'services', name: 'claims-intake-api', private: true, visibility: 'private' }]);
  assert.deepEqual(gh.git('services', 'claims-intake-api', 'ls-tree', '-r', '--name-only', 'main').split('\n'), ['README.md', 'catalog-info.yaml']);
  assert.deepEqual(gh.protections.map(p => `${p.owner}/${p.repo}@${p.branch}`), ['services/claims-intake-api@main']);

  // Registered: the catalog read catalog-info.yaml from the new repository.
  const component = await waitFor('component:default/claims-intake-api in the catalog', () => entity('component:default/claims-intake-api'));
  assert.equal(component.spec.owner, 'group:default/team-claims');
  assert.equal(component.spec.system, 'claims-platform');
  assert.deepEqual([...component.spec.dependsOn].sort(), ['resource:claims-intake-api/main', 'resource:default/claims-intake-api']);
  assert.equal(component.metadata.annotations['backstage.io/kubernetes-label-selector'], 'paved.dev/service=claims-intake-api');
  assert.equal(component.metadata.annotations['backstage.io/kubernetes-namespace'], 'claims-intake-api');
  assert.equal(component.metadata.annotations['argocd/app-name'], 'team-claims');
  assert.equal(links['Open in catalog'], 'component:default/claims-intake-api');
});

/** A task refused by a check: failed with exactly `refusal` in its log, no call reached GitHub. */
async function assertRefusedTask(values, user, refusal) {
  const calls = gh.calls.length;
  const pulls = gh.pulls.length;
  const repos = gh.repos.length;
  const task = await runTask(port, 'template:default/paved-service', values, { user });
  assert.equal(task.status, 'failed', task.log.join('\n'));
  assert.ok(task.log.some(l => l.includes(`/${refusal}'`)), `expected the refusal "${refusal}" in:\n${task.log.join('\n')}`);
  assert.deepEqual(gh.calls.slice(calls), [], 'no call may reach GitHub');
  assert.equal(gh.pulls.length, pulls);
  assert.equal(gh.repos.length, repos);
  return task;
}

const answers = name => ({ name, owner: 'group:default/team-claims', cloud: 'local', dataClassification: 'internal', sloTier: 'silver' });

test('a developer outside the owner team: the task fails before anything is published', async () => {
  // Bob is in team-members; the form would let him pick team-claims.
  await assertRefusedTask(
    answers('claims-bob-api'),
    BOB,
    "user:default/bob is not a member of group:default/team-claims in the catalog, nor of the platform group; only the team's members open claims for it",
  );
  // A signed-in user without a User entity in the catalog.
  await assertRefusedTask(
    answers('claims-ghost-api'),
    'user:default/ghost',
    "user:default/ghost is not a member of group:default/team-claims in the catalog, nor of the platform group; only the team's members open claims for it",
  );
});

test('a name the catalog already shows as a service: the task fails, the claim is not overwritten', async () => {
  await assertRefusedTask(
    answers('claims-existing-api'),
    ALICE,
    'service claims-existing-api already exists (resource:default/claims-existing-api in the catalog, owned by group:default/team-claims); choose another name',
  );
});

test('a team without Paved annotations: the task fails and nothing is published', async () => {
  // Pat is in the platform group, so may act for any team; platform is not a Paved team.
  await assertRefusedTask(
    { ...answers('platform-tools'), owner: 'group:default/platform' },
    PAT,
    'team group:default/platform has no valid paved.dev/system and paved.dev/cost-center annotations, ' +
      'or a paved.dev/default-cloud or paved.dev/claims-directory Paved does not accept; ask the platform team',
  );
});

test('the stand-in refuses requests without the token', async () => {
  const res = await fetch(`${gh.apiBaseUrl}/repos/platform/claims`);
  assert.equal(res.status, 401);
  const bad = await fetch(`${gh.apiBaseUrl}/repos/platform/claims`, { headers: { authorization: 'token wrong' } });
  assert.equal(bad.status, 401);
});
