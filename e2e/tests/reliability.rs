//! Reliability and secrecy across a whole lifecycle, on the local provider: the
//! kube-apiserver restarted in the middle of reconciles (the operator recovers without
//! a restart of its own: retried writes, re-listed watches, RBAC's 403s while the
//! restarted apiserver warms up), and no credential value in the operator's log, any
//! Event or any Paved object's status from create to delete.

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::{core::v1::Secret, networking::v1::NetworkPolicy};
use kube::{
    api::{DeleteParams, Patch, PatchParams, PostParams},
    Api, Client,
};
use paved_api::{conditions, PostgreSQLInstance, ServiceClaim};
use paved_e2e::{control_plane, db, eventually, ControlPlane, Operator};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(120);

fn service(name: &str, size: &str) -> Result<ServiceClaim> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "paved.dev/v1alpha1", "kind": "ServiceClaim",
        "metadata": { "name": name },
        "spec": {
            "owner": "team-reliability", "system": "s", "costCenter": "CC-7", "cloud": "local",
            "dataClassification": "internal",
            "network": { "ingressFrom": [ { "namespace": "ingress" } ] },
            "databases": [
                { "name": "main", "parameters": { "size": size } },
                { "name": "audit" },
                { "name": "reports" },
            ],
        }
    }))?)
}

async fn all_ready(client: &Client, ns: &str, names: &[&str]) -> Result<()> {
    let pgs: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), ns);
    for name in names {
        db::ready(&pgs, name).await?;
    }
    Ok(())
}

