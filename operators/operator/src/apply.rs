//! The thin side-effect layer: server-side apply of rendered objects with one field
//! manager, and removal of what the spec no longer implies.

use std::collections::HashSet;

use futures::{stream, StreamExt, TryStreamExt};
use kube::{
    api::{ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams},
    Api, Client, ResourceExt,
};
use paved_compose::DesiredObject;
use serde_json::Value;

use crate::metrics::Metrics;

/// A kind Paved may have created for a claim, so orphans of it can be found.
#[derive(Clone, Debug)]
pub struct OwnedKind {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
}

impl OwnedKind {
    pub fn api_resource(&self) -> ApiResource {
        api_resource(self.api_version, self.kind, self.plural)
    }
}

pub use paved_api::api_resource;

fn dynamic_api(client: Client, ar: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client, ns, ar),
        None => Api::all_with(client, ar),
    }
}

/// Server-side applies one object (forcing ownership of the fields Paved sets: a
/// hand edit of those is drift and is put back).
/// Returns the object's key and the version and generation the write left it at.
pub async fn apply(
    client: Client,
    obj: &DesiredObject,
) -> Result<(String, crate::applied::Written), kube::Error> {
    let ar = api_resource(&obj.api_version, &obj.kind, &obj.plural);
    let api = dynamic_api(client, &ar, obj.namespace.as_deref());
    let written = api
        .patch(
            &obj.name,
            &PatchParams::apply(paved_api::FIELD_MANAGER).force(),
            &Patch::Apply(&obj.body),
        )
        .await?;
    Ok((
        obj.key(),
        crate::applied::Written::seen(&written.metadata, false),
    ))
}

/// Applies objects with bounded concurrency; the first (the container, e.g. the
/// Namespace) before the rest unless it is known to exist.
pub async fn apply_all(
    client: &Client,
    objects: &[DesiredObject],
    container_exists: bool,
    metrics: &Metrics,
    controller: &str,
) -> Result<Vec<(String, crate::applied::Written)>, kube::Error> {
    let (mut written, rest) = match objects.split_first() {
        None => return Ok(vec![]),
        Some(_) if container_exists => (vec![], objects),
        Some((first, rest)) => {
            let w = apply(client.clone(), first).await?;
            metrics.write(controller, "apply");
            (vec![w], rest)
        }
    };
    // Built eagerly so the stream's type carries no higher-ranked closure (which
    // would not be Send across the controller's await points).
    let writes: Vec<_> = rest
        .iter()
        .map(|o| {
            let client = client.clone();
            async move {
                let w = apply(client, o).await?;
                metrics.write(controller, "apply");
                Ok::<_, kube::Error>(w)
            }
        })
        .collect();
    written.extend(
        stream::iter(writes)
            .buffer_unordered(8)
            .try_collect::<Vec<_>>()
            .await?,
    );
    Ok(written)
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
/// owner reference to its claim but are not in `desired`. Both checks must hold, so
/// a label copied onto someone else's object never gets it deleted. A kind whose
/// CRD is not installed has nothing to clean up.
pub async fn delete_orphans(
    client: &Client,
    scope: &OrphanScope<'_>,
    kinds: &[OwnedKind],
    desired: &HashSet<String>,
    metrics: &Metrics,
    controller: &str,
) -> Result<Vec<String>, kube::Error> {
    let OrphanScope {
        namespace,
        selector,
        owner_uid,
    } = *scope;
    let mut deleted = vec![];
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
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
            metrics.write(controller, "delete");
            deleted.push(key);
        }
    }
    Ok(deleted)
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
