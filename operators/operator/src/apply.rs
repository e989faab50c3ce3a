//! The thin side-effect layer: server-side apply of rendered objects with one field
//! manager, and removal of what the spec no longer implies.

use std::collections::HashSet;

use futures::{stream, StreamExt, TryStreamExt};
use kube::{
    api::{ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams},
    Api, Client, ResourceExt,
};
use paved_compose::DesiredObject;
use serde_json::Value;

use crate::metrics::Metrics;

/// A kind Paved may have created for a claim, so orphans of it can be found.
#[derive(Clone, Copy, Debug)]
pub struct OwnedKind {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    /// Kept, not deleted, when the spec stops implying it: it holds data, and
    /// removing a spec entry is not a request to destroy data.
    pub keep_when_removed: bool,
}

/// What the orphan search found: keys (`Kind/namespace/name`) deleted and kept.
#[derive(Debug, Default, PartialEq)]
pub struct Orphans {
    pub deleted: Vec<String>,
    pub kept: Vec<String>,
}

impl OwnedKind {
    pub fn api_resource(&self) -> ApiResource {
        api_resource(self.api_version, self.kind, self.plural)
    }
}

pub use paved_api::api_resource;

pub fn dynamic_api(
    client: Client,
    ar: &ApiResource,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client, ns, ar),
        None => Api::all_with(client, ar),
    }
}

/// What one object's writes left it at, in order, under its key.
pub type Writes = Vec<(String, crate::applied::Written)>;

/// The API of a rendered object's kind, in its namespace.
fn object_api(client: Client, obj: &DesiredObject) -> Api<DynamicObject> {
    let ar = api_resource(&obj.api_version, &obj.kind, &obj.plural);
    dynamic_api(client, &ar, obj.namespace.as_deref())
}

/// What a write left an object at, under the rendered object's key.
fn write_of(obj: &DesiredObject, o: &DynamicObject) -> (String, crate::applied::Written) {
    (obj.key(), crate::applied::Written::seen(&o.metadata, false))
}

/// Server-side applies one object (forcing ownership of the fields Paved sets: a
/// hand edit of those is drift and is put back). An object Paved created with a POST is
/// adopted into its apply entry on the way (see ownership.rs): its managedFields are
/// rewritten, guarded by its resourceVersion, and applied again if the create owned
/// fields this apply did not send, so they are removed.
pub async fn apply(
    client: Client,
    obj: &DesiredObject,
    metrics: &Metrics,
    controller: &str,
) -> Result<Writes, kube::Error> {
    let api = object_api(client, obj);
    let ssa = || async {
        let written = api
            .patch(
                &obj.name,
                &PatchParams::apply(paved_api::FIELD_MANAGER).force(),
                &Patch::Apply(&obj.body),
            )
            .await?;
        metrics.write(controller, "apply");
        Ok::<_, kube::Error>(written)
    };
    let mut writes = vec![];
    let mut attempts = 0;
    loop {
        let written = match ssa().await {
            // A RoleBinding's roleRef cannot change in place (a Composition moved its
            // owner role, or an upgrade moved it off `edit`): replace the binding. For
            // the moment between, the team has no role in its namespace: the safe side.
            Err(kube::Error::Api(e)) if immutable_role_ref(obj, &e) && attempts == 0 => {
                attempts += 1;
                api.delete(&obj.name, &Default::default()).await?;
                metrics.write(controller, "delete");
                ssa().await?
            }
            other => other?,
        };
        writes.push(write_of(obj, &written));
        let Some(adoption) = crate::ownership::adoption(
            written
                .metadata
                .managed_fields
                .as_deref()
                .unwrap_or_default(),
        ) else {
            return Ok(writes);
        };
        // The resourceVersion makes it a compare-and-swap: managedFields someone changed
        // meanwhile are never overwritten (a conflict applies and adopts again).
        let patch = serde_json::json!({ "metadata": {
            "resourceVersion": written.metadata.resource_version,
            "managedFields": adoption.managed_fields,
        }});
        let pp = PatchParams {
            field_manager: Some(paved_api::FIELD_MANAGER.into()),
            ..Default::default()
        };
        match api.patch(&obj.name, &pp, &Patch::Merge(&patch)).await {
            Ok(adopted) => {
                metrics.write(controller, "adopt");
                writes.push(write_of(obj, &adopted));
                if adoption.reapply {
                    writes.push(write_of(obj, &ssa().await?));
                }
                return Ok(writes);
            }
            // Changed meanwhile (409), or deleted since the apply (404: the next apply
            // makes it again): apply and adopt again.
            Err(kube::Error::Api(e)) if (e.code == 409 || e.code == 404) && attempts < 2 => {
                attempts += 1
            }
            Err(e) => return Err(e),
        }
    }
}

