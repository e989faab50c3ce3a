//! The watches the controllers run on: Paved's kinds (tolerant of malformed objects),
//! and the metadata-only watches of what a ServiceClaim owns, whose changes mark the
//! claim for a fresh apply (see applied.rs).

use std::{sync::Arc, time::Duration};

use futures::TryStreamExt;
use kube::{
    runtime::{reflector, watcher, WatchStreamExt},
    Api, Client, ResourceExt,
};
use paved_api::{Composition, ServiceClaim};

use crate::{applied, context::Context, tolerant};

/// The configuration every watch of the operator starts from: lists of 100 objects a
/// page (kube's default is 500). A page is held whole, as JSON and as objects, while it
/// is read, and the watches list at once after a start: with 100 the operator's peak
/// memory over 10,000 cached claims was 12 MiB lower (BENCHMARKS.md), for the same time
/// to reconcile them all.
pub(crate) fn config() -> watcher::Config {
    watcher::Config::default().page_size(100)
}

/// A Paved kind's watch for its controller, cached without managedFields (the largest
/// part of a stored object, and nothing a reconcile reads) nor kubectl's copy of the
/// last object it applied (a claim applied client-side, by kubectl or Argo CD, carries
/// its whole spec again in it). A malformed object is left
/// out and reported (see tolerant.rs) rather than breaking the watch for the others.
/// `listed` is marked once the first list is in the store.
pub(crate) fn claims_stream<K>(
    client: &Client,
    malformed: &Arc<tolerant::Malformed>,
    writer: reflector::store::Writer<K>,
    listed: Option<&Listed>,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + tolerant::Placeholder
        + Send
        + Sync
        + 'static,
{
    let listed = listed.cloned();
    let started = std::time::Instant::now();
    tolerant::watch(client.clone(), malformed.clone())
        .modify(|o: &mut K| for_claim_cache(o.meta_mut()))
        .reflect(writer)
        .inspect_ok(move |e| {
            // After `reflect`: the store holds the list by now.
            if let (watcher::Event::InitDone, Some(l)) = (e, &listed) {
                if l.mark() {
                    tracing::info!(
                        kind = %K::kind(&()),
                        seconds = started.elapsed().as_secs_f64(),
                        "claim cache listed"
                    );
                }
            }
        })
        .touched_objects()
}

/// kubectl's (and Argo CD's client-side apply's) record of the object it last applied.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What a claim cache keeps of a claim's metadata: all but what no reconcile reads. A
/// cached claim is therefore never written back whole (a PUT of it would drop the live
/// annotation); writes name their fields (merge patches, server-side apply).
pub(crate) fn for_claim_cache(
    meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) {
    meta.managed_fields = None;
    if let Some(a) = &mut meta.annotations {
        a.remove(LAST_APPLIED);
    }
}

/// Set once a claim cache holds its first full list. Every waiter is woken: the
/// store's own `wait_until_ready` is a oneshot that wakes only the last of several
/// concurrent waiters, so after a restart every reconcile but one waiting on it slept
/// until its timeout (30 s in `Context::claims_listed`).
#[derive(Clone)]
pub struct Listed(Arc<tokio::sync::watch::Sender<bool>>);

impl Default for Listed {
    fn default() -> Self {
        Listed(Arc::new(tokio::sync::watch::Sender::new(false)))
    }
}

impl Listed {
    /// Marks the first list done; true the first time.
    pub fn mark(&self) -> bool {
        !self.0.send_replace(true)
    }

    /// Returns once the first list is done.
    pub async fn wait(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives as long as `self`: never closed while waited on.
        let _ = rx.wait_for(|done| *done).await;
    }
}

/// Every Composition change, for a claim controller to map to the claims it affects.
pub(crate) fn compositions_stream(
    client: &Client,
    malformed: &Arc<tolerant::Malformed>,
) -> impl futures::Stream<Item = Result<Composition, watcher::Error>> + Send + 'static {
    tolerant::watch(client.clone(), malformed.clone()).touched_objects()
}

