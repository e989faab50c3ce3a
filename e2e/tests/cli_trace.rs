//! `paved trace` (and `kubectl paved trace`) against a live cluster.

use std::{process::Command, time::Duration};

use anyhow::Result;
use kube::{
    api::{DeleteParams, PostParams},
    Api,
};
use paved_api::{conditions, ServiceClaim};
use paved_e2e::{control_plane, eventually, Operator};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_shows_the_tree_with_readiness() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let _op = Operator::start(cp, "cli-trace", &[])?;
    let name = "e2e-trace";
    let claims: Api<ServiceClaim> = Api::all(client.clone());
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let _ = claims.delete(name, &DeleteParams::default()).await;
    eventually("old claim gone", Duration::from_secs(120), || async {
        Ok(
            (claims.get_opt(name).await?.is_none() && nss.get_opt(name).await?.is_none())
                .then_some(()),
        )
    })
    .await?;
    let claim: ServiceClaim = serde_json::from_value(json!({
        "apiVersion": "paved.dev/v1alpha1", "kind": "ServiceClaim", "metadata": { "name": name },
        "spec": { "owner": "team-t", "system": "s", "costCenter": "CC-1", "cloud": "local",
                  "dataClassification": "internal", "databases": [ { "name": "main" } ] }
    }))?;
    claims.create(&PostParams::default(), &claim).await?;
    eventually("claim Ready", Duration::from_secs(60), || async {
        let c = claims.get(name).await?;
        Ok(c.status
            .filter(|s| conditions::is_ready(&s.conditions, c.metadata.generation))
            .map(|_| ()))
    })
    .await?;

    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| paved_e2e::repo_root().join("target"));
    for bin in ["paved", "kubectl-paved"] {
        let out = Command::new(target.join("debug").join(bin))
            .args(["trace", &format!("serviceclaim/{name}")])
            .env("KUBECONFIG", cp.kubeconfig())
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{bin} trace failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.starts_with(&format!(
                "ServiceClaim/{name}  Ready=True Synced=True Available"
            )),
            "{text}"
        );
        for want in [
            "Namespace/e2e-trace",
            "NetworkPolicy/paved-default-deny",
            "ResourceQuota/paved-quota",
            "RoleBinding/paved-owner",
            "PostgreSQLInstance/main  Ready=True Synced=True Available",
            "SecretStore/paved",
            // Written by External Secrets through the store, marked as the claim's.
            "─ Secret/main-connection",
            "─ ExternalSecret/main-connection",
        ] {
            assert!(text.contains(want), "{bin}: missing {want:?} in\n{text}");
        }
    }
    let out = Command::new(target.join("debug/paved"))
        .args(["trace", "pgi/main", "-n", name])
        .env("KUBECONFIG", cp.kubeconfig())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("PostgreSQLInstance/e2e-trace/main  Ready=True")
            && text.contains("Secret/main-connection"),
        "{text}"
    );
    let bad = Command::new(target.join("debug/paved"))
        .args(["trace", "deployment/x"])
        .env("KUBECONFIG", cp.kubeconfig())
        .output()?;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a Paved claim kind"));
    claims.delete(name, &DeleteParams::default()).await?;
    Ok(())
}
