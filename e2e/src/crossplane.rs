//! A Crossplane platform as a running one holds it, for `paved migrate`'s tests: the
//! real Crossplane CRDs and provider-aws RDS CRDs (../shared/upstream/crossplane), the
//! real provider-upjet-azure and provider-upjet-gcp database CRDs
//! (e2e/crossplane/upstream), the CRDs Crossplane generates from the XRDs
//! (e2e/crossplane/generated-crds.yaml), and claims, composites and managed resources
//! written with Crossplane's field manager, finalizers and status. No Crossplane runs:
//! what it would have written is written here.

use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::{repo_root, ControlPlane};

/// Every kind of this platform: claims and composites, then managed resources (namespaced
/// ones first, so one `purge` pass takes both).
const KINDS: [&str; 2] = [
    "postgresqlinstances.platform.example.com,databases.db.example.org,instances.rds.aws.m.upbound.io",
    "xpostgresqlinstances.platform.example.com,instances.rds.aws.upbound.io,\
     flexibleservers.dbforpostgresql.azure.upbound.io,\
     flexibleserverdatabases.dbforpostgresql.azure.upbound.io,\
     databaseinstances.sql.gcp.upbound.io,databases.sql.gcp.upbound.io",
];

/// Installs the CRDs and the two XRDs (a v1 one with a claim, the seed's shape, and a v2
/// namespaced one), and waits until they are served.
pub fn install(cp: &ControlPlane) -> Result<()> {
    let shared = repo_root().join("../shared/upstream/crossplane");
    let vendored = repo_root().join("e2e/crossplane/upstream");
    let files = [
        shared.join("apiextensions.crossplane.io_compositeresourcedefinitions.yaml"),
        shared.join("apiextensions.crossplane.io_compositions.yaml"),
        shared.join("apiextensions.crossplane.io_compositionrevisions.yaml"),
        shared.join("rds.aws.upbound.io_instances.yaml"),
        shared.join("rds.aws.m.upbound.io_instances.yaml"),
        vendored.join("dbforpostgresql.azure.upbound.io_flexibleservers.yaml"),
        vendored.join("dbforpostgresql.azure.upbound.io_flexibleserverdatabases.yaml"),
        vendored.join("sql.gcp.upbound.io_databaseinstances.yaml"),
        vendored.join("sql.gcp.upbound.io_databases.yaml"),
        repo_root().join("e2e/crossplane/generated-crds.yaml"),
    ];
    for f in &files {
        cp.kubectl(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            f.to_str().context("path")?,
        ])?;
    }
    for crd in [
        "compositeresourcedefinitions.apiextensions.crossplane.io",
        "compositions.apiextensions.crossplane.io",
        "instances.rds.aws.upbound.io",
        "instances.rds.aws.m.upbound.io",
        "flexibleservers.dbforpostgresql.azure.upbound.io",
        "flexibleserverdatabases.dbforpostgresql.azure.upbound.io",
        "databaseinstances.sql.gcp.upbound.io",
        "databases.sql.gcp.upbound.io",
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
    Ok(())
}

/// A Crossplane Composition `name` of composites `api_version`/`kind`.
pub fn composition(cp: &ControlPlane, name: &str, api_version: &str, kind: &str) -> Result<()> {
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
    )
    .map(drop)
}

