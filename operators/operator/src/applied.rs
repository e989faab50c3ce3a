//! What Paved last applied for each ServiceClaim, so a reconcile that would write
//! nothing new (a periodic resync, an echo of its own writes) writes nothing.
//!
//! A claim's objects are applied again when what it renders changed (a hash of the
//! rendered objects), or when one of them changed by another hand since our last
//! write: the owned-object watches report every change, and one that is not our own
//! write marks its claim dirty. Not drift: our write's echo (same resourceVersion),
//! or a change that left every field Paved owns with Paved and added no other
//! manager outside the status subresource (kube-controller-manager filling in a
//! ResourceQuota's usage). Drift: a deletion; anything that took, removed or changed
//! a field Paved owns (its managedFields entry changes); another manager's fields.
//! And whatever a watch cannot see (a deletion during a relist, a removed owner
//! reference) is repaired by a full apply of every claim at a bounded age.
//!
//! After a restart (or on a new leader) the watches' first list is the baseline: each
//! claim's status records a digest of what its last apply left (the render's hash and
//! Paved's fields on every object), and a claim whose objects are all there, with only
//! Paved's fields and the same digest, is known applied without a write. Anything
//! else — an object deleted or edited while no operator ran, a new render — is applied.

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

/// What an apply left an object at, or what a watch saw of it. Kept for every object
/// Paved made (tens of thousands on a large cluster), so it is small: 32 bytes, no
/// allocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub resource_version: Option<Version>,
    /// Another field manager owns fields outside the status subresource.
    pub foreign_fields: bool,
    /// A fingerprint of the fields Paved's own field manager owns.
    pub our_fields: Option<u64>,
    /// The watch reported the object deleted.
    pub deleted: bool,
}

/// A resourceVersion, only ever compared for equality (the API makes it opaque). Kept
/// as the number it is on every apiserver backed by etcd (digits, no leading zero, so
/// one number has one text); any other text as a hash of it, with the top bit set so it
/// never equals a number. A version is only compared with the one recorded for the same
/// object, so two texts sharing a hash (odds of 2^-63 an event) would take someone
/// else's change for Paved's own write: the claim is then applied again at its bounded
/// age anyway (see the module's doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Version(std::num::NonZeroU64);

impl Version {
    pub fn of(rv: &str) -> Version {
        let canonical = !rv.starts_with('0') && rv.bytes().all(|b| b.is_ascii_digit());
        let n = canonical
            .then(|| rv.parse::<u64>().ok())
            .flatten()
            .filter(|n| (1..1 << 63).contains(n))
            .unwrap_or_else(|| json_hash(&rv) | 1 << 63);
        // Never 0: a number is at least 1, a hash has its top bit set.
        Version(std::num::NonZeroU64::new(n).unwrap_or(std::num::NonZeroU64::MAX))
    }
}

impl Written {
    /// What a watch event says about an object Paved applied.
    pub fn seen(
        meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        deleted: bool,
    ) -> Self {
        // The operator's own record-keeping (finalizers, annotations on claims) is
        // not another hand.
        let foreign_fields = meta.managed_fields.iter().flatten().any(|f| {
            !matches!(
                f.manager.as_deref(),
                Some(paved_api::FIELD_MANAGER) | Some(paved_api::RECORDS_MANAGER)
            ) && f.subresource.as_deref().unwrap_or("").is_empty()
        });
        // Paved's entries (its apply, and a create's until the next apply adopts it):
        // any change to them, or a new one, is a change to Paved's fields.
        let mut ours: Vec<_> = meta
            .managed_fields
            .iter()
            .flatten()
            .filter(|f| {
                f.manager.as_deref() == Some(paved_api::FIELD_MANAGER)
                    && f.subresource.as_deref().unwrap_or("").is_empty()
            })
            .map(|f| {
                (
                    f.operation.as_deref().unwrap_or(""),
                    json_hash(&f.fields_v1),
                )
            })
            .collect();
        ours.sort();
        let our_fields = (!ours.is_empty()).then(|| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            ours.hash(&mut h);
            h.finish()
        });
        Written {
            resource_version: meta.resource_version.as_deref().map(Version::of),
            foreign_fields,
            our_fields,
            deleted,
        }
    }
}

