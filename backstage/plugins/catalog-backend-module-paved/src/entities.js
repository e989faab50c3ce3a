'use strict';
// Pure mapping from what the clusters hold to catalog entities: no client, no clock,
// no I/O, so every rule below is unit-tested on fixtures (test/entities.test.js).

const crypto = require('node:crypto');

const GROUP = 'paved.dev';
const A = `${GROUP}/`;

const KINDS = {
  ServiceClaim: { plural: 'serviceclaims', type: 'paved-service', namespaced: false },
  PostgreSQLInstance: { plural: 'postgresqlinstances', type: 'database', namespaced: true },
  TemporalNamespace: { plural: 'temporalnamespaces', type: 'temporal-namespace', namespaced: true },
};

// The catalog's own rules (catalog-model's KubernetesValidatorFunctions), both at most 63.
const ENTITY_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const ENTITY_NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
// The CRD's pattern for spec.owner and spec.system.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

const COST = /^([A-Z]{3}) ([0-9]+(?:\.[0-9]+)?)$/;

/**
 * A valid catalog name for a Kubernetes name: itself when Backstage accepts it, else a
 * readable prefix and a hash of the original, so distinct objects never share a name.
 * @param {string} name
 * @param {RegExp} rule
 */
function safeName(name, rule = ENTITY_NAME) {
  if (typeof name === 'string' && name.length <= 63 && rule.test(name)) return name;
  const hash = crypto.createHash('sha256').update(String(name)).digest('hex').slice(0, 8);
  const base = String(name)
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 54)
    .replace(/-+$/, '');
  return base ? `${base}-${hash}` : `x-${hash}`;
}

/**
 * One condition as the catalog should show it. A condition counts only when it was
 * written for the object's current generation (as the Argo CD health checks judge it);
 * anything missing, stale or unreadable is `Unknown`, never `True`.
 * @param {any} obj
 * @param {'Ready'|'Synced'} type
 * @param {string|undefined} unavailable why the object's status could not be read now
 * @returns {{status: 'True'|'False'|'Unknown', reason: string, message: string}}
 */
function condition(obj, type, unavailable) {
  if (unavailable) {
    return { status: 'Unknown', reason: 'StatusUnavailable', message: unavailable };
  }
  const generation = obj?.metadata?.generation;
  const status = obj?.status;
  if (status === undefined || status === null) {
    return { status: 'Unknown', reason: 'AwaitingReconcile', message: 'Paved has not reported on this claim yet' };
  }
  if (typeof status !== 'object' || !Array.isArray(status.conditions)) {
    return { status: 'Unknown', reason: 'StatusUnreadable', message: 'status.conditions is missing or not a list' };
  }
  const stale = observed =>
    observed !== undefined && observed !== null && generation !== undefined && String(observed) !== String(generation);
  const notObserved = {
    status: 'Unknown',
    reason: 'GenerationNotObserved',
    message: `Paved has not reported on generation ${generation} yet`,
  };
  if (stale(status.observedGeneration)) return notObserved;
  const c = status.conditions.find(x => x && x.type === type);
  if (!c) {
    return { status: 'Unknown', reason: 'AwaitingReconcile', message: `no ${type} condition yet` };
  }
  if (stale(c.observedGeneration)) return notObserved;
  const value = ['True', 'False', 'Unknown'].includes(c.status) ? c.status : 'Unknown';
  return {
    status: value,
    reason: typeof c.reason === 'string' ? c.reason : '',
    message: typeof c.message === 'string' ? c.message : '',
  };
}

/** @param {string|undefined} s */
function parseCost(s) {
  const m = typeof s === 'string' ? COST.exec(s.trim()) : null;
  return m ? { currency: m[1], amount: Number(m[2]) } : undefined;
}

function statusAnnotations(obj, unavailable) {
  const ready = condition(obj, 'Ready', unavailable);
  const synced = condition(obj, 'Synced', unavailable);
  // What a reader should see first: why Paved could not apply the spec, else why it
  // is (not) ready.
  const shown = synced.status === 'False' ? synced : ready;
  const out = {
    [`${A}ready`]: ready.status,
    [`${A}ready-reason`]: ready.reason,
    [`${A}synced`]: synced.status,
    [`${A}synced-reason`]: synced.reason,
    [`${A}reason`]: shown.reason,
    [`${A}message`]: shown.message,
  };
  if (obj?.metadata?.generation !== undefined) out[`${A}generation`] = String(obj.metadata.generation);
  return out;
}

