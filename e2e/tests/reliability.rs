//! Secrecy across a whole lifecycle, on the local provider: no credential value in
//! the operator's log, any Event or any Paved object's status from create to delete.

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    api::{DeleteParams, PostParams},
    Api, Client,
};
use paved_api::{PostgreSQLInstance, ServiceClaim};
use paved_e2e::{control_plane, db, eventually, ControlPlane, Operator};
use serde_json::json;

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
    claims
        .replace(name, &PostParams::default(), &{
            let mut c = claims.get(name).await?;
            c.spec = service(name, "medium")?.spec;
            c
        })
        .await?;
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