/// Creates one object (POST): for an object that cannot exist yet, about half the
/// apiserver's work of an apply. One that exists after all is applied.
pub async fn create(
    client: Client,
    obj: &DesiredObject,
    metrics: &Metrics,
    controller: &str,
) -> Result<Writes, kube::Error> {
    let api = object_api(client.clone(), obj);
    let body: DynamicObject =
        serde_json::from_value(obj.body.clone()).map_err(kube::Error::SerdeError)?;
    let pp = PostParams {
        field_manager: Some(paved_api::FIELD_MANAGER.into()),
        ..Default::default()
    };
    match api.create(&pp, &body).await {
        Ok(created) => {
            metrics.write(controller, "create");
            Ok(vec![write_of(obj, &created)])
        }
        Err(kube::Error::Api(e)) if e.code == 409 => apply(client, obj, metrics, controller).await,
        Err(e) => Err(e),
    }
}

/// How `apply_all` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Apply, the first object (the container, e.g. the Namespace) before the rest.
    Apply,
    /// Apply, all at once: the container exists.
    ApplyInExisting,
    /// Create, all at once: the container was just created, so none of these can exist.
    CreateInNew,
}

/// Writes objects with bounded concurrency. A RoleBinding to a Role goes after
/// everything else: the API server checks the Role it binds, which may be in the same
/// batch.
pub async fn apply_all(
    client: &Client,
    objects: &[DesiredObject],
    mode: Mode,
    metrics: &Metrics,
    controller: &str,
) -> Result<Writes, kube::Error> {
    let (mut written, rest) = match objects.split_first() {
        None => return Ok(vec![]),
        Some((first, rest)) if mode == Mode::Apply => (
            apply(client.clone(), first, metrics, controller).await?,
            rest,
        ),
        Some(_) => (vec![], objects),
    };
    let (bindings, others): (Vec<&DesiredObject>, Vec<&DesiredObject>) =
        rest.iter().partition(|o| binds_a_role(o));
    for wave in [others, bindings] {
        // Built eagerly so the stream's type carries no higher-ranked closure (which
        // would not be Send across the controller's await points).
        let writes: Vec<_> = wave
            .into_iter()
            .map(|o| {
                let client = client.clone();
                async move {
                    match mode {
                        Mode::CreateInNew => create(client, o, metrics, controller).await,
                        _ => apply(client, o, metrics, controller).await,
                    }
                }
            })
            .collect();
        written.extend(
            stream::iter(writes)
                .buffer_unordered(8)
                .try_collect::<Vec<_>>()
                .await?
                .into_iter()
                .flatten(),
        );
    }
    Ok(written)
}

/// A RoleBinding whose roleRef is a (namespaced) Role.
fn binds_a_role(o: &DesiredObject) -> bool {
    o.kind == "RoleBinding" && o.body["roleRef"]["kind"] == "Role"
}

/// Pure: whether `live` already holds everything `want` sets (maps key by key, lists
/// and scalars equal). What an apply of `want` would leave unchanged.
pub fn contains(live: &Value, want: &Value) -> bool {
    match (live, want) {
        (Value::Object(l), Value::Object(w)) => w
            .iter()
            .all(|(k, v)| l.get(k).is_some_and(|lv| contains(lv, v))),
        (Value::Array(l), Value::Array(w)) => {
            l.len() == w.len() && l.iter().zip(w).all(|(a, b)| contains(a, b))
        }
        (l, w) => l == w,
    }
}

/// Pure: whether a live object (as read) already holds the body it would be applied
/// with. apiVersion and kind are identity, not content: a GET always has them.
pub fn holds(live: &Value, body: &Value) -> bool {
    match body.as_object() {
        Some(fields) => fields
            .iter()
            .filter(|(k, _)| *k != "apiVersion" && *k != "kind")
            .all(|(k, v)| live.get(k).is_some_and(|lv| contains(lv, v))),
        None => contains(live, body),
    }
}