/// The Controller's own trigger backoff, off: every stream it merges backs off on its
/// own (`default_backoff`), and one backoff over all of them pauses every watch for
/// each error of any one. After an apiserver restart, a dozen watches' errors (refused
/// connections, RBAC's 403s while it warms up) added up to minutes in which no
/// trigger reached a claim.
pub(crate) struct EachStreamBacksOff;

impl Iterator for EachStreamBacksOff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        Some(Duration::ZERO)
    }
}

impl kube::runtime::utils::Backoff for EachStreamBacksOff {
    fn reset(&mut self) {}
}

/// A metadata-only watch of one kind a ServiceClaim owns. Every change triggers the
/// owning claim's reconcile (as `owns` does); see `observe_owned`.
pub(crate) fn owned<K>(
    api: Api<K>,
    kind: &'static str,
    cfg: &watcher::Config,
    ctx: &Arc<Context>,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let ctx = ctx.clone();
    let mut first_list = FirstList::new(kind);
    watcher(api, cfg.clone())
        .default_backoff()
        .map_ok(move |event| {
            let baseline = first_list.during(&event, &ctx);
            if let Some((m, deleted)) = changed(&event) {
                observe_owned(&ctx, first_list.kind, m, deleted, baseline);
            }
            // The grants index knows when each of its kinds' lists begins and ends.
            if crate::service::is_grant_kind(first_list.kind) {
                match event {
                    watcher::Event::Init => ctx.grants.list_begins(first_list.kind),
                    watcher::Event::InitDone => ctx.grants.list_done(first_list.kind),
                    _ => {}
                }
            }
            event
        })
        .touched_objects()
}

/// Tracks an owned-object watch's first list: what it finds is the baseline a
/// restarted operator resumes from (see applied.rs); later lists are judged as usual.
pub(crate) struct FirstList {
    kind: &'static str,
    started: std::time::Instant,
    seen: usize,
    done: bool,
}

impl FirstList {
    pub(crate) fn new(kind: &'static str) -> Self {
        FirstList {
            kind,
            started: std::time::Instant::now(),
            seen: 0,
            done: false,
        }
    }

    /// Whether `event` belongs to the first list; reports the list's end once.
    pub(crate) fn during<K>(&mut self, event: &watcher::Event<K>, ctx: &Context) -> bool {
        if self.done {
            return false;
        }
        match event {
            watcher::Event::InitApply(_) => self.seen += 1,
            watcher::Event::InitDone => {
                self.done = true;
                ctx.applied.listed();
                tracing::info!(
                    kind = self.kind,
                    objects = self.seen,
                    seconds = self.started.elapsed().as_secs_f64(),
                    "first list of an owned kind done"
                );
            }
            _ => {}
        }
        true
    }
}

/// The object a watch event is about, and whether it was deleted; `None` for the
/// events that only frame a relist.
pub(crate) fn changed<K>(event: &watcher::Event<K>) -> Option<(&K, bool)> {
    match event {
        watcher::Event::Apply(m) | watcher::Event::InitApply(m) => Some((m, false)),
        watcher::Event::Delete(m) => Some((m, true)),
        watcher::Event::Init | watcher::Event::InitDone => None,
    }
}

/// What a change to an object seen by a watch means for ServiceClaims: the claim that
/// owns it (if Paved made it for one), to reconcile; a change that is not the echo of
/// Paved's own write also marks that claim for a fresh apply (see applied.rs).
pub(crate) fn observe_owned<K: kube::Resource>(
    ctx: &Context,
    kind: &str,
    m: &K,
    deleted: bool,
    baseline: bool,
) -> Option<reflector::ObjectRef<ServiceClaim>> {
    // Grants in the secrets namespace are indexed whoever owns them: one orphaned by an
    // earlier claim of a name is what a new claim of that name must not inherit.
    if crate::service::is_grant(ctx, kind, m.meta().namespace.as_deref()) {
        ctx.grants.observe(kind, m.meta(), deleted);
    }
    // The controller reference alone (only Paved sets one to a ServiceClaim): an object
    // whose labels someone stripped is still the claim's, and its change still counts.
    let owner = owning_claim(m)?;
    let key = match m.namespace() {
        Some(ns) => format!("{kind}/{ns}/{}", m.name_any()),
        None => format!("{kind}/{}", m.name_any()),
    };
    let seen = applied::Written::seen(m.meta(), deleted);
    if baseline {
        ctx.applied.baseline(&key, &seen);
    } else {
        ctx.applied.observed(&key, &seen, &owner.name);
    }
    Some(owner)
}

