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

/**
 * The object's health as Paved's Argo CD health checks judge it
 * (resource_customizations/paved.dev/<Kind>/health.lua), plus what they cannot see:
 * `Deleting` once metadata.deletionTimestamp is set, `Unknown` while the status cannot be
 * read now.
 *   Degraded     Synced=False for the current generation (Paved refused the spec), even
 *                when Ready still says True
 *   Healthy      Ready=True for the current generation
 *   Progressing  everything else: no status yet, a generation not yet observed, not ready
 * @param {any} obj
 * @param {string|undefined} unavailable
 * @returns {'Healthy'|'Progressing'|'Degraded'|'Deleting'|'Unknown'}
 */
function health(obj, unavailable) {
  if (unavailable) return 'Unknown';
  if (obj?.metadata?.deletionTimestamp) return 'Deleting';
  if (condition(obj, 'Synced').status === 'False') return 'Degraded';
  if (condition(obj, 'Ready').status === 'True') return 'Healthy';
  return 'Progressing';
}

/**
 * What one cluster says about one object: its conditions and health.
 * @typedef {{status: 'True'|'False'|'Unknown', reason: string, message: string}} Cond
 * @typedef {{ready: Cond, synced: Cond, health: string, generation?: string}} ObjStatus
 * @returns {ObjStatus}
 */
function objectStatus(obj, unavailable) {
  const generation = obj?.metadata?.generation;
  return {
    ready: condition(obj, 'Ready', unavailable),
    synced: condition(obj, 'Synced', unavailable),
    health: health(obj, unavailable),
    ...(generation !== undefined && generation !== null && { generation: String(generation) }),
  };
}

/** @param {ObjStatus} st */
function statusAnnotations(st) {
  // What a reader should see first: why Paved could not apply the spec, else why it
  // is (not) ready.
  const shown = st.synced.status === 'False' ? st.synced : st.ready;
  const out = {
    [`${A}ready`]: st.ready.status,
    [`${A}ready-reason`]: st.ready.reason,
    [`${A}synced`]: st.synced.status,
    [`${A}synced-reason`]: st.synced.reason,
    [`${A}reason`]: shown.reason,
    [`${A}message`]: shown.message,
    [`${A}health`]: st.health,
  };
  if (st.generation !== undefined) out[`${A}generation`] = st.generation;
  return out;
}

// Worst first wins: False over Unknown over True; for health, Degraded over Unknown over
// Deleting over Progressing over Healthy.
const CONDITION_RANK = { True: 0, Unknown: 1, False: 2 };
const HEALTH_RANK = { Healthy: 0, Progressing: 1, Deleting: 2, Unknown: 3, Degraded: 4 };

/**
 * One object's status over the clusters that hold it: True only when every cluster says
 * True; otherwise the worst cluster's condition, its message naming that cluster.
 * @param {{cluster: string, st: ObjStatus}[]} parts
 * @returns {ObjStatus}
 */
function aggregateStatus(parts) {
  const worst = type => {
    let pick = parts[0];
    for (const p of parts) if (CONDITION_RANK[p.st[type].status] > CONDITION_RANK[pick.st[type].status]) pick = p;
    const c = pick.st[type];
    if (c.status === 'True' && parts.length > 1) {
      return { ...c, message: c.message ? `every cluster: ${c.message}` : '' };
    }
    return { ...c, message: `cluster ${pick.cluster}: ${c.message || c.reason || c.status}` };
  };
  let h = parts[0].st.health;
  for (const p of parts) if (HEALTH_RANK[p.st.health] > HEALTH_RANK[h]) h = p.st.health;
  const generations = new Set(parts.map(p => p.st.generation));
  return {
    ready: worst('ready'),
    synced: worst('synced'),
    health: h,
    ...(generations.size === 1 && parts[0].st.generation !== undefined && { generation: parts[0].st.generation }),
  };
}

/**
 * An estimate over several objects: `count` objects, `complete` when each has one.
 * @typedef {{count: number, complete: boolean, currency?: string, amount: number}} Cost
 * @param {(undefined|{currency: string, amount: number})[]} costs
 * @returns {Cost}
 */