function str(v) {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function setIf(target, key, value) {
  if (value !== undefined && value !== null && value !== '') target[key] = String(value);
}

/**
 * @typedef {{items?: any[], error?: string}} KindList  `items` as last read; `error`
 *   set when this read failed (the items are then the last ones read, if any).
 * @typedef {{name: string, serviceClaims?: KindList, postgresqlInstances?: KindList,
 *   temporalNamespaces?: KindList, teams?: KindList}} ClusterSnapshot
 */

/**
 * Catalog entities for the Paved claims of some clusters.
 * @param {{clusters: ClusterSnapshot[], locationKey?: string}} input
 * @returns {{entities: {entity: object, locationKey: string}[], warnings: string[]}}
 */
function toEntities({ clusters, locationKey = 'paved' }) {
  /** @type {Map<string, {entity: object, locationKey: string}>} */
  const byRef = new Map();
  const warnings = [];
  const location = `paved:${locationKey}`;

  const add = (entity, cluster, what) => {
    const ref = `resource:${entity.metadata.namespace}/${entity.metadata.name}`.toLowerCase();
    const had = byRef.get(ref);
    if (had) {
      warnings.push(
        `${what} on cluster ${cluster} maps to ${ref}, which ${had.entity.metadata.annotations[`${A}cluster`]}'s ` +
          `${had.entity.metadata.annotations[`${A}kind`]} already has; it is left out`,
      );
      return;
    }
    byRef.set(ref, { entity, locationKey: location });
  };

  for (const cluster of clusters) {
    const c = cluster.name;
    const claims = (cluster.serviceClaims?.items ?? []).filter(o => str(o?.metadata?.name));
    const dbs = (cluster.postgresqlInstances?.items ?? []).filter(o => str(o?.metadata?.name) && str(o?.metadata?.namespace));
    const tns = (cluster.temporalNamespaces?.items ?? []).filter(o => str(o?.metadata?.name) && str(o?.metadata?.namespace));

    // Which service a namespace belongs to: the ServiceClaim Paved made it for.
    /** @type {Map<string, any>} */
    const claimByNamespace = new Map();
    for (const claim of claims) {
      claimByNamespace.set(str(claim.status?.namespace) ?? claim.metadata.name, claim);
    }
    // Namespaces the platform gave a Team without a ServiceClaim (Team.spec.namespaces).
    /** @type {Map<string, {team: string, system?: string}>} */
    const teamNamespaces = new Map();
    for (const team of cluster.teams?.items ?? []) {
      for (const ns of Array.isArray(team?.spec?.namespaces) ? team.spec.namespaces : []) {
        if (str(ns?.name) && str(team?.metadata?.name)) {
          teamNamespaces.set(ns.name, { team: team.metadata.name, system: str(ns.system) });
        }
      }
    }

    for (const claim of claims) {
      const name = claim.metadata.name;
      const spec = claim.spec ?? {};
      const annotations = {
        'backstage.io/managed-by-location': location,
        'backstage.io/managed-by-origin-location': location,
        // Paved labels every object it makes for the service with it.
        'backstage.io/kubernetes-label-selector': `paved.dev/service=${name}`,
        [`${A}cluster`]: c,
        [`${A}kind`]: 'ServiceClaim',
        [`${A}name`]: name,
        ...statusAnnotations(claim, cluster.serviceClaims?.error),
      };
      setIf(annotations, `${A}service-namespace`, str(claim.status?.namespace));
      setIf(annotations, `${A}cloud`, str(claim.status?.cloud) ?? str(spec.cloud));
      setIf(annotations, `${A}data-classification`, str(spec.dataClassification));
      setIf(annotations, `${A}slo-tier`, str(spec.sloTier));
      setIf(annotations, `${A}cost-center`, str(spec.costCenter));
      // The service's estimate: its databases', when every one has an estimate in one currency.
      const ns = str(claim.status?.namespace) ?? name;
      const costs = dbs.filter(d => d.metadata.namespace === ns).map(d => parseCost(d.status?.estimatedMonthlyCost));
      if (costs.length > 0 && costs.every(x => x && x.currency === costs[0].currency)) {
        const total = costs.reduce((sum, x) => sum + x.amount, 0);
        annotations[`${A}estimated-monthly-cost`] = `${costs[0].currency} ${total.toFixed(2)}`;
      }
      const entity = {
        apiVersion: 'backstage.io/v1alpha1',
        kind: 'Resource',
        metadata: {
          name: safeName(name),
          namespace: 'default',
          title: name,
          description: `Paved ServiceClaim ${name} on cluster ${c}`,
          annotations,
          tags: ['paved', ...[annotations[`${A}cloud`], spec.dataClassification].filter(t => /^[a-z0-9]+$/.test(t ?? ''))],
        },
        spec: {
          type: KINDS.ServiceClaim.type,
          owner: DNS_LABEL.test(spec.owner ?? '') ? `group:default/${spec.owner}` : 'group:default/unknown',
          ...(DNS_LABEL.test(spec.system ?? '') && { system: `system:default/${spec.system}` }),
        },
      };
      add(entity, c, `ServiceClaim ${name}`);
    }

    const child = (obj, kind, list) => {
      const { name, namespace } = obj.metadata;
      const claim = claimByNamespace.get(namespace);
      const team = teamNamespaces.get(namespace);
      const owner = claim?.spec?.owner ?? team?.team;
      const system = claim ? claim.spec?.system : team?.system;
      const annotations = {
        'backstage.io/managed-by-location': location,
        'backstage.io/managed-by-origin-location': location,
        'backstage.io/kubernetes-namespace': namespace,
        'backstage.io/kubernetes-label-selector': `paved.dev/claim-kind=${kind},paved.dev/claim-name=${name}`,
        [`${A}cluster`]: c,
        [`${A}kind`]: kind,
        [`${A}name`]: name,
        [`${A}namespace`]: namespace,
        ...statusAnnotations(obj, list?.error),
      };
      const spec = {
        type: KINDS[kind].type,
        owner: DNS_LABEL.test(owner ?? '') ? `group:default/${owner}` : 'group:default/unknown',
        ...(DNS_LABEL.test(system ?? '') && { system: `system:default/${system}` }),
        ...(claim && { dependencyOf: [`resource:default/${safeName(claim.metadata.name)}`] }),
      };
      return {
        apiVersion: 'backstage.io/v1alpha1',
        kind: 'Resource',
        metadata: {
          name: '',
          namespace: safeName(namespace, ENTITY_NAMESPACE),
          title: `${name} (${namespace})`,
          description: '',
          annotations,
          tags: ['paved'],
        },
        spec,
      };
    };

    for (const db of dbs) {
      const e = child(db, 'PostgreSQLInstance', cluster.postgresqlInstances);
      const s = db.status ?? {};
      e.metadata.name = safeName(db.metadata.name);
      e.metadata.description = `Paved PostgreSQLInstance ${db.metadata.name} in namespace ${db.metadata.namespace} on cluster ${c}`;
      const an = e.metadata.annotations;
      setIf(an, `${A}endpoint`, str(s.endpoint) && (Number.isInteger(s.port) ? `${s.endpoint}:${s.port}` : s.endpoint));
      setIf(an, `${A}estimated-monthly-cost`, parseCost(s.estimatedMonthlyCost) && s.estimatedMonthlyCost.trim());
      setIf(an, `${A}provider`, str(s.provider));
      setIf(an, `${A}region`, str(s.region));
      setIf(an, `${A}engine-version`, str(s.engineVersion));
      setIf(an, `${A}instance-class`, str(s.instanceClass));
      setIf(an, `${A}storage-gb`, Number.isInteger(s.storageGB) ? s.storageGB : undefined);
      const sec = db.spec?.writeConnectionSecretToRef?.name ?? `${db.metadata.name}-connection`;
      setIf(an, `${A}connection-secret`, str(sec));
      if (str(s.provider) && /^[a-z0-9]+$/.test(s.provider)) e.metadata.tags.push(s.provider);
      add(e, c, `PostgreSQLInstance ${db.metadata.namespace}/${db.metadata.name}`);
    }
    for (const tn of tns) {
      const e = child(tn, 'TemporalNamespace', cluster.temporalNamespaces);
      const s = tn.status ?? {};
      // Its own prefix: a database and a Temporal namespace of one name may share a namespace.
      e.metadata.name = safeName(`temporal-${tn.metadata.name}`);
      e.metadata.description = `Paved TemporalNamespace ${tn.metadata.name} in namespace ${tn.metadata.namespace} on cluster ${c}`;
      const an = e.metadata.annotations;
      setIf(an, `${A}endpoint`, str(s.temporalNamespace) && (str(s.frontendAddress) ? `${s.frontendAddress}/${s.temporalNamespace}` : s.temporalNamespace));
      setIf(an, `${A}temporal-namespace`, str(s.temporalNamespace));
      setIf(an, `${A}retention-days`, Number.isInteger(s.retentionDays) ? s.retentionDays : undefined);
      setIf(an, `${A}temporal-state`, str(s.state));
      add(e, c, `TemporalNamespace ${tn.metadata.namespace}/${tn.metadata.name}`);
    }
  }
  return { entities: [...byRef.values()], warnings };
}

module.exports = { toEntities, condition, safeName, KINDS };
