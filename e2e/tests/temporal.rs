//! TemporalNamespace against a real Temporal dev server, one guarantee per test, each
//! in a namespace of its own: registered with its retention, description, owner and
//! data; updates reach Temporal and a hand edit is corrected; someone else's namespace
//! is never adopted or deleted; one deleted in Temporal is not registered again; a
//! server restart is survived; deletion honours allowDeletion.

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

fn claim(ns: &str, name: &str, spec: Value) -> Result<TemporalNamespace> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "paved.dev/v1alpha1", "kind": "TemporalNamespace",
        "metadata": { "name": name, "namespace": ns }, "spec": spec
    }))?)
}

/// A test's own namespace (of team-orders) with no claims and none of `names` left in
/// Temporal from an earlier run, and an operator.
async fn fresh(
    cp: &ControlPlane,
    ns: &str,
    names: &[&str],
) -> Result<(Api<TemporalNamespace>, Operator)> {
    let client = cp.client().await?;
    paved_e2e::db::team_namespace(cp, "team-orders", ns, "local", "confidential")?;
    let api: Api<TemporalNamespace> = Api::namespaced(client, ns);
    let op = Operator::start(cp, ns, &[])?;
    // Leftovers of an earlier run go first (the operator handles their finalizers).
    api.delete_collection(&DeleteParams::default(), &Default::default())
        .await?;
    gone(&api).await?;
    for n in names {
        let full = format!("{ns}.{n}");
        if describe(cp, &full)?.is_some() {
            cli(cp, &["delete", "-n", &full, "--yes"])?;
        }
        eventually(&format!("{full} gone"), T, || async {
            Ok(describe(cp, &full)?.is_none().then_some(()))
        })
        .await?;
    }
    Ok((api, op))
}

/// Every claim of the namespace has let go.
async fn gone(api: &Api<TemporalNamespace>) -> Result<()> {
    eventually("claims gone", T, || async {
        Ok(api
            .list(&Default::default())
            .await?
            .items
            .is_empty()
            .then_some(()))
    })
    .await
}

/// The claim's Synced condition once its reason is `reason`.
async fn synced_because(
    api: &Api<TemporalNamespace>,
    name: &str,
    reason: &str,
) -> Result<paved_api::Condition> {
    eventually(&format!("{name} {reason}"), T, || async {
        let t = api.get(name).await?;
        Ok(t.status
            .and_then(|s| conditions::find(&s.conditions, "Synced").cloned())
            .filter(|c| c.reason == reason))
    })
    .await
}

