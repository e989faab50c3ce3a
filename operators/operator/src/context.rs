//! What every reconciler shares.

use std::{sync::Arc, time::Duration};

use kube::{
    runtime::{
        events::{Event, EventType, Recorder},
        reflector::Store,
    },
    Client, Resource,
};
use paved_api::{Cloud, Composition, PostgreSQLInstance, ServiceClaim, Team};
use rand::Rng;

use crate::metrics::Metrics;

/// A value made afresh after it has been handed out `every` times.
pub struct Rotating<T> {
    make: Box<dyn Fn() -> T + Send + Sync>,
    every: usize,
    current: std::sync::Mutex<(T, usize)>,
}

impl<T: Clone> Rotating<T> {
    pub fn new(every: usize, make: impl Fn() -> T + Send + Sync + 'static) -> Self {
        let first = make();
        Rotating {
            make: Box::new(make),
            every: every.max(1),
            current: std::sync::Mutex::new((first, 0)),
        }
    }

    pub fn get(&self) -> T {
        let mut g = self.current.lock().expect("not poisoned");
        if g.1 >= self.every {
            *g = ((self.make)(), 0);
        }
        g.1 += 1;
        g.0.clone()
    }
}

/// The Event recorder. kube's keeps every Event it published for six minutes (to
/// count a repeat into the first's series): with thousands of claims, tens of MiB. A
/// fresh one takes over after this many Events, so at most about twice as many are
/// held, and a repeat of an older one starts a new Event instead (client-go bounds
/// its cache the same way, an LRU of 4096).
pub type Events = Rotating<Recorder>;
pub const EVENTS_PER_RECORDER: usize = 1000;

pub struct Context {
    pub client: Client,
    pub events: Arc<Events>,
    pub metrics: Arc<Metrics>,
    /// Cloud for ServiceClaims that name none.
    pub default_cloud: Cloud,
    /// All Compositions, kept current by a reflector.
    pub compositions: Store<Composition>,
    /// Every namespace, as much of it as reconciles read (namespaces.rs), kept current
    /// by a reflector, so a reconcile reads the namespace's facts without a request.
    pub namespaces: Store<crate::namespaces::CachedNamespace>,
    /// How often a Ready claim is re-checked for drift nobody told us about.
    pub resync: Duration,
    /// The cloud and Temporal clients, made on first use and shared.
    pub providers: crate::registry::Providers,
    /// What was last applied per ServiceClaim, to skip writes that change nothing.
    pub applied: crate::applied::Applied,
    /// Each service's grants in the secrets namespace (see grants.rs).
    pub grants: crate::grants::Grants,
    /// Claim UID → a hash of its cloud identity's desired parts as last seen, so a
    /// change Paved asked for (`Updated`) is told from one made outside it
    /// (`DriftCorrected`).
    pub identity_wants: std::sync::Mutex<std::collections::HashMap<String, u64>>,
    /// Every claim's objects are applied again at least this often, whatever the
    /// watches reported (they cannot see everything, e.g. a deletion during a relist).
    pub full_apply_every: Duration,
    /// The operator's own namespace (its Lease, the Temporal TLS Secret).
    pub own_namespace: String,
    /// Every Team, kept current by a reflector.
    pub teams: Store<Team>,
    /// The ServiceClaim controller's cache: a namespace's facts and a team's services.
    pub service_claims: Store<ServiceClaim>,
    /// Set once `service_claims` holds its first full list.
    pub service_claims_listed: crate::watches::Listed,
    /// The PostgreSQLInstance controller's cache: a team's databases.
    pub databases: Store<PostgreSQLInstance>,
    /// Set once `databases` holds its first full list.
    pub databases_listed: crate::watches::Listed,
    /// Namespaces no claim may take or be served in.
    pub reserved: paved_compose::tenancy::Reserved,
    /// The platform's secrets namespace (`--secrets-namespace`).
    pub secrets_namespace: String,
}

impl Context {
    /// The ServiceClaim whose namespace `ns` is: the one of its name that made and
    /// controls it (by UID), or took it over (its mark), which gives it its SecretStore
    /// `paved`.
    fn service_of(&self, ns: &str) -> Option<Arc<ServiceClaim>> {
        use kube::runtime::reflector::ObjectRef;
        let claim = self.service_claims.get(&ObjectRef::new(ns))?;
        let uid = claim.metadata.uid.as_deref().unwrap_or_default();
        let controls = self.cached_namespace(ns).is_some_and(|m| {
            m.owner_references
                .iter()
                .flatten()
                .any(|o| o.kind == "ServiceClaim" && o.uid == uid && o.controller == Some(true))
                || paved_compose::tenancy::namespace_hold(&m, ns, uid)
                    == paved_compose::tenancy::NamespaceHold::Adopted
        });
        controls.then_some(claim)
    }

    /// Whether namespace `ns` is a service namespace (see `service_of`).
    pub fn is_service_namespace(&self, ns: &str) -> bool {
        self.service_of(ns).is_some()
    }

