//! `paved migrate` of a small Crossplane platform, as a running platform would hold it
//! (the real Crossplane and provider-aws CRDs from ../shared/upstream/crossplane, the
//! CRDs Crossplane generates from its XRDs, claims, composites and RDS Instances with
//! their external names, finalizers and status, and the real databases behind them in
//! moto): every database ends Ready under Paved with the same identifier and creation
//! time, no Crossplane object is left, nothing is deleted, and what cannot move is
//! reported and left as it was.

use std::process::Command;

use anyhow::{bail, Context, Result};
use kube::{Api, ResourceExt};
use paved_api::PostgreSQLInstance;
use paved_e2e::{
    control_plane,
    db::{self, aws_composition, clear, ready, T},
    eventually, repo_root, ControlPlane, Operator,
};
use serde_json::{json, Value};

fn instance(cp: &ControlPlane, id: &str) -> Result<Option<Value>> {
    db::rds_instance(cp, id)
}

/// What makes an instance the same database.
fn identity(i: &Value) -> Value {
    json!([
        i["DbiResourceId"],
        i["InstanceCreateTime"],
        i["DBInstanceArn"]
    ])
}

fn apply(cp: &ControlPlane, v: &Value) -> Result<Value> {
    let (ok, out) = cp.kubectl_stdin(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=crossplane",
            "-o",
            "json",
            "-f",
            "-",
        ],
        &v.to_string(),
    )?;
    if !ok {
        bail!("{out}");
    }
    // The object, before any warning kubectl printed after it.
    let start = out.find('{').context("no object in kubectl's output")?;
    Ok(serde_json::Deserializer::from_str(&out[start..])
        .into_iter::<Value>()
        .next()
        .context("no object")??)
}

/// Sets an object's status, as its controller would have.
fn status(cp: &ControlPlane, resource: &str, ns: Option<&str>, s: Value) -> Result<()> {
    let mut args = vec!["patch", resource, "--subresource=status", "--type=merge"];
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    let patch = json!({ "status": s }).to_string();
    args.extend(["-p", &patch]);
    cp.kubectl(&args)?;
    Ok(())
}

fn ready_status(extra: Value) -> Value {
    let mut s = json!({ "conditions": [
        { "type": "Ready", "status": "True", "reason": "Available", "lastTransitionTime": "2026-01-01T00:00:00Z" },
        { "type": "Synced", "status": "True", "reason": "ReconcileSuccess", "lastTransitionTime": "2026-01-01T00:00:00Z" },
    ] });
    if let (Some(s), Some(e)) = (s.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    s
}

/// A v1 claim (the seed's shape), its cluster-scoped composite and RDS Instance, and
/// the connection Secret Crossplane wrote for the claim.
fn v1_claim(cp: &ControlPlane, ns: &str, name: &str, external: Option<&str>) -> Result<()> {
    let xr = format!("{name}-x7k2p");
    let mr = format!("{xr}-db");
    let claim = apply(
        cp,
        &json!({
            "apiVersion": "platform.example.com/v1alpha1", "kind": "PostgreSQLInstance",
            "metadata": { "name": name, "namespace": ns,
                          "finalizers": ["finalizer.apiextensions.crossplane.io"] },
            "spec": {
                "parameters": { "storageGB": 200, "instanceClass": "db.m5.large", "multiAZ": false },
                "compositionRef": { "name": "xpostgres-aws" },
                "writeConnectionSecretToRef": { "name": format!("{name}-conn") },
                "resourceRef": { "apiVersion": "platform.example.com/v1alpha1", "kind": "XPostgreSQLInstance", "name": xr },
            },
        }),
    )?;
    status(
        cp,
        &format!("postgresqlinstances.platform.example.com/{name}"),
        Some(ns),
        ready_status(json!({})),
    )?;
    apply(
        cp,
        &json!({
            "apiVersion": "platform.example.com/v1alpha1", "kind": "XPostgreSQLInstance",
            "metadata": { "name": xr, "finalizers": ["composite.apiextensions.crossplane.io"],
                          "labels": { "crossplane.io/claim-name": name, "crossplane.io/claim-namespace": ns } },
            "spec": {
                "parameters": { "storageGB": 200, "instanceClass": "db.m5.large", "multiAZ": false },
                "compositionRef": { "name": "xpostgres-aws" },
                "claimRef": { "apiVersion": "platform.example.com/v1alpha1", "kind": "PostgreSQLInstance", "name": name, "namespace": ns },
                "resourceRefs": [ { "apiVersion": "rds.aws.upbound.io/v1beta3", "kind": "Instance", "name": mr } ],
            },
        }),
    )?;
    let mut annotations = json!({});
    if let Some(e) = external {
        annotations["crossplane.io/external-name"] = json!(e);
    }
    apply(
        cp,
        &json!({
            "apiVersion": "rds.aws.upbound.io/v1beta3", "kind": "Instance",
            "metadata": { "name": mr, "annotations": annotations,
                          "finalizers": ["finalizer.managedresource.crossplane.io"],
                          "labels": { "crossplane.io/composite": xr } },
            "spec": {
                "deletionPolicy": "Delete",
                "forProvider": { "region": "us-east-1", "instanceClass": "db.m5.large", "engine": "postgres",
                                 "allocatedStorage": 200, "storageEncrypted": true, "dbName": "orders" },
            },
        }),
    )?;
    if let Some(e) = external {
        status(
            cp,
            &format!("instances.rds.aws.upbound.io/{mr}"),
            None,
            ready_status(
                json!({ "atProvider": { "identifier": e, "id": "db-E2E", "address": format!("{e}.rds.local") } }),
            ),
        )?;
    }
    let uid = claim["metadata"]["uid"].as_str().context("uid")?;
    apply(
        cp,
        &json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": format!("{name}-conn"), "namespace": ns,
                          "ownerReferences": [ { "apiVersion": "platform.example.com/v1alpha1", "kind": "PostgreSQLInstance",
                                                 "name": name, "uid": uid, "controller": true } ] },
            "stringData": { "username": "legacy", "password": "legacy-password-1" },
        }),
    )?;
    Ok(())
}

