'use strict';
// The real scaffolder engine (plugin-scaffolder-backend in a headless backend, in-memory
// SQLite) renders the template through its dry-run API: five answers must give exactly
// the claim, and answers the CRD would refuse must be refused, naming the field.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const YAML = require('yaml');
const { validate } = require('jsonschema');
const { catalogServiceMock } = require('@backstage/plugin-catalog-node/testUtils');
const { loadTemplate, loadGroups, dryRun, crdSchema, startLoopbackBackend } = require('./support');

// Beside examples/groups.yaml: teams the example does not have, a member of them, and a
// service the Paved module already shows.
const extraGroups = [
  group('team-records', { 'paved.dev/system': 'records', 'paved.dev/cost-center': '7700', 'paved.dev/claims-directory': 'records-team' }),
  group('team-mars', { 'paved.dev/system': 'rover', 'paved.dev/cost-center': 'CC-1', 'paved.dev/default-cloud': 'mars' }),
  group('team-spaces', { 'paved.dev/system': 'Claims Platform', 'paved.dev/cost-center': 'CC-1' }),
  {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'User',
    metadata: { name: 'rae', namespace: 'default' },
    spec: { memberOf: ['team-records', 'team-mars', 'team-spaces'] },
  },
  {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Resource',
    metadata: { name: 'claims-existing-api', namespace: 'default' },
    spec: { type: 'paved-service', owner: 'group:default/team-claims' },
  },
];

function group(name, annotations) {
  return {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Group',
    metadata: { name, namespace: 'default', annotations },
    spec: { type: 'team', children: [] },
  };
}

/**
 * The memberOf relations the catalog's processing gives a User (from its spec.memberOf and
 * the Groups' spec.members): the mock catalog serves entities as given. task-run.test.js
 * has the real catalog compute them.
 */
function withMembership(entities) {
  const ref = (kind, name) => `${kind}:default/${String(name).replace(/^(user|group):(default\/)?/, '')}`;
  const memberOf = new Map();
  for (const e of entities) {
    if (e.kind === 'User') for (const g of e.spec?.memberOf ?? []) memberOf.set(`${ref('user', e.metadata.name)}|${ref('group', g)}`, true);
    if (e.kind === 'Group') for (const u of e.spec?.members ?? []) memberOf.set(`${ref('user', u)}|${ref('group', e.metadata.name)}`, true);
  }
  return entities.map(e => ({
    ...e,
    metadata: { namespace: 'default', ...e.metadata },
    relations:
      e.kind === 'User'
        ? [...memberOf.keys()].filter(k => k.startsWith(`${ref('user', e.metadata.name)}|`)).map(k => ({ type: 'memberOf', targetRef: k.split('|')[1] }))
        : [],
  }));
}

const ALICE = 'user:default/alice'; // team-claims
const BOB = 'user:default/bob'; // team-members
const PAT = 'user:default/pat'; // platform
const RAE = 'user:default/rae'; // team-records, team-mars, team-spaces

let backend;
let port;
const template = loadTemplate();

before(async () => {
  ({ backend, port } = await startLoopbackBackend({
    features: [
      require('@backstage/plugin-scaffolder-backend'),
      require('@backstage/plugin-scaffolder-backend-module-github'),
      catalogServiceMock.factory({ entities: withMembership([...loadGroups(), ...extraGroups]) }),
    ],
    config: {
      // The publish actions check their host even in a dry run; nothing listens here.
      integrations: { github: [{ host: 'git.example.com', apiBaseUrl: 'http://127.0.0.1:9/api/v3', token: 'unused' }] },
    },
  }));
});

after(async () => {
  await backend?.stop();
});

const answers = {
  name: 'claims-intake-api',
  owner: 'group:default/team-claims',
  cloud: 'local',
  dataClassification: 'internal',
  sloTier: 'silver',
};

/** The files the dry run wrote, by path. */
function files(body) {
  return Object.fromEntries(
    body.directoryContents.map(f => [f.path, Buffer.from(f.base64Content, 'base64').toString('utf8')]),
  );
}

function docs(text) {
  return YAML.parseAllDocuments(text).map(d => {
    assert.deepEqual(d.errors, [], 'rendered YAML must parse');
    return d.toJS();
  });
}