    /// The team of the service whose namespace `ns` is.
    pub fn service_owner(&self, ns: &str) -> Option<String> {
        self.service_of(ns).map(|c| c.spec.owner.clone())
    }

    /// A namespace's metadata as the cache has it (a moment behind the apiserver), with
    /// only what the cache keeps (see namespaces.rs): what needs any other field reads
    /// the namespace fresh.
    pub fn cached_namespace(
        &self,
        name: &str,
    ) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta> {
        use kube::runtime::reflector::ObjectRef;
        self.namespaces
            .get(&ObjectRef::new(name))
            .map(|ns| ns.meta())
    }

    /// A namespace's metadata from the cache (only what it keeps: see
    /// `cached_namespace`); a namespace the cache has not seen yet is read from the
    /// apiserver (it may have been created a moment ago). `fresh` always reads it, for
    /// decisions a cache a moment behind must not make and for any field the cache
    /// does not keep.
    pub async fn namespace(
        &self,
        name: &str,
        fresh: bool,
    ) -> Result<Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>, kube::Error>
    {
        if !fresh {
            if let Some(ns) = self.cached_namespace(name) {
                return Ok(Some(ns));
            }
        }
        Ok(
            kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(self.client.clone())
                .get_opt(name)
                .await?
                .map(|n| n.metadata),
        )
    }

    /// A namespace's facts (owner team, cloud, classification, cost center): from the
    /// ServiceClaim that made it, never from its labels; safe defaults (PHI, no team)
    /// for a namespace Paved did not make. `fresh` reads both from the apiserver.
    pub async fn namespace_facts(
        &self,
        ns: &str,
        fresh: bool,
    ) -> Result<paved_compose::postgresql::NamespaceFacts, kube::Error> {
        let (meta, claim) = self.namespace_and_claim(ns, fresh).await?;
        Ok(paved_compose::tenancy::namespace_facts(
            ns,
            meta.as_ref(),
            claim.as_deref(),
            &self.teams.state(),
            self.default_cloud,
        ))
    }