/// A v2 namespaced composite and its namespaced RDS Instance.
fn v2_composite(cp: &ControlPlane, ns: &str, name: &str, external: &str) -> Result<()> {
    let mr = format!("{name}-db");
    apply(
        cp,
        &json!({
            "apiVersion": "db.example.org/v1alpha1", "kind": "Database",
            "metadata": { "name": name, "namespace": ns, "finalizers": ["composite.apiextensions.crossplane.io"] },
            "spec": {
                "parameters": { "storageGB": 200 },
                "crossplane": {
                    "compositionRef": { "name": "db-aws" },
                    "resourceRefs": [ { "apiVersion": "rds.aws.m.upbound.io/v1beta1", "kind": "Instance", "name": mr } ],
                },
            },
        }),
    )?;
    apply(
        cp,
        &json!({
            "apiVersion": "rds.aws.m.upbound.io/v1beta1", "kind": "Instance",
            "metadata": { "name": mr, "namespace": ns,
                          "annotations": { "crossplane.io/external-name": external },
                          "finalizers": ["finalizer.managedresource.crossplane.io"],
                          "labels": { "crossplane.io/composite": name } },
            "spec": { "forProvider": { "region": "us-east-1", "instanceClass": "db.m5.large", "engine": "postgres" } },
        }),
    )?;
    status(
        cp,
        &format!("instances.rds.aws.m.upbound.io/{mr}"),
        Some(ns),
        ready_status(json!({ "atProvider": { "identifier": external, "id": "db-E2E" } })),
    )?;
    Ok(())
}

fn paved(cp: &ControlPlane, args: &[&str]) -> Result<String> {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("target"));
    let out = Command::new(target.join("debug").join("paved"))
        .arg("migrate")
        .args(args)
        .env("KUBECONFIG", cp.kubeconfig())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        bail!(
            "paved migrate {args:?} failed: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(text)
}