/// The ServiceClaim that controls an object, as the claim's own (cluster-scoped)
/// reference. `owns` would name it within the child's namespace: a second queue
/// entry for the same claim, so two reconciles of one claim could overlap.
pub(crate) fn owning_claim<K: kube::Resource>(
    child: &K,
) -> Option<reflector::ObjectRef<ServiceClaim>> {
    child
        .owner_references()
        .iter()
        .find(|o| {
            use kube::Resource;
            o.controller == Some(true)
                && o.kind == ServiceClaim::kind(&())
                && o.api_version == ServiceClaim::api_version(&())
        })
        .map(|o| reflector::ObjectRef::new(&o.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};

    #[tokio::test]
    async fn every_waiter_is_woken_when_the_first_list_is_done() {
        let listed = super::Listed::default();
        let waiters: Vec<_> = (0..16)
            .map(|_| {
                let l = listed.clone();
                tokio::spawn(async move { l.wait().await })
            })
            .collect();
        // Every waiter is parked before the list ends (as reconciles are at start-up).
        tokio::task::yield_now().await;
        assert!(listed.mark(), "the first mark");
        assert!(!listed.mark(), "said once");
        let all = futures::future::join_all(waiters);
        tokio::time::timeout(std::time::Duration::from_secs(10), all)
            .await
            .expect("every waiter woken, not only the last one");
        // And one that comes later returns at once.
        listed.wait().await;
    }

    #[test]
    fn a_child_names_its_claim_as_the_claim_itself_is_named() {
        use k8s_openapi::{
            api::networking::v1::NetworkPolicy,
            apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
        };
        use kube::runtime::reflector::ObjectRef;
        let child = |api_version: &str, controller: Option<bool>| NetworkPolicy {
            metadata: ObjectMeta {
                name: Some("default-deny".into()),
                namespace: Some("svc".into()),
                owner_references: Some(vec![OwnerReference {
                    api_version: api_version.into(),
                    kind: "ServiceClaim".into(),
                    name: "svc".into(),
                    uid: "u".into(),
                    controller,
                    ..Default::default()
                }]),
                ..Default::default()
            },
            ..Default::default()
        };
        let claim = super::owning_claim(&child("paved.dev/v1alpha1", Some(true))).unwrap();
        assert_eq!(claim, ObjectRef::new("svc"));
        assert_eq!(claim.namespace, None, "cluster-scoped, like the claim");
        assert!(super::owning_claim(&child("paved.dev/v1alpha1", None)).is_none());
        assert!(super::owning_claim(&child("other.io/v1", Some(true))).is_none());
    }
    #[test]
    fn the_claim_cache_drops_managed_fields_and_kubectls_copy_only() {
        let mut m = ObjectMeta {
            name: Some("orders".into()),
            managed_fields: Some(vec![ManagedFieldsEntry::default()]),
            annotations: Some(
                [
                    (LAST_APPLIED.to_string(), "{\"spec\":{}}".to_string()),
                    ("paved.dev/create-pending".to_string(), "x".to_string()),
                ]
                .into(),
            ),
            ..Default::default()
        };
        for_claim_cache(&mut m);
        assert!(m.managed_fields.is_none());
        let a = m.annotations.unwrap();
        assert_eq!(a.len(), 1);
        assert!(a.contains_key("paved.dev/create-pending"));
        assert_eq!(m.name.as_deref(), Some("orders"));
    }
}
