'use strict';
// toEntities on fixtures shaped like the CRDs' status: what each claim looks like in the
// catalog, and that nothing unreadable, missing or stale ever shows as Ready.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const {
  DefaultNamespaceEntityPolicy,
  FieldFormatEntityPolicy,
  NoForeignRootFieldsEntityPolicy,
  SchemaValidEntityPolicy,
  EntityPolicies,
  resourceEntityV1alpha1Validator,
} = require('@backstage/catalog-model');
const { toEntities, condition, health, safeName } = require('../src/entities');

const cond = (type, status, reason, generation, message = '') => ({
  type,
  status,
  reason,
  message,
  observedGeneration: generation,
  lastTransitionTime: '2026-12-07T10:00:00Z',
});

const claim = (name, extra = {}) => ({
  apiVersion: 'paved.dev/v1alpha1',
  kind: 'ServiceClaim',
  metadata: { name, generation: 2, uid: `uid-${name}` },
  spec: { owner: 'team-claims', system: 'claims-platform', cloud: 'aws', dataClassification: 'phi', sloTier: 'silver', costCenter: 'CC-4410' },
  status: {
    observedGeneration: 2,
    namespace: name,
    cloud: 'aws',
    conditions: [cond('Ready', 'True', 'Available', 2, 'all resources ready'), cond('Synced', 'True', 'ReconcileSuccess', 2)],
  },
  ...extra,
});

const db = (namespace, name, status = {}, generation = 1) => ({
  apiVersion: 'paved.dev/v1alpha1',
  kind: 'PostgreSQLInstance',
  metadata: { name, namespace, generation },
  spec: { parameters: { size: 'small' } },
  status: {
    observedGeneration: generation,
    conditions: [cond('Ready', 'True', 'Available', generation), cond('Synced', 'True', 'ReconcileSuccess', generation)],
    endpoint: 'db.internal.example.com',
    port: 5432,
    provider: 'aws',
    region: 'us-east-1',
    engineVersion: '16.4',
    instanceClass: 'db.t4g.medium',
    storageGB: 20,
    estimatedMonthlyCost: 'USD 49.75',
    ...status,
  },
});

const byRef = result =>
  Object.fromEntries(result.entities.map(e => [`resource:${e.entity.metadata.namespace}/${e.entity.metadata.name}`, e.entity]));

const policy = EntityPolicies.allOf([
  new DefaultNamespaceEntityPolicy(),
  new NoForeignRootFieldsEntityPolicy(),
  new FieldFormatEntityPolicy(),
  new SchemaValidEntityPolicy(),
]);

/** Every entity must be one the catalog accepts. */
async function assertValid(result) {
  for (const { entity, locationKey } of result.entities) {
    assert.equal(locationKey, 'paved:paved');
    await policy.enforce(entity);
    assert.equal(await resourceEntityV1alpha1Validator.check(entity), true, JSON.stringify(entity));
  }
}

