//! A Composition that passes the schema but breaks the compliance floor is shown as
//! Ready=False on the Composition and Synced=False on every claim that uses it, and
//! nothing is applied from it. Fixing it heals the claim.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    api::{DeleteParams, Patch, PatchParams, PostParams},
    Api,
};
use paved_api::{conditions, Composition, ServiceClaim};
use paved_e2e::{control_plane, eventually, Operator};
use serde_json::json;

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_composition_below_the_floor_blocks_its_claims_with_a_reason() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let _op = Operator::start(cp, "composition-floor", &[])?;
    let comps: Api<Composition> = Api::all(client.clone());
    let claims: Api<ServiceClaim> = Api::all(client.clone());
    let nss: Api<Namespace> = Api::all(client.clone());
    let name = "e2e-floor";
    let _ = claims.delete(name, &DeleteParams::default()).await;
    eventually("old claim gone", Duration::from_secs(90), || async {
        Ok(
            (claims.get_opt(name).await?.is_none() && nss.get_opt(name).await?.is_none())
                .then_some(()),
        )
    })
    .await?;

    // Schema-valid, floor-breaking: every service would read one shared secret path.
    // (An owner role beyond the shipped ones is refused by the schema already.)
    let restore = comps
        .get("service-azure")
        .await?
        .spec
        .service
        .unwrap()
        .secrets
        .unwrap()
        .path;
    let set_role = |path: &str| json!({ "spec": { "service": { "secrets": { "path": path } } } });
    comps
        .patch(
            "service-azure",
            &PatchParams::default(),
            &Patch::Merge(set_role("shared")),
        )
        .await?;
    let result = async {
        eventually("composition Ready=False", T, || async {
            let c = comps.get("service-azure").await?;
            Ok(c.status
                .and_then(|s| conditions::find(&s.conditions, "Ready").cloned())
                .filter(|r| {
                    r.reason == "CompositionViolatesFloor"
                        && r.message.contains("spec.service.secrets.path")
                }))
        })
        .await?;

        let claim: ServiceClaim = serde_json::from_value(json!({
            "apiVersion": "paved.dev/v1alpha1", "kind": "ServiceClaim",
            "metadata": { "name": name },
            "spec": { "owner": "team-x", "system": "s", "costCenter": "CC-1", "cloud": "azure" }
        }))?;
        claims.create(&PostParams::default(), &claim).await?;
        let synced = eventually("claim Synced=False", T, || async {
            let c = claims.get(name).await?;
            Ok(c.status
                .and_then(|s| conditions::find(&s.conditions, "Synced").cloned())
                .filter(|s| !s.is_true()))
        })
        .await?;
        assert_eq!(synced.reason, "CompositionViolatesFloor");
        assert!(
            synced.message.contains("service-azure") && synced.message.contains("secrets.path"),
            "{}",
            synced.message
        );
        assert!(
            nss.get_opt(name).await?.is_none(),
            "nothing is applied from a composition below the floor"
        );

        // Fixing the Composition re-renders the claim without touching it.
        comps
            .patch(
                "service-azure",
                &PatchParams::default(),
                &Patch::Merge(set_role(&restore)),
            )
            .await?;
        eventually("claim Ready after the fix", T, || async {
            let c = claims.get(name).await?;
            Ok(c.status
                .filter(|s| conditions::is_ready(&s.conditions, c.metadata.generation))
                .map(|_| ()))
        })
        .await?;
        anyhow::Ok(())
    }
    .await;
    comps
        .patch(
            "service-azure",
            &PatchParams::default(),
            &Patch::Merge(set_role(&restore)),
        )
        .await?;
    let _ = claims.delete(name, &DeleteParams::default()).await;
    result
}