#[derive(Default)]
struct Inner {
    /// Claim UID → hash of the objects last applied, and when.
    hashes: HashMap<String, (u64, std::time::Instant)>,
    /// Object key (`kind/namespace/name`) → what our last write produced (or the first
    /// list found).
    echoes: HashMap<Box<str>, Written>,
    /// Claims (by name) with an object changed by someone else since our last write.
    dirty: HashSet<String>,
    /// Claims (by name) being applied right now, with what the watches saw meanwhile:
    /// a write's echo can arrive before its response, so these are judged at `record`.
    applying: HashMap<String, Vec<(String, Written)>>,
    /// Claim UID → fingerprint and time of the last refresh of objects that are only
    /// re-applied periodically (a database claim's delivery objects).
    refreshed: HashMap<String, (u64, std::time::Instant)>,
    /// Owned-object watches still on their first list.
    listing: usize,
}

/// Pure: what a claim's last apply left, as its status records it — the render's
/// hash, and a hash of Paved's fields on each object (by key, in key order). An object
/// that is missing, deleted, or carries another manager's fields has no digest: `Err`
/// names it.
pub fn digest<'a>(
    hash: u64,
    objects: impl IntoIterator<Item = (&'a str, Option<&'a Written>)>,
) -> Result<String, String> {
    let mut fields: Vec<(&str, u64)> = vec![];
    for (key, w) in objects {
        let ours = match w {
            None => return Err(format!("{key} not found")),
            Some(w) if w.deleted => return Err(format!("{key} deleted")),
            Some(w) if w.foreign_fields => {
                return Err(format!("{key} has another manager's fields"))
            }
            Some(w) => w.our_fields,
        };
        let Some(ours) = ours else {
            return Err(format!("{key} has none of Paved's fields"));
        };
        fields.push((key, ours));
    }
    fields.sort();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    fields.hash(&mut h);
    Ok(format!("{hash:016x}-{:016x}", h.finish()))
}

/// A stable fingerprint of rendered objects.
pub fn fingerprint(objects: &[DesiredObject]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for o in objects {
        o.key().hash(&mut h);
        hash_json_into(&o.body, &mut h);
    }
    h.finish()
}

/// Feeds what serde_json writes straight into a hasher: a watch event's or a render's
/// JSON is hashed without building its text (this runs for every event of every owned
/// object).
struct HashWriter<'a, H: Hasher>(&'a mut H);

impl<H: Hasher> std::io::Write for HashWriter<'_, H> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn hash_json_into<H: Hasher>(value: &impl serde::Serialize, h: &mut H) {
    // Writing into a hasher cannot fail; a value serde cannot write hashes as far as it got.
    let _ = serde_json::to_writer(HashWriter(h), value);
}

fn json_hash(value: &impl serde::Serialize) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    hash_json_into(value, &mut h);
    h.finish()
}

impl Inner {
    fn is_echo(&self, key: &str, seen: &Written) -> bool {
        if seen.deleted {
            return false;
        }
        self.echoes.get(key).is_some_and(|ours| {
            let same_version =
                seen.resource_version.is_some() && seen.resource_version == ours.resource_version;
            let ours_untouched = seen.our_fields.is_some() && seen.our_fields == ours.our_fields;
            same_version || (ours_untouched && !seen.foreign_fields)
        })
    }
}

impl Applied {
    /// Whether a claim's objects must be applied: they render differently from the
    /// last apply, one was changed by someone else since, or the last apply is older
    /// than `max_age`. When they must, the apply starts: what the watches see until
    /// `record` is judged then.
    pub fn needs_apply(
        &self,
        uid: &str,
        name: &str,
        hash: u64,
        max_age: std::time::Duration,
    ) -> bool {
        let mut g = self.inner.lock().expect("applied lock");
        let dirty = g.dirty.remove(name);
        let fresh = g
            .hashes
            .get(uid)
            .is_some_and(|(h, at)| *h == hash && at.elapsed() < max_age);
        let needed = dirty || !fresh;
        if needed {
            g.applying.insert(name.to_string(), vec![]);
        }
        needed
    }

    /// An apply starts whatever `needs_apply` said (a namespace was just created).
    pub fn begin(&self, name: &str) {
        let mut g = self.inner.lock().expect("applied lock");
        g.applying.entry(name.to_string()).or_default();
    }