test('a Ready claim with a database and a Temporal namespace', async () => {
  const result = toEntities({
    clusters: [
      {
        name: 'prod',
        serviceClaims: { items: [claim('claims-eligibility-svc')] },
        postgresqlInstances: { items: [db('claims-eligibility-svc', 'main'), db('claims-eligibility-svc', 'audit', { estimatedMonthlyCost: 'USD 10.25' })] },
        temporalNamespaces: {
          items: [
            {
              metadata: { name: 'main', namespace: 'claims-eligibility-svc', generation: 1 },
              status: {
                observedGeneration: 1,
                conditions: [cond('Ready', 'True', 'Available', 1), cond('Synced', 'True', 'ReconcileSuccess', 1)],
                temporalNamespace: 'claims-eligibility-svc-main',
                frontendAddress: 'temporal.internal:7233',
                retentionDays: 30,
                state: 'Registered',
              },
            },
          ],
        },
      },
    ],
  });
  assert.deepEqual(result.warnings, []);
  await assertValid(result);
  const e = byRef(result);
  assert.deepEqual(Object.keys(e).sort(), [
    'resource:claims-eligibility-svc/audit',
    'resource:claims-eligibility-svc/main',
    'resource:claims-eligibility-svc/temporal-main',
    'resource:default/claims-eligibility-svc',
  ]);
  assert.deepEqual(e['resource:default/claims-eligibility-svc'], {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Resource',
    metadata: {
      name: 'claims-eligibility-svc',
      namespace: 'default',
      title: 'claims-eligibility-svc',
      description: 'Paved ServiceClaim claims-eligibility-svc on cluster prod',
      annotations: {
        'backstage.io/managed-by-location': 'paved:paved',
        'backstage.io/managed-by-origin-location': 'paved:paved',
        'backstage.io/kubernetes-label-selector': 'paved.dev/service=claims-eligibility-svc',
        'backstage.io/kubernetes-namespace': 'claims-eligibility-svc',
        'paved.dev/cluster': 'prod',
        'paved.dev/kind': 'ServiceClaim',
        'paved.dev/name': 'claims-eligibility-svc',
        'paved.dev/ready': 'True',
        'paved.dev/ready-reason': 'Available',
        'paved.dev/synced': 'True',
        'paved.dev/synced-reason': 'ReconcileSuccess',
        'paved.dev/reason': 'Available',
        'paved.dev/message': 'all resources ready',
        'paved.dev/health': 'Healthy',
        'paved.dev/generation': '2',
        'paved.dev/service-namespace': 'claims-eligibility-svc',
        'paved.dev/cloud': 'aws',
        'paved.dev/data-classification': 'phi',
        'paved.dev/slo-tier': 'silver',
        'paved.dev/cost-center': 'CC-4410',
        'paved.dev/estimated-monthly-cost': 'USD 60.00',
      },
      tags: ['paved', 'aws', 'phi'],
    },
    spec: { type: 'paved-service', owner: 'group:default/team-claims', system: 'system:default/claims-platform' },
  });
  const main = e['resource:claims-eligibility-svc/main'];
  assert.deepEqual(main.spec, {
    type: 'database',
    owner: 'group:default/team-claims',
    system: 'system:default/claims-platform',
    dependencyOf: ['resource:default/claims-eligibility-svc'],
  });
  assert.equal(main.metadata.annotations['paved.dev/endpoint'], 'db.internal.example.com:5432');
  assert.equal(main.metadata.annotations['paved.dev/estimated-monthly-cost'], 'USD 49.75');
  assert.equal(main.metadata.annotations['paved.dev/ready'], 'True');
  assert.equal(main.metadata.annotations['paved.dev/connection-secret'], 'main-connection');
  assert.equal(main.metadata.annotations['backstage.io/kubernetes-namespace'], 'claims-eligibility-svc');
  assert.equal(
    main.metadata.annotations['backstage.io/kubernetes-label-selector'],
    'paved.dev/claim-kind=PostgreSQLInstance,paved.dev/claim-name=main',
  );
  const tn = e['resource:claims-eligibility-svc/temporal-main'];
  assert.equal(tn.spec.type, 'temporal-namespace');
  assert.deepEqual(tn.spec.dependencyOf, ['resource:default/claims-eligibility-svc']);
  assert.equal(tn.metadata.annotations['paved.dev/endpoint'], 'temporal.internal:7233/claims-eligibility-svc-main');
  assert.equal(tn.metadata.annotations['paved.dev/retention-days'], '30');
});