/// A spec change (a merge patch: no conflict with a status write in between).
async fn resize(claims: &Api<ServiceClaim>, name: &str, size: &str) -> Result<()> {
    let spec = serde_json::to_value(service(name, size)?.spec)?;
    claims
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec })),
        )
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apiserver_restart_mid_reconcile_is_survived() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let name = "e2e-apiserver-restart";
    {
        let _cleanup = Operator::start(cp, "restart-cleanup", &[])?;
        db::fresh_service(&client, name).await?;
    }
    // A lease longer than the restart, so this is about watches and writes recovering,
    // not about handing leadership over (leader_election covers that). The default
    // resync (10 min) is far beyond the waits below: only watches can bring the news.
    let mut op = Operator::start(cp, "apiserver-restart", &["--lease-seconds", "60"])?;
    let claims: Api<ServiceClaim> = Api::all(client.clone());
    claims
        .create(&PostParams::default(), &service(name, "small")?)
        .await?;
    // The ServiceClaim's children and three databases are being made when the
    // apiserver goes away.
    tokio::time::sleep(Duration::from_millis(300)).await;
    cp.restart("kube-apiserver")?;
    let client = cp.client().await?;
    all_ready(&client, name, &["main", "audit", "reports"]).await?;
    let claims: Api<ServiceClaim> = Api::all(client.clone());
    db::ready(&claims, name).await?;

    // Every watch came back: a child deleted now is put back, and a child claim's
    // change reaches the ServiceClaim.
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), name);
    let old = policies.get("paved-default-deny").await?.metadata.uid;
    policies
        .delete("paved-default-deny", &DeleteParams::default())
        .await?;
    eventually("default-deny put back", T, || async {
        Ok(policies
            .get_opt("paved-default-deny")
            .await?
            .filter(|p| p.metadata.uid != old))
    })
    .await?;
    resize(&claims, name, "medium").await?;
    db::ready(&claims, name).await?;
    assert!(
        op.is_running(),
        "the operator kept running through the restart"
    );
    drop(op);
    let _cleanup = Operator::start(cp, "restart-cleanup", &[])?;
    db::fresh_service(&client, name).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_operator_writes_nothing_for_unchanged_claims_and_repairs_what_changed(
) -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let claims: Api<ServiceClaim> = Api::all(client.clone());
    let names = ["e2e-restart-a", "e2e-restart-b"];
    {
        let _cleanup = Operator::start(cp, "restart-writes-cleanup", &[])?;
        for n in names {
            db::fresh_service(&client, n).await?;
        }
    }
    let mut op = Operator::start(cp, "restart-writes", &[])?;
    for n in names {
        claims
            .create(&PostParams::default(), &service(n, "small")?)
            .await?;
    }
    for n in names {
        db::ready(&claims, n).await?;
        all_ready(&client, n, &["main", "audit", "reports"]).await?;
    }
    // Settled: every claim applied once more (the apply that adopts what the creates
    // wrote) and its digest recorded, so what follows starts from a quiet state.
    eventually("digests recorded", T, || async {
        let mut all = true;
        for n in names {
            all &= claims
                .get(n)
                .await?
                .status
                .and_then(|s| s.applied)
                .is_some();
        }
        Ok(all.then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    op.stop();
    drop(op);

    // A new process, nothing changed: every claim and database is reconciled, and
    // nothing is written.
    let op = Operator::start(cp, "restart-writes-2", &[])?;
    eventually("every claim reconciled", T, || async {
        let svc = op.counter("paved_reconciles", "serviceclaim")?;
        let dbs = op.counter("paved_reconciles", "postgresqlinstance")?;
        Ok((svc >= 2.0 && dbs >= 6.0).then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        op.counter("paved_apiserver_writes", "")?,
        0.0,
        "a restart over unchanged claims writes nothing:\n{}",
        op.metrics()?
    );
    let mut op = op;
    op.stop();
    drop(op);

    // Changed while no operator ran: a default-deny policy deleted. The next one
    // puts it back, and leaves the other claim alone.
    let nps: Api<NetworkPolicy> = Api::namespaced(client.clone(), names[0]);
    nps.delete("paved-default-deny", &DeleteParams::default())
        .await?;
    let op = Operator::start(cp, "restart-writes-3", &[])?;
    eventually("the deleted policy is back", T, || async {
        Ok(nps.get_opt("paved-default-deny").await?)
    })
    .await?;
    eventually("every claim reconciled", T, || async {
        Ok((op.counter("paved_reconciles", "serviceclaim")? >= 2.0).then_some(()))
    })
    .await?;
    assert!(op.counter("paved_apiserver_writes", "serviceclaim")? > 0.0);
    drop(op);
    let _cleanup = Operator::start(cp, "restart-writes-cleanup", &[])?;
    for n in names {
        db::fresh_service(&client, n).await?;
    }
    Ok(())
}

/// Restores a CRD as it was, even when the test fails half-way.
struct RestoreCrd<'a> {
    cp: &'a ControlPlane,
    original: Value,
}

impl Drop for RestoreCrd<'_> {
    fn drop(&mut self) {
        let (ok, out) = self
            .cp
            .kubectl_stdin(&["replace", "-f", "-"], &self.original.to_string())
            .unwrap_or((false, "kubectl did not run".into()));
        if !ok && !std::thread::panicking() {
            panic!("restoring the CRD: {out}");
        }
        // A CRD change makes the apiserver refresh discovery, and the tenancy policy
        // refuses ServiceClaims until it has.
        if let Err(e) = self.cp.await_tenancy_policy() {
            if !std::thread::panicking() {
                panic!("{e}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_claim_in_the_cluster_is_reported_and_does_not_stop_the_others() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let (bad, good) = ("e2e-malformed", "e2e-after-malformed");
    {
        let _cleanup = Operator::start(cp, "malformed-cleanup", &[])?;
        db::fresh_service(&client, good).await?;
        db::fresh_service(&client, bad).await?;
    }
    let claims: Api<ServiceClaim> = Api::all(client.clone());

    // A claim stored under a looser schema, as an older CRD might have allowed: its
    // database's storage is a word. The real schema comes back at once.
    let crd = "serviceclaims.paved.dev";
    let mut original: Value =
        serde_json::from_str(&cp.kubectl(&["get", "crd", crd, "-o", "json"])?)?;
    for field in [
        "resourceVersion",
        "managedFields",
        "generation",
        "uid",
        "creationTimestamp",
    ] {
        original["metadata"].as_object_mut().unwrap().remove(field);
    }
    original.as_object_mut().unwrap().remove("status");
    let mut loose = original.clone();
    for v in loose["spec"]["versions"].as_array_mut().unwrap() {
        v["schema"]["openAPIV3Schema"]["properties"]["spec"] =
            json!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true });
    }
    let (ok, out) = cp.kubectl_stdin(&["replace", "-f", "-"], &loose.to_string())?;
    assert!(ok, "loosening the CRD: {out}");
    let restore = RestoreCrd { cp, original };
    let mut malformed = serde_json::to_value(service(bad, "small")?)?;
    malformed["spec"]["databases"] =
        json!([{ "name": "main", "parameters": { "storageGB": "lots" } }]);
    let raw: Api<kube::api::DynamicObject> = Api::all_with(
        client.clone(),
        &kube::api::ApiResource::erase::<ServiceClaim>(&()),
    );
    // The looser schema takes a moment to serve.
    eventually("the malformed claim stored", T, || async {
        let obj = serde_json::from_value(malformed.clone())?;
        raw.create(&PostParams::default(), &obj).await?;
        Ok(Some(()))
    })
    .await?;
    drop(restore);

    // The operator starts with it in the cluster: other claims are served, and the bad
    // one says what is wrong with it.
    let _op = Operator::start(cp, "malformed", &[])?;
    let mut ok_claim = service(good, "small")?;
    ok_claim.spec.databases.clear();
    claims.create(&PostParams::default(), &ok_claim).await?;
    db::ready(&claims, good).await?;
    let reported = eventually("the malformed claim's condition", T, || async {
        let obj = raw.get(bad).await?;
        let conds: Vec<paved_api::Condition> = obj
            .data
            .pointer("/status/conditions")
            .and_then(|c| serde_json::from_value(c.clone()).ok())
            .unwrap_or_default();
        Ok(conditions::find(&conds, conditions::SYNCED)
            .filter(|c| c.status == "False" && c.reason == "InvalidObject")
            .map(|c| c.message.clone()))
    })
    .await?;
    assert!(
        reported.contains("spec.databases[0].parameters.storageGB") && reported.contains("lots"),
        "the condition names the field and the value: {reported}"
    );
    eventually("an InvalidObject Event", T, || async {
        let events = db::event_reasons_about(cp, "default", bad)?;
        Ok(events.contains("InvalidObject").then_some(()))
    })
    .await?;
    assert!(
        claims.get_opt(bad).await.is_err(),
        "a typed read of it fails, as the operator's would have"
    );

    raw.delete(bad, &DeleteParams::default()).await?;
    db::fresh_service(&client, good).await?;
    Ok(())
}

/// Every place a value could surface to someone without access to the Secret.
fn exposure(cp: &ControlPlane) -> Result<String> {
    let mut all = String::new();
    all.push_str(&cp.kubectl(&["get", "events", "-A", "-o", "json"])?);
    all.push_str(&cp.kubectl(&[
        "get",
        "serviceclaims,postgresqlinstances,temporalnamespaces,compositions",
        "-A",
        "-o",
        "json",
    ])?);
    all.push_str(&cp.kubectl(&["get", "externalsecrets", "-A", "-o", "json"])?);
    Ok(all)
}

async fn password(client: &Client, ns: &str, secret: &str) -> Result<String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let s = eventually(&format!("Secret {ns}/{secret}"), T, || async {
        Ok(secrets.get_opt(secret).await?)
    })
    .await?;
    let data = s.data.context("the Secret has data")?;
    let p = data.get("password").context("a password key")?;
    Ok(String::from_utf8(p.0.clone())?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_value_surfaces_in_logs_events_or_status() -> Result<()> {
    let base = control_plane();
    let client = base.client().await?;
    let name = "e2e-no-leaks";
    {
        let _cleanup = Operator::start(base, "no-leaks-cleanup", &[])?;
        db::fresh_service(&client, name).await?;
    }
    // As talkative as the operator gets.
    let mut cp = base.clone();
    cp.env.insert("RUST_LOG".into(), "debug".into());
    let mut op = Operator::start(&cp, "no-leaks", &["--resync-seconds", "5"])?;
    let mut secrets = vec![];
    let admin: Api<Secret> = Api::namespaced(client.clone(), "paved-system");
    let dsn = admin
        .get("paved-local-postgres-admin")
        .await?
        .data
        .context("admin Secret data")?["dsn"]
        .0
        .clone();
    let dsn = String::from_utf8(dsn)?;
    let admin_password = url_password(&dsn).context("the admin DSN carries a password")?;
    secrets.push(("the provider's admin DSN".to_string(), dsn.clone()));
    secrets.push(("the provider's admin password".to_string(), admin_password));

    let claims: Api<ServiceClaim> = Api::all(client.clone());
    claims
        .create(&PostParams::default(), &service(name, "small")?)
        .await?;
    all_ready(&client, name, &["main", "audit", "reports"]).await?;
    let mut seen = exposure(&cp)?;
    for db in ["main", "audit", "reports"] {
        let p = password(&client, name, &format!("{db}-connection")).await?;
        secrets.push((format!("{db}'s password"), p));
    }

    // A lost connection Secret: a new password is made and delivered.
    let conn: Api<Secret> = Api::namespaced(client.clone(), name);
    let old = conn.get("main-connection").await?.metadata.uid;
    conn.delete("main-connection", &DeleteParams::default())
        .await?;
    eventually("main-connection recreated", T, || async {
        Ok(conn
            .get_opt("main-connection")
            .await?
            .filter(|s| s.metadata.uid != old))
    })
    .await?;
    all_ready(&client, name, &["main"]).await?;
    secrets.push((
        "main's new password".into(),
        password(&client, name, "main-connection").await?,
    ));
    seen.push_str(&exposure(&cp)?);

    // An update, then the deletion.
    resize(&claims, name, "medium").await?;
    all_ready(&client, name, &["main"]).await?;
    seen.push_str(&exposure(&cp)?);
    claims.delete(name, &DeleteParams::default()).await?;
    eventually("the claim gone", T, || async {
        Ok(claims.get_opt(name).await?.is_none().then_some(()))
    })
    .await?;
    seen.push_str(&exposure(&cp)?);
    op.stop();
    let log = op.logs();

    // The captures are real: they hold the lifecycle they were taken from.
    for expected in ["Ready", "main-connection", name] {
        assert!(seen.contains(expected), "the capture holds {expected}");
    }
    assert!(
        log.contains(name) && log.lines().count() > 50,
        "a debug log of the lifecycle was captured"
    );
    for (what, value) in &secrets {
        assert!(value.len() >= 8, "{what} is a real credential");
        assert!(
            !log.contains(value.as_str()),
            "{what} appears in the operator's log"
        );
        assert!(
            !seen.contains(value.as_str()),
            "{what} appears in an Event or a status"
        );
    }
    Ok(())
}

/// The password of a `postgres://user:password@host/...` URL, or of a key=value DSN.
fn url_password(dsn: &str) -> Option<String> {
    if let Some(rest) = dsn.split("://").nth(1) {
        let userinfo = rest.split('@').next()?;
        return userinfo.split_once(':').map(|(_, p)| p.to_string());
    }
    dsn.split_whitespace()
        .find_map(|kv| kv.strip_prefix("password="))
        .map(|p| p.trim_matches('\'').to_string())
}