    /// A namespace's metadata and the ServiceClaim of its name, from the caches or, with
    /// `fresh` or when the cache lacks the claim, the apiserver (a namespace that does
    /// not exist has no claim to read).
    async fn namespace_and_claim(
        &self,
        ns: &str,
        fresh: bool,
    ) -> Result<
        (
            Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
            Option<Arc<ServiceClaim>>,
        ),
        kube::Error,
    > {
        let meta = self.namespace(ns, fresh).await?;
        let cached = (!fresh)
            .then(|| {
                self.service_claims
                    .get(&kube::runtime::reflector::ObjectRef::new(ns))
            })
            .flatten();
        // Only a namespace a ServiceClaim controls takes facts from one (see
        // `tenancy::namespace_facts`): for the others the cache's answer is enough,
        // so claims in a team's own namespaces cost no read per reconcile.
        let claim_may_matter = fresh
            || meta.as_ref().is_some_and(|m| {
                m.owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.kind == "ServiceClaim" && o.controller == Some(true))
            });
        let claim = match cached {
            Some(c) => Some(c),
            None if claim_may_matter && meta.is_some() => {
                kube::Api::<ServiceClaim>::all(self.client.clone())
                    .get_opt(ns)
                    .await?
                    .map(Arc::new)
            }
            None => None,
        };
        Ok((meta, claim))
    }

    /// What a claim's deletion is judged with, from one fresh read of its namespace
    /// and the namespace's ServiceClaim (the namespace may be terminating): the facts
    /// it is cleaned up with (see `tenancy::facts_for_cleanup`) and why it is going (see
    /// `postgresql::deletion_cause`), which decides whether a `Delete` may drop data.
    pub async fn deletion_facts<K: kube::Resource>(
        &self,
        claim: &K,
    ) -> Result<
        (
            paved_compose::postgresql::NamespaceFacts,
            paved_compose::postgresql::DeletionCause,
        ),
        kube::Error,
    > {
        let meta = claim.meta();
        let ns = meta.namespace.clone().unwrap_or_default();
        let (namespace, service) = self.namespace_and_claim(&ns, true).await?;
        let facts = paved_compose::tenancy::facts_for_cleanup(
            &ns,
            namespace.as_ref(),
            service.as_deref(),
            &self.teams.state(),
            self.default_cloud,
        );
        // The ServiceClaim that made the claim: the namespace's own (read above), or
        // whichever its owner reference names.
        let parent = meta
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.kind == "ServiceClaim");
        let parent = match parent {
            None => None,
            Some(p) if p.name == ns => service.map(|s| s.metadata.clone()),
            Some(p) => kube::Api::<ServiceClaim>::all(self.client.clone())
                .get_opt(&p.name)
                .await?
                .map(|s| s.metadata),
        };
        let cause =
            paved_compose::postgresql::deletion_cause(meta, namespace.as_ref(), parent.as_ref());
        Ok((facts, cause))
    }

    /// The Team a ServiceClaim's `spec.owner` names.
    pub fn team(&self, name: &str) -> Option<Arc<Team>> {
        self.teams
            .get(&kube::runtime::reflector::ObjectRef::new(name))
    }

    /// Waits until the claim caches hold their first full list: counts and "does any
    /// claim name this Team" must not be judged from a half-read cache (at start-up a
    /// claim past its team's cap would look within it, a Team with claims bare).
    pub async fn claims_listed(&self) -> Result<(), crate::Error> {
        let listed = async {
            self.service_claims_listed.wait().await;
            self.databases_listed.wait().await
        };
        // Bounded, so a watch that cannot list (a CRD missing, a 403) retries the
        // reconcile instead of holding a worker forever.
        tokio::time::timeout(Duration::from_secs(30), listed)
            .await
            .map_err(|_| crate::Error::Stopped("the claim caches have not listed yet"))
    }

    /// Waits (bounded) until every owned-object watch has listed once, so a claim is
    /// judged against the whole baseline; past the bound it is simply applied.
    pub async fn owned_listed(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !self.applied.all_listed() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every ServiceClaim of a team.
    pub fn team_services(&self, team: &str) -> Vec<Arc<ServiceClaim>> {
        self.service_claims
            .state()
            .into_iter()
            .filter(|c| c.spec.owner == team)
            .collect()
    }

    /// The PostgreSQLInstances in namespace `ns`, by name: their credentials are the
    /// service's to read (one scan of the cache serves the grant and the role).
    pub fn databases_in(&self, ns: &str) -> Vec<Arc<PostgreSQLInstance>> {
        let mut dbs: Vec<Arc<PostgreSQLInstance>> = self
            .databases
            .state()
            .into_iter()
            .filter(|d| d.metadata.namespace.as_deref() == Some(ns))
            .collect();
        dbs.sort_by_key(|d| kube::ResourceExt::name_any(d.as_ref()));
        dbs
    }

    /// Every PostgreSQLInstance Paved makes in a team's namespaces (its services' and
    /// the existing namespaces it lists): what the team's database cap counts.
    pub fn team_databases(&self, team: &Team) -> Vec<Arc<PostgreSQLInstance>> {
        let name = kube::ResourceExt::name_any(team);
        let namespaces: std::collections::HashSet<String> = self
            .team_services(&name)
            .iter()
            .map(|c| kube::ResourceExt::name_any(c.as_ref()))
            .chain(team.spec.namespaces.iter().map(|n| n.name.clone()))
            .collect();
        self.databases
            .state()
            .into_iter()
            // An observed database (`spec.existing`) takes no slot of the cap.
            .filter(|d| {
                !d.spec.observes()
                    && d.metadata
                        .namespace
                        .as_ref()
                        .is_some_and(|n| namespaces.contains(n))
            })
            .collect()
    }

    /// Publishes an Event; failing to record one never fails a reconcile.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        publish(
            &self.events,
            &obj.object_ref(&()),
            type_,
            reason,
            action,
            note,
        )
        .await;
    }
}

/// Publishes an Event about any object; failing to record one is only logged.
pub async fn publish(
    events: &Events,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(truncate(note, 1000)),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = events.get().publish(&ev, reference).await {
        tracing::warn!(error = %e, "could not publish event");
    }
}

/// At most `max` bytes, cut at a character boundary (Event notes are limited to 1 KiB).
fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// The wait until the next multiple of `interval` on the wall clock, plus up to half
/// a second: claims that poll the same cloud at the same interval wake together and
/// their observes share one list call.
pub fn aligned(interval: Duration) -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    until_next_tick(now, interval) + Duration::from_millis(rand::rng().random_range(0..500))
}

/// Pure: from `now` (since the epoch) to the next multiple of `interval`.
pub fn until_next_tick(now: Duration, interval: Duration) -> Duration {
    let i = interval.as_millis().max(1);
    Duration::from_millis((i - now.as_millis() % i) as u64)
}

/// `base` ± 10%, so thousands of claims do not resync in lockstep.
pub fn jitter(base: Duration) -> Duration {
    let spread = base.as_millis() as u64 / 10;
    let delta = rand::rng().random_range(0..=spread * 2);
    Duration::from_millis(base.as_millis() as u64 - spread + delta)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_fall_on_multiples_of_the_interval() {
        let i = Duration::from_secs(20);
        assert_eq!(until_next_tick(Duration::from_secs(100), i), i);
        assert_eq!(
            until_next_tick(Duration::from_millis(105_500), i),
            Duration::from_millis(14_500)
        );
        assert_eq!(
            until_next_tick(Duration::from_secs(119), i),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn a_rotating_value_is_made_afresh_after_every_n_uses() {
        let made = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let m = made.clone();
        let r = Rotating::new(2, move || {
            m.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
        });
        let got: Vec<usize> = (0..5).map(|_| r.get()).collect();
        assert_eq!(got, [1, 1, 2, 2, 3]);
        assert_eq!(made.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}
