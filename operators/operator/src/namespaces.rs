//! The operator's cache of the cluster's namespaces, every one of them (a claim's
//! namespace must not be another's; a database's namespace has facts), so on a busy
//! cluster mostly namespaces that are not Paved's. Each keeps only what a reconcile
//! reads from the cache: its owners, the claim it was made for, its store's identity
//! label, the takeover mark and a deletion. Held as an ObjectMeta with those fields
//! it took about 2 KiB a namespace (the struct, a labels tree node, copies of its
//! name, UID and resourceVersion in the store's key); as this it takes about a
//! quarter of that.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::runtime::{reflector::Lookup, watcher};
use paved_api::{annotations, labels};

/// A namespace as the cache keeps it; [`CachedNamespace::meta`] gives it back as
/// metadata holding only those fields.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedNamespace {
    name: Box<str>,
    uid: Option<Box<str>>,
    deletion: Option<Time>,
    /// `paved.dev/claim-name`: the claim it was made for (the takeover check).
    claim_name: Option<Box<str>>,
    /// `paved.dev/store-identity`: what its SecretStore's identity is now.
    store_identity: Option<Box<str>>,
    /// `paved.dev/adopted-by`: the claim that took it over.
    adopted_by: Option<Box<str>>,
    owners: Box<[Owner]>,
}

/// An owner reference: what is read of it (whether it is a ServiceClaim's controller
/// reference, and to which claim by UID).
#[derive(Clone, Debug, PartialEq)]
struct Owner {
    kind: Box<str>,
    uid: Box<str>,
    controller: Option<bool>,
}

impl CachedNamespace {
    pub fn from_meta(meta: &ObjectMeta) -> Self {
        let label = |k: &str| meta.labels.as_ref()?.get(k).map(|v| v.as_str().into());
        CachedNamespace {
            name: meta.name.as_deref().unwrap_or_default().into(),
            uid: meta.uid.as_deref().map(Into::into),
            deletion: meta.deletion_timestamp.clone(),
            claim_name: label(labels::CLAIM_NAME),
            store_identity: label(labels::STORE_IDENTITY),
            adopted_by: meta
                .annotations
                .as_ref()
                .and_then(|a| a.get(annotations::ADOPTED_BY))
                .map(|v| v.as_str().into()),
            owners: meta
                .owner_references
                .iter()
                .flatten()
                .map(|o| Owner {
                    kind: o.kind.as_str().into(),
                    uid: o.uid.as_str().into(),
                    controller: o.controller,
                })
                .collect(),
        }
    }

    /// The namespace's metadata with only what the cache keeps (an owner reference
    /// has only its kind, UID and controller flag).
    pub fn meta(&self) -> ObjectMeta {
        let labels: std::collections::BTreeMap<String, String> = [
            (labels::CLAIM_NAME, &self.claim_name),
            (labels::STORE_IDENTITY, &self.store_identity),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_string(), v.as_deref()?.to_string())))
        .collect();
        ObjectMeta {
            name: Some(self.name.to_string()),
            uid: self.uid.as_deref().map(str::to_string),
            deletion_timestamp: self.deletion.clone(),
            labels: (!labels.is_empty()).then_some(labels),
            annotations: self
                .adopted_by
                .as_deref()
                .map(|a| [(annotations::ADOPTED_BY.to_string(), a.to_string())].into()),
            owner_references: (!self.owners.is_empty()).then(|| {
                self.owners
                    .iter()
                    .map(|o| OwnerReference {
                        kind: o.kind.to_string(),
                        uid: o.uid.to_string(),
                        controller: o.controller,
                        ..Default::default()
                    })
                    .collect()
            }),
            ..Default::default()
        }
    }
}

impl Lookup for CachedNamespace {
    type DynamicType = ();

    fn kind(_: &()) -> Cow<'_, str> {
        "Namespace".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "namespaces".into()
    }
    fn name(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(&self.name))
    }
    fn namespace(&self) -> Option<Cow<'_, str>> {
        None
    }
    // The store's key is the name alone: its copies of these would double the entry.
    fn resource_version(&self) -> Option<Cow<'_, str>> {
        None
    }
    fn uid(&self) -> Option<Cow<'_, str>> {
        None
    }
}