test('status written for an older generation is Unknown, never the old True', () => {
  const stale = claim('svc', { metadata: { name: 'svc', generation: 3 } });
  const ready = condition(stale, 'Ready');
  assert.equal(ready.status, 'Unknown');
  assert.equal(ready.reason, 'GenerationNotObserved');
  assert.match(ready.message, /generation 3/);
  // Only the condition stale, status.observedGeneration current: still Unknown.
  const condStale = claim('svc', { metadata: { name: 'svc', generation: 3 } });
  condStale.status.observedGeneration = 3;
  assert.equal(condition(condStale, 'Ready').status, 'Unknown');
  assert.equal(condition(condStale, 'Synced').status, 'Unknown');
  // Generations may arrive as strings; equal values are current.
  const str = claim('svc', { metadata: { name: 'svc', generation: '2' } });
  assert.equal(condition(str, 'Ready').status, 'True');
});

test('no status, an unreadable status, a missing condition or an odd value: Unknown', () => {
  const cases = [
    [{ ...claim('a'), status: undefined }, 'AwaitingReconcile'],
    [{ ...claim('b'), status: 'oops' }, 'StatusUnreadable'],
    [{ ...claim('c'), status: { conditions: 'Ready' } }, 'StatusUnreadable'],
    [{ ...claim('d'), status: { observedGeneration: 2, conditions: [cond('Synced', 'True', 'ReconcileSuccess', 2)] } }, 'AwaitingReconcile'],
    [{ ...claim('e'), status: { observedGeneration: 2, conditions: [cond('Ready', 'yes', 'Available', 2)] } }, 'Available'],
  ];
  for (const [obj, reason] of cases) {
    const r = condition(obj, 'Ready');
    assert.equal(r.status, 'Unknown', obj.metadata.name);
    assert.equal(r.reason, reason, obj.metadata.name);
  }
  const result = toEntities({ clusters: [{ name: 'c', serviceClaims: { items: cases.map(c => c[0]) } }] });
  for (const { entity } of result.entities) assert.equal(entity.metadata.annotations['paved.dev/ready'], 'Unknown');
});

test('a refused claim shows why: the Synced reason and message come first', () => {
  const refused = claim('svc');
  refused.status.conditions = [
    cond('Ready', 'False', 'ReconcileError', 2, 'see Synced'),
    cond('Synced', 'False', 'CloudNotAllowed', 2, 'team team-claims may use aws, local; the claim asks for gcp'),
  ];
  const [{ entity }] = toEntities({ clusters: [{ name: 'c', serviceClaims: { items: [refused] } }] }).entities;
  const a = entity.metadata.annotations;
  assert.equal(a['paved.dev/ready'], 'False');
  assert.equal(a['paved.dev/synced'], 'False');
  assert.equal(a['paved.dev/reason'], 'CloudNotAllowed');
  assert.equal(a['paved.dev/message'], 'team team-claims may use aws, local; the claim asks for gcp');
  assert.equal(a['paved.dev/ready-reason'], 'ReconcileError');
});

test('a kind that cannot be read now keeps its last entities, all Unknown with the reason', () => {
  const result = toEntities({
    clusters: [
      {
        name: 'prod',
        serviceClaims: { items: [claim('svc')] },
        postgresqlInstances: { items: [db('svc', 'main')], error: 'cannot read postgresqlinstances from cluster prod: 503 Service Unavailable' },
      },
    ],
  });
  const e = byRef(result);
  const a = e['resource:svc/main'].metadata.annotations;
  assert.equal(a['paved.dev/ready'], 'Unknown');
  assert.equal(a['paved.dev/synced'], 'Unknown');
  assert.equal(a['paved.dev/reason'], 'StatusUnavailable');
  assert.match(a['paved.dev/message'], /503/);
  assert.equal(e['resource:default/svc'].metadata.annotations['paved.dev/ready'], 'True');
});

