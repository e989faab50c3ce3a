//! The plain client's baselines: the objects `paved render` gives for N claims, written
//! by a kube client with the operator's identity and concurrency.

use std::time::Instant;

use anyhow::{Context, Result};
use futures::{stream, StreamExt, TryStreamExt};
use kube::{
    api::{Patch, PatchParams, PostParams},
    Api, Client,
};
use paved_api::{Cloud, Composition};
use paved_e2e::repo_root;
use serde_json::{json, Value};

use crate::claims::service_claim;

/// How the plain client writes.
#[derive(Clone, Copy, PartialEq)]
pub enum Plain {
    /// Server-side apply, as `paved render | kubectl apply --server-side` or Argo CD does:
    /// the baseline of the ratio.
    Apply,
    /// Create (POST): the least work the apiserver can do for these objects.
    Create,
}

/// Phase 1: the objects of N claims, written by a plain client (the namespace first,
/// then the rest 8 at a time; `concurrency` claims at once).
pub async fn baseline(
    client: &Client,
    n: usize,
    concurrency: usize,
    how: Plain,
    prefix: &str,
    owner: &Value,
) -> Result<(f64, Vec<f64>)> {
    let text = std::fs::read_to_string(repo_root().join("compositions/service-local.yaml"))?;
    let comp: Composition = serde_yaml::from_str(&text)?;
    let sc = comp.spec.service.clone().context("service-local")?;
    let mut claims = Vec::new();
    for i in 0..n {
        let name = format!("{prefix}-{i}");
        let claim = service_claim(&name, "plain");
        let input = paved_compose::service::ServiceInput {
            claim_name: &name,
            claim_uid: "00000000-0000-0000-0000-000000000000",
            spec: &claim.spec,
            cloud: Cloud::Local,
            composition_name: "service-local",
            composition_generation: 1,
            composition: &sc,
            team: None,
            secrets_namespace: paved_api::DEFAULT_SECRETS_NAMESPACE,
            databases: &[],
            identity: None,
        };
        let mut objects = paved_compose::service::render_service(&input)?;
        for o in &mut objects {
            // The operator's objects but for two things: their owner is a stand-in (the
            // claim UID is made up, and the garbage collector removes what names an owner
            // that does not exist), and their managed-by label is not Paved's (the
            // operator's label-selected caches would hold them).
            let meta = o.body["metadata"].as_object_mut().unwrap();
            meta.insert("ownerReferences".into(), json!([owner]));
            meta["labels"][paved_api::labels::MANAGED_BY] = json!("paved-bench-plain");
        }
        claims.push(objects);
    }
    let start = Instant::now();
    let latencies: Vec<f64> = stream::iter(claims.into_iter().map(|objects| {
        let client = client.clone();
        async move {
            let t = Instant::now();
            let (first, rest) = objects.split_first().unwrap();
            write(&client, first, how).await?;
            stream::iter(rest.iter().map(|o| write(&client, o, how)))
                .buffer_unordered(8)
                .try_collect::<Vec<_>>()
                .await?;
            Ok::<_, anyhow::Error>(t.elapsed().as_secs_f64())
        }
    }))
    .buffer_unordered(concurrency)
    .try_collect()
    .await?;
    Ok((start.elapsed().as_secs_f64(), latencies))
}

/// The stand-in owner of the plain client's objects, as an owner reference: a
/// cluster-scoped object (namespaces and namespaced objects can both name it) of a kind
/// the operator does not map to claims, so the garbage collector tracks the same owner
/// edges as for the operator's objects.
pub async fn plain_owner(admin: &Client) -> Result<Value> {
    use k8s_openapi::api::rbac::v1::ClusterRole;
    let api: Api<ClusterRole> = Api::all(admin.clone());
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": { "name": "paved-bench-plain-owner", "labels": { "paved.dev/bench": "plain" } },
    }))?;
    let role = match api.create(&PostParams::default(), &role).await {
        Ok(r) => r,
        Err(kube::Error::Api(e)) if e.code == 409 => api.get("paved-bench-plain-owner").await?,
        Err(e) => return Err(e.into()),
    };
    Ok(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "name": "paved-bench-plain-owner", "uid": role.metadata.uid,
        "controller": true, "blockOwnerDeletion": true,
    }))
}

async fn write(
    client: &Client,
    o: &paved_compose::object::DesiredObject,
    how: Plain,
) -> Result<()> {
    let ar = paved_api::api_resource(&o.api_version, &o.kind, &o.plural);
    let api: Api<kube::api::DynamicObject> = match &o.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    if how == Plain::Create {
        let pp = PostParams {
            field_manager: Some("paved-bench".into()),
            ..Default::default()
        };
        api.create(&pp, &serde_json::from_value(o.body.clone())?)
            .await?;
        return Ok(());
    }
    api.patch(
        &o.name,
        &PatchParams::apply("paved-bench").force(),
        &Patch::Apply(&o.body),
    )
    .await?;
    Ok(())
}