/// Whether every object already holds what it would be applied with: read, not
/// written (a restarted operator checks its first pass this way). A missing object,
/// or one whose API is missing, is not up to date.
pub async fn up_to_date(client: &Client, objects: &[DesiredObject]) -> Result<bool, kube::Error> {
    for o in objects {
        let api = dynamic_api(
            client.clone(),
            &api_resource(&o.api_version, &o.kind, &o.plural),
            o.namespace.as_deref(),
        );
        let live = match api.get_opt(&o.name).await {
            Ok(Some(live)) => serde_json::to_value(&live).unwrap_or_default(),
            Ok(None) => return Ok(false),
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(false),
            Err(e) => return Err(e),
        };
        if !holds(&live, &o.body) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether the apiserver refused an apply because it would change a RoleBinding's
/// roleRef, which is immutable.
fn immutable_role_ref(obj: &DesiredObject, e: &kube::core::Status) -> bool {
    obj.kind == "RoleBinding" && e.code == 422 && e.message.contains("roleRef")
}

/// Whether a 404 says the API itself is missing (a CRD not installed), not an object
/// (one deleted meanwhile, or the namespace of a create): a missing object's 404 names
/// it; a missing route is a bare "404 page not found" or names nothing.
pub fn missing_api(e: &kube::core::Status) -> bool {
    e.code == 404 && e.details.as_ref().is_none_or(|d| d.name.is_empty())
}

/// Where to look for what one claim made.
pub struct OrphanScope<'a> {
    pub namespace: &'a str,
    /// Label selector of the claim's objects.
    pub selector: &'a str,
    /// The claim's UID, which must be in the object's owner references.
    pub owner_uid: &'a str,
}

/// Deletes objects of `kinds` in the scope's namespace that carry its selector and an
/// owner reference to its claim but are not in `desired` (those of a kind kept when
/// removed are only reported). Both checks must hold, so a label copied onto someone
/// else's object never gets it deleted. A kind whose CRD is not installed has nothing
/// to clean up.
pub async fn delete_orphans(
    client: &Client,
    scope: &OrphanScope<'_>,
    kinds: &[OwnedKind],
    desired: &HashSet<String>,
    metrics: &Metrics,
    controller: &str,
) -> Result<Orphans, kube::Error> {
    let OrphanScope {
        namespace,
        selector,
        owner_uid,
    } = *scope;
    let mut found = Orphans::default();
    for kind in kinds {
        let api = dynamic_api(client.clone(), &kind.api_resource(), Some(namespace));
        let list = match api
            .list_metadata(&ListParams::default().labels(selector))
            .await
        {
            Ok(l) => l,
            Err(kube::Error::Api(e)) if e.code == 404 => continue,
            Err(e) => return Err(e),
        };
        for item in list.items {
            let name = item.name_any();
            let key = format!("{}/{}/{}", kind.kind, namespace, name);
            let owned = item.owner_references().iter().any(|o| o.uid == owner_uid);
            if !owned || desired.contains(&key) || item.metadata.deletion_timestamp.is_some() {
                continue;
            }
            if kind.keep_when_removed {
                found.kept.push(name);
                continue;
            }
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
            metrics.write(controller, "delete");
            found.deleted.push(key);
        }
    }
    Ok(found)
}

/// Server-side applies a status (only the fields in `status`), as the same field
/// manager, so fields Paved stops reporting are removed.
pub async fn apply_status<K>(
    api: &Api<K>,
    name: &str,
    api_version: &str,
    kind: &str,
    status: Value,
) -> Result<(), kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let body = serde_json::json!({ "apiVersion": api_version, "kind": kind, "status": status });
    api.patch_status(
        name,
        &PatchParams::apply(paved_api::FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_contains_what_it_would_be_applied_with() {
        use serde_json::json;
        let live = json!({ "metadata": { "name": "a", "labels": { "x": "1", "y": "2" }, "uid": "u" },
                           "spec": { "ports": [ { "port": 5432, "protocol": "TCP" } ] } });
        assert!(contains(
            &live,
            &json!({ "metadata": { "labels": { "x": "1" } } })
        ));
        assert!(contains(
            &live,
            &json!({ "spec": { "ports": [ { "port": 5432 } ] } })
        ));
        assert!(!contains(
            &live,
            &json!({ "metadata": { "labels": { "x": "2" } } })
        ));
        assert!(!contains(&live, &json!({ "spec": { "ports": [] } })));
        assert!(!contains(&live, &json!({ "spec": { "egress": [] } })));
        // The body it is applied with names its apiVersion and kind; a read's are
        // taken as given.
        let body =
            json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "labels": { "x": "1" } } });
        assert!(holds(&live, &body));
        assert!(!holds(
            &live,
            &json!({ "kind": "Secret", "metadata": { "name": "b" } })
        ));
    }

    #[test]
    fn bindings_to_roles_wait_for_the_roles() {
        let obj = |kind: &str, body: serde_json::Value| DesiredObject {
            api_version: "rbac.authorization.k8s.io/v1".into(),
            kind: kind.into(),
            plural: String::new(),
            namespace: Some("ns".into()),
            name: "x".into(),
            body,
        };
        let to_role = serde_json::json!({ "roleRef": { "kind": "Role", "name": "x" } });
        let to_cluster_role =
            serde_json::json!({ "roleRef": { "kind": "ClusterRole", "name": "view" } });
        assert!(binds_a_role(&obj("RoleBinding", to_role.clone())));
        assert!(!binds_a_role(&obj("RoleBinding", to_cluster_role)));
        assert!(!binds_a_role(&obj("Role", to_role)));
    }

    #[test]
    fn only_a_404_that_names_no_object_is_a_missing_api() {
        let route: kube::core::Status = serde_json::from_value(serde_json::json!({
            "code": 404, "message": "404 page not found\n"
        }))
        .unwrap();
        assert!(missing_api(&route));
        let object: kube::core::Status = serde_json::from_value(serde_json::json!({
            "code": 404, "message": "networkpolicies \"paved-default-deny\" not found",
            "reason": "NotFound", "details": { "name": "paved-default-deny", "kind": "networkpolicies" }
        }))
        .unwrap();
        assert!(!missing_api(&object));
        let conflict: kube::core::Status =
            serde_json::from_value(serde_json::json!({ "code": 409 })).unwrap();
        assert!(!missing_api(&conflict));
    }
}