test('owners: the ServiceClaim of the namespace, else the Team that was given it, else unknown', async () => {
  const result = toEntities({
    clusters: [
      {
        name: 'c',
        serviceClaims: { items: [claim('svc')] },
        postgresqlInstances: { items: [db('svc', 'main'), db('reporting', 'reporting-db'), db('somewhere', 'lost')] },
        teams: {
          items: [
            { metadata: { name: 'team-reporting' }, spec: { namespaces: [{ name: 'reporting', cloud: 'local', system: 'reporting' }] } },
          ],
        },
      },
    ],
  });
  await assertValid(result);
  const e = byRef(result);
  assert.equal(e['resource:svc/main'].spec.owner, 'group:default/team-claims');
  assert.deepEqual(e['resource:reporting/reporting-db'].spec, {
    type: 'database',
    owner: 'group:default/team-reporting',
    system: 'system:default/reporting',
  });
  assert.deepEqual(e['resource:somewhere/lost'].spec, { type: 'database', owner: 'group:default/unknown' });
});

test('the service estimate: only when every database has one, in one currency', () => {
  const run = dbs =>
    byRef(toEntities({ clusters: [{ name: 'c', serviceClaims: { items: [claim('svc')] }, postgresqlInstances: { items: dbs } }] }))[
      'resource:default/svc'
    ].metadata.annotations['paved.dev/estimated-monthly-cost'];
  assert.equal(run([db('svc', 'a', { estimatedMonthlyCost: 'USD 1.10' }), db('svc', 'b', { estimatedMonthlyCost: 'USD 2.20' })]), 'USD 3.30');
  assert.equal(run([db('svc', 'a', { estimatedMonthlyCost: 'USD 1.10' }), db('svc', 'b', { estimatedMonthlyCost: 'EUR 2.20' })]), undefined);
  assert.equal(run([db('svc', 'a', { estimatedMonthlyCost: 'USD 1.10' }), db('svc', 'b', { estimatedMonthlyCost: undefined })]), undefined);
  assert.equal(run([db('other', 'a')]), undefined);
});

test('names the catalog would refuse (over 63) get a readable, distinct, valid name', async () => {
  const long = (tail) => `${'payments-'.repeat(7)}${tail}`; // 63 + 1 characters and more
  assert.equal(safeName('a--b.v2'), 'a--b.v2');
  assert.match(safeName(long('a')), /^payments-.*-[0-9a-f]{8}$/);
  assert.notEqual(safeName(long('a')), safeName(long('b')));
  const result = toEntities({
    clusters: [{ name: 'c', postgresqlInstances: { items: [db('ns', long('a')), db('ns', long('b')), db('ns', 'db.v2')] } }],
  });
  await assertValid(result);
  const names = result.entities.map(e => e.entity.metadata.name);
  assert.equal(new Set(names).size, 3);
  assert.ok(names.every(n => n.length <= 63));
  assert.ok(names.includes('db.v2'));
  assert.equal(result.entities.find(e => e.entity.metadata.name === names[0]).entity.metadata.annotations['paved.dev/name'], long('a'));
});

