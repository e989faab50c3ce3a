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

/// A Paved kind's watch for its controller, cached without managedFields (the largest
/// part of a stored object, and nothing a reconcile reads). A malformed object is left
/// out and reported (see tolerant.rs) rather than breaking the watch for the others.
pub(crate) fn claims_stream<K>(
    client: &Client,
    malformed: &Arc<tolerant::Malformed>,
    writer: reflector::store::Writer<K>,
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
    tolerant::watch(client.clone(), malformed.clone())
        .modify(|o: &mut K| o.managed_fields_mut().clear())
        .reflect(writer)
        .touched_objects()
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
    kind: &str,
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
    let kind = kind.to_string();
    let mut first_list = FirstList::default();
    watcher(api, cfg.clone())
        .default_backoff()
        .map_ok(move |event| {
            let baseline = first_list.during(&event, &ctx);
            if let Some((m, deleted)) = changed(&event) {
                observe_owned(&ctx, &kind, m, deleted, baseline);
            }
            event
        })
        .touched_objects()
}

/// Tracks an owned-object watch's first list: what it finds is the baseline a
/// restarted operator resumes from (see applied.rs); later lists are judged as usual.
#[derive(Default)]
pub(crate) struct FirstList {
    done: bool,
}

impl FirstList {
    /// Whether `event` belongs to the first list; reports the list's end once.
    pub(crate) fn during<K>(&mut self, event: &watcher::Event<K>, ctx: &Context) -> bool {
        if self.done {
            return false;
        }
        if matches!(event, watcher::Event::InitDone) {
            self.done = true;
            ctx.applied.listed();
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
}