    /// Records a successful apply and the versions its writes produced, in order (an
    /// object written twice, created then applied, is last known by its apply); what the
    /// watches saw meanwhile that is not one of these writes marks the claim dirty.
    pub fn record(&self, uid: &str, name: &str, hash: u64, echoes: Vec<(String, Written)>) {
        let mut g = self.inner.lock().expect("applied lock");
        g.hashes
            .insert(uid.to_string(), (hash, std::time::Instant::now()));
        let ours = |key: &str, w: &Written| {
            !w.deleted
                && w.resource_version.is_some()
                && echoes
                    .iter()
                    .any(|(k, e)| k == key && e.resource_version == w.resource_version)
        };
        let seen = g.applying.remove(name).unwrap_or_default();
        let foreign: Vec<_> = seen.into_iter().filter(|(k, w)| !ours(k, w)).collect();
        g.echoes
            .extend(echoes.into_iter().map(|(k, w)| (k.into_boxed_str(), w)));
        if foreign.iter().any(|(key, w)| !g.is_echo(key, w)) {
            g.dirty.insert(name.to_string());
        }
    }

    /// An apply failed or its objects must be written again: forget it.
    pub fn forget(&self, uid: &str, name: &str) {
        let mut g = self.inner.lock().expect("applied lock");
        g.hashes.remove(uid);
        g.applying.remove(name);
    }

    /// A watch saw `key` in state `seen`, owned by claim `owner`: unless that is our
    /// own write coming back, the claim is dirty.
    pub fn observed(&self, key: &str, seen: &Written, owner: &str) {
        let mut g = self.inner.lock().expect("applied lock");
        if let Some(stash) = g.applying.get_mut(owner) {
            stash.push((key.to_string(), *seen));
            return;
        }
        if !g.is_echo(key, seen) {
            g.dirty.insert(owner.to_string());
        }
    }

    /// Whether objects with this fingerprint must be written: they changed, or the
    /// last write is older than `max_age`.
    pub fn refresh_due(&self, uid: &str, hash: u64, max_age: std::time::Duration) -> bool {
        let g = self.inner.lock().expect("applied lock");
        !g.refreshed
            .get(uid)
            .is_some_and(|(h, at)| *h == hash && at.elapsed() < max_age)
    }

    /// The claim `uid`'s objects are applied again on its next pass, changed or not.
    pub fn refresh_now(&self, uid: &str) {
        self.inner
            .lock()
            .expect("applied lock")
            .refreshed
            .remove(uid);
    }

    pub fn refreshed(&self, uid: &str, hash: u64) {
        self.inner
            .lock()
            .expect("applied lock")
            .refreshed
            .insert(uid.to_string(), (hash, std::time::Instant::now()));
    }

    /// `n` owned-object watches are starting: until each has listed once, what they
    /// see is the baseline (see `baseline`).
    pub fn expect_lists(&self, n: usize) {
        self.inner.lock().expect("applied lock").listing = n;
    }

    /// One owned-object watch finished its first list.
    pub fn listed(&self) {
        let mut g = self.inner.lock().expect("applied lock");
        g.listing = g.listing.saturating_sub(1);
    }

    /// Whether every owned-object watch has listed once.
    pub fn all_listed(&self) -> bool {
        self.inner.lock().expect("applied lock").listing == 0
    }

    /// An object as a watch's first list found it: the state Paved's knowledge starts
    /// from (nothing is known of it yet, so it is not judged as a change).
    pub fn baseline(&self, key: &str, seen: &Written) {
        let mut g = self.inner.lock().expect("applied lock");
        g.echoes.entry(key.into()).or_insert(*seen);
    }

    /// The digest (see [`digest`]) of `keys` as last written or found.
    pub fn digest_of(&self, hash: u64, keys: &[String]) -> Option<String> {
        let g = self.inner.lock().expect("applied lock");
        digest(
            hash,
            keys.iter().map(|k| (k.as_str(), g.echoes.get(k.as_str()))),
        )
        .ok()
    }

    /// For a claim this process has not applied: when its objects are exactly what the
    /// status says its last apply left (`recorded`), it counts as applied now — its
    /// next full apply falls due within `max_age`, spread by `offset` — and nothing
    /// needs writing; `Err` says why not (for the operator's debug log).
    pub fn try_resume(
        &self,
        uid: &str,
        hash: u64,
        keys: &[String],
        recorded: &str,
        offset: std::time::Duration,
    ) -> Result<(), String> {
        let mut g = self.inner.lock().expect("applied lock");
        if g.hashes.contains_key(uid) {
            return Err("already applied by this process".into());
        }
        let found = digest(
            hash,
            keys.iter().map(|k| (k.as_str(), g.echoes.get(k.as_str()))),
        )?;
        if found != recorded {
            return Err(if recorded.split('-').next() != found.split('-').next() {
                "the render changed"
            } else {
                "Paved's fields differ from the last apply"
            }
            .into());
        }
        let at = std::time::Instant::now()
            .checked_sub(offset)
            .unwrap_or_else(std::time::Instant::now);
        g.hashes.insert(uid.to_string(), (hash, at));
        Ok(())
    }