test('two clusters with one claim: one entity, Ready only when every cluster is, else the worst cluster named', async () => {
  const notReady = claim('svc');
  notReady.status.conditions = [cond('Ready', 'False', 'ChildNotReady', 2, 'PostgreSQLInstance main is not ready: Creating'), cond('Synced', 'True', 'ReconcileSuccess', 2)];
  const unread = { items: [claim('svc')], error: 'cannot read serviceclaims from cluster south: 503 Service Unavailable' };
  const run = (...parts) => toEntities({ clusters: parts.map(([name, list]) => ({ name, serviceClaims: list })) });

  // Both Ready: Ready, both clusters listed.
  const both = run(['east', { items: [claim('svc')] }], ['west', { items: [claim('svc')] }]);
  assert.deepEqual(both.warnings, []);
  await assertValid(both);
  assert.equal(both.entities.length, 1);
  let a = both.entities[0].entity.metadata.annotations;
  assert.equal(a['paved.dev/ready'], 'True');
  assert.equal(a['paved.dev/health'], 'Healthy');
  assert.equal(a['paved.dev/clusters'], 'east,west');
  assert.equal(a['paved.dev/cluster'], 'east');
  assert.equal(both.entities[0].entity.metadata.description, 'Paved ServiceClaim svc on clusters east, west');

  // East Ready, west not: not Ready; the reason and message are west's, naming it.
  a = run(['east', { items: [claim('svc')] }], ['west', { items: [notReady] }]).entities[0].entity.metadata.annotations;
  assert.equal(a['paved.dev/ready'], 'False');
  assert.equal(a['paved.dev/ready-reason'], 'ChildNotReady');
  assert.equal(a['paved.dev/reason'], 'ChildNotReady');
  assert.equal(a['paved.dev/message'], 'cluster west: PostgreSQLInstance main is not ready: Creating');
  assert.equal(a['paved.dev/synced'], 'True');
  assert.equal(a['paved.dev/health'], 'Progressing');

  // False over Unknown over True, whatever the order.
  a = run(['south', unread], ['west', { items: [notReady] }], ['east', { items: [claim('svc')] }]).entities[0].entity.metadata.annotations;
  assert.equal(a['paved.dev/ready'], 'False');
  assert.match(a['paved.dev/message'], /^cluster west: /);
  assert.equal(a['paved.dev/synced'], 'Unknown');
  assert.equal(a['paved.dev/synced-reason'], 'StatusUnavailable');
  assert.equal(a['paved.dev/clusters'], 'south,west,east');
  a = run(['east', { items: [claim('svc')] }], ['south', unread]).entities[0].entity.metadata.annotations;
  assert.equal(a['paved.dev/ready'], 'Unknown');
  assert.equal(a['paved.dev/reason'], 'StatusUnavailable');
  assert.match(a['paved.dev/message'], /^cluster south: cannot read serviceclaims from cluster south: 503/);
  assert.equal(a['paved.dev/health'], 'Unknown');

  // One refused on one cluster: Degraded, the refusal shown.
  const refused = claim('svc');
  refused.status.conditions = [cond('Ready', 'True', 'Available', 2), cond('Synced', 'False', 'CloudNotAllowed', 2, 'team team-claims may use aws')];
  a = run(['east', { items: [claim('svc')] }], ['west', { items: [refused] }]).entities[0].entity.metadata.annotations;
  assert.equal(a['paved.dev/ready'], 'True');
  assert.equal(a['paved.dev/synced'], 'False');
  assert.equal(a['paved.dev/reason'], 'CloudNotAllowed');
  assert.equal(a['paved.dev/message'], 'cluster west: team team-claims may use aws');
  assert.equal(a['paved.dev/health'], 'Degraded');

  // A claim on one cluster only, while two are read: its own status, the one cluster listed.
  const single = run(['east', { items: [claim('svc')] }], ['west', { items: [] }]);
  assert.equal(single.entities[0].entity.metadata.annotations['paved.dev/clusters'], 'east');
  assert.equal(single.entities[0].entity.metadata.annotations['paved.dev/message'], 'all resources ready');
  // One cluster read: no list.
  assert.equal(run(['east', { items: [claim('svc')] }]).entities[0].entity.metadata.annotations['paved.dev/clusters'], undefined);
});

test('two clusters: a database on both sums its estimates; owners that disagree are no owner', () => {
  const result = toEntities({
    clusters: [
      { name: 'east', serviceClaims: { items: [claim('svc')] }, postgresqlInstances: { items: [db('svc', 'main', { estimatedMonthlyCost: 'USD 10.00' })] } },
      { name: 'west', serviceClaims: { items: [claim('svc', { spec: { ...claim('svc').spec, owner: 'team-other' } })] }, postgresqlInstances: { items: [db('svc', 'main', { estimatedMonthlyCost: 'USD 5.50' })] } },
    ],
  });
  const e = byRef(result);
  assert.equal(e['resource:svc/main'].metadata.annotations['paved.dev/estimated-monthly-cost'], 'USD 15.50');
  assert.equal(e['resource:svc/main'].metadata.annotations['paved.dev/clusters'], 'east,west');
  assert.equal(e['resource:default/svc'].metadata.annotations['paved.dev/estimated-monthly-cost'], 'USD 15.50');
  // east says team-claims, west team-other: neither is believed, for the service or its database.
  assert.deepEqual(e['resource:default/svc'].spec, { type: 'paved-service', owner: 'group:default/unknown' });
  assert.deepEqual(e['resource:svc/main'].spec, { type: 'database', owner: 'group:default/unknown' });
  assert.equal(result.warnings.length, 2);
  assert.match(result.warnings[0], /ServiceClaim svc differs between clusters east, west/);
});

