//! The ServiceClaim golden path against a real kube-apiserver, etcd and
//! kube-controller-manager, with the real External Secrets CRDs installed.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use k8s_openapi::api::{
    core::v1::{LimitRange, Namespace, ResourceQuota, ServiceAccount},
    networking::v1::NetworkPolicy,
    rbac::v1::RoleBinding,
};
use kube::{
    api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams},
    Api, ResourceExt,
};
use paved_api::{conditions, ServiceClaim};
use paved_e2e::{control_plane, db, eventually, Operator};
use serde_json::json;

const T: Duration = Duration::from_secs(30);

fn claim(name: &str) -> ServiceClaim {
    serde_json::from_value(json!({
        "apiVersion": "paved.dev/v1alpha1",
        "kind": "ServiceClaim",
        "metadata": { "name": name },
        "spec": {
            "owner": "team-claims",
            "system": "claims-platform",
            "cloud": "aws",
            "sloTier": "silver",
            "costCenter": "CC-4410",
            "network": {
                "ingressFrom": [ { "namespace": "ingress" } ],
                "egressTo": [ { "cidr": "10.50.0.0/16", "ports": [ { "port": 443 } ] } ]
            },
            "secrets": [ { "name": "app-secrets" } ],
            "temporal": [ { "name": "adjudication", "retentionDays": 30, "description": "claims adjudication" }, { "name": "appeals", "retentionDays": 365 } ]
        }
    }))
    .unwrap()
}

fn ar(api_version: &str, kind: &str, plural: &str) -> ApiResource {
    paved_api::api_resource(api_version, kind, plural)
}

fn condition(c: &ServiceClaim, type_: &str) -> Option<paved_api::Condition> {
    c.status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, type_).cloned())
}

/// Claim `name` (from `claim`) anew, with none of an earlier run's claim, namespace or
/// Temporal namespaces left, and Synced: everything applied (the objects go out 8 at
/// a time, so one being there says nothing of the others).
async fn synced_anew(cp: &paved_e2e::ControlPlane, c: ServiceClaim) -> Result<ServiceClaim> {
    let client = cp.client().await?;
    let name = c.name_any();
    let claims: Api<ServiceClaim> = Api::all(client.clone());
    let _ = claims.delete(&name, &DeleteParams::default()).await;
    eventually(
        "old claim and namespace gone",
        Duration::from_secs(90),
        || async {
            let ns: Api<Namespace> = Api::all(client.clone());
            Ok(
                (claims.get_opt(&name).await?.is_none() && ns.get_opt(&name).await?.is_none())
                    .then_some(()),
            )
        },
    )
    .await?;
    // Temporal namespaces outlive their claims (allowDeletion defaults to false):
    // remove an earlier run's, or the new claim would rightly refuse to adopt them.
    for t in &c.spec.temporal {
        let _ = std::process::Command::new(&cp.env["PAVED_TEMPORAL_CLI"])
            .args([
                "operator",
                "namespace",
                "delete",
                "--yes",
                "--address",
                &cp.env["TEMPORAL_ADDRESS"],
                "-n",
                &format!("{name}.{}", t.name),
            ])
            .output();
    }
    claims.create(&PostParams::default(), &c).await?;
    eventually("claim Synced", T, || async {
        let c = claims.get(&name).await?;
        Ok(condition(&c, "Synced")
            .is_some_and(|c| c.status == "True")
            .then_some(c))
    })
    .await
}

/// Deleting the claim removes its namespace and everything in it.
async fn deleted(cp: &paved_e2e::ControlPlane, name: &str, op: &Operator) -> Result<()> {
    let client = cp.client().await?;
    let nss: Api<Namespace> = Api::all(client.clone());
    Api::<ServiceClaim>::all(client)
        .delete(name, &DeleteParams::default())
        .await?;
    eventually("namespace deleted", Duration::from_secs(90), || async {
        Ok(nss.get_opt(name).await?.is_none().then_some(()))
    })
    .await
    .map_err(|e| anyhow!("{e}; operator log: {}", op.log.display()))
}