fn event_reasons(cp: &ControlPlane, ns: &str) -> Result<String> {
    cp.kubectl(&[
        "get",
        "events",
        "-n",
        ns,
        "-o",
        "jsonpath={.items[*].reason}",
    ])
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
async fn a_claim_registers_its_namespace_with_what_paved_says() -> Result<()> {
    let cp = control_plane();
    let ns = "e2e-temporal-register";
    let (api, op) = fresh(cp, ns, &["orders"]).await?;
    api.create(&PostParams::default(), &claim(ns, "orders", json!({
        "retentionDays": 30, "description": "order workflows", "ownerEmail": "orders@example.com",
        "data": { "tier": "gold", "team": "impostor" }
    }))?)
    .await?;
    let t = ready(&api, "orders").await?;
    let st = t.status.unwrap();
    let full = format!("{ns}.orders");
    assert_eq!(st.temporal_namespace.as_deref(), Some(full.as_str()));
    assert_eq!(st.state.as_deref(), Some("Registered"));
    assert_eq!(st.retention_days, Some(30));
    let d = describe(cp, &full)?.expect("registered in Temporal");
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
    let uid = t.metadata.uid.clone().unwrap();
    assert_eq!(data["paved.dev/claim-uid"], uid.as_str());
    // The create guard and where the namespace lives are on the claim, so a deletion
    // finds it whatever the Composition says by then.
    let ann = t.metadata.annotations.unwrap_or_default();
    assert!(ann.contains_key("paved.dev/create-succeeded"), "{ann:?}");
    assert_eq!(
        ann.get("paved.dev/external-name").map(String::as_str),
        Some(full.as_str())
    );
    let cols = cp.kubectl(&["get", "tns", "-n", ns, "orders"])?;
    assert!(
        cols.contains("RETENTION") && cols.contains("TEMPORAL-NAMESPACE") && cols.contains(&full),
        "{cols}"
    );
    assert!(event_reasons(cp, ns)?.contains("Registered"));
    drop(op);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_reach_temporal_and_hand_edits_are_corrected() -> Result<()> {
    let cp = control_plane();
    let ns = "e2e-temporal-drift";
    let (api, op) = fresh(cp, ns, &["orders"]).await?;
    let full = format!("{ns}.orders");
    api.create(
        &PostParams::default(),
        &claim(ns, "orders", json!({ "retentionDays": 30 }))?,
    )
    .await?;
    ready(&api, "orders").await?;
    api.patch(
        "orders",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "retentionDays": 45 } })),
    )
    .await?;
    retention(cp, &full, "3888000s").await?;
    cli(cp, &["update", "-n", &full, "--retention", "48h"])?;
    retention(cp, &full, "3888000s").await?;
    assert!(event_reasons(cp, ns)?.contains("DriftCorrected"));
    drop(op);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_elses_namespace_is_never_adopted_or_deleted() -> Result<()> {
    let cp = control_plane();
    let ns = "e2e-temporal-foreign";
    let (api, op) = fresh(cp, ns, &["foreign"]).await?;
    let full = format!("{ns}.foreign");
    cli(
        cp,
        &[
            "create",
            "-n",
            &full,
            "--retention",
            "24h",
            "--description",
            "not paved's",
        ],
    )?;
    api.create(
        &PostParams::default(),
        &claim(ns, "foreign", json!({ "allowDeletion": true }))?,
    )
    .await?;
    let c = synced_because(&api, "foreign", "OwnedByOther").await?;
    assert!(c.message.contains("outside Paved"), "{}", c.message);
    // Even a claim that allows deletion deletes nothing that is not its own.
    api.delete("foreign", &DeleteParams::default()).await?;
    gone(&api).await?;
    let d = describe(cp, &full)?.expect("someone else's namespace is never deleted");
    assert_eq!(d["namespaceInfo"]["description"], "not paved's");
    assert_eq!(d["config"]["workflowExecutionRetentionTtl"], "86400s");
    drop(op);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_deleted_in_temporal_is_not_registered_again() -> Result<()> {
    let cp = control_plane();
    let ns = "e2e-temporal-lost";
    let (api, op) = fresh(cp, ns, &["orders"]).await?;
    let full = format!("{ns}.orders");
    api.create(&PostParams::default(), &claim(ns, "orders", json!({}))?)
        .await?;
    let first = ready(&api, "orders").await?.status.unwrap().namespace_id;
    // Deleted behind Paved's back: a human decides, Paved does not quietly make an
    // empty namespace under the same name. (Temporal's delete finds a namespace only
    // once its registry cache has it, a few seconds after the registration.)
    eventually("deleted in Temporal", T, || async {
        Ok(cli(cp, &["delete", "-n", &full, "--yes"]).ok())
    })
    .await?;
    let c = synced_because(&api, "orders", "ExternalResourceMissing").await?;
    assert!(c.message.contains(&full), "{}", c.message);
    tokio::time::sleep(Duration::from_secs(3)).await;
    if let Some(d) = describe(cp, &full)? {
        assert_ne!(
            d["namespaceInfo"]["id"].as_str(),
            first.as_deref(),
            "still the old one"
        );
        assert_ne!(
            d["namespaceInfo"]["state"], "Registered",
            "registered a second time: {d}"
        );
    }
    drop(op);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_around_the_register_call_leaves_exactly_one_namespace() -> Result<()> {
    use kube::ResourceExt;
    let cp = control_plane();
    let ns = "e2e-temporal-crash";
    let points = ["before-create", "after-create"];
    let names: Vec<String> = points.iter().map(|p| format!("crash-{p}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (api, op) = fresh(cp, ns, &refs).await?;
    // The armed runs need the claims alone: the test's operator waits.
    drop(op);
    for (point, name) in points.iter().zip(&names) {
        api.create(&PostParams::default(), &claim(ns, name, json!({}))?)
            .await?;
        paved_e2e::db::crash_at(
            cp,
            &format!("paved-e2e-temporal-crash-{point}"),
            point,
            &format!("{ns}/{name}"),
        )
        .await?;
        let c = api.get(name).await?;
        let ann = c.annotations();
        assert!(
            ann.contains_key("paved.dev/create-pending")
                && !ann.contains_key("paved.dev/create-succeeded"),
            "{name}: {ann:?}"
        );
        let there = describe(cp, &format!("{ns}.{name}"))?.is_some();
        assert_eq!(there, *point == "after-create", "{name} in Temporal");
    }
    // A normal run: each claim is Ready on exactly the one namespace, adopted where the
    // call had gone through.
    let op = Operator::start(cp, ns, &[])?;
    for name in &names {
        let t = ready(&api, name).await?;
        let d = describe(cp, &format!("{ns}.{name}"))?.expect("registered");
        assert_eq!(
            d["namespaceInfo"]["data"]["paved.dev/claim-uid"],
            t.uid().unwrap().as_str()
        );
        assert_eq!(
            t.status.and_then(|s| s.namespace_id).as_deref(),
            d["namespaceInfo"]["id"].as_str()
        );
    }
    assert!(event_reasons(cp, ns)?.contains("Adopted"));
    drop(op);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_recovers_from_a_temporal_restart() -> Result<()> {
    let cp = control_plane();
    let ns = "e2e-temporal-restart";
    let (api, op) = fresh(cp, ns, &["orders"]).await?;
    let full = format!("{ns}.orders");
    api.create(
        &PostParams::default(),
        &claim(ns, "orders", json!({ "retentionDays": 45 }))?,
    )
    .await?;
    ready(&api, "orders").await?;
    cp.restart("temporal")?;
    cli(cp, &["update", "-n", &full, "--retention", "24h"])?;
    retention(cp, &full, "3888000s").await?;
    drop(op);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_is_by_choice() -> Result<()> {
    let cp = control_plane();
    let ns = "e2e-temporal-delete";
    let (api, op) = fresh(cp, ns, &["kept", "ephemeral"]).await?;
    api.create(&PostParams::default(), &claim(ns, "kept", json!({}))?)
        .await?;
    api.create(
        &PostParams::default(),
        &claim(
            ns,
            "ephemeral",
            json!({ "allowDeletion": true, "retentionDays": 1 }),
        )?,
    )
    .await?;
    ready(&api, "kept").await?;
    ready(&api, "ephemeral").await?;
    for n in ["kept", "ephemeral"] {
        api.delete(n, &DeleteParams::default()).await?;
    }
    gone(&api).await?;
    assert!(
        describe(cp, &format!("{ns}.kept"))?.is_some(),
        "allowDeletion false: the namespace stays"
    );
    eventually("ephemeral gone from Temporal", T, || async {
        Ok(describe(cp, &format!("{ns}.ephemeral"))?
            .is_none()
            .then_some(()))
    })
    .await?;
    let events = event_reasons(cp, ns)?;
    assert!(events.contains("NamespaceKept"), "{events}");
    assert!(events.contains("Deleted"), "{events}");
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
