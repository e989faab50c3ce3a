'use strict';
// The thin I/O layer: lists Paved's claims through the Kubernetes backend's proxy (so the
// cluster's URL, CA and credentials are the Kubernetes plugin's own configuration) and
// hands them to toEntities. Everything that decides what an entity says is in entities.js.

const { toEntities, KINDS } = require('./entities');

const API = '/apis/paved.dev/v1alpha1';
const PAGE = 500;

/** @param {unknown} e */
function describe(e) {
  return e instanceof Error ? e.message : String(e);
}

class PavedEntityProvider {
  /**
   * @param {{
   *   discovery: import('@backstage/backend-plugin-api').DiscoveryService,
   *   auth: import('@backstage/backend-plugin-api').AuthService,
   *   logger: import('@backstage/backend-plugin-api').LoggerService,
   *   clusters?: string[],
   *   readTeams?: boolean,
   *   requestTimeoutMs?: number,
   * }} options `clusters`: only these (default: every cluster the Kubernetes backend has)
   */
  constructor({ discovery, auth, logger, clusters, readTeams = true, requestTimeoutMs = 20000 }) {
    this.discovery = discovery;
    this.auth = auth;
    this.logger = logger;
    this.clusters = clusters;
    this.readTeams = readTeams;
    this.requestTimeoutMs = requestTimeoutMs;
    /** @type {import('@backstage/plugin-catalog-node').EntityProviderConnection | undefined} */
    this.connection = undefined;
    /** Last successful read per cluster and kind: shown, marked Unknown, while a read fails. */
    /** @type {Map<string, Map<string, any[]>>} */
    this.lastRead = new Map();
    /** @type {string[] | undefined} */
    this.lastClusters = undefined;
    /** @type {Set<string>} */
    this.reported = new Set();
    /** @type {(() => Promise<void>) | undefined} set by the module: starts the schedule */
    this.onConnect = undefined;
  }

  getProviderName() {
    return 'paved';
  }

  /** @param {import('@backstage/plugin-catalog-node').EntityProviderConnection} connection */
  async connect(connection) {
    this.connection = connection;
    await this.onConnect?.();
  }

  async request(path, cluster) {
    const base = await this.discovery.getBaseUrl('kubernetes');
    const { token } = await this.auth.getPluginRequestToken({
      onBehalfOf: await this.auth.getOwnServiceCredentials(),
      targetPluginId: 'kubernetes',
    });
    const headers = { authorization: `Bearer ${token}`, accept: 'application/json' };
    if (cluster) headers['Backstage-Kubernetes-Cluster'] = cluster;
    const res = await fetch(`${base}${path}`, { headers, signal: AbortSignal.timeout(this.requestTimeoutMs) });
    if (!res.ok) {
      // The apiserver's Status message (or Backstage's error) says why; never a header.
      let why = '';
      try {
        const body = await res.json();
        why = body?.message ?? body?.error?.message ?? '';
      } catch {
        /* not JSON */
      }
      const err = new Error(`${res.status} ${res.statusText}${why ? `: ${String(why).slice(0, 300)}` : ''}`);
      err.status = res.status;
      throw err;
    }
    return res.json();
  }

  async clusterNames() {
    if (this.clusters) return this.clusters;
    const body = await this.request('/clusters');
    return (body?.items ?? []).map(c => c?.name).filter(n => typeof n === 'string' && n);
  }

  /** Every object of one kind in one cluster, page by page. */
  async list(cluster, plural) {
    const items = [];
    let next = '';
    do {
      const q = `limit=${PAGE}${next ? `&continue=${encodeURIComponent(next)}` : ''}`;
      const body = await this.request(`/proxy${API}/${plural}?${q}`, cluster);
      if (!Array.isArray(body?.items)) throw new Error(`${plural}: the answer holds no items list`);
      items.push(...body.items);
      next = body?.metadata?.continue ?? '';
    } while (next);
    return items;
  }

  async readCluster(name) {
    const last = this.lastRead.get(name) ?? new Map();
    this.lastRead.set(name, last);
    const kinds = [
      ['serviceClaims', KINDS.ServiceClaim.plural],
      ['postgresqlInstances', KINDS.PostgreSQLInstance.plural],
      ['temporalNamespaces', KINDS.TemporalNamespace.plural],
      ...(this.readTeams ? [['teams', 'teams']] : []),
    ];
    const snapshot = { name };
    await Promise.all(
      kinds.map(async ([key, plural]) => {
        try {
          const items = await this.list(name, plural);
          last.set(key, items);
          snapshot[key] = { items };
          this.recovered(`${name}/${plural}`);
        } catch (e) {
          // Teams only lend owners to namespaces without a ServiceClaim; a reader may
          // lack them (403), or a cluster the Team kind (404), and everything else still works.
          if (key === 'teams' && (e.status === 403 || e.status === 404)) {
            snapshot[key] = { items: [] };
            this.once(`${name}/teams/${e.status}`, 'debug', `cluster ${name}: cannot list Teams (${e.status}); owners come from ServiceClaims only`);
            return;
          }
          const error = `cannot read ${plural} from cluster ${name}: ${describe(e)}`;
          this.once(`${name}/${plural}`, 'warn', error);
          // `neverRead`: no read of this kind has succeeded since the module started, so
          // there are no last items to keep showing (see refresh).
          snapshot[key] = last.has(key) ? { items: last.get(key), error } : { items: [], error, neverRead: true };
        }
      }),
    );
    return snapshot;
  }

  /** Logs a problem once until it goes away. */
  once(key, level, message) {
    if (this.reported.has(key)) return;
    this.reported.add(key);
    this.logger[level](message);
  }

  recovered(key) {
    if (this.reported.delete(key)) this.logger.info(`${key}: readable again`);
  }

  async refresh() {
    if (!this.connection) throw new Error('PavedEntityProvider is not connected yet');
    let names;
    try {
      names = await this.clusterNames();
      this.lastClusters = names;
      this.recovered('clusters');
    } catch (e) {
      this.once('clusters', 'warn', `cannot list the Kubernetes backend's clusters: ${describe(e)}`);
      if (!this.lastClusters) return; // nothing known yet: nothing to show
      names = this.lastClusters;
    }
    for (const gone of [...this.lastRead.keys()].filter(n => !names.includes(n))) this.lastRead.delete(gone);
    const clusters = await Promise.all(names.map(n => this.readCluster(n)));
    // A full mutation replaces everything this provider said before. A kind that has never
    // been read since the module started (a restart while an apiserver fails) has no items
    // to say: applying would delete its entities from the catalog. Until every kind has been
    // read once, the catalog keeps what it stored.
    const unread = clusters.flatMap(c =>
      Object.entries(c)
        .filter(([, list]) => list && typeof list === 'object' && list.neverRead)
        .map(([key]) => `${c.name}/${key}`),
    );
    if (unread.length > 0) {
      this.once(
        `unread:${unread.join(',')}`,
        'warn',
        `not updating the catalog until ${unread.join(', ')} can be read once; it keeps the entities it has`,
      );
      return undefined;
    }
    const { entities, warnings } = toEntities({ clusters });
    for (const w of warnings) this.once(`warning:${w}`, 'warn', w);
    await this.connection.applyMutation({ type: 'full', entities });
    return entities.length;
  }
}

module.exports = { PavedEntityProvider };