function sumCosts(costs) {
  const currencies = new Set(costs.filter(Boolean).map(c => c.currency));
  return {
    count: costs.length,
    complete: costs.every(Boolean) && currencies.size <= 1,
    currency: [...currencies][0],
    amount: costs.reduce((sum, c) => sum + (c?.amount ?? 0), 0),
  };
}

/** @param {Cost[]} costs */
function mergeCosts(costs) {
  const currencies = new Set(costs.filter(c => c.count > 0).map(c => c.currency));
  return {
    count: costs.reduce((n, c) => n + c.count, 0),
    complete: costs.every(c => c.complete) && currencies.size <= 1,
    currency: [...currencies][0],
    amount: costs.reduce((sum, c) => sum + c.amount, 0),
  };
}

/** @param {Cost|undefined} c */
function formatCost(c) {
  return c && c.count > 0 && c.complete && c.currency ? `${c.currency} ${c.amount.toFixed(2)}` : undefined;
}

function str(v) {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function setIf(target, key, value) {
  if (value !== undefined && value !== null && value !== '') target[key] = String(value);
}

/** The namespace Paved made (or took over) for a ServiceClaim: its status says, else its name. */
function serviceNamespace(claim) {
  return str(claim.status?.namespace) ?? claim.metadata.name;
}

/**
 * @typedef {{items?: any[], error?: string}} KindList  `items` as last read; `error`
 *   set when this read failed (the items are then the last ones read, if any).
 * @typedef {{name: string, serviceClaims?: KindList, postgresqlInstances?: KindList,
 *   temporalNamespaces?: KindList, teams?: KindList}} ClusterSnapshot
 */

/**
 * Catalog entities for the Paved claims of some clusters.
 *
 * One entity per object name: the same claim on several clusters is one entity whose
 * status is the worst cluster's (Ready only when every cluster says so), annotated with
 * `paved.dev/clusters`; a different kind or object that maps to a name already taken is
 * left out, with a warning.
 * @param {{clusters: ClusterSnapshot[], locationKey?: string}} input
 * @returns {{entities: {entity: object, locationKey: string}[], warnings: string[]}}
 */
function toEntities({ clusters, locationKey = 'paved' }) {
  /**
   * @type {Map<string, {entity: any, kind: string, object: string, what: string,
   *   parts: {cluster: string, st: ObjStatus, spec: any, cost?: Cost}[]}>}
   */
  const byRef = new Map();
  const warnings = [];
  const location = `paved:${locationKey}`;
  const several = clusters.length > 1;

  const add = ({ entity, cluster, kind, object, what, st, cost }) => {
    const ref = `resource:${entity.metadata.namespace}/${entity.metadata.name}`.toLowerCase();
    const had = byRef.get(ref);
    const part = { cluster, st, spec: entity.spec, cost };
    if (!had) {
      byRef.set(ref, { entity, kind, object, what, parts: [part] });
      return;
    }
    if (had.kind === kind && had.object === object && !had.parts.some(p => p.cluster === cluster)) {
      // The same object on another cluster (one claims repository, several clusters).
      had.parts.push(part);
      return;
    }
    warnings.push(
      `${what} on cluster ${cluster} maps to ${ref}, which ${had.parts[0].cluster}'s ` +
        `${had.kind} already has; it is left out`,
    );
  };

  for (const cluster of clusters) {
    const c = cluster.name;
    const claims = (cluster.serviceClaims?.items ?? []).filter(o => str(o?.metadata?.name));
    const dbs = (cluster.postgresqlInstances?.items ?? []).filter(o => str(o?.metadata?.name) && str(o?.metadata?.namespace));
    const tns = (cluster.temporalNamespaces?.items ?? []).filter(o => str(o?.metadata?.name) && str(o?.metadata?.namespace));

    // Namespaces the platform gave a Team (Team.spec.namespaces). One listed by two Teams
    // belongs to neither (as the operator treats it).
    /** @type {Map<string, {team?: string, system?: string, adopt?: boolean}>} */
    const teamNamespaces = new Map();
    for (const team of cluster.teams?.items ?? []) {
      for (const ns of Array.isArray(team?.spec?.namespaces) ? team.spec.namespaces : []) {
        if (!str(ns?.name) || !str(team?.metadata?.name)) continue;
        const had = teamNamespaces.get(ns.name);
        if (had) {
          if (had.team !== undefined && had.team !== team.metadata.name) {
            warnings.push(`namespace ${ns.name} on cluster ${c} is listed by Teams ${had.team} and ${team.metadata.name}: it is neither's`);
          }
          if (had.team !== team.metadata.name) teamNamespaces.set(ns.name, {});
          continue;
        }
        teamNamespaces.set(ns.name, { team: team.metadata.name, system: str(ns.system), adopt: ns.adoptByServiceClaim === true });
      }
    }

    // Which service a namespace belongs to: a ServiceClaim Paved serves there. A claim's
    // word counts only when Paved accepted it (Synced=True for its current generation;
    // judged on the last read, so an unreadable moment does not move owners) and, for a
    // namespace a Team was given, when that Team's entry lets a claim of this owner take it
    // over (adoptByServiceClaim). A refused claim named like someone's namespace gets
    // neither its owner, its databases' costs nor their dependencyOf.
    /** @type {Map<string, any>} */
    const claimByNamespace = new Map();
    const contested = new Set();
    for (const claim of claims) {
      if (condition(claim, 'Synced').status !== 'True') continue;
      const ns = serviceNamespace(claim);
      const listed = teamNamespaces.get(ns);
      if (listed && !(listed.adopt && listed.team !== undefined && listed.team === claim.spec?.owner)) continue;
      if (claimByNamespace.has(ns)) contested.add(ns);
      claimByNamespace.set(ns, claim);
    }
    for (const ns of contested) {
      claimByNamespace.delete(ns);
      warnings.push(`namespace ${ns} on cluster ${c} is claimed by more than one accepted ServiceClaim: it is none's`);
    }

    for (const claim of claims) {
      const name = claim.metadata.name;
      const spec = claim.spec ?? {};
      const ns = serviceNamespace(claim);
      const annotations = {
        'backstage.io/managed-by-location': location,
        'backstage.io/managed-by-origin-location': location,
        // Paved labels every object it makes for the service with it, in its namespace.
        'backstage.io/kubernetes-label-selector': `paved.dev/service=${name}`,
        'backstage.io/kubernetes-namespace': ns,
        [`${A}cluster`]: c,
        [`${A}kind`]: 'ServiceClaim',
        [`${A}name`]: name,
      };
      setIf(annotations, `${A}service-namespace`, str(claim.status?.namespace));
      setIf(annotations, `${A}cloud`, str(claim.status?.cloud) ?? str(spec.cloud));
      setIf(annotations, `${A}data-classification`, str(spec.dataClassification));
      setIf(annotations, `${A}slo-tier`, str(spec.sloTier));
      setIf(annotations, `${A}cost-center`, str(spec.costCenter));
      // The service's estimate: its databases', when every one has an estimate in one
      // currency; only when the namespace is this claim's (above).
      const mine = claimByNamespace.get(ns) === claim;
      const cost = sumCosts(mine ? dbs.filter(d => d.metadata.namespace === ns).map(d => parseCost(d.status?.estimatedMonthlyCost)) : []);
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
      add({
        entity,
        cluster: c,
        kind: 'ServiceClaim',
        object: name,
        what: `ServiceClaim ${name}`,
        st: objectStatus(claim, cluster.serviceClaims?.error),
        cost,
      });
    }

    const child = (obj, kind) => {
      const { name, namespace } = obj.metadata;
      const claim = claimByNamespace.get(namespace);
      const team = teamNamespaces.get(namespace);
      const owner = claim ? claim.spec?.owner : team?.team;
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
      const e = child(db, 'PostgreSQLInstance');
      const s = db.status ?? {};
      e.metadata.name = safeName(db.metadata.name);
      e.metadata.description = `Paved PostgreSQLInstance ${db.metadata.name} in namespace ${db.metadata.namespace} on cluster ${c}`;
      const an = e.metadata.annotations;
      setIf(an, `${A}endpoint`, str(s.endpoint) && (Number.isInteger(s.port) ? `${s.endpoint}:${s.port}` : s.endpoint));
      setIf(an, `${A}provider`, str(s.provider));
      setIf(an, `${A}region`, str(s.region));
      setIf(an, `${A}engine-version`, str(s.engineVersion));
      setIf(an, `${A}instance-class`, str(s.instanceClass));
      setIf(an, `${A}storage-gb`, Number.isInteger(s.storageGB) ? s.storageGB : undefined);
      const sec = db.spec?.writeConnectionSecretToRef?.name ?? `${db.metadata.name}-connection`;
      setIf(an, `${A}connection-secret`, str(sec));
      if (str(s.provider) && /^[a-z0-9]+$/.test(s.provider)) e.metadata.tags.push(s.provider);
      add({
        entity: e,
        cluster: c,
        kind: 'PostgreSQLInstance',
        object: `${db.metadata.namespace}/${db.metadata.name}`,
        what: `PostgreSQLInstance ${db.metadata.namespace}/${db.metadata.name}`,
        st: objectStatus(db, cluster.postgresqlInstances?.error),
        cost: sumCosts([parseCost(s.estimatedMonthlyCost)]),
      });
    }
    for (const tn of tns) {
      const e = child(tn, 'TemporalNamespace');
      const s = tn.status ?? {};
      // Its own prefix: a database and a Temporal namespace of one name may share a namespace.
      e.metadata.name = safeName(`temporal-${tn.metadata.name}`);
      e.metadata.description = `Paved TemporalNamespace ${tn.metadata.name} in namespace ${tn.metadata.namespace} on cluster ${c}`;
      const an = e.metadata.annotations;
      setIf(an, `${A}endpoint`, str(s.temporalNamespace) && (str(s.frontendAddress) ? `${s.frontendAddress}/${s.temporalNamespace}` : s.temporalNamespace));
      setIf(an, `${A}temporal-namespace`, str(s.temporalNamespace));
      setIf(an, `${A}retention-days`, Number.isInteger(s.retentionDays) ? s.retentionDays : undefined);
      setIf(an, `${A}temporal-state`, str(s.state));
      add({
        entity: e,
        cluster: c,
        kind: 'TemporalNamespace',
        object: `${tn.metadata.namespace}/${tn.metadata.name}`,
        what: `TemporalNamespace ${tn.metadata.namespace}/${tn.metadata.name}`,
        st: objectStatus(tn, cluster.temporalNamespaces?.error),
      });
    }
  }

  const entities = [];
  for (const [ref, { entity, parts, what }] of byRef) {
    const an = entity.metadata.annotations;
    if (parts.length === 1) {
      Object.assign(an, statusAnnotations(parts[0].st));
      setIf(an, `${A}estimated-monthly-cost`, formatCost(parts[0].cost));
    } else {
      Object.assign(an, statusAnnotations(aggregateStatus(parts)));
      setIf(an, `${A}estimated-monthly-cost`, formatCost(mergeCosts(parts.map(p => p.cost ?? sumCosts([])))));
      entity.metadata.description = entity.metadata.description.replace(
        / on cluster [^ ]+$/,
        ` on clusters ${parts.map(p => p.cluster).join(', ')}`,
      );
      // Owner, system and relations must agree; where they do not, no cluster's word is taken.
      const specs = new Set(parts.map(p => JSON.stringify(p.spec)));
      if (specs.size > 1) {
        warnings.push(
          `${what} differs between clusters ${parts.map(p => p.cluster).join(', ')} in owner, system or service; ${ref} shows no owner`,
        );
        entity.spec = { type: entity.spec.type, owner: 'group:default/unknown' };
      }
    }
    if (several) an[`${A}clusters`] = parts.map(p => p.cluster).join(',');
    entities.push({ entity, locationKey: location });
  }
  return { entities, warnings };
}

module.exports = { toEntities, condition, health, safeName, KINDS };