/// Server-side applies `v` as Crossplane's field manager; returns the object.
pub fn apply(cp: &ControlPlane, v: &Value) -> Result<Value> {
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
pub fn status(cp: &ControlPlane, resource: &str, ns: Option<&str>, s: Value) -> Result<()> {
    let mut args = vec!["patch", resource, "--subresource=status", "--type=merge"];
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    let patch = json!({ "status": s }).to_string();
    args.extend(["-p", &patch]);
    cp.kubectl(&args)?;
    Ok(())
}

/// Crossplane's Ready and Synced conditions, with `extra` fields beside them.
pub fn ready_status(extra: Value) -> Value {
    let mut s = json!({ "conditions": [
        { "type": "Ready", "status": "True", "reason": "Available", "lastTransitionTime": "2026-01-01T00:00:00Z" },
        { "type": "Synced", "status": "True", "reason": "ReconcileSuccess", "lastTransitionTime": "2026-01-01T00:00:00Z" },
    ] });
    if let (Some(s), Some(e)) = (s.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    s
}

/// `kind.group` of an apiVersion and kind, as kubectl names a resource.
fn resource(api_version: &str, kind: &str) -> String {
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    format!("{}s.{group}", kind.to_lowercase())
}

/// A managed resource as its provider holds it: `mr` (apiVersion, kind, metadata.name,
/// spec) with the composite's label, the managed-resource finalizer, and, once the
/// provider has seen it, `external` as its external name and `at_provider` in a Ready
/// status.
pub fn managed(
    cp: &ControlPlane,
    composite: &str,
    mut mr: Value,
    external: Option<&str>,
    at_provider: Value,
) -> Result<()> {
    mr["metadata"]["finalizers"] = json!(["finalizer.managedresource.crossplane.io"]);
    mr["metadata"]["labels"]["crossplane.io/composite"] = json!(composite);
    if let Some(e) = external {
        mr["metadata"]["annotations"]["crossplane.io/external-name"] = json!(e);
    }
    let made = apply(cp, &mr)?;
    if external.is_some() {
        let r = format!(
            "{}/{}",
            resource(
                made["apiVersion"].as_str().context("apiVersion")?,
                made["kind"].as_str().context("kind")?
            ),
            made["metadata"]["name"].as_str().context("name")?
        );
        let ns = made["metadata"]["namespace"].as_str();
        status(
            cp,
            &r,
            ns,
            ready_status(json!({ "atProvider": at_provider })),
        )?;
    }
    Ok(())
}

/// A v1 claim of the seed's shape in `ns`, its cluster-scoped composite
/// `<name>-x7k2p` (composed of `refs`: apiVersion, kind, name), and the connection
/// Secret `<name>-conn` Crossplane wrote for the claim. Returns the composite's name.
pub fn v1_claim(
    cp: &ControlPlane,
    ns: &str,
    name: &str,
    composition: &str,
    parameters: Value,
    refs: &[(&str, &str, &str)],
) -> Result<String> {
    let xr = format!("{name}-x7k2p");
    let claim = apply(
        cp,
        &json!({
            "apiVersion": "platform.example.com/v1alpha1", "kind": "PostgreSQLInstance",
            "metadata": { "name": name, "namespace": ns,
                          "finalizers": ["finalizer.apiextensions.crossplane.io"] },
            "spec": {
                "parameters": parameters,
                "compositionRef": { "name": composition },
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
    let refs: Vec<Value> = refs
        .iter()
        .map(|(a, k, n)| json!({ "apiVersion": a, "kind": k, "name": n }))
        .collect();
    apply(
        cp,
        &json!({
            "apiVersion": "platform.example.com/v1alpha1", "kind": "XPostgreSQLInstance",
            "metadata": { "name": xr, "finalizers": ["composite.apiextensions.crossplane.io"],
                          "labels": { "crossplane.io/claim-name": name, "crossplane.io/claim-namespace": ns } },
            "spec": {
                "parameters": parameters,
                "compositionRef": { "name": composition },
                "claimRef": { "apiVersion": "platform.example.com/v1alpha1", "kind": "PostgreSQLInstance", "name": name, "namespace": ns },
                "resourceRefs": refs,
            },
        }),
    )?;
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
    Ok(xr)
}

/// Runs `paved migrate ARGS` against the plane; its standard output.
pub fn migrate(cp: &ControlPlane, args: &[&str]) -> Result<String> {
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

/// Removes every object of the platform, finalizers first (no Crossplane runs here to
/// take them off).
pub fn purge(cp: &ControlPlane) -> Result<()> {
    for kinds in KINDS {
        let names = cp.kubectl(&["get", kinds, "-A", "-o", "jsonpath={range .items[*]}{.kind}.{.apiVersion}/{.metadata.name} {.metadata.namespace}{\"\\n\"}{end}"])?;
        for line in names.lines().filter(|l| !l.trim().is_empty()) {
            let (what, ns) = line.split_once(' ').unwrap_or((line, ""));
            let (kind_version, name) = what.rsplit_once('/').context("kind/name")?;
            let (kind, api_version) = kind_version.split_once('.').context("kind.apiVersion")?;
            let r = format!("{}/{name}", resource(api_version, kind));
            let mut args = vec![
                "patch",
                &r,
                "--type=merge",
                "-p",
                r#"{"metadata":{"finalizers":null}}"#,
            ];
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

/// Whether `resource` (kind.group/name) exists.
pub fn exists(cp: &ControlPlane, resource: &str, ns: Option<&str>) -> Result<bool> {
    let mut args = vec!["get", resource, "--ignore-not-found", "-o", "name"];
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    Ok(!cp.kubectl(&args)?.trim().is_empty())
}

/// Waits until none of `resources` (kind.group/name, namespace) is left: deleted without
/// cascading, each loses its orphan finalizer to the garbage collector a moment later.
pub async fn all_gone(cp: &ControlPlane, resources: &[(&str, Option<&str>)]) -> Result<()> {
    for (r, ns) in resources {
        crate::eventually(&format!("{r} gone"), crate::db::T, || async {
            Ok((!exists(cp, r, *ns)?).then_some(()))
        })
        .await?;
    }
    Ok(())
}

/// Waits until the connection Secret `name` that Crossplane wrote for a claim in `ns` is
/// gone (a Secret of that name Paved delivers may already stand in its place).
pub async fn connection_secret_gone(client: &kube::Client, ns: &str, name: &str) -> Result<()> {
    use kube::ResourceExt;
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), ns);
    crate::eventually(
        &format!("Crossplane's connection Secret {ns}/{name} gone"),
        crate::db::T,
        || async {
            Ok(secrets
                .get_opt(name)
                .await?
                .filter(|s| {
                    s.owner_references().iter().any(|o| {
                        o.kind == "PostgreSQLInstance" && o.api_version.starts_with("platform.")
                    })
                })
                .is_none()
                .then_some(()))
        },
    )
    .await
}

/// The cut-over of one seed-shaped v1 claim `ledger` in `ns` (composite `ledger-x7k2p`)
/// whose database is `external` with database `orders` inside it: `paved migrate --live
/// --apply --composition MAPPING` adopts it, the Paved claim is Ready naming both, its
/// Secret names the database, and no Crossplane object is left (`managed`: the managed
/// resources, kind.group/name). Returns the Paved claim.
pub async fn cut_over_ledger(
    cp: &ControlPlane,
    ns: &str,
    mapping: &str,
    external: &str,
    managed: &[&str],
) -> Result<paved_api::PostgreSQLInstance> {
    let client = cp.client().await?;
    let done = migrate(
        cp,
        &[
            "--live",
            "--apply",
            "--timeout-seconds",
            "120",
            "--composition",
            mapping,
        ],
    )?;
    anyhow::ensure!(done.contains(&format!("adopted: {external}")), "{done}");
    let pgs: kube::Api<paved_api::PostgreSQLInstance> = kube::Api::namespaced(client.clone(), ns);
    let p = crate::db::ready(&pgs, "ledger").await?;
    let existing = p.spec.existing.as_ref().context("adopting")?;
    anyhow::ensure!(existing.external_name == external, "{existing:?}");
    anyhow::ensure!(
        existing.database_name.as_deref() == Some("orders"),
        "{existing:?}"
    );
    let es = crate::db::external_secret(&client, ns, "ledger-conn").await?;
    anyhow::ensure!(
        es.data["spec"]["target"]["template"]["data"]["database"] == "orders",
        "{:?}",
        es.data
    );
    let mut left = vec![
        ("postgresqlinstances.platform.example.com/ledger", Some(ns)),
        (
            "xpostgresqlinstances.platform.example.com/ledger-x7k2p",
            None,
        ),
    ];
    left.extend(managed.iter().map(|m| (*m, None)));
    all_gone(cp, &left).await?;
    connection_secret_gone(&client, ns, "ledger-conn").await?;
    Ok(p)
}