    /// Whether this process has applied (or resumed) the claim.
    pub fn knows(&self, uid: &str) -> bool {
        self.inner
            .lock()
            .expect("applied lock")
            .hashes
            .contains_key(uid)
    }

    /// A claim is gone: drop what is known about it.
    pub fn remove_claim(&self, uid: &str, name: &str) {
        let mut g = self.inner.lock().expect("applied lock");
        g.hashes.remove(uid);
        g.refreshed.remove(uid);
        g.dirty.remove(name);
        g.applying.remove(name);
        let in_namespace = format!("/{name}/");
        let namespace = format!("Namespace/{name}");
        g.echoes
            .retain(|k, _| !k.contains(&in_namespace) && **k != *namespace);
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
        assert!(a.needs_apply("uid", "svc", h, HOUR), "never applied");
        a.record("uid", "svc", h, vec![("ConfigMap/ns/a".into(), w("10"))]);
        assert!(!a.needs_apply("uid", "svc", h, HOUR), "nothing changed");
        // Our own write coming back through the watch is not drift.
        a.observed("ConfigMap/ns/a", &w("10"), "svc");
        assert!(!a.needs_apply("uid", "svc", h, HOUR));
        // Someone else's edit is.
        a.observed("ConfigMap/ns/a", &w("11"), "svc");
        assert!(a.needs_apply("uid", "svc", h, HOUR));
        assert!(!a.needs_apply("uid", "svc", h, HOUR), "the mark is cleared");
        // A new rendering is applied.
        assert!(a.needs_apply("uid", "svc", fingerprint(&[obj("a", 2)]), HOUR));
        a.forget("uid", "svc");
        assert!(a.needs_apply("uid", "svc", h, HOUR));
    }

    #[test]
    fn an_echo_that_beats_the_write_response_is_still_ours() {
        let a = Applied::default();
        let h = fingerprint(&[obj("a", 1)]);
        assert!(a.needs_apply("uid", "svc", h, HOUR));
        // The watch delivers our write before the PATCH response came back.
        a.observed("ConfigMap/ns/a", &w("10"), "svc");
        a.record("uid", "svc", h, vec![("ConfigMap/ns/a".into(), w("10"))]);
        assert!(
            !a.needs_apply("uid", "svc", h, HOUR),
            "our own write, not drift"
        );
        // A foreign write during an apply is drift.
        assert!(a.needs_apply("uid", "svc", fingerprint(&[obj("a", 2)]), HOUR));
        a.observed("ConfigMap/ns/a", &w("11"), "svc");
        a.record(
            "uid",
            "svc",
            fingerprint(&[obj("a", 2)]),
            vec![("ConfigMap/ns/a".into(), w("12"))],
        );
        assert!(a.needs_apply("uid", "svc", fingerprint(&[obj("a", 2)]), HOUR));
    }