/// Removes every Crossplane object of the e2e platform, finalizers first (no
/// Crossplane runs here to take them off).
fn purge(cp: &ControlPlane) -> Result<()> {
    for kinds in [
        "postgresqlinstances.platform.example.com,databases.db.example.org,instances.rds.aws.m.upbound.io",
        "xpostgresqlinstances.platform.example.com,instances.rds.aws.upbound.io",
    ] {
        let names = cp.kubectl(&["get", kinds, "-A", "-o", "jsonpath={range .items[*]}{.kind}.{.apiVersion}/{.metadata.name} {.metadata.namespace}{\"\\n\"}{end}"])?;
        for line in names.lines().filter(|l| !l.trim().is_empty()) {
            let (what, ns) = line.split_once(' ').unwrap_or((line, ""));
            let (kind_version, name) = what.rsplit_once('/').context("kind/name")?;
            let (kind, api_version) = kind_version.split_once('.').context("kind.apiVersion")?;
            let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
            let r = format!("{}.{group}/{name}", kind.to_lowercase());
            let mut args = vec!["patch", &r, "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#];
            if !ns.is_empty() {
                args.extend(["-n", ns]);
            }
            cp.kubectl(&args)?;
            let mut args = vec!["delete", &r, "--ignore-not-found", "--wait=false"];
            if !ns.is_empty() {
                args.extend(["-n", ns]);
            }
            cp.kubectl(&args)?;
        }
    }
    Ok(())
}

fn exists(cp: &ControlPlane, resource: &str, ns: Option<&str>) -> Result<bool> {
    let mut args = vec!["get", resource, "--ignore-not-found", "-o", "name"];
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    Ok(!cp.kubectl(&args)?.trim().is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crossplane_platform_moves_under_paved_without_recreating_a_database() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let (orders, billing) = ("e2e-migrate-orders", "e2e-migrate-billing");
    // The real Crossplane and provider-aws CRDs, and the ones Crossplane generates.
    let upstream = repo_root().join("../shared/upstream/crossplane");
    for f in [
        "apiextensions.crossplane.io_compositeresourcedefinitions.yaml",
        "apiextensions.crossplane.io_compositions.yaml",
        "apiextensions.crossplane.io_compositionrevisions.yaml",
        "rds.aws.upbound.io_instances.yaml",
        "rds.aws.m.upbound.io_instances.yaml",
    ] {
        cp.kubectl(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            upstream.join(f).to_str().unwrap(),
        ])?;
    }
    let generated = repo_root().join("e2e/crossplane/generated-crds.yaml");
    cp.kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        generated.to_str().unwrap(),
    ])?;
    for crd in [
        "compositeresourcedefinitions.apiextensions.crossplane.io",
        "compositions.apiextensions.crossplane.io",
        "instances.rds.aws.upbound.io",
        "instances.rds.aws.m.upbound.io",
        "postgresqlinstances.platform.example.com",
        "xpostgresqlinstances.platform.example.com",
        "databases.db.example.org",
    ] {
        cp.kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            &format!("crd/{crd}"),
        ])?;
    }

    // Paved's side: the Composition that adopts (rotating passwords nobody manages),
    // and the namespaces, listed by a Team.
    let seed = db::moto(cp, "seed.py", &[])?;
    aws_composition(cp, &seed, "postgresql-aws-migrate", "2s")?;
    db::existing_password(cp, "postgresql-aws-migrate", "Rotate")?;
    for ns in [orders, billing] {
        db::namespace(cp, ns, "aws", "internal")?;
    }
    // An earlier run that failed half-way may have left Crossplane's objects.
    purge(cp)?;
    {
        let _op = Operator::start(cp, "migrate-cleanup", &["--cloud-list-ttl-seconds", "1"])?;
        for ns in [orders, billing] {
            clear(&client, cp, ns).await?;
        }
    }

    // Crossplane's side: an XRD of each generation, their Compositions, and what a
    // running platform holds, over real databases in moto.
    apply(
        cp,
        &json!({
            "apiVersion": "apiextensions.crossplane.io/v1", "kind": "CompositeResourceDefinition",
            "metadata": { "name": "xpostgresqlinstances.platform.example.com" },
            "spec": {
                "group": "platform.example.com",
                "names": { "kind": "XPostgreSQLInstance", "plural": "xpostgresqlinstances" },
                "claimNames": { "kind": "PostgreSQLInstance", "plural": "postgresqlinstances" },
                "versions": [ { "name": "v1alpha1", "served": true, "referenceable": true,
                                "schema": { "openAPIV3Schema": { "type": "object" } } } ],
            },
        }),
    )?;
    apply(
        cp,
        &json!({
            "apiVersion": "apiextensions.crossplane.io/v2", "kind": "CompositeResourceDefinition",
            "metadata": { "name": "databases.db.example.org" },
            "spec": {
                "group": "db.example.org", "scope": "Namespaced",
                "names": { "kind": "Database", "plural": "databases" },
                "versions": [ { "name": "v1alpha1", "served": true, "referenceable": true,
                                "schema": { "openAPIV3Schema": { "type": "object" } } } ],
            },
        }),
    )?;
    for (name, xr) in [
        (
            "xpostgres-aws",
            "platform.example.com/v1alpha1 XPostgreSQLInstance",
        ),
        ("db-aws", "db.example.org/v1alpha1 Database"),
    ] {
        let (api_version, kind) = xr.split_once(' ').unwrap();
        apply(
            cp,
            &json!({
                "apiVersion": "apiextensions.crossplane.io/v1", "kind": "Composition",
                "metadata": { "name": name },
                "spec": {
                    "compositeTypeRef": { "apiVersion": api_version, "kind": kind },
                    "mode": "Pipeline",
                    "pipeline": [ { "step": "patch-and-transform", "functionRef": { "name": "function-patch-and-transform" } } ],
                },
            }),
        )?;
    }
    let run = std::process::id();
    let (main_id, ledger_id, theirs_id) = (
        format!("orders-main-{run}"),
        format!("billing-ledger-{run}"),
        format!("orders-theirs-{run}"),
    );
    let key = seed["kms_key_arn"].as_str().context("key")?;
    for id in [&main_id, &ledger_id] {
        db::moto(
            cp,
            "query.py",
            &["create-legacy-encrypted", id, key, "db.m5.large", "200"],
        )?;
    }
    // Made by another Paved claim already: never taken, and rolled back to Crossplane.
    db::moto(
        cp,
        "query.py",
        &["create", &theirs_id, "another-claims-uid", key],
    )?;
    v1_claim(cp, orders, "main", Some(&main_id))?;
    v1_claim(cp, orders, "theirs", Some(&theirs_id))?;
    // Never created (no external name): reported, left alone.
    v1_claim(cp, orders, "pending", None)?;
    v2_composite(cp, billing, "ledger", &ledger_id)?;
    let before: Vec<Value> = [&main_id, &ledger_id, &theirs_id]
        .iter()
        .map(|id| Ok(identity(&instance(cp, id)?.context("made")?)))
        .collect::<Result<_>>()?;

    // The v2 composite's Instance is in the team's namespace: checked by the platform.
    let maps = [
        "--allow-namespaced",
        "--composition",
        "xpostgres-aws=postgresql-aws-migrate",
        "--composition",
        "db-aws=postgresql-aws-migrate",
    ];
    // What a reviewer reads, from a directory of exports: nothing changes.
    let dir = std::env::temp_dir().join(format!("paved-migrate-{run}"));
    std::fs::create_dir_all(&dir)?;
    for (file, what) in [
        (
            "xrds.yaml",
            "compositeresourcedefinitions.apiextensions.crossplane.io",
        ),
        ("claims.yaml", "postgresqlinstances.platform.example.com"),
        (
            "composites.yaml",
            "xpostgresqlinstances.platform.example.com,databases.db.example.org",
        ),
        (
            "instances.yaml",
            "instances.rds.aws.upbound.io,instances.rds.aws.m.upbound.io",
        ),
        ("teams.yaml", "teams.paved.dev"),
    ] {
        std::fs::write(
            dir.join(file),
            cp.kubectl(&["get", what, "-A", "-o", "yaml"])?,
        )?;
    }
    let mut args = vec!["--dir", dir.to_str().unwrap(), "--dry-run"];
    args.extend(maps);
    let review = paved(cp, &args)?;
    for want in [
        format!("PostgreSQLInstance {orders}/main adopting RDS instance {main_id}"),
        format!("PostgreSQLInstance {billing}/ledger adopting RDS instance {ledger_id}"),
        "no crossplane.io/external-name".into(),
        "connection Secret main-conn".into(),
        "kind: PostgreSQLInstance".into(),
    ] {
        assert!(review.contains(&want), "missing {want:?} in\n{review}");
    }
    assert!(exists(
        cp,
        "instances.rds.aws.upbound.io/main-x7k2p-db",
        None
    )?);
    let paved_claims: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), orders);
    assert!(
        paved_claims.get_opt("main").await?.is_none(),
        "a dry run changes nothing"
    );

    // The cut-over, with the operator running.
    let op = Operator::start(cp, "migrate", &["--cloud-list-ttl-seconds", "1"])?;
    let mut args = vec!["--live", "--apply", "--timeout-seconds", "120"];
    args.extend(maps);
    let done = paved(cp, &args)?;
    assert!(done.contains(&format!("adopted: {main_id}")), "{done}");
    assert!(done.contains(&format!("adopted: {ledger_id}")), "{done}");
    assert!(
        done.contains("refused: PostgreSQLInstance e2e-migrate-orders/theirs: OwnedByOther"),
        "{done}"
    );

    // Every database adopted is Ready under Paved, the same database as before.
    let billing_claims: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), billing);
    for (api, name, id, was) in [
        (&paved_claims, "main", &main_id, &before[0]),
        (&billing_claims, "ledger", &ledger_id, &before[1]),
    ] {
        let p = ready(api, name).await?;
        let i = instance(cp, id)?.context("never deleted")?;
        assert_eq!(&identity(&i), was, "{id} is the same database");
        let tags: Vec<(&str, &str)> = i["TagList"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["Key"].as_str().unwrap(), t["Value"].as_str().unwrap()))
            .collect();
        assert!(
            tags.contains(&("paved.dev/claim-uid", p.uid().unwrap().as_str())),
            "{tags:?}"
        );
        assert_eq!(p.spec.existing.as_ref().unwrap().external_name, *id);
    }
    // The seed's shape came over as it was: parameters and the Secret's name.
    let main = paved_claims.get("main").await?;
    assert_eq!(main.spec.parameters.storage_gb, Some(200));
    assert_eq!(
        main.spec.parameters.instance_class, None,
        "db.m5.large is not a class the Paved Composition allows"
    );
    assert_eq!(
        main.spec
            .write_connection_secret_to_ref
            .as_ref()
            .unwrap()
            .name,
        "main-conn"
    );
    // No Crossplane object of a moved database is left; Crossplane's Secret went
    // with its claim.
    for (r, ns) in [
        (
            "postgresqlinstances.platform.example.com/main",
            Some(orders),
        ),
        ("xpostgresqlinstances.platform.example.com/main-x7k2p", None),
        ("instances.rds.aws.upbound.io/main-x7k2p-db", None),
        ("databases.db.example.org/ledger", Some(billing)),
        ("instances.rds.aws.m.upbound.io/ledger-db", Some(billing)),
    ] {
        // Deleted without cascading: the garbage collector takes its orphan finalizer
        // off a moment later.
        eventually(&format!("{r} gone"), T, || async {
            Ok((!exists(cp, r, ns)?).then_some(()))
        })
        .await?;
    }
    eventually("Crossplane's connection Secret gone", T, || async {
        let s: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), orders);
        Ok(s.get_opt("main-conn")
            .await?
            .filter(|s| {
                s.owner_references().iter().any(|o| {
                    o.kind == "PostgreSQLInstance" && o.api_version.starts_with("platform.")
                })
            })
            .is_none()
            .then_some(()))
    })
    .await?;
    // Refused before adopting: back with Crossplane, as it was.
    let theirs_mr: Value = serde_json::from_str(&cp.kubectl(&[
        "get",
        "instances.rds.aws.upbound.io/theirs-x7k2p-db",
        "-o",
        "json",
    ])?)?;
    assert!(
        theirs_mr["spec"]
            .get("managementPolicies")
            .is_none_or(|p| p != &json!(["Observe"])),
        "{theirs_mr}"
    );
    assert_eq!(theirs_mr["spec"]["deletionPolicy"], "Delete");
    let theirs_claim: Value = serde_json::from_str(&cp.kubectl(&[
        "get",
        "postgresqlinstances.platform.example.com/theirs",
        "-n",
        orders,
        "-o",
        "json",
    ])?)?;
    assert!(
        theirs_claim["metadata"]["annotations"]
            .get("crossplane.io/paused")
            .is_none(),
        "{theirs_claim}"
    );
    assert!(
        paved_claims.get_opt("theirs").await?.is_none() || {
            // Its deletion may still be finishing.
            eventually("theirs gone", T, || async {
                Ok(paved_claims
                    .get_opt("theirs")
                    .await?
                    .is_none()
                    .then_some(()))
            })
            .await?;
            true
        }
    );
    // Never created: untouched, still Crossplane's, not paused.
    let pending: Value = serde_json::from_str(&cp.kubectl(&[
        "get",
        "postgresqlinstances.platform.example.com/pending",
        "-n",
        orders,
        "-o",
        "json",
    ])?)?;
    assert!(pending["metadata"]["annotations"]
        .get("crossplane.io/paused")
        .is_none());
    // Nothing was deleted.
    for (id, was) in [
        (&main_id, &before[0]),
        (&ledger_id, &before[1]),
        (&theirs_id, &before[2]),
    ] {
        assert_eq!(&identity(&instance(cp, id)?.context("never deleted")?), was);
    }

    // Clean up what this run made in the plane (moto keeps state; names are per run).
    for (api, name) in [(&paved_claims, "main"), (&billing_claims, "ledger")] {
        api.delete(name, &Default::default()).await?;
    }
    for ns in [orders, billing] {
        clear(&client, cp, ns).await?;
    }
    purge(cp)?;
    let _ = std::fs::remove_dir_all(&dir);
    drop(op);
    Ok(())
}
