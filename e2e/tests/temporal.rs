//! TemporalNamespace against a real Temporal dev server: registered with its
//! retention, description, owner and data; updates reach Temporal; a hand edit is
//! corrected; someone else's namespace is never adopted; a server restart is
//! survived; deletion honours allowDeletion.

use std::{process::Command, time::Duration};

use anyhow::{bail, Result};
use kube::{
    api::{DeleteParams, Patch, PatchParams, PostParams},
    Api,
};
use paved_api::{conditions, TemporalNamespace};
use paved_e2e::{control_plane, eventually, ControlPlane, Operator};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(60);
const NS: &str = "e2e-temporal";

/// The temporal CLI against the dev server; Ok(None) when the namespace is not found.
fn describe(cp: &ControlPlane, name: &str) -> Result<Option<Value>> {
    let out = Command::new(&cp.env["PAVED_TEMPORAL_CLI"])
        .args([
            "operator",
            "namespace",
            "describe",
            "--address",
            &cp.env["TEMPORAL_ADDRESS"],
            "-n",
            name,
            "-o",
            "json",
        ])
        .output()?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("not found") {
            return Ok(None);
        }
        bail!("temporal describe {name}: {err}");
    }
    Ok(Some(serde_json::from_slice(&out.stdout)?))
}

fn cli(cp: &ControlPlane, args: &[&str]) -> Result<()> {
    let out = Command::new(&cp.env["PAVED_TEMPORAL_CLI"])
        .args(["operator", "namespace"])
        .args(args)
        .args(["--address", &cp.env["TEMPORAL_ADDRESS"]])
        .output()?;
    if !out.status.success() {
        bail!(
            "temporal {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn claim(name: &str, spec: Value) -> Result<TemporalNamespace> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "paved.dev/v1alpha1", "kind": "TemporalNamespace",
        "metadata": { "name": name, "namespace": NS }, "spec": spec
    }))?)
}

async fn ready(api: &Api<TemporalNamespace>, name: &str) -> Result<TemporalNamespace> {
    eventually(&format!("{name} Ready"), T, || async {
        let t = api.get(name).await?;
        Ok(t.status
            .as_ref()
            .is_some_and(|s| conditions::is_ready(&s.conditions, t.metadata.generation))
            .then_some(t))
    })
    .await
}