    #[test]
    fn a_restart_resumes_claims_whose_objects_are_as_last_applied() {
        let h = fingerprint(&[obj("a", 1)]);
        let keys = vec!["ConfigMap/ns/a".to_string()];
        let mine = |rv: &str, fields: u64| Written {
            our_fields: Some(fields),
            foreign_fields: false,
            ..w(rv)
        };
        // Before: the apply, and the digest the status records.
        let before = Applied::default();
        before.needs_apply("uid", "svc", h, HOUR);
        before.record("uid", "svc", h, vec![(keys[0].clone(), mine("10", 7))]);
        let recorded = before.digest_of(h, &keys).unwrap();

        // After a restart the first list is the baseline.
        let after = Applied::default();
        after.expect_lists(1);
        assert!(!after.all_listed());
        after.baseline(&keys[0], &mine("10", 7));
        after.listed();
        assert!(after.all_listed());
        assert!(after
            .try_resume("uid", h, &keys, &recorded, Duration::ZERO)
            .is_ok());
        assert!(
            !after.needs_apply("uid", "svc", h, HOUR),
            "nothing to write"
        );
        // A change after the baseline is drift as always.
        after.observed(&keys[0], &mine("11", 8), "svc");
        assert!(after.needs_apply("uid", "svc", h, HOUR));

        // Changed while no operator ran: Paved's fields edited, an object gone,
        // another manager's fields, a new render — each is applied.
        for found in [
            Some(mine("12", 9)),
            None,
            Some(Written {
                foreign_fields: true,
                ..mine("10", 7)
            }),
        ] {
            let a = Applied::default();
            if let Some(f) = &found {
                a.baseline(&keys[0], f);
            }
            assert!(a
                .try_resume("uid", h, &keys, &recorded, Duration::ZERO)
                .is_err());
            assert!(a.needs_apply("uid", "svc", h, HOUR));
        }
        let a = Applied::default();
        a.baseline(&keys[0], &mine("10", 7));
        let h2 = fingerprint(&[obj("a", 2)]);
        assert!(a
            .try_resume("uid", h2, &keys, &recorded, Duration::ZERO)
            .is_err());
    }

    use std::time::Duration;
    const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

    fn w(rv: &str) -> Written {
        Written {
            resource_version: Some(Version::of(rv)),
            foreign_fields: true,
            our_fields: Some(1),
            deleted: false,
        }
    }

    #[test]
    fn a_field_taken_from_paved_is_drift_even_with_no_other_manager_left() {
        let a = Applied::default();
        let h = fingerprint(&[obj("n", 1)]);
        let ours = Written {
            foreign_fields: false,
            ..w("10")
        };
        a.record("uid", "svc", h, vec![("Namespace/n".into(), ours)]);
        // A label Paved set was removed: the editor owns nothing, Paved's set shrank.
        let removed = Written {
            our_fields: Some(2),
            ..w("11")
        };
        let removed = Written {
            foreign_fields: false,
            ..removed
        };
        a.observed("Namespace/n", &removed, "svc");
        assert!(a.needs_apply("uid", "svc", h, HOUR));
    }