/// A namespace watch's event, as the cache keeps it.
pub fn cached<K: kube::Resource>(event: watcher::Event<K>) -> watcher::Event<CachedNamespace> {
    let c = |o: K| CachedNamespace::from_meta(o.meta());
    match event {
        watcher::Event::Apply(o) => watcher::Event::Apply(c(o)),
        watcher::Event::Delete(o) => watcher::Event::Delete(c(o)),
        watcher::Event::InitApply(o) => watcher::Event::InitApply(c(o)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    #[test]
    fn the_cache_keeps_what_the_facts_and_the_takeover_check_read() {
        let owner = OwnerReference {
            api_version: "paved.dev/v1alpha1".into(),
            kind: "ServiceClaim".into(),
            name: "svc".into(),
            uid: "u1".into(),
            controller: Some(true),
            ..Default::default()
        };
        let m = ObjectMeta {
            name: Some("svc".into()),
            uid: Some("n1".into()),
            resource_version: Some("42".into()),
            deletion_timestamp: Some(Time(k8s_openapi::jiff::Timestamp::now())),
            owner_references: Some(vec![owner.clone()]),
            labels: Some(
                [
                    (labels::CLAIM_NAME, "svc"),
                    (labels::STORE_IDENTITY, "aws:role"),
                    (labels::CLASSIFICATION, "phi"),
                    ("pod-security.kubernetes.io/enforce", "restricted"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ),
            annotations: Some(
                [
                    ("big".to_string(), "x".repeat(1000)),
                    (annotations::ADOPTED_BY.to_string(), "uid-1".to_string()),
                ]
                .into(),
            ),
            managed_fields: Some(vec![ManagedFieldsEntry::default()]),
            finalizers: Some(vec!["f".into()]),
            ..Default::default()
        };
        let kept = CachedNamespace::from_meta(&m).meta();
        assert_eq!(
            kept.labels.unwrap().into_iter().collect::<Vec<_>>(),
            [
                (labels::CLAIM_NAME.to_string(), "svc".to_string()),
                (labels::STORE_IDENTITY.to_string(), "aws:role".to_string()),
            ]
        );
        assert_eq!(
            kept.annotations.unwrap().into_iter().collect::<Vec<_>>(),
            [(annotations::ADOPTED_BY.to_string(), "uid-1".to_string())]
        );
        let o = &kept.owner_references.unwrap()[0];
        assert_eq!(
            (o.kind.as_str(), o.uid.as_str(), o.controller),
            ("ServiceClaim", "u1", Some(true))
        );
        assert_eq!(kept.deletion_timestamp, m.deletion_timestamp);
        assert_eq!((kept.name, kept.uid), (m.name, m.uid));
        assert!(kept.managed_fields.is_none() && kept.finalizers.is_none());
        assert!(kept.resource_version.is_none());
    }

    #[test]
    fn the_checks_judge_the_cached_namespace_as_the_live_one() {
        use paved_compose::tenancy::{namespace_hold, NamespaceHold};
        let owned = |uid: &str| OwnerReference {
            api_version: "paved.dev/v1alpha1".into(),
            kind: "ServiceClaim".into(),
            name: "svc".into(),
            uid: uid.into(),
            controller: Some(true),
            ..Default::default()
        };
        let ns = |owners: Vec<OwnerReference>, adopted: Option<&str>| ObjectMeta {
            name: Some("svc".into()),
            labels: Some([(labels::CLAIM_NAME.to_string(), "svc".to_string())].into()),
            annotations: adopted
                .map(|a| [(annotations::ADOPTED_BY.to_string(), a.to_string())].into()),
            owner_references: Some(owners),
            ..Default::default()
        };
        for (live, uid) in [
            (ns(vec![owned("u1")], None), "u1"),
            (ns(vec![owned("u1")], None), "u2"),
            (ns(vec![], Some("u1")), "u1"),
            (ns(vec![owned("other")], Some("u1")), "u1"),
            (ns(vec![], None), "u1"),
        ] {
            let cached = CachedNamespace::from_meta(&live).meta();
            assert_eq!(
                namespace_hold(&cached, "svc", uid),
                namespace_hold(&live, "svc", uid),
                "{live:?} for {uid}"
            );
        }
        assert_eq!(
            namespace_hold(
                &CachedNamespace::from_meta(&ns(vec![], Some("u1"))).meta(),
                "svc",
                "u1"
            ),
            NamespaceHold::Adopted
        );
    }

    #[test]
    fn the_store_key_is_the_name_alone() {
        let c = CachedNamespace::from_meta(&ObjectMeta {
            name: Some("svc".into()),
            uid: Some("n1".into()),
            resource_version: Some("7".into()),
            ..Default::default()
        });
        let r = c.to_object_ref(());
        assert_eq!((r.name.as_str(), r.namespace.as_deref()), ("svc", None));
        assert!(r.extra.resource_version.is_none() && r.extra.uid.is_none());
        assert_eq!(r, kube::runtime::reflector::ObjectRef::new("svc"));
    }
}