/** jsonschema reads the structural schema; nullable and x-kubernetes-* it ignores. */
function assertAcceptedByCrd(obj, crdFile) {
  const r = validate(obj, crdSchema(crdFile));
  assert.deepEqual(r.errors.map(e => e.stack), [], `${obj.kind} ${obj.metadata.name} against ${crdFile}`);
}

test('five answers give exactly the ServiceClaim', async () => {
  const { status, body } = await dryRun(port, template, answers, { user: ALICE });
  assert.equal(status, 200, JSON.stringify(body));
  const out = files(body);
  assert.deepEqual(Object.keys(out).sort(), ['claims/claims-intake-api.yaml', 'service/README.md', 'service/catalog-info.yaml']);
  const claims = docs(out['claims/claims-intake-api.yaml']);
  assert.deepEqual(claims, [
    {
      apiVersion: 'paved.dev/v1alpha1',
      kind: 'ServiceClaim',
      metadata: { name: 'claims-intake-api', annotations: { 'argocd.argoproj.io/sync-wave': '0' } },
      spec: {
        owner: 'team-claims',
        system: 'claims-platform',
        cloud: 'local',
        dataClassification: 'internal',
        sloTier: 'silver',
        costCenter: 'CC-4410',
      },
    },
  ]);
  assertAcceptedByCrd(claims[0], 'paved.dev_serviceclaims.yaml');
  assert.deepEqual(docs(out['service/catalog-info.yaml']), [
    {
      apiVersion: 'backstage.io/v1alpha1',
      kind: 'Component',
      metadata: {
        name: 'claims-intake-api',
        description: 'claims-intake-api, on Paved',
        annotations: {
          'backstage.io/kubernetes-label-selector': 'paved.dev/service=claims-intake-api',
          'backstage.io/kubernetes-namespace': 'claims-intake-api',
          'argocd/app-name': 'team-claims',
          'github.com/project-slug': 'services/claims-intake-api',
        },
      },
      spec: {
        type: 'service',
        lifecycle: 'experimental',
        owner: 'group:default/team-claims',
        system: 'claims-platform',
        dependsOn: ['resource:default/claims-intake-api'],
      },
    },
  ]);
  // The pull request goes to the directory Application team-claims syncs.
  const pr = body.log.map(l => l.body.message).find(m => /publish:github:pull-request in dry-run mode/.test(m ?? ''));
  assert.match(pr, /"targetPath": "teams\/claims"/);
  // A branch of this task's own: never one an earlier request opened.
  assert.match(pr, /"branchName": "paved\/claims-intake-api-[0-9a-zA-Z-]{8,}"/);
  // The requester, in the commit and the description.
  assert.match(pr, /"commitMessage": "Paved: claim claims-intake-api for team-claims, requested by user:default\/alice"/);
  assert.match(pr, /requested by \| `user:default\/alice`/);
});