    #[test]
    fn paveds_fields_are_those_of_its_apply_and_of_a_create_not_yet_adopted() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
            FieldsV1, ManagedFieldsEntry, ObjectMeta,
        };
        let entry = |operation: &str, fields: serde_json::Value| ManagedFieldsEntry {
            manager: Some(paved_api::FIELD_MANAGER.into()),
            operation: Some(operation.into()),
            fields_v1: Some(FieldsV1(fields)),
            ..Default::default()
        };
        let meta = |apply: serde_json::Value| ObjectMeta {
            managed_fields: Some(vec![
                entry(
                    "Update",
                    serde_json::json!({ "f:metadata": { "f:name": {} } }),
                ),
                entry("Apply", apply),
            ]),
            ..Default::default()
        };
        let full = serde_json::json!({ "f:metadata": { "f:labels": { "f:a": {}, "f:b": {} } } });
        let less = serde_json::json!({ "f:metadata": { "f:labels": { "f:a": {} } } });
        let before = Written::seen(&meta(full.clone()), false);
        assert!(!before.foreign_fields, "both entries are Paved's");
        assert_eq!(
            before.our_fields,
            Written::seen(&meta(full.clone()), false).our_fields
        );
        assert_ne!(
            before.our_fields,
            Written::seen(&meta(less), false).our_fields,
            "a label taken out of Paved's apply is drift"
        );
        // A created object, before any apply: the create's entry is Paved's fields.
        let created = ObjectMeta {
            managed_fields: Some(vec![entry("Update", full.clone())]),
            ..Default::default()
        };
        assert!(Written::seen(&created, false).our_fields.is_some());
        // Another manager's status write leaves Paved's fields as they were.
        let mut with_status = created.clone();
        with_status
            .managed_fields
            .as_mut()
            .unwrap()
            .push(ManagedFieldsEntry {
                manager: Some("kube-controller-manager".into()),
                operation: Some("Update".into()),
                subresource: Some("status".into()),
                ..Default::default()
            });
        assert_eq!(
            Written::seen(&created, false).our_fields,
            Written::seen(&with_status, false).our_fields
        );
        assert!(!Written::seen(&with_status, false).foreign_fields);
    }

    #[test]
    fn a_namespace_created_then_applied_in_one_round_echoes_both_writes() {
        let a = Applied::default();
        let h = fingerprint(&[obj("n", 1)]);
        a.begin("svc");
        // The create's event arrives while the round is under way, then the apply's.
        let created = Written {
            foreign_fields: false,
            our_fields: None,
            ..w("5")
        };
        a.observed("Namespace/n", &created, "svc");
        let applied = Written {
            foreign_fields: false,
            ..w("6")
        };
        a.observed("Namespace/n", &applied, "svc");
        a.record(
            "uid",
            "svc",
            h,
            vec![
                ("Namespace/n".into(), created),
                ("Namespace/n".into(), applied),
            ],
        );
        assert!(!a.needs_apply("uid", "svc", h, HOUR), "both were ours");
        // Someone else's change afterwards still counts.
        a.observed("Namespace/n", &w("7"), "svc");
        assert!(a.needs_apply("uid", "svc", h, HOUR));
    }

    #[test]
    fn every_claim_is_applied_again_at_a_bounded_age() {
        let a = Applied::default();
        let h = fingerprint(&[obj("a", 1)]);
        assert!(a.needs_apply("uid", "svc", h, HOUR));
        a.record("uid", "svc", h, vec![]);
        assert!(!a.needs_apply("uid", "svc", h, HOUR));
        assert!(a.needs_apply("uid", "svc", h, std::time::Duration::ZERO));
    }

    #[test]
    fn a_controller_writing_only_status_is_not_drift_but_a_deletion_is() {
        let a = Applied::default();
        let h = fingerprint(&[obj("q", 1)]);
        a.record(
            "uid",
            "svc",
            h,
            vec![("ResourceQuota/ns/q".into(), w("10"))],
        );
        let status_only = Written {
            foreign_fields: false,
            ..w("11")
        };
        // (Paved's own fields are as it wrote them: `w` gives the same fingerprint.)
        a.observed("ResourceQuota/ns/q", &status_only, "svc");
        assert!(!a.needs_apply("uid", "svc", h, HOUR));
        let deleted = Written {
            deleted: true,
            ..w("10")
        };
        a.observed("ResourceQuota/ns/q", &deleted, "svc");
        assert!(a.needs_apply("uid", "svc", h, HOUR));
    }

    #[test]
    fn a_status_update_by_another_controller_is_not_drift_but_a_spec_edit_is() {
        let a = Applied::default();
        let h = fingerprint(&[obj("a", 1)]);
        a.record(
            "uid",
            "svc",
            h,
            vec![("NetworkPolicy/ns/a".into(), w("10"))],
        );
        let status_update = Written {
            foreign_fields: false,
            ..w("12")
        };
        a.observed("NetworkPolicy/ns/a", &status_update, "svc");
        assert!(!a.needs_apply("uid", "svc", h, HOUR), "status only");
        a.observed("NetworkPolicy/ns/a", &w("13"), "svc");
        assert!(a.needs_apply("uid", "svc", h, HOUR), "the spec was edited");
    }

    #[test]
    fn versions_compare_as_their_text_does() {
        assert_eq!(Version::of("10").0.get(), 10);
        assert_ne!(Version::of("10"), Version::of("11"));
        // Anything but a number's one text (another storage backend's, a number out of
        // range, another spelling of one) is kept as its hash, never equal to a number.
        for text in [
            "a1",
            "",
            "0",
            "010",
            "+10",
            "18446744073709551615",
            "9223372036854775808",
        ] {
            assert_eq!(
                Version::of(text).0.get(),
                json_hash(&text) | 1 << 63,
                "{text:?}"
            );
        }
        assert_ne!(Version::of("010"), Version::of("10"));
        assert_ne!(Version::of("a1"), Version::of("a2"));
        assert_eq!(std::mem::size_of::<Written>(), 32);
    }

    #[test]
    fn a_deleted_object_or_one_without_a_version_marks_its_claim() {
        let a = Applied::default();
        let h = fingerprint(&[obj("a", 1)]);
        a.record("uid", "svc", h, vec![("ConfigMap/ns/a".into(), w("10"))]);
        a.observed(
            "ConfigMap/ns/a",
            &Written {
                deleted: true,
                ..Written::default()
            },
            "svc",
        );
        assert!(a.needs_apply("uid", "svc", h, HOUR));
        a.remove_claim("uid", "svc");
        assert!(a.needs_apply("uid", "svc", h, HOUR));
    }
}
