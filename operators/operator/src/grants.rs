//! Which grants (Roles and RoleBindings) each service name has in the platform's
//! secrets namespace, as the owned-object watches of those two kinds see them.
//!
//! A new service must not inherit the grants an earlier service of its name left (see
//! `remove_grants` in service.rs): they bind the ServiceAccount `<name>/<name>` by name.
//! Listing the secrets namespace for them on every new claim cost two LISTs a claim,
//! each scanning every grant of every service. This index answers "is there anything
//! to remove?" without a request; only a yes, or an index not complete, lists.
//!
//! The index errs only towards listing:
//! - it is complete only once both kinds' watches have listed (a kind not watched, e.g.
//!   its discovery failed at start, leaves it incomplete for the process's life);
//! - a grant Paved is about to write is entered before the write, so one whose watch
//!   event is still in flight is known;
//! - the watches select Paved's label (`app.kubernetes.io/managed-by`); a grant that
//!   loses it leaves their selector, which the apiserver reports as a deletion of an
//!   object that still exists: it stays in the index as nobody's;
//! - an entry the watch missed the deletion of (during a relist) is dropped when that
//!   relist ends, and a list of one service's grants replaces what was known before
//!   it began.
//!
//! Only the platform and the operator write in the secrets namespace (tenants cannot);
//! the grants the operator makes carry its labels (managed-by, claim kind and name).
//! One the platform makes by hand with a claim's labels but not Paved's managed-by
//! label is not indexed.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use paved_api::labels;

/// One grant: the UIDs of the claims that own it, whether it is being deleted, and
/// when (in the index's own sequence) it was last seen or written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Grant {
    owners: Vec<String>,
    deleting: bool,
    seen: u64,
}

impl Grant {
    /// A grant as its metadata shows it, seen at `seen`.
    fn of(meta: &ObjectMeta, seen: u64) -> Self {
        Grant {
            owners: meta
                .owner_references
                .iter()
                .flatten()
                .map(|o| o.uid.clone())
                .collect(),
            deleting: meta.deletion_timestamp.is_some(),
            seen,
        }
    }
}

#[derive(Default)]
pub struct Grants {
    inner: Mutex<Inner>,
    /// Every change to the index takes the next number.
    seq: AtomicU64,
}

#[derive(Default)]
struct Inner {
    /// Service name → `kind/name` of each of its grants → the grant.
    by_service: HashMap<String, HashMap<String, Grant>>,
    /// Per kind: the sequence number its current relist began at, while it runs.
    relisting: HashMap<String, u64>,
    /// The kinds whose first list is done.
    listed: Vec<String>,
}

/// The service a grant was made for, from its labels (None: not a ServiceClaim's).
fn service_of(meta: &ObjectMeta) -> Option<&str> {
    let l = meta.labels.as_ref()?;
    (l.get(labels::CLAIM_KIND).map(String::as_str) == Some("ServiceClaim"))
        .then(|| l.get(labels::CLAIM_NAME).map(String::as_str))
        .flatten()
}

/// Whether the object still carries the label the watches select (a deletion event
/// for one that does not is its leaving the selector, not its deletion).
fn selected(meta: &ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(labels::MANAGED_BY))
        .map(String::as_str)
        == Some(labels::MANAGED_BY_VALUE)
}

/// A grant's key within its service's entry.
fn key(kind: &str, name: &str) -> String {
    format!("{kind}/{name}")
}

fn key_of(kind: &str, meta: &ObjectMeta) -> String {
    key(kind, meta.name.as_deref().unwrap_or_default())
}

