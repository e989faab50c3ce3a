'use strict';
// The template's enums, patterns and bounds must be the CRDs' (crds/*.yaml, generated
// from the Rust types): an answer the form accepts must be one the apiserver accepts.
// Like e2e/health-checks for the Argo CD health checks, this fails when they part.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const YAML = require('yaml');
const { TEMPLATE_FILE, crdSchema } = require('./support');

const escapeRe = s => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const withoutNull = list => list.filter(x => x !== null);

/** What the CRDs say about the answers the template asks for. */
function crdFacts() {
  const sc = crdSchema('paved.dev_serviceclaims.yaml');
  const spec = sc.properties.spec.properties;
  // metadata.name is checked by CEL rules on the object: size, regex, reserved names.
  const rules = sc['x-kubernetes-validations'].map(r => r.rule).join('\n');
  const size = /self\.metadata\.name\.size\(\) <= (\d+)/.exec(rules);
  const regex = /self\.metadata\.name\.matches\('([^']+)'\)/.exec(rules);
  const reserved = /self\.metadata\.name in \[([^\]]+)\]/.exec(rules);
  const prefix = /self\.metadata\.name\.startsWith\('([^']+)'\)/.exec(rules);
  assert.ok(size && regex && reserved && prefix, 'the ServiceClaim CRD no longer states its name rules as this test reads them');
  const pg = crdSchema('paved.dev_postgresqlinstances.yaml').properties.spec.properties.parameters.properties;
  const tn = crdSchema('paved.dev_temporalnamespaces.yaml').properties.spec.properties;
  return {
    name: {
      maxLength: Number(size[1]),
      regex: regex[1],
      reserved: reserved[1].split(',').map(s => s.trim().replace(/^'|'$/g, '')),
      prefix: prefix[1],
    },
    owner: { pattern: spec.owner.pattern, maxLength: spec.owner.maxLength },
    system: { pattern: spec.system.pattern, maxLength: spec.system.maxLength },
    costCenter: { pattern: spec.costCenter.pattern, maxLength: spec.costCenter.maxLength },
    cloud: { enum: withoutNull(spec.cloud.enum) },
    dataClassification: { enum: spec.dataClassification.enum, default: spec.dataClassification.default },
    sloTier: { enum: spec.sloTier.enum, default: spec.sloTier.default },
    databaseSize: { enum: withoutNull(pg.size.enum) },
    databaseStorageGB: { minimum: pg.storageGB.minimum, maximum: pg.storageGB.maximum },
    temporalRetentionDays: { minimum: tn.retentionDays.minimum, maximum: tn.retentionDays.maximum },
  };
}

/** Every answer's schema, wherever on which page the template defines it. */
function templateProperties(template) {
  const props = {};
  for (const page of template.spec.parameters) {
    Object.assign(props, page.properties ?? {}, page.then?.properties ?? {});
  }
  return props;
}