test('a database and a Temporal namespace; the cloud from the team; classification as given', async () => {
  const { status, body } = await dryRun(
    port,
    template,
    {
      name: 'member-ledger',
      owner: 'group:default/team-members',
      dataClassification: 'phi',
      sloTier: 'gold',
      database: true,
      databaseSize: 'medium',
      databaseStorageGB: 50,
      temporal: true,
      temporalRetentionDays: 14,
    },
    { user: BOB },
  );
  assert.equal(status, 200, JSON.stringify(body));
  const out = files(body);
  const claims = docs(out['claims/member-ledger.yaml']);
  const wave1 = { 'argocd.argoproj.io/sync-wave': '1', 'argocd.argoproj.io/sync-options': 'SkipDryRunOnMissingResource=true' };
  assert.deepEqual(claims, [
    {
      apiVersion: 'paved.dev/v1alpha1',
      kind: 'ServiceClaim',
      metadata: { name: 'member-ledger', annotations: { 'argocd.argoproj.io/sync-wave': '0' } },
      spec: {
        owner: 'team-members',
        system: 'member-portal',
        cloud: 'local', // team-members' paved.dev/default-cloud
        dataClassification: 'phi',
        sloTier: 'gold',
        costCenter: 'CC-5120',
      },
    },
    {
      apiVersion: 'paved.dev/v1alpha1',
      kind: 'PostgreSQLInstance',
      metadata: { name: 'main', namespace: 'member-ledger', annotations: wave1 },
      spec: { parameters: { size: 'medium', storageGB: 50 }, writeConnectionSecretToRef: { name: 'main-connection' } },
    },
    {
      apiVersion: 'paved.dev/v1alpha1',
      kind: 'TemporalNamespace',
      metadata: { name: 'main', namespace: 'member-ledger', annotations: wave1 },
      spec: { retentionDays: 14 },
    },
  ]);
  assertAcceptedByCrd(claims[0], 'paved.dev_serviceclaims.yaml');
  assertAcceptedByCrd(claims[1], 'paved.dev_postgresqlinstances.yaml');
  assertAcceptedByCrd(claims[2], 'paved.dev_temporalnamespaces.yaml');
  const component = docs(out['service/catalog-info.yaml'])[0];
  assert.deepEqual(component.spec.dependsOn, [
    'resource:default/member-ledger',
    'resource:member-ledger/main',
    'resource:member-ledger/temporal-main',
  ]);
  assert.equal(component.metadata.annotations['argocd/app-name'], 'team-members');
});

test('no cloud anywhere: the claim names none (the operator default); a numeric cost center stays a string; claims-directory is honoured', async () => {
  const { status, body } = await dryRun(port, template, { ...answers, name: 'records-api', owner: 'group:default/team-records', cloud: undefined }, { user: RAE });
  assert.equal(status, 200, JSON.stringify(body));
  const [claim] = docs(files(body)['claims/records-api.yaml']);
  assert.deepEqual(claim.spec, {
    owner: 'team-records',
    system: 'records',
    dataClassification: 'internal',
    sloTier: 'silver',
    costCenter: '7700',
  });
  assertAcceptedByCrd(claim, 'paved.dev_serviceclaims.yaml');
  const pr = body.log.map(l => l.body.message).find(m => /publish:github:pull-request in dry-run mode/.test(m ?? ''));
  assert.match(pr, /"targetPath": "teams\/records-team"/);
  assert.equal(docs(files(body)['service/catalog-info.yaml'])[0].metadata.annotations['argocd/app-name'], 'team-records-team');
});

test('answers the CRD would refuse are refused, naming the field', async () => {
  const cases = [
    [{ name: 'Bad_Name' }, 'instance.name', 'pattern'],
    [{ name: 'kube-tools' }, 'instance.name', 'pattern'],
    [{ name: 'default' }, 'instance.name', 'pattern'],
    [{ name: 'svc-' }, 'instance.name', 'pattern'],
    [{ name: 'a'.repeat(64) }, 'instance.name', 'maxLength'],
    [{ owner: 'user:default/alice' }, 'instance.owner', 'pattern'],
    [{ cloud: 'mars' }, 'instance.cloud', 'enum'],
    [{ dataClassification: 'secret' }, 'instance.dataClassification', 'enum'],
    [{ sloTier: 'platinum' }, 'instance.sloTier', 'enum'],
    [{ database: true, databaseSize: 'huge', databaseStorageGB: 20 }, 'instance.databaseSize', 'enum'],
    [{ database: true, databaseSize: 'small', databaseStorageGB: 4 }, 'instance.databaseStorageGB', 'minimum'],
    [{ temporal: true, temporalRetentionDays: 4000 }, 'instance.temporalRetentionDays', 'maximum'],
  ];
  for (const [change, property, name] of cases) {
    const { status, body } = await dryRun(port, template, { ...answers, ...change }, { user: ALICE });
    assert.equal(status, 400, `${JSON.stringify(change)} was accepted`);
    assert.ok(
      body.errors.some(e => e.property === property && e.name === name),
      `${JSON.stringify(change)}: expected ${name} on ${property}, got ${JSON.stringify(body.errors)}`,
    );
  }
  // A missing answer too.
  const { status, body } = await dryRun(port, template, { ...answers, dataClassification: undefined }, { user: ALICE });
  assert.equal(status, 400);
  assert.ok(body.errors.some(e => e.name === 'required' && e.argument === 'dataClassification'), JSON.stringify(body.errors));
});

