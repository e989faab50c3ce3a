//! `paved migrate` of a small Crossplane platform, as a running platform would hold it
//! (the real Crossplane and provider-aws CRDs from ../shared/upstream/crossplane, the
//! CRDs Crossplane generates from its XRDs, claims, composites and RDS Instances with
//! their external names, finalizers and status, and the real databases behind them in
//! moto): every database ends Ready under Paved with the same identifier and creation
//! time, no Crossplane object is left, nothing is deleted, and what cannot move is
//! reported and left as it was.

use anyhow::{Context, Result};
use kube::{Api, ResourceExt};
use paved_api::PostgreSQLInstance;
use paved_e2e::{
    control_plane, crossplane,
    db::{self, aws_composition, clear, ready, T},
    eventually, ControlPlane, Operator,
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

/// A v1 claim (the seed's shape) of an RDS Instance: claim, composite, Instance and the
/// connection Secret Crossplane wrote.
fn v1_claim(cp: &ControlPlane, ns: &str, name: &str, external: Option<&str>) -> Result<()> {
    let mr = format!("{name}-x7k2p-db");
    let xr = crossplane::v1_claim(
        cp,
        ns,
        name,
        "xpostgres-aws",
        json!({ "storageGB": 200, "instanceClass": "db.m5.large", "multiAZ": false }),
        &[("rds.aws.upbound.io/v1beta3", "Instance", &mr)],
    )?;
    crossplane::managed(
        cp,
        &xr,
        json!({
            "apiVersion": "rds.aws.upbound.io/v1beta3", "kind": "Instance",
            "metadata": { "name": mr },
            "spec": {
                "deletionPolicy": "Delete",
                "forProvider": { "region": "us-east-1", "instanceClass": "db.m5.large", "engine": "postgres",
                                 "allocatedStorage": 200, "storageEncrypted": true, "dbName": "orders" },
            },
        }),
        external,
        json!({ "identifier": external, "id": "db-E2E", "address": format!("{}.rds.local", external.unwrap_or_default()) }),
    )
}

/// A v2 namespaced composite and its namespaced RDS Instance.
fn v2_composite(cp: &ControlPlane, ns: &str, name: &str, external: &str) -> Result<()> {
    let mr = format!("{name}-db");
    crossplane::apply(
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
    crossplane::managed(
        cp,
        name,
        json!({
            "apiVersion": "rds.aws.m.upbound.io/v1beta1", "kind": "Instance",
            "metadata": { "name": mr, "namespace": ns },
            "spec": { "forProvider": { "region": "us-east-1", "instanceClass": "db.m5.large", "engine": "postgres" } },
        }),
        Some(external),
        json!({ "identifier": external, "id": "db-E2E" }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crossplane_platform_moves_under_paved_without_recreating_a_database() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let (orders, billing) = ("e2e-migrate-orders", "e2e-migrate-billing");
    // The real Crossplane and provider CRDs, and the ones Crossplane generates.
    crossplane::install(cp)?;

    // Paved's side: the Composition that adopts (rotating passwords nobody manages),
    // and the namespaces, listed by a Team.
    let seed = db::moto(cp, "seed.py", &[])?;
    aws_composition(cp, &seed, "postgresql-aws-migrate", "2s")?;
    db::existing_password(cp, "postgresql-aws-migrate", "Rotate")?;
    for ns in [orders, billing] {
        db::namespace(cp, ns, "aws", "internal")?;
    }
    // The Team entries say enough (system, cost center) for a ServiceClaim to be
    // proposed for each namespace; orders has a claim that will not move.
    for ns in [orders, billing] {
        db::list_namespace(
            cp,
            "team-claims",
            ns,
            ("aws", "internal", Some("e2e")),
            false,
        )?;
    }
    // An earlier run that failed half-way may have left Crossplane's objects.
    crossplane::purge(cp)?;
    let services: Api<paved_api::ServiceClaim> = Api::all(client.clone());
    {
        let _op = Operator::start(cp, "migrate-cleanup", &["--cloud-list-ttl-seconds", "1"])?;
        // An earlier run's service: its namespace stays (taken over, not made).
        let _ = services.delete(billing, &Default::default()).await;
        eventually("an earlier run's ServiceClaim gone", T, || async {
            Ok(services.get_opt(billing).await?.is_none().then_some(()))
        })
        .await?;
        for ns in [orders, billing] {
            clear(&client, cp, ns).await?;
        }
    }

    // Crossplane's side: a Composition of each XRD generation, and what a running
    // platform holds, over real databases in moto.
    crossplane::composition(
        cp,
        "xpostgres-aws",
        "platform.example.com/v1alpha1",
        "XPostgreSQLInstance",
    )?;
    crossplane::composition(cp, "db-aws", "db.example.org/v1alpha1", "Database")?;
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
        "--service-claims",
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
    let review = crossplane::migrate(cp, &args)?;
    for want in [
        format!("PostgreSQLInstance {orders}/main adopting RDS instance {main_id}"),
        format!("PostgreSQLInstance {billing}/ledger adopting RDS instance {ledger_id}"),
        "no crossplane.io/external-name".into(),
        "connection Secret main-conn".into(),
        "kind: PostgreSQLInstance".into(),
        format!("ServiceClaim {billing} (owner team-claims) taking the namespace over"),
        "kind: ServiceClaim".into(),
    ] {
        assert!(review.contains(&want), "missing {want:?} in\n{review}");
    }
    assert!(crossplane::exists(
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
    let done = crossplane::migrate(cp, &args)?;
    assert!(done.contains(&format!("adopted: {main_id}")), "{done}");
    assert!(done.contains(&format!("adopted: {ledger_id}")), "{done}");
    assert!(
        done.contains("refused: PostgreSQLInstance e2e-migrate-orders/theirs: OwnedByOther"),
        "{done}"
    );
    // Billing's databases all moved: its namespace is taken over by its service, which
    // is Ready there; orders' did not, so its namespace waits for another run.
    assert!(
        done.contains(&format!("took over: namespace {billing}")),
        "{done}"
    );
    // Orders keeps a claim with Crossplane (never created): no service proposed for it.
    assert!(
        done.contains(&format!(
            "v1 Namespace {orders}: something in this namespace is skipped"
        )),
        "{done}"
    );
    let svc = db::ready(&services, billing).await?;
    let ns: k8s_openapi::api::core::v1::Namespace = Api::all(client.clone()).get(billing).await?;
    assert_eq!(
        ns.annotations().get(paved_api::annotations::ADOPTED_BY),
        svc.metadata.uid.as_ref(),
        "taken over, not made"
    );
    assert!(ns.metadata.owner_references.is_none());
    assert!(services.get_opt(orders).await?.is_none());

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
    crossplane::all_gone(
        cp,
        &[
            (
                "postgresqlinstances.platform.example.com/main",
                Some(orders),
            ),
            ("xpostgresqlinstances.platform.example.com/main-x7k2p", None),
            ("instances.rds.aws.upbound.io/main-x7k2p-db", None),
            ("databases.db.example.org/ledger", Some(billing)),
            ("instances.rds.aws.m.upbound.io/ledger-db", Some(billing)),
        ],
    )
    .await?;
    crossplane::connection_secret_gone(&client, orders, "main-conn").await?;
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
    services.delete(billing, &Default::default()).await?;
    eventually("the service gone, its namespace kept", T, || async {
        Ok(services.get_opt(billing).await?.is_none().then_some(()))
    })
    .await?;
    for ns in [orders, billing] {
        clear(&client, cp, ns).await?;
    }
    crossplane::purge(cp)?;
    let _ = std::fs::remove_dir_all(&dir);
    drop(op);
    Ok(())
}