impl Grants {
    fn next(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The index's position now: what a list started now is newer than.
    pub fn position(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    /// Whether both kinds' watches have listed: before that, `others` is no answer.
    pub fn complete(&self, kinds: &[&str]) -> bool {
        let g = self.inner.lock().expect("grants lock");
        kinds.iter().all(|k| g.listed.iter().any(|l| l == k))
    }

    /// A watch of `kind` begins a list (its first, or a relist).
    pub fn list_begins(&self, kind: &str) {
        let at = self.next();
        let mut g = self.inner.lock().expect("grants lock");
        g.relisting.insert(kind.to_string(), at);
    }

    /// A watch of `kind` has listed: entries of that kind neither seen by the list nor
    /// written since it began are gone (their deletion was missed).
    pub fn list_done(&self, kind: &str) {
        let mut g = self.inner.lock().expect("grants lock");
        let Some(began) = g.relisting.remove(kind) else {
            return;
        };
        let prefix = format!("{kind}/");
        g.by_service.retain(|_, of| {
            of.retain(|k, grant| !k.starts_with(&prefix) || grant.seen > began);
            !of.is_empty()
        });
        if !g.listed.iter().any(|l| l == kind) {
            g.listed.push(kind.to_string());
        }
    }

    /// A watch event about a grant in the secrets namespace.
    pub fn observe(&self, kind: &str, meta: &ObjectMeta, deleted: bool) {
        let Some(service) = service_of(meta) else {
            return;
        };
        let seen = self.next();
        let mut g = self.inner.lock().expect("grants lock");
        if deleted && selected(meta) {
            if let Some(of) = g.by_service.get_mut(service) {
                of.remove(&key_of(kind, meta));
                if of.is_empty() {
                    g.by_service.remove(service);
                }
            }
            return;
        }
        let grant = if deleted {
            // Out of the watches' sight, still there: nobody's, so it is listed.
            Grant {
                owners: vec![],
                deleting: false,
                seen,
            }
        } else {
            Grant::of(meta, seen)
        };
        g.by_service
            .entry(service.to_string())
            .or_default()
            .insert(key_of(kind, meta), grant);
    }

    /// Paved is about to write grant `kind/name` for service `service`, owned by the
    /// claim `uid`: known before the watch reports it.
    pub fn writing(&self, service: &str, kind: &str, name: &str, uid: &str) {
        let seen = self.next();
        let mut g = self.inner.lock().expect("grants lock");
        let entry = g
            .by_service
            .entry(service.to_string())
            .or_default()
            .entry(key(kind, name))
            .or_default();
        if !entry.owners.iter().any(|o| o == uid) {
            entry.owners.push(uid.to_string());
        }
        entry.seen = seen;
    }

    /// Whether service `service` may have a grant that is not the claim `keep`'s and is
    /// not already going: what `remove_grants` lists and deletes.
    pub fn others(&self, service: &str, keep: Option<&str>) -> bool {
        let g = self.inner.lock().expect("grants lock");
        g.by_service.get(service).is_some_and(|of| {
            of.values().any(|grant| {
                !grant.deleting && !keep.is_some_and(|uid| grant.owners.iter().any(|o| o == uid))
            })
        })
    }

    /// What lists of service `service`'s grants begun at `began` (see `position`) found
    /// (`kind`, metadata), minus those then deleted: the list is the newer word on what
    /// the index knew before it began; what was seen or written since stays.
    pub fn listed<'a>(
        &self,
        service: &str,
        began: u64,
        found: impl IntoIterator<Item = (&'a str, &'a ObjectMeta)>,
    ) {
        let seen = self.next();
        let mut g = self.inner.lock().expect("grants lock");
        let of = g.by_service.entry(service.to_string()).or_default();
        of.retain(|_, grant| grant.seen > began);
        for (kind, meta) in found {
            of.entry(key_of(kind, meta))
                .or_insert_with(|| Grant::of(meta, seen));
        }
        if of.is_empty() {
            g.by_service.remove(service);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};

    fn grant(name: &str, service: &str, owner: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("paved-secrets".into()),
            labels: Some(
                [
                    (
                        labels::MANAGED_BY.to_string(),
                        labels::MANAGED_BY_VALUE.to_string(),
                    ),
                    (labels::CLAIM_KIND.to_string(), "ServiceClaim".to_string()),
                    (labels::CLAIM_NAME.to_string(), service.to_string()),
                ]
                .into(),
            ),
            owner_references: owner.map(|uid| {
                vec![OwnerReference {
                    uid: uid.into(),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_grant_of_an_earlier_claim_of_the_name_is_found_and_the_claims_own_is_not() {
        let g = Grants::default();
        assert!(!g.others("orders", Some("new")), "nothing known");
        g.observe("Role", &grant("orders", "orders", Some("old")), false);
        assert!(g.others("orders", Some("new")), "the earlier claim's grant");
        assert!(!g.others("orders", Some("old")), "the claim's own stays");
        assert!(g.others("orders", None), "a refused claim keeps none");
        assert!(!g.others("payments", Some("new")), "another service's");
        // One without an owner (orphaned by `--cascade=orphan`) is nobody's to keep.
        g.observe("RoleBinding", &grant("orders", "orders", None), false);
        g.observe("Role", &grant("orders", "orders", Some("new")), false);
        assert!(g.others("orders", Some("new")));
        g.observe("RoleBinding", &grant("orders", "orders", None), true);
        assert!(!g.others("orders", Some("new")), "the orphan deleted");
    }

    #[test]
    fn a_grant_that_leaves_the_watches_selector_stays_as_nobodys() {
        let g = Grants::default();
        g.observe("Role", &grant("orders", "orders", Some("new")), false);
        assert!(!g.others("orders", Some("new")));
        // Its managed-by label removed: the apiserver says DELETED, the object lives.
        let mut unlabelled = grant("orders", "orders", Some("new"));
        unlabelled
            .labels
            .as_mut()
            .unwrap()
            .remove(labels::MANAGED_BY);
        g.observe("Role", &unlabelled, true);
        assert!(g.others("orders", Some("new")), "listed, not forgotten");
    }

    #[test]
    fn a_grant_being_deleted_or_not_a_claims_is_not_counted() {
        let g = Grants::default();
        let mut going = grant("orders", "orders", Some("old"));
        going.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        g.observe("Role", &going, false);
        assert!(!g.others("orders", Some("new")));
        let mut unlabeled = grant("x", "orders", Some("old"));
        unlabeled.labels = None;
        g.observe("Role", &unlabeled, false);
        assert!(!g.others("orders", Some("new")));
    }

    #[test]
    fn a_write_is_known_before_its_watch_event_and_a_list_replaces_what_was_known() {
        let g = Grants::default();
        g.writing("orders", "Role", "orders", "old");
        assert!(
            g.others("orders", Some("new")),
            "in flight, already counted"
        );
        assert!(!g.others("orders", Some("old")));
        g.observe("Role", &grant("orders", "orders", Some("old")), false);
        assert!(!g.others("orders", Some("old")));
        // A list found it gone (its deletion missed during a relist).
        let began = g.position();
        g.listed("orders", began, std::iter::empty());
        assert!(!g.others("orders", Some("new")));
        let kept = grant("orders", "orders", Some("new"));
        g.listed("orders", g.position(), [("Role", &kept)]);
        assert!(!g.others("orders", Some("new")));
        assert!(g.others("orders", None));
    }

    #[test]
    fn what_is_seen_or_written_while_a_list_runs_outlives_its_answer() {
        let g = Grants::default();
        let began = g.position();
        // Made while the list ran (by another hand, or an apply): newer than the list.
        g.observe("RoleBinding", &grant("orders", "orders", None), false);
        g.writing("orders", "Role", "orders", "new");
        g.listed("orders", began, std::iter::empty());
        assert!(
            g.others("orders", Some("new")),
            "the binding seen meanwhile stays"
        );
        assert!(g.others("orders", Some("other")), "the write stays too");
    }

    #[test]
    fn the_index_is_complete_only_once_both_kinds_have_listed_and_a_relist_prunes() {
        let g = Grants::default();
        let kinds = ["Role", "RoleBinding"];
        g.list_begins("Role");
        g.observe("Role", &grant("a", "a", Some("old")), false);
        g.list_done("Role");
        assert!(!g.complete(&kinds), "RoleBindings not listed yet");
        g.list_begins("RoleBinding");
        g.list_done("RoleBinding");
        assert!(g.complete(&kinds));
        // Role `b` was seen, then deleted while the watch was down: the relist does
        // not show it, and its end drops it; `a` is shown again and stays.
        g.observe("Role", &grant("b", "b", Some("old")), false);
        g.list_begins("Role");
        g.observe("Role", &grant("a", "a", Some("old")), false);
        // Written while the relist runs: stays.
        g.writing("c", "Role", "c", "new");
        g.list_done("Role");
        assert!(g.others("a", Some("new")));
        assert!(!g.others("b", Some("new")), "missed deletion pruned");
        assert!(g.others("c", Some("other")));
        assert!(g.complete(&kinds), "a relist keeps the index complete");
    }
}
