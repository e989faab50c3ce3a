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

// Beside examples/groups.yaml: teams the example does not have.
const extraGroups = [
  group('team-records', { 'paved.dev/system': 'records', 'paved.dev/cost-center': '7700', 'paved.dev/claims-directory': 'records-team' }),
  group('team-mars', { 'paved.dev/system': 'rover', 'paved.dev/cost-center': 'CC-1', 'paved.dev/default-cloud': 'mars' }),
  group('team-spaces', { 'paved.dev/system': 'Claims Platform', 'paved.dev/cost-center': 'CC-1' }),
];

function group(name, annotations) {
  return {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Group',
    metadata: { name, namespace: 'default', annotations },
    spec: { type: 'team', children: [] },
  };
}

let backend;
let port;
const template = loadTemplate();

before(async () => {
  ({ backend, port } = await startLoopbackBackend({
    features: [
      require('@backstage/plugin-scaffolder-backend'),
      require('@backstage/plugin-scaffolder-backend-module-github'),
      catalogServiceMock.factory({ entities: [...loadGroups(), ...extraGroups] }),
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
  const { status, body } = await dryRun(port, template, answers);
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
  assert.match(pr, /"branchName": "paved\/claims-intake-api"/);
});

test('a database and a Temporal namespace; the cloud from the team; classification as given', async () => {
  const { status, body } = await dryRun(port, template, {
    name: 'member-ledger',
    owner: 'group:default/team-members',
    dataClassification: 'phi',
    sloTier: 'gold',
    database: true,
    databaseSize: 'medium',
    databaseStorageGB: 50,
    temporal: true,
    temporalRetentionDays: 14,
  });
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
  const { status, body } = await dryRun(port, template, { ...answers, name: 'records-api', owner: 'group:default/team-records', cloud: undefined });
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
    const { status, body } = await dryRun(port, template, { ...answers, ...change });
    assert.equal(status, 400, `${JSON.stringify(change)} was accepted`);
    assert.ok(
      body.errors.some(e => e.property === property && e.name === name),
      `${JSON.stringify(change)}: expected ${name} on ${property}, got ${JSON.stringify(body.errors)}`,
    );
  }
  // A missing answer too.
  const { status, body } = await dryRun(port, template, { ...answers, dataClassification: undefined });
  assert.equal(status, 400);
  assert.ok(body.errors.some(e => e.name === 'required' && e.argument === 'dataClassification'), JSON.stringify(body.errors));
});

test('a team the platform has not set up for Paved is refused before anything is published', async () => {
  for (const owner of ['group:default/platform', 'group:default/team-spaces']) {
    const { status, body } = await dryRun(port, template, { ...answers, owner });
    assert.notEqual(status, 200, `${owner} was accepted`);
    assert.match(body.error?.message ?? '', /has no valid paved\.dev\/system and paved\.dev\/cost-center annotations/);
  }
  // A default cloud the CRD does not know is refused when it would be used...
  const mars = await dryRun(port, template, { ...answers, owner: 'group:default/team-mars', cloud: undefined });
  assert.notEqual(mars.status, 200);
  assert.match(mars.body.error?.message ?? '', /paved\.dev\/default-cloud/);
  // ...and does not matter when the developer picks a cloud.
  const picked = await dryRun(port, template, { ...answers, owner: 'group:default/team-mars', cloud: 'aws' });
  assert.equal(picked.status, 200, JSON.stringify(picked.body));
  assert.equal(docs(files(picked.body)['claims/claims-intake-api.yaml'])[0].spec.cloud, 'aws');
  // An owner that is not in the catalog at all.
  const nobody = await dryRun(port, template, { ...answers, owner: 'group:default/team-nobody' });
  assert.notEqual(nobody.status, 200);
});