test('a different object mapping to a name already taken is left out and reported', () => {
  const result = toEntities({
    clusters: [
      {
        name: 'c',
        postgresqlInstances: { items: [db('svc', 'temporal-main')] },
        temporalNamespaces: { items: [{ metadata: { name: 'main', namespace: 'svc', generation: 1 }, status: {} }] },
      },
    ],
  });
  assert.equal(result.entities.length, 1);
  assert.equal(result.entities[0].entity.metadata.annotations['paved.dev/kind'], 'PostgreSQLInstance');
  assert.equal(result.warnings.length, 1);
  assert.match(result.warnings[0], /TemporalNamespace svc\/main on cluster c maps to resource:svc\/temporal-main/);
});

test('health as the Argo CD health checks judge it, plus Deleting', () => {
  const withConds = (conds, extra = {}) => claim('svc', { status: { observedGeneration: 2, conditions: conds }, ...extra });
  const cases = [
    ['Ready and Synced', withConds([cond('Ready', 'True', 'Available', 2), cond('Synced', 'True', 'ReconcileSuccess', 2)]), 'Healthy'],
    // Refused: Degraded even though Ready still says True.
    ['Synced=False, Ready=True', withConds([cond('Ready', 'True', 'Available', 2), cond('Synced', 'False', 'NamespaceConflict', 2)]), 'Degraded'],
    ['Synced=False for an older generation', withConds([cond('Ready', 'False', 'ChildNotReady', 2), cond('Synced', 'False', 'NamespaceConflict', 1)]), 'Progressing'],
    ['not ready', withConds([cond('Ready', 'False', 'ChildNotReady', 2), cond('Synced', 'True', 'ReconcileSuccess', 2)]), 'Progressing'],
    ['no Ready', withConds([cond('Synced', 'True', 'ReconcileSuccess', 2)]), 'Progressing'],
    ['no status', { ...claim('svc'), status: undefined }, 'Progressing'],
    ['an older generation observed', claim('svc', { metadata: { name: 'svc', generation: 3 } }), 'Progressing'],
    ['being deleted', claim('svc', { metadata: { name: 'svc', generation: 2, deletionTimestamp: '2026-12-07T10:00:00Z' } }), 'Deleting'],
    ['being deleted, refused', withConds([cond('Synced', 'False', 'NamespaceConflict', 2)], { metadata: { name: 'svc', generation: 2, deletionTimestamp: '2026-12-07T10:00:00Z' } }), 'Deleting'],
  ];
  for (const [what, obj, expected] of cases) {
    assert.equal(health(obj), expected, what);
    const [{ entity }] = toEntities({ clusters: [{ name: 'c', serviceClaims: { items: [obj] } }] }).entities;
    assert.equal(entity.metadata.annotations['paved.dev/health'], expected, what);
  }
  assert.equal(health(claim('svc'), 'cannot read serviceclaims'), 'Unknown');
});