/** @returns {string[]} every way the template differs from the CRDs */
function drift(facts, template) {
  const problems = [];
  const props = templateProperties(template);
  const same = (what, actual, expected) => {
    try {
      assert.deepEqual(actual, expected);
    } catch {
      problems.push(`${what}: template has ${JSON.stringify(actual)}, CRD says ${JSON.stringify(expected)}`);
    }
  };

  // name: the CRD's regex behind a lookahead refusing the reserved names.
  const n = facts.name;
  const others = n.reserved.filter(r => !r.startsWith(n.prefix));
  const namePattern = `^(?!${[escapeRe(n.prefix), ...others.map(r => `${escapeRe(r)}$`)].join('|')})${n.regex.replace(/^\^/, '')}`;
  same('name.pattern', props.name?.pattern, namePattern);
  same('name.maxLength', props.name?.maxLength, n.maxLength);
  if (props.name?.pattern) {
    const re = new RegExp(props.name.pattern, 'u');
    for (const r of [...n.reserved, `${n.prefix}anything`]) {
      if (re.test(r)) problems.push(`name.pattern accepts the reserved name ${r}`);
    }
  }

  const ownerPrefix = 'group:default/';
  same('owner.pattern', props.owner?.pattern, `^${escapeRe(ownerPrefix)}${facts.owner.pattern.replace(/^\^/, '')}`);
  same('owner.maxLength', props.owner?.maxLength, ownerPrefix.length + facts.owner.maxLength);

  same('cloud.enum', props.cloud?.enum, facts.cloud.enum);
  for (const k of ['dataClassification', 'sloTier']) {
    same(`${k}.enum`, props[k]?.enum, facts[k].enum);
    same(`${k}.default`, props[k]?.default, facts[k].default);
  }
  same('databaseSize.enum', props.databaseSize?.enum, facts.databaseSize.enum);
  for (const k of ['databaseStorageGB', 'temporalRetentionDays']) {
    same(`${k}.minimum`, props[k]?.minimum, facts[k].minimum);
    same(`${k}.maximum`, props[k]?.maximum, facts[k].maximum);
  }

  // system and costCenter are not asked: the team check tests the annotations with the
  // CRD's patterns and lengths, and a default cloud against the CRD's clouds.
  const check = template.spec.steps.find(s => s.id === 'check-team')?.if ?? '';
  for (const k of ['system', 'costCenter']) {
    if (!check.includes(`r/${facts[k].pattern}/`)) problems.push(`check-team does not test ${k} with the CRD's pattern ${facts[k].pattern}`);
    const ann = k === 'system' ? 'paved.dev/system' : 'paved.dev/cost-center';
    if (!check.includes(`annotations['${ann}'] | length) <= ${facts[k].maxLength}`)) {
      problems.push(`check-team does not bound ${k} at the CRD's maxLength ${facts[k].maxLength}`);
    }
  }
  const clouds = `in [${facts.cloud.enum.map(c => `'${c}'`).join(', ')}]`;
  if (!check.includes(clouds)) problems.push(`check-team does not test paved.dev/default-cloud ${clouds}`);
  return problems;
}

const loadTemplateYaml = () => YAML.parse(fs.readFileSync(TEMPLATE_FILE, 'utf8'));

test('the template asks exactly what the CRDs accept', () => {
  assert.deepEqual(drift(crdFacts(), loadTemplateYaml()), []);
});

test('the CRDs still hold what the template copies', () => {
  const f = crdFacts();
  // Read from the CRDs, not restated: these would change with the Rust types.
  assert.deepEqual(f.cloud.enum, ['aws', 'azure', 'gcp', 'local']);
  assert.equal(f.dataClassification.default, 'phi');
  assert.equal(f.name.maxLength, 63);
});

test('drift is caught: each change to the template is named', () => {
  const f = crdFacts();
  const cases = [
    ['cloud.enum', t => t.spec.parameters[1].properties.cloud.enum.push('oracle')],
    ['dataClassification.default', t => (t.spec.parameters[1].properties.dataClassification.default = 'internal')],
    ['sloTier.enum', t => t.spec.parameters[1].properties.sloTier.enum.pop()],
    ['name.pattern', t => (t.spec.parameters[0].properties.name.pattern = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')],
    ['name.maxLength', t => (t.spec.parameters[0].properties.name.maxLength = 64)],
    ['owner.pattern', t => (t.spec.parameters[0].properties.owner.pattern = '^group:default/.*$')],
    ['databaseSize.enum', t => t.spec.parameters[2].then.properties.databaseSize.enum.push('huge')],
    ['databaseStorageGB.maximum', t => (t.spec.parameters[2].then.properties.databaseStorageGB.maximum = 100000)],
    ['temporalRetentionDays.minimum', t => (t.spec.parameters[3].then.properties.temporalRetentionDays.minimum = 0)],
    ['costCenter', t => {
      const s = t.spec.steps.find(x => x.id === 'check-team');
      s.if = s.if.replace('[-A-Za-z0-9_.]', '[-A-Za-z0-9_]');
    }],
    ['default-cloud', t => {
      const s = t.spec.steps.find(x => x.id === 'check-team');
      s.if = s.if.replace(", 'local']", ']');
    }],
  ];
  for (const [what, mutate] of cases) {
    const t = loadTemplateYaml();
    mutate(t);
    const problems = drift(f, t);
    assert.ok(problems.some(p => p.includes(what)), `${what}: no drift reported (got ${JSON.stringify(problems)})`);
  }
  // And a CRD change: a new cloud in the CRD is drift too.
  const changed = { ...f, cloud: { enum: [...f.cloud.enum, 'oci'] } };
  assert.ok(drift(changed, loadTemplateYaml()).some(p => p.startsWith('cloud.enum')));
});
