//! When the apiserver refuses a write (here a ValidatingAdmissionPolicy, as a
//! platform's own guardrail would), the claim says Synced=False / ReconcileError with
//! the apiserver's reason, instead of looking synced; when the refusal goes, it heals.

use std::time::Duration;

use anyhow::Result;
use kube::{
    api::{DeleteParams, PostParams},
    Api,
};
use paved_api::{conditions, ServiceClaim};
use paved_e2e::{control_plane, eventually, Operator};
use serde_json::json;

const POLICY: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: { name: paved-e2e-deny-quota }
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - apiGroups: [""]
        apiVersions: ["v1"]
        operations: ["CREATE", "UPDATE"]
        resources: ["resourcequotas"]
  validations:
    - expression: "false"
      reason: Forbidden
      message: "quotas are frozen in this namespace (e2e guardrail)"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: { name: paved-e2e-deny-quota }
spec:
  policyName: paved-e2e-deny-quota
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: { paved.dev/owner: team-frozen }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_shows_as_synced_false_and_heals() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let _op = Operator::start(cp, "api-errors", &[])?;
    let name = "e2e-frozen";
    let claims: Api<ServiceClaim> = Api::all(client.clone());
    let _ = claims.delete(name, &DeleteParams::default()).await;
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    eventually("old claim gone", Duration::from_secs(120), || async {
        Ok(
            (claims.get_opt(name).await?.is_none() && nss.get_opt(name).await?.is_none())
                .then_some(()),
        )
    })
    .await?;
    let (ok, out) = cp.kubectl_stdin(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        POLICY,
    )?;
    assert!(ok, "{out}");
    // The policy takes a moment to be enforced.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let claim: ServiceClaim = serde_json::from_value(json!({
        "apiVersion": "paved.dev/v1alpha1", "kind": "ServiceClaim", "metadata": { "name": name },
        "spec": { "owner": "team-frozen", "system": "s", "costCenter": "CC-1", "cloud": "local" }
    }))?;
    claims.create(&PostParams::default(), &claim).await?;
    let synced = eventually(
        "Synced=False ReconcileError",
        Duration::from_secs(60),
        || async {
            let c = claims.get(name).await?;
            Ok(c.status
                .and_then(|s| conditions::find(&s.conditions, "Synced").cloned())
                .filter(|s| s.reason == "ReconcileError"))
        },
    )
    .await?;
    assert!(
        synced.message.contains("quotas are frozen"),
        "{}",
        synced.message
    );
    let health =
        std::process::Command::new(paved_e2e::repo_root().join("e2e/health-checks")).output()?;
    assert!(health.status.success());

    cp.kubectl(&[
        "delete",
        "validatingadmissionpolicybinding",
        "paved-e2e-deny-quota",
    ])?;
    cp.kubectl(&[
        "delete",
        "validatingadmissionpolicy",
        "paved-e2e-deny-quota",
    ])?;
    eventually(
        "Synced and Ready after the guardrail goes",
        Duration::from_secs(90),
        || async {
            let c = claims.get(name).await?;
            Ok(c.status
                .filter(|s| {
                    conditions::is_ready(&s.conditions, c.metadata.generation)
                        && conditions::find(&s.conditions, "Synced").is_some_and(|x| x.is_true())
                })
                .map(|_| ()))
        },
    )
    .await?;
    claims.delete(name, &DeleteParams::default()).await?;
    Ok(())
}
