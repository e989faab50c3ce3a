//! Which grants (Roles and RoleBindings) each service name has in the platform's
//! secrets namespace, as the owned-object watches see them.
//!
//! A new service must not inherit the grants an earlier service of its name left (see
//! `remove_grants` in service.rs): they bind the ServiceAccount `<name>/<name>` by name.
//! Listing the secrets namespace for them on every new claim cost two LISTs a claim,
//! each scanning every grant of every service. This index answers "is there anything
//! to remove?" without a request; only a yes (or an index not yet complete) lists.
//!
//! The index errs only towards listing: an object Paved is about to write is entered
//! before the write (so a grant whose watch event is still in flight is known), an
//! entry the watch missed the deletion of stays until a list for that name replaces
//! it. Only the platform and the operator write in the secrets namespace, and Paved's
//! own grants carry its labels (managed-by, claim kind and name), which the watch
//! selects.

use std::{collections::HashMap, sync::Mutex};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use paved_api::labels;

/// One grant: the UIDs of the claims that own it, and whether it is being deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Grant {
    owners: Vec<String>,
    deleting: bool,
}

#[derive(Default)]
pub struct Grants {
    /// Service name → `kind/name` of each of its grants → the grant.
    by_service: Mutex<HashMap<String, HashMap<String, Grant>>>,
}

/// The service a grant was made for, from its labels (None: not a ServiceClaim's).
fn service_of(meta: &ObjectMeta) -> Option<&str> {
    let l = meta.labels.as_ref()?;
    (l.get(labels::CLAIM_KIND).map(String::as_str) == Some("ServiceClaim"))
        .then(|| l.get(labels::CLAIM_NAME).map(String::as_str))
        .flatten()
}

fn grant_of(meta: &ObjectMeta) -> Grant {
    Grant {
        owners: meta
            .owner_references
            .iter()
            .flatten()
            .map(|o| o.uid.clone())
            .collect(),
        deleting: meta.deletion_timestamp.is_some(),
    }
}

fn key(kind: &str, meta: &ObjectMeta) -> String {
    format!("{kind}/{}", meta.name.as_deref().unwrap_or_default())
}

impl Grants {
    /// A watch event about a grant in the secrets namespace.
    pub fn observe(&self, kind: &str, meta: &ObjectMeta, deleted: bool) {
        let Some(service) = service_of(meta) else {
            return;
        };
        let mut g = self.by_service.lock().expect("grants lock");
        if deleted {
            if let Some(of) = g.get_mut(service) {
                of.remove(&key(kind, meta));
                if of.is_empty() {
                    g.remove(service);
                }
            }
        } else {
            g.entry(service.to_string())
                .or_default()
                .insert(key(kind, meta), grant_of(meta));
        }
    }

    /// Paved is about to write grant `kind/name` for service `service`, owned by the
    /// claim `uid`: known before the watch reports it.
    pub fn writing(&self, service: &str, kind: &str, name: &str, uid: &str) {
        let mut g = self.by_service.lock().expect("grants lock");
        let entry = g
            .entry(service.to_string())
            .or_default()
            .entry(format!("{kind}/{name}"))
            .or_default();
        if !entry.owners.iter().any(|o| o == uid) {
            entry.owners.push(uid.to_string());
        }
    }

    /// Whether service `service` may have a grant that is not the claim `keep`'s and is
    /// not already going: what `remove_grants` lists and deletes.
    pub fn others(&self, service: &str, keep: Option<&str>) -> bool {
        let g = self.by_service.lock().expect("grants lock");
        g.get(service).is_some_and(|of| {
            of.values().any(|grant| {
                !grant.deleting && !keep.is_some_and(|uid| grant.owners.iter().any(|o| o == uid))
            })
        })
    }

    /// What a list of service `service`'s grants found (`kind`, metadata), minus those
    /// then deleted: replaces the index's entry (the list is the newer word).
    pub fn listed<'a>(
        &self,
        service: &str,
        found: impl IntoIterator<Item = (&'a str, &'a ObjectMeta)>,
    ) {
        let of: HashMap<String, Grant> = found
            .into_iter()
            .map(|(kind, meta)| (key(kind, meta), grant_of(meta)))
            .collect();
        let mut g = self.by_service.lock().expect("grants lock");
        if of.is_empty() {
            g.remove(service);
        } else {
            g.insert(service.to_string(), of);
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
        assert!(
            !g.others("orders", Some("new")),
            "nothing known, nothing to remove"
        );
        g.observe("Role", &grant("orders", "orders", Some("old")), false);
        assert!(g.others("orders", Some("new")), "the earlier claim's grant");
        assert!(
            !g.others("orders", Some("old")),
            "the claim's own grant stays"
        );
        assert!(g.others("orders", None), "a refused claim keeps none");
        assert!(
            !g.others("payments", Some("new")),
            "another service's is not this one's"
        );
        // One without an owner (orphaned by `--cascade=orphan`) is nobody's to keep.
        g.observe("RoleBinding", &grant("orders", "orders", None), false);
        g.observe("Role", &grant("orders", "orders", Some("new")), false);
        assert!(g.others("orders", Some("new")));
        g.observe("RoleBinding", &grant("orders", "orders", None), true);
        assert!(
            !g.others("orders", Some("new")),
            "the orphan deleted: only its own left"
        );
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
        // The watch's event for the same object carries the same owner.
        g.observe("Role", &grant("orders", "orders", Some("old")), false);
        assert!(!g.others("orders", Some("old")));
        // A list found it gone (its deletion missed during a relist).
        g.listed("orders", std::iter::empty());
        assert!(!g.others("orders", Some("new")));
        let kept = grant("orders", "orders", Some("new"));
        g.listed("orders", [("Role", &kept)]);
        assert!(!g.others("orders", Some("new")));
        assert!(g.others("orders", None));
    }
}
