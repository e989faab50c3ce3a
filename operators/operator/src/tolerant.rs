//! Watches of Paved's own kinds that survive a malformed object.
//!
//! A typed watch deserializes a whole list page at once, so one stored object that no
//! longer fits the Rust type (written under an older, looser CRD schema, or by hand
//! with the schema switched off) fails every list and the controller sees nothing at
//! all. These watches read objects untyped and convert them one by one: a bad one is
//! left out and told so, on its own status (`Synced=False`, reason `InvalidObject`,
//! the field and what is wrong with it) and in an Event; the others flow on. One that
//! turns bad while cached is taken out of the cache, so nothing acts on its old spec (a
//! malformed claim being deleted waits, with its finalizer, until it is fixed).

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use futures::{future, Stream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{
    api::{ApiResource, DynamicObject, Patch, PatchParams},
    runtime::{events::EventType, watcher, WatchStreamExt},
    Api, Client, Resource, ResourceExt,
};
use paved_api::{
    conditions, Composition, Condition, PostgreSQLInstance, ServiceClaim, Status, TemporalNamespace,
};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

pub const INVALID_OBJECT: &str = paved_api::Reason::InvalidObject.as_str();

/// Pure: the typed object, or where and why it does not fit the type.
pub fn typed<K: DeserializeOwned>(obj: &DynamicObject) -> Result<K, String> {
    let value = serde_json::to_value(obj).map_err(|e| e.to_string())?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path.is_empty() || path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })
}

/// Pure: the status conditions that report a malformed object, or None when its status
/// already says exactly that for this generation (nothing to write).
pub fn malformed_conditions(
    status: Option<&Value>,
    generation: Option<i64>,
    message: &str,
    now: &str,
) -> Option<Vec<Condition>> {
    let mut conds: Vec<Condition> = status
        .and_then(|s| s.get("conditions"))
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default();
    let reported = conditions::find(&conds, conditions::SYNCED).is_some_and(|c| {
        c.reason == INVALID_OBJECT && c.message == message && c.observed_generation == generation
    });
    if reported {
        return None;
    }
    for type_ in [conditions::SYNCED, conditions::READY] {
        conditions::upsert(
            &mut conds,
            Condition::new(
                type_,
                Status::False,
                INVALID_OBJECT,
                message,
                generation,
                now,
            ),
        );
    }
    Some(conds)
}

/// A stand-in with only an object's identity, to take a malformed object out of a cache.
pub trait Placeholder: Sized {
    fn placeholder(meta: ObjectMeta) -> Self;
}

macro_rules! placeholders {
    ($($kind:ty),+) => {$(
        impl Placeholder for $kind {
            fn placeholder(meta: ObjectMeta) -> Self {
                let mut k = <$kind>::new(meta.name.as_deref().unwrap_or_default(), Default::default());
                k.metadata = meta;
                k
            }
        }
    )+};
}

placeholders!(
    ServiceClaim,
    PostgreSQLInstance,
    TemporalNamespace,
    Composition
);

/// Reports malformed objects, once per object generation per process.
pub struct Malformed {
    client: Client,
    events: Arc<crate::context::Events>,
    reported: Mutex<HashSet<(String, Option<i64>)>>,
}

impl Malformed {
    pub fn new(client: Client, events: Arc<crate::context::Events>) -> Arc<Malformed> {
        Arc::new(Malformed {
            client,
            events,
            reported: Default::default(),
        })
    }

    fn report(self: &Arc<Self>, ar: &ApiResource, obj: DynamicObject, error: String) {
        let key = (obj.uid().unwrap_or_default(), obj.metadata.generation);
        if !self
            .reported
            .lock()
            .expect("not poisoned")
            .insert(key.clone())
        {
            return;
        }
        let message = format!(
            "{} {} cannot be read as a {}: {error}; Paved leaves it alone until it is fixed",
            ar.kind,
            obj.name_any(),
            ar.kind
        );
        tracing::warn!(kind = %ar.kind, name = %obj.name_any(), namespace = obj.namespace().unwrap_or_default(), %error, "malformed object left out of the watch");
        let this = self.clone();
        let ar = ar.clone();
        tokio::spawn(async move {
            let now = crate::context::now();
            let Some(conds) = malformed_conditions(
                obj.data.get("status"),
                obj.metadata.generation,
                &message,
                &now,
            ) else {
                return;
            };
            let api: Api<DynamicObject> = match obj.namespace() {
                Some(ns) => Api::namespaced_with(this.client.clone(), &ns, &ar),
                None => Api::all_with(this.client.clone(), &ar),
            };
            // A merge patch: server-side apply must read the live object as its schema
            // types it, which is exactly what a malformed object cannot be.
            let body = json!({ "status": { "conditions": conds } });
            let pp = PatchParams {
                field_manager: Some(paved_api::FIELD_MANAGER.into()),
                ..Default::default()
            };
            if let Err(e) = api
                .patch_status(&obj.name_any(), &pp, &Patch::Merge(&body))
                .await
            {
                tracing::warn!(error = %e, name = %obj.name_any(), "could not report a malformed object in its status");
                // Tried again when the watch next shows it (a relist, a change).
                this.reported.lock().expect("not poisoned").remove(&key);
                return;
            }
            crate::context::publish(
                &this.events,
                &obj.object_ref(&ar),
                EventType::Warning,
                INVALID_OBJECT,
                "Read",
                message,
            )
            .await;
        });
    }
}