const escapeRe = t => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/**
 * A check step's refusal, whole: the scaffolder reports the file the check could not
 * rename, whose name is the refusal.
 */
const refusal = text => new RegExp(`^ENOENT: no such file or directory, lstat '/[^']*/dry-run-[^/']+/${escapeRe(text)}'$`);

const notMember = (user, owner) =>
  refusal(`${user} is not a member of ${owner} in the catalog, nor of the platform group; only the team's members open claims for it`);

/**
 * A refused dry run: the task failed (500) with exactly this refusal, and rendered nothing.
 * (A failed dry run returns only the error; that nothing reaches GitHub when a real task
 * is refused is task-run.test.js's.)
 */
function assertRefused(res, message) {
  assert.equal(res.status, 500, JSON.stringify(res.body).slice(0, 2000));
  assert.equal(res.body.error?.name, 'Error', JSON.stringify(res.body.error));
  assert.match(res.body.error?.message ?? '', message);
  assert.equal(res.body.directoryContents, undefined);
}

test('only members of the owner team (or the platform group) may open its claim', async () => {
  // Bob is in team-members, not team-claims.
  const bob = await dryRun(port, template, answers, { user: BOB });
  assertRefused(bob, notMember('user:default/bob', 'group:default/team-claims'));
  // A signed-in user the catalog has no User entity for (the mock user): refused too.
  const unknown = await dryRun(port, template, answers, { user: 'user:default/mallory' });
  assertRefused(unknown, notMember('user:default/mallory', 'group:default/team-claims'));
  // Alice is (the five-answers test), and so is the platform group (Pat), for any team.
  const pat = await dryRun(port, template, answers, { user: PAT });
  assert.equal(pat.status, 200, JSON.stringify(pat.body));
  const pr = pat.body.log.map(l => l.body.message).find(m => /publish:github:pull-request in dry-run mode/.test(m ?? ''));
  assert.match(pr, /requested by user:default\/pat/);
});

test('a name the catalog already shows as a Paved service is refused, never overwritten', async () => {
  const res = await dryRun(port, template, { ...answers, name: 'claims-existing-api' }, { user: ALICE });
  assertRefused(
    res,
    refusal('service claims-existing-api already exists (resource:default/claims-existing-api in the catalog, owned by group:default/team-claims); choose another name'),
  );
});

test('a team the platform has not set up for Paved is refused before anything is published', async () => {
  const unprepared = owner =>
    refusal(
      `team ${owner} has no valid paved.dev/system and paved.dev/cost-center annotations, ` +
        'or a paved.dev/default-cloud or paved.dev/claims-directory Paved does not accept; ask the platform team',
    );
  for (const [owner, user] of [['group:default/platform', PAT], ['group:default/team-spaces', RAE]]) {
    assertRefused(await dryRun(port, template, { ...answers, owner }, { user }), unprepared(owner));
  }
  // A default cloud the CRD does not know is refused when it would be used...
  const mars = await dryRun(port, template, { ...answers, owner: 'group:default/team-mars', cloud: undefined }, { user: RAE });
  assertRefused(mars, unprepared('group:default/team-mars'));
  // ...and does not matter when the developer picks a cloud.
  const picked = await dryRun(port, template, { ...answers, owner: 'group:default/team-mars', cloud: 'aws' }, { user: RAE });
  assert.equal(picked.status, 200, JSON.stringify(picked.body));
  assert.equal(docs(files(picked.body)['claims/claims-intake-api.yaml'])[0].spec.cloud, 'aws');
  // An owner that is not in the catalog at all: nobody is its member...
  const nobody = await dryRun(port, template, { ...answers, owner: 'group:default/team-nobody' }, { user: ALICE });
  assertRefused(nobody, notMember('user:default/alice', 'group:default/team-nobody'));
  // ...and for the platform group, the catalog has no such team.
  const platform = await dryRun(port, template, { ...answers, owner: 'group:default/team-nobody' }, { user: PAT });
  assertRefused(platform, /^Entity group:default\/team-nobody not found$/);
});
