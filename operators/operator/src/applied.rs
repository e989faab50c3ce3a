//! What Paved last applied for each ServiceClaim, so a reconcile that would write
//! nothing new (a periodic resync, an echo of its own writes) writes nothing.
//!
//! A claim's objects are applied again when what it renders changed (a hash of the
//! rendered objects), or when one of them changed by another hand since our last
//! write: the owned-object watches report every change, and one that is not our own
//! write (another resourceVersion and, where the kind has one, another generation: a
//! status update by another controller is not drift) marks its claim dirty.
//! After a restart nothing is known, so every claim is applied once.

use std::{
    collections::{HashMap, HashSet},
    hash::{Hash, Hasher},
    sync::Mutex,
};

use paved_compose::DesiredObject;

#[derive(Default)]
pub struct Applied {
    inner: Mutex<Inner>,
}

/// The resourceVersion and generation an apply left an object at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub resource_version: Option<String>,
    pub generation: Option<i64>,
}

#[derive(Default)]
struct Inner {
    /// Claim UID → hash of the objects last applied.
    hashes: HashMap<String, u64>,
    /// Object key (`kind/namespace/name`) → what our last write produced.
    echoes: HashMap<String, Written>,
    /// Claims (by name) with an object changed by someone else since our last write.
    dirty: HashSet<String>,
}

/// A stable fingerprint of rendered objects.
pub fn fingerprint(objects: &[DesiredObject]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for o in objects {
        o.key().hash(&mut h);
        o.body.to_string().hash(&mut h);
    }
    h.finish()
}

impl Applied {
    /// Whether a claim's objects must be applied: they render differently from the
    /// last apply, or one was changed by someone else since. Clears the dirty mark.
    pub fn needs_apply(&self, uid: &str, name: &str, hash: u64) -> bool {
        let mut g = self.inner.lock().expect("applied lock");
        let dirty = g.dirty.remove(name);
        dirty || g.hashes.get(uid) != Some(&hash)
    }

    /// Records a successful apply and the resourceVersions it produced.
    pub fn record(&self, uid: &str, hash: u64, echoes: Vec<(String, Written)>) {
        let mut g = self.inner.lock().expect("applied lock");
        g.hashes.insert(uid.to_string(), hash);
        g.echoes.extend(echoes);
    }

    /// An apply failed half-way or its objects must be written again: forget it.
    pub fn forget(&self, uid: &str) {
        self.inner.lock().expect("applied lock").hashes.remove(uid);
    }

    /// A watch saw `key` at `resource_version`, owned by claim `owner`: unless that is
    /// our own write coming back, the claim is dirty.
    pub fn observed(&self, key: &str, seen: &Written, owner: &str) {
        let mut g = self.inner.lock().expect("applied lock");
        if let Some(ours) = g.echoes.get(key) {
            let same_version =
                seen.resource_version.is_some() && seen.resource_version == ours.resource_version;
            let same_spec = seen.generation.is_some() && seen.generation == ours.generation;
            if same_version || same_spec {
                return;
            }
        }
        g.dirty.insert(owner.to_string());
    }

    /// A claim is gone: drop what is known about it.
    pub fn remove_claim(&self, uid: &str, name: &str) {
        let mut g = self.inner.lock().expect("applied lock");
        g.hashes.remove(uid);
        g.dirty.remove(name);
        let prefix_ns = format!("/{name}/");
        g.echoes
            .retain(|k, _| !k.contains(&prefix_ns) && k != &format!("Namespace/{name}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(name: &str, v: i64) -> DesiredObject {
        DesiredObject {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            plural: "configmaps".into(),
            namespace: Some("ns".into()),
            name: name.into(),
            body: json!({ "data": { "v": v } }),
        }
    }

    #[test]
    fn unchanged_claims_are_not_applied_again() {
        let a = Applied::default();
        let h = fingerprint(&[obj("a", 1)]);
        assert!(a.needs_apply("uid", "svc", h), "never applied");
        a.record("uid", h, vec![("ConfigMap/ns/a".into(), w("10", None))]);
        assert!(!a.needs_apply("uid", "svc", h), "nothing changed");
        // Our own write coming back through the watch is not drift.
        a.observed("ConfigMap/ns/a", &w("10", None), "svc");
        assert!(!a.needs_apply("uid", "svc", h));
        // Someone else's edit is.
        a.observed("ConfigMap/ns/a", &w("11", None), "svc");
        assert!(a.needs_apply("uid", "svc", h));
        assert!(!a.needs_apply("uid", "svc", h), "the mark is cleared");
        // A new rendering is applied.
        assert!(a.needs_apply("uid", "svc", fingerprint(&[obj("a", 2)])));
        a.forget("uid");
        assert!(a.needs_apply("uid", "svc", h));
    }

    fn w(rv: &str, generation: Option<i64>) -> Written {
        Written {
            resource_version: Some(rv.into()),
            generation,
        }
    }

    #[test]
    fn a_status_update_by_another_controller_is_not_drift_but_a_spec_edit_is() {
        let a = Applied::default();
        let h = fingerprint(&[obj("a", 1)]);
        a.record(
            "uid",
            h,
            vec![("NetworkPolicy/ns/a".into(), w("10", Some(1)))],
        );
        a.observed("NetworkPolicy/ns/a", &w("12", Some(1)), "svc");
        assert!(!a.needs_apply("uid", "svc", h), "same generation");
        a.observed("NetworkPolicy/ns/a", &w("13", Some(2)), "svc");
        assert!(a.needs_apply("uid", "svc", h), "the spec was edited");
    }

    #[test]
    fn a_deleted_object_or_one_without_a_version_marks_its_claim() {
        let a = Applied::default();
        let h = fingerprint(&[obj("a", 1)]);
        a.record("uid", h, vec![("ConfigMap/ns/a".into(), w("10", None))]);
        a.observed("ConfigMap/ns/a", &Written::default(), "svc");
        assert!(a.needs_apply("uid", "svc", h));
        a.remove_claim("uid", "svc");
        assert!(a.needs_apply("uid", "svc", h));
    }
}