fn temporal_es_api(client: &kube::Client, name: &str) -> (Api<DynamicObject>, Api<DynamicObject>) {
    let tn_ar = ar(
        "paved.dev/v1alpha1",
        "TemporalNamespace",
        "temporalnamespaces",
    );
    let es_ar = ar(
        "external-secrets.io/v1",
        "ExternalSecret",
        "externalsecrets",
    );
    (
        Api::namespaced_with(client.clone(), name, &tn_ar),
        Api::namespaced_with(client.clone(), name, &es_ar),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_materializes_its_namespace_policies_quota_identity_and_secrets() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let op = Operator::start(cp, "service-claim", &[])?;
    let name = "e2e-golden";
    let claims: Api<ServiceClaim> = Api::all(client.clone());
    synced_anew(cp, claim(name)).await?;
    let (_, es_api) = temporal_es_api(&client, name);
    // Namespace with identity labels and Pod Security.
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns = eventually("namespace", T, || async { Ok(nss.get_opt(name).await?) }).await?;
    let l = ns.labels();
    assert_eq!(l["paved.dev/owner"], "team-claims");
    assert_eq!(l["paved.dev/system"], "claims-platform");
    assert_eq!(
        l["paved.dev/data-classification"], "phi",
        "classification defaults to phi"
    );
    assert_eq!(l["paved.dev/cost-center"], "CC-4410");
    assert_eq!(l["pod-security.kubernetes.io/enforce"], "restricted");
    let uid = claims.get(name).await?.uid().unwrap();
    let owner = &ns.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("ServiceClaim", uid.as_str(), Some(true))
    );

    // Default deny both ways, DNS allowed, plus the spec's allowances.
    let nps: Api<NetworkPolicy> = Api::namespaced(client.clone(), name);
    let deny = eventually("default-deny", T, || async {
        Ok(nps.get_opt("paved-default-deny").await?)
    })
    .await?;
    let spec = deny.spec.unwrap();
    assert_eq!(spec.policy_types.unwrap(), vec!["Ingress", "Egress"]);
    assert!(
        spec.ingress.is_none() && spec.egress.is_none(),
        "default-deny has no allow rules"
    );
    assert_eq!(
        spec.pod_selector.unwrap_or_default(),
        Default::default(),
        "selects every pod"
    );
    let dns = nps.get("paved-allow-dns").await?.spec.unwrap();
    let dns_ports: Vec<_> = dns.egress.unwrap()[0].ports.clone().unwrap();
    assert!(dns_ports.iter().all(
        |p| p.port == Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(53))
    ));
    let ingress = serde_json::to_string(&nps.get("paved-allow-ingress").await?.spec)?;
    assert!(
        ingress.contains("\"kubernetes.io/metadata.name\":\"ingress\""),
        "{ingress}"
    );
    let egress = serde_json::to_string(&nps.get("paved-allow-egress").await?.spec)?;
    assert!(
        egress.contains("10.50.0.0/16") && egress.contains("443"),
        "{egress}"
    );

    // Quota and limits for silver, from the composition.
    let quota = Api::<ResourceQuota>::namespaced(client.clone(), name)
        .get("paved-quota")
        .await?;
    let hard = quota.spec.unwrap().hard.unwrap();
    assert_eq!(hard["pods"].0, "50");
    assert_eq!(hard["requests.cpu"].0, "4");
    assert!(Api::<LimitRange>::namespaced(client.clone(), name)
        .get_opt("paved-limits")
        .await?
        .is_some());

    // Identity and the owner's access.
    let sa = Api::<ServiceAccount>::namespaced(client.clone(), name)
        .get(name)
        .await?;
    // Without per-service roles: the role the Composition's workloadIdentity names
    // (the plane's platform role; templating is unit-tested in paved-compose).
    let comp: serde_json::Value = serde_json::from_str(&cp.kubectl(&[
        "get",
        "compositions.paved.dev",
        "service-aws",
        "-o",
        "json",
    ])?)?;
    assert_eq!(
        sa.annotations()["eks.amazonaws.com/role-arn"],
        comp["spec"]["service"]["workloadIdentity"]["value"]
            .as_str()
            .context("the Composition names a role")?
    );
    let rb = Api::<RoleBinding>::namespaced(client.clone(), name)
        .get("paved-owner")
        .await?;
    assert_eq!(rb.role_ref.name, "paved-developer");
    let subject = &rb.subjects.unwrap()[0];
    assert_eq!(
        (subject.kind.as_str(), subject.name.as_str()),
        ("Group", "team-claims")
    );

    // The ExternalSecret passed the real upstream schema and reads the service's path.
    let es = es_api.get("app-secrets").await?;
    assert_eq!(
        es.data["spec"]["dataFrom"][0]["extract"]["key"],
        "team-claims/e2e-golden/app-secrets"
    );
    assert_eq!(es.data["spec"]["secretStoreRef"]["name"], "paved");

    let metrics = op.metrics()?;
    assert!(
        metrics.contains("paved_reconciles_total{controller=\"serviceclaim\"}"),
        "{metrics}"
    );
    deleted(cp, name, &op).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_names_the_child_that_holds_it_back_and_is_ready_once_it_is_fixed() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let op = Operator::start(cp, "service-claim-children", &[])?;
    let name = "e2e-golden-children";
    let claims: Api<ServiceClaim> = Api::all(client.clone());
    let nss: Api<Namespace> = Api::all(client.clone());
    synced_anew(cp, claim(name)).await?;
    let (tn_api, _) = temporal_es_api(&client, name);
    // Children exist; the claim is Synced but not Ready, naming the first child.
    let tn = tn_api.get("adjudication").await?;
    assert_eq!(tn.data["spec"]["retentionDays"], 30);
    assert_eq!(tn.data["spec"]["description"], "claims adjudication");
    // "appeals" asks for more retention than the composition allows, so it never
    // becomes Ready, and the claim says which child holds it up and why.
    let c = eventually("Ready=False naming appeals", T, || async {
        let c = claims.get(name).await?;
        let ok = condition(&c, "Synced").is_some_and(|s| s.is_true())
            && condition(&c, "Ready")
                .is_some_and(|r| !r.is_true() && r.message.contains("appeals"));
        Ok(ok.then_some(c))
    })
    .await?;
    let ready = condition(&c, "Ready").unwrap();
    assert_eq!(ready.reason, "ChildNotReady");
    assert!(
        ready
            .message
            .contains("TemporalNamespace appeals is not ready: InvalidSpec"),
        "{}",
        ready.message
    );
    assert_eq!(
        c.status.as_ref().unwrap().observed_generation,
        c.metadata.generation
    );
    let children = &c.status.as_ref().unwrap().children;
    assert!(
        children
            .iter()
            .any(|ch| ch.name == "adjudication" && ch.ready),
        "{children:?}"
    );

    // Fixing the child's request makes the whole claim Ready.
    claims
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "temporal": [ { "name": "adjudication", "retentionDays": 30 }, { "name": "appeals", "retentionDays": 60 } ] } })),
        )
        .await?;
    eventually("Ready=True", T, || async {
        let c = claims.get(name).await?;
        Ok(condition(&c, "Ready")
            .filter(|r| r.is_true() && r.observed_generation == c.metadata.generation)
            .map(|_| ()))
    })
    .await?;
    // The new claim's objects were created (POST); the change's apply adopted them, so a
    // field the spec no longer implies is gone, and Paved owns its fields through one
    // apply entry per object.
    let tn = tn_api.get("adjudication").await?;
    assert!(
        tn.data["spec"].get("description").is_none(),
        "the dropped description stayed: {}",
        tn.data["spec"]
    );
    for meta in [tn.metadata, nss.get(name).await?.metadata] {
        let ours: Vec<_> = meta
            .managed_fields
            .iter()
            .flatten()
            .filter(|f| {
                f.manager.as_deref() == Some(paved_api::FIELD_MANAGER) && f.subresource.is_none()
            })
            .map(|f| f.operation.clone().unwrap_or_default())
            .collect();
        assert_eq!(ours, ["Apply"], "{:?}", meta.name);
    }

    let events = db::event_reasons_about(cp, "default", name)?;
    assert!(events.contains("Ready"), "events: {events}");
    deleted(cp, name, &op).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_policy_and_an_edited_quota_come_back() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let op = Operator::start(cp, "service-claim-drift", &[])?;
    let name = "e2e-golden-drift";
    synced_anew(cp, claim(name)).await?;
    let nps: Api<NetworkPolicy> = Api::namespaced(client.clone(), name);
    // Drift: a deleted policy and an edited quota come back.
    nps.delete("paved-default-deny", &DeleteParams::default())
        .await?;
    let rq: Api<ResourceQuota> = Api::namespaced(client.clone(), name);
    rq.patch(
        "paved-quota",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "hard": { "pods": "999" } } })),
    )
    .await?;
    eventually("default-deny restored", Duration::from_secs(10), || async {
        Ok(nps
            .get_opt("paved-default-deny")
            .await?
            .filter(|p| p.metadata.deletion_timestamp.is_none()))
    })
    .await?;
    eventually("quota restored", Duration::from_secs(10), || async {
        let q = rq.get("paved-quota").await?;
        Ok((q.spec.unwrap().hard.unwrap()["pods"].0 == "50").then_some(()))
    })
    .await?;

    deleted(cp, name, &op).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_spec_no_longer_implies_is_pruned() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let op = Operator::start(cp, "service-claim-prune", &[])?;
    let name = "e2e-golden-prune";
    let claims: Api<ServiceClaim> = Api::all(client.clone());
    synced_anew(cp, claim(name)).await?;
    let (tn_api, es_api) = temporal_es_api(&client, name);
    eventually("children made", T, || async {
        Ok((tn_api.get_opt("appeals").await?.is_some()
            && es_api.get_opt("app-secrets").await?.is_some())
        .then_some(()))
    })
    .await?;
    // Spec change: what is no longer implied is removed.
    claims
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "temporal": [ { "name": "adjudication", "retentionDays": 30 } ], "secrets": null } })),
        )
        .await?;
    eventually("orphans pruned", T, || async {
        Ok((tn_api.get_opt("appeals").await?.is_none()
            && es_api.get_opt("app-secrets").await?.is_none())
        .then_some(()))
    })
    .await?;
    assert!(
        tn_api.get_opt("adjudication").await?.is_some(),
        "the child the spec still names stays"
    );

    let events = db::event_reasons_about(cp, "default", name)?;
    assert!(events.contains("PrunedResources"), "events: {events}");

    deleted(cp, name, &op).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_paved_did_not_make_is_never_taken_over() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let name = "e2e-preexisting";
    let nss: Api<Namespace> = Api::all(client.clone());
    if nss.get_opt(name).await?.is_none() {
        nss.create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": name } }))?,
        )
        .await?;
    }
    let claims: Api<ServiceClaim> = Api::all(client.clone());
    let _ = claims.delete(name, &DeleteParams::default()).await;
    eventually("old claim gone", T, || async {
        Ok(claims.get_opt(name).await?.is_none().then_some(()))
    })
    .await?;
    let op = Operator::start(cp, "namespace-conflict", &[])?;
    let mut c = claim(name);
    c.spec.secrets.clear();
    claims.create(&PostParams::default(), &c).await?;
    let c = eventually("NamespaceConflict", T, || async {
        let c = claims.get(name).await?;
        Ok(condition(&c, "Synced").filter(|s| s.reason == "NamespaceConflict"))
    })
    .await?;
    assert!(
        c.message
            .contains("Paved did not make it for this ServiceClaim")
            && c.message.contains("does not list it"),
        "{}",
        c.message
    );
    let ns = nss.get(name).await?;
    assert!(
        !ns.labels().contains_key("paved.dev/owner"),
        "the namespace was left alone"
    );
    claims.delete(name, &DeleteParams::default()).await?;
    drop(op);
    Ok(())
}