/// A cluster-wide watch of every `K`, with the watcher's default backoff, that leaves
/// malformed objects out (and reports them) instead of failing.
pub fn watch<K>(
    client: Client,
    malformed: Arc<Malformed>,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Placeholder + Clone + Send + 'static,
{
    let ar = ApiResource::erase::<K>(&());
    let api: Api<DynamicObject> = Api::all_with(client, &ar);
    watcher(api, crate::watches::config())
        .default_backoff()
        .filter_map(move |event| {
            let event = match event {
                Err(e) => Some(Err(e)),
                Ok(watcher::Event::Apply(o)) => Some(Ok(match typed::<K>(&o) {
                    Ok(k) => watcher::Event::Apply(k),
                    // It may be cached from when it was good: take it out.
                    Err(e) => {
                        let stand_in = K::placeholder(o.metadata.clone());
                        malformed.report(&ar, o, e);
                        watcher::Event::Delete(stand_in)
                    }
                })),
                Ok(watcher::Event::InitApply(o)) => match typed::<K>(&o) {
                    Ok(k) => Some(Ok(watcher::Event::InitApply(k))),
                    Err(e) => {
                        malformed.report(&ar, o, e);
                        None
                    }
                },
                // Gone whatever it held: only its identity matters.
                Ok(watcher::Event::Delete(o)) => Some(Ok(watcher::Event::Delete(
                    typed::<K>(&o).unwrap_or_else(|_| K::placeholder(o.metadata)),
                ))),
                Ok(watcher::Event::Init) => Some(Ok(watcher::Event::Init)),
                Ok(watcher::Event::InitDone) => Some(Ok(watcher::Event::InitDone)),
            };
            future::ready(event)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dynamic(spec: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "paved.dev/v1alpha1", "kind": "ServiceClaim",
            "metadata": { "name": "svc", "generation": 3, "uid": "u" },
            "spec": spec,
        }))
        .unwrap()
    }

    fn good_spec() -> Value {
        json!({ "owner": "team-a", "system": "s", "costCenter": "CC-1" })
    }

    #[test]
    fn a_good_object_converts_and_a_bad_one_says_where_it_is_wrong() {
        let claim: ServiceClaim = typed(&dynamic(good_spec())).unwrap();
        assert_eq!(claim.spec.owner, "team-a");
        let mut bad = good_spec();
        bad["databases"] = json!([{ "name": "main", "parameters": { "storageGB": "lots" } }]);
        let err = typed::<ServiceClaim>(&dynamic(bad)).unwrap_err();
        assert!(
            err.starts_with("spec.databases[0].parameters.storageGB: "),
            "{err}"
        );
        assert!(err.contains("lots"), "{err}");
        let mut missing = good_spec();
        missing.as_object_mut().unwrap().remove("owner");
        let err = typed::<ServiceClaim>(&dynamic(missing)).unwrap_err();
        assert!(err.contains("owner"), "{err}");
    }

    #[test]
    fn a_stand_in_keeps_only_the_identity() {
        let meta = dynamic(good_spec()).metadata;
        let k = PostgreSQLInstance::placeholder(meta.clone());
        assert_eq!(k.metadata, meta);
        assert_eq!(k.spec, Default::default());
    }

    #[test]
    fn a_malformed_object_is_reported_once_per_generation() {
        let now = "2026-12-03T00:00:00Z";
        let conds = malformed_conditions(None, Some(3), "bad", now).unwrap();
        assert_eq!(conds.len(), 2);
        assert!(conds
            .iter()
            .all(|c| c.status == "False" && c.reason == INVALID_OBJECT && c.message == "bad"));
        let status = json!({ "conditions": conds });
        assert!(malformed_conditions(Some(&status), Some(3), "bad", now).is_none());
        assert!(malformed_conditions(Some(&status), Some(4), "bad", now).is_some());
        assert!(malformed_conditions(Some(&status), Some(3), "worse", now).is_some());
        // Conditions of other types are kept.
        let other = json!({ "conditions": [{ "type": "Custom", "status": "True", "reason": "R", "lastTransitionTime": now }] });
        let conds = malformed_conditions(Some(&other), Some(3), "bad", now).unwrap();
        assert!(conds.iter().any(|c| c.type_ == "Custom"));
    }
}