async fn retention(cp: &ControlPlane, name: &str, want: &str) -> Result<()> {
    eventually(&format!("{name} retention {want}"), T, || async {
        Ok(describe(cp, name)?
            .filter(|d| d["config"]["workflowExecutionRetentionTtl"] == want)
            .map(|_| ()))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporal_namespaces_register_update_heal_and_delete_by_choice() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    paved_e2e::db::team_namespace(cp, "team-orders", NS, "local", "confidential")?;
    let api: Api<TemporalNamespace> = Api::namespaced(client.clone(), NS);
    let op = Operator::start(cp, "temporal", &[])?;
    // Leftovers of an earlier run go first (the operator handles their finalizers).
    for n in ["orders", "ephemeral", "foreign"] {
        let _ = api.delete(n, &DeleteParams::default()).await;
    }
    eventually("old claims gone", T, || async {
        Ok(api
            .list(&Default::default())
            .await?
            .items
            .is_empty()
            .then_some(()))
    })
    .await?;
    for n in ["orders", "ephemeral", "foreign"] {
        let full = format!("{NS}.{n}");
        if describe(cp, &full)?.is_some() {
            cli(cp, &["delete", "-n", &full, "--yes"])?;
        }
    }

    // Registered with everything the claim and Paved say.
    api.create(&PostParams::default(), &claim("orders", json!({
        "retentionDays": 30, "description": "order workflows", "ownerEmail": "orders@example.com",
        "data": { "tier": "gold", "team": "impostor" }
    }))?)
    .await?;
    let t = ready(&api, "orders").await?;
    let st = t.status.unwrap();
    assert_eq!(
        st.temporal_namespace.as_deref(),
        Some("e2e-temporal.orders")
    );
    assert_eq!(st.state.as_deref(), Some("Registered"));
    assert_eq!(st.retention_days, Some(30));
    let d = describe(cp, "e2e-temporal.orders")?.expect("registered in Temporal");
    assert_eq!(
        st.namespace_id.as_deref(),
        d["namespaceInfo"]["id"].as_str()
    );
    assert_eq!(d["config"]["workflowExecutionRetentionTtl"], "2592000s");
    assert_eq!(d["namespaceInfo"]["description"], "order workflows");
    assert_eq!(d["namespaceInfo"]["ownerEmail"], "orders@example.com");
    let data = &d["namespaceInfo"]["data"];
    assert_eq!(data["tier"], "gold");
    assert_eq!(
        data["team"], "team-orders",
        "identity data cannot be overridden by the claim"
    );
    assert_eq!(data["classification"], "confidential");
    assert_eq!(
        data["paved.dev/claim-uid"],
        t.metadata.uid.unwrap().as_str()
    );
    let cols = cp.kubectl(&["get", "tns", "-n", NS, "orders"])?;
    assert!(
        cols.contains("RETENTION")
            && cols.contains("TEMPORAL-NAMESPACE")
            && cols.contains("e2e-temporal.orders"),
        "{cols}"
    );

    // An update reaches Temporal.
    api.patch(
        "orders",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "retentionDays": 45 } })),
    )
    .await?;
    retention(cp, "e2e-temporal.orders", "3888000s").await?;

    // A hand edit in Temporal is corrected, with an Event.
    cli(
        cp,
        &["update", "-n", "e2e-temporal.orders", "--retention", "48h"],
    )?;
    retention(cp, "e2e-temporal.orders", "3888000s").await?;
    let events = cp.kubectl(&[
        "get",
        "events",
        "-n",
        NS,
        "-o",
        "jsonpath={.items[*].reason}",
    ])?;
    assert!(events.contains("DriftCorrected"), "{events}");

    // Someone else's namespace under the name a claim would use: never adopted.
    cli(
        cp,
        &[
            "create",
            "-n",
            "e2e-temporal.foreign",
            "--retention",
            "24h",
            "--description",
            "not paved's",
        ],
    )?;
    api.create(&PostParams::default(), &claim("foreign", json!({}))?)
        .await?;
    let c = eventually("foreign OwnedByOther", T, || async {
        let t = api.get("foreign").await?;
        Ok(t.status
            .and_then(|s| conditions::find(&s.conditions, "Synced").cloned())
            .filter(|c| c.reason == "OwnedByOther"))
    })
    .await?;
    assert!(c.message.contains("outside Paved"), "{}", c.message);
    assert_eq!(
        describe(cp, "e2e-temporal.foreign")?.unwrap()["namespaceInfo"]["description"],
        "not paved's"
    );

    // The Temporal server restarts: the controller recovers without a hand.
    cp.restart("temporal")?;
    cli(
        cp,
        &["update", "-n", "e2e-temporal.orders", "--retention", "24h"],
    )?;
    retention(cp, "e2e-temporal.orders", "3888000s").await?;

    // Deletion: kept by default, deleted only with allowDeletion.
    api.create(
        &PostParams::default(),
        &claim(
            "ephemeral",
            json!({ "allowDeletion": true, "retentionDays": 1 }),
        )?,
    )
    .await?;
    ready(&api, "ephemeral").await?;
    for n in ["orders", "ephemeral", "foreign"] {
        api.delete(n, &DeleteParams::default()).await?;
    }
    eventually("claims gone", T, || async {
        Ok(api
            .list(&Default::default())
            .await?
            .items
            .is_empty()
            .then_some(()))
    })
    .await?;
    assert!(
        describe(cp, "e2e-temporal.orders")?.is_some(),
        "allowDeletion false: the namespace stays"
    );
    assert!(
        describe(cp, "e2e-temporal.foreign")?.is_some(),
        "someone else's namespace is never deleted"
    );
    eventually("ephemeral gone from Temporal", T, || async {
        Ok(describe(cp, "e2e-temporal.ephemeral")?
            .is_none()
            .then_some(()))
    })
    .await?;
    let events = cp.kubectl(&[
        "get",
        "events",
        "-n",
        NS,
        "-o",
        "jsonpath={.items[*].reason}",
    ])?;
    assert!(events.contains("NamespaceKept"), "{events}");
    drop(op);
    Ok(())
}

#[test]
fn bad_temporal_claims_are_refused_at_admission() -> Result<()> {
    let cp = control_plane();
    let (ok, out) = cp.kubectl_stdin(
        &["create", "--dry-run=server", "-f", "-"],
        "apiVersion: paved.dev/v1alpha1\nkind: TemporalNamespace\nmetadata: { name: t, namespace: default }\nspec: { retentionDays: 0, ownerEmail: nope }\n",
    )?;
    assert!(
        !ok && out.contains("spec.retentionDays")
            && out.contains("ownerEmail must be an email address"),
        "{out}"
    );
    Ok(())
}