test('a refused ServiceClaim named like a namespace a Team was given takes neither its owner nor its costs', async () => {
  // team-reporting was given namespace `reporting` (no adoption); team-evil's claim
  // `reporting` is refused by Paved (Synced=False), and must not take the namespace's
  // database in the catalog.
  const refused = claim('reporting', { spec: { ...claim('x').spec, owner: 'team-evil', system: 'evil' } });
  refused.status = { observedGeneration: 2, conditions: [cond('Ready', 'False', 'ReconcileError', 2), cond('Synced', 'False', 'NamespaceConflict', 2, 'namespace reporting already exists')] };
  const reportingTeam = (entry = {}) => ({
    metadata: { name: 'team-reporting' },
    spec: { namespaces: [{ name: 'reporting', cloud: 'local', system: 'reporting', ...entry }] },
  });
  const run = (claims, teams) =>
    byRef(
      toEntities({
        clusters: [{ name: 'c', serviceClaims: { items: claims }, postgresqlInstances: { items: [db('reporting', 'reporting-db')] }, teams: { items: teams } }],
      }),
    );

  let e = run([refused], [reportingTeam()]);
  assert.deepEqual(e['resource:reporting/reporting-db'].spec, { type: 'database', owner: 'group:default/team-reporting', system: 'system:default/reporting' });
  assert.equal(e['resource:default/reporting'].metadata.annotations['paved.dev/estimated-monthly-cost'], undefined);
  assert.equal(e['resource:default/reporting'].spec.owner, 'group:default/team-evil', 'the claim itself still says whose it is');

  // Even accepted (Synced=True), a claim of another team gets nothing without the Team's grant...
  const accepted = claim('reporting', { spec: { ...claim('x').spec, owner: 'team-evil', system: 'evil' } });
  e = run([accepted], [reportingTeam({ adoptByServiceClaim: true })]);
  assert.equal(e['resource:reporting/reporting-db'].spec.owner, 'group:default/team-reporting');
  e = run([accepted], [reportingTeam()]);
  assert.equal(e['resource:reporting/reporting-db'].spec.owner, 'group:default/team-reporting');

  // ...and the Team's own claim only with it (adoptByServiceClaim), then the service's.
  const adopting = claim('reporting', { spec: { ...claim('x').spec, owner: 'team-reporting', system: 'reporting-svc' } });
  e = run([adopting], [reportingTeam()]);
  assert.equal(e['resource:reporting/reporting-db'].spec.owner, 'group:default/team-reporting');
  assert.equal(e['resource:reporting/reporting-db'].spec.dependencyOf, undefined);
  e = run([adopting], [reportingTeam({ adoptByServiceClaim: true })]);
  assert.deepEqual(e['resource:reporting/reporting-db'].spec, {
    type: 'database',
    owner: 'group:default/team-reporting',
    system: 'system:default/reporting-svc',
    dependencyOf: ['resource:default/reporting'],
  });
  assert.equal(e['resource:default/reporting'].metadata.annotations['paved.dev/estimated-monthly-cost'], 'USD 49.75');

  // Granted, but the claim not (yet) accepted at its generation: the Team's.
  const pending = claim('reporting', { metadata: { name: 'reporting', generation: 3 }, spec: adopting.spec });
  e = run([pending], [reportingTeam({ adoptByServiceClaim: true })]);
  assert.equal(e['resource:reporting/reporting-db'].spec.system, 'system:default/reporting');

  // A refused claim named like a namespace nobody was given: no owner at all.
  e = run([refused], []);
  assert.deepEqual(e['resource:reporting/reporting-db'].spec, { type: 'database', owner: 'group:default/unknown' });

  // A namespace listed by two Teams is neither's.
  e = run([], [reportingTeam(), { metadata: { name: 'team-other' }, spec: { namespaces: [{ name: 'reporting', cloud: 'local' }] } }]);
  assert.deepEqual(e['resource:reporting/reporting-db'].spec, { type: 'database', owner: 'group:default/unknown' });
});

test('a deleted claim is simply absent: the full mutation removes it', () => {
  const before = toEntities({ clusters: [{ name: 'c', serviceClaims: { items: [claim('a'), claim('b')] } }] });
  const after = toEntities({ clusters: [{ name: 'c', serviceClaims: { items: [claim('a')] } }] });
  assert.equal(before.entities.length, 2);
  assert.deepEqual(after.entities.map(e => e.entity.metadata.name), ['a']);
});
