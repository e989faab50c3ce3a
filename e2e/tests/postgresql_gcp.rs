//! PostgreSQLInstance on the `gcp` provider against the loopback Cloud SQL fake
//! (e2e/fakes/gcp_sqladmin.py, built from the sqladmin v1 discovery document): the
//! operator gets its token from the metadata server (as on GKE) and talks to Cloud
//! SQL through google-cloud-sql-v1; every compliance setting lands in the fake's
//! state, the administrator credentials in Secret Manager, drift is corrected
//! through injected throttling, a crash at any step of the insert leaves exactly one
//! instance, and each deletion policy does what it says: one guarantee per test, each
//! in its own namespace.

use anyhow::{Context, Result};
use kube::{api::DeleteParams, Api};
use paved_api::PostgreSQLInstance;
use paved_e2e::{
    control_plane, crossplane,
    db::{
        self, claim, clear, composition, crash_at_every_step, create, event_reasons,
        external_secret, gone, namespace, ready, Fake, T,
    },
    eventually, ControlPlane, Operator,
};
use serde_json::{json, Value};

const COMPOSITION: &str = "postgresql-gcp-e2e";
const OWNER_LABEL: &str = "paved_dev_claim-uid";

fn instances(fake: &Fake) -> Result<Vec<Value>> {
    Ok(fake.state()?["instances"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

fn instance(fake: &Fake, name: &str) -> Result<Option<Value>> {
    Ok(instances(fake)?.into_iter().find(|i| i["name"] == name))
}

/// The e2e Composition (the shipped one) and namespace `ns` of `classification` with
/// no claims left from an earlier run; returns the fake and the shipped Composition's
/// `spec.postgresql`.
async fn setup(cp: &ControlPlane, ns: &str, classification: &str) -> Result<(Fake, Value)> {
    let client = cp.client().await?;
    let fake = Fake::new(cp, "PAVED_GCP_URL")?;
    composition(cp, "postgresql-gcp-standard.yaml", COMPOSITION, |_| {})?;
    let shipped: Value = serde_yaml::from_str(&std::fs::read_to_string(
        paved_e2e::repo_root().join("compositions/postgresql-gcp-standard.yaml"),
    )?)?;
    namespace(cp, ns, "gcp", classification)?;
    let _op = Operator::start(cp, &format!("{ns}-cleanup"), &FLAGS)?;
    clear(&client, cp, ns).await?;
    Ok((fake, shipped["spec"]["postgresql"].clone()))
}

const FLAGS: [&str; 2] = ["--cloud-list-ttl-seconds", "1"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_every_step_of_a_cloud_sql_insert_leaves_exactly_one_instance() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let internal = "e2e-gcp-crash";
    let (fake, _) = setup(cp, internal, "internal").await?;
    let pgs_internal: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), internal);
    let crashed = crash_at_every_step(cp, &pgs_internal, "paved-e2e-gcp-crash", |name| {
        claim(name, internal, COMPOSITION, Some("Delete"))
    })
    .await?;
    assert!(
        instance(&fake, &crashed[1].2)?.is_some(),
        "the insert crashed right after reached Cloud SQL"
    );
    let _op = Operator::start(cp, "gcp-crash", &FLAGS)?;
    for (name, uid, _) in &crashed {
        ready(&pgs_internal, name).await?;
        let owned = instances(&fake)?
            .iter()
            .filter(|i| i["settings"]["userLabels"][OWNER_LABEL] == uid.as_str())
            .count();
        assert_eq!(owned, 1, "{name}: exactly one instance after the crash");
    }
    for (name, _, _) in &crashed {
        pgs_internal.delete(name, &DeleteParams::default()).await?;
        gone(&pgs_internal, name).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phi_instance_is_compliant_in_the_fake_drift_is_corrected_and_it_goes_with_a_final_backup(
) -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let phi = "e2e-gcp-phi";
    let (fake, want) = setup(cp, phi, "phi").await?;
    let want = &want;
    let project = want["gcp"]["project"].as_str().unwrap().to_string();
    let pgs_phi: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), phi);
    let op = Operator::start(cp, "gcp", &FLAGS)?;
    // A PHI claim: every compliance setting in the fake's state.
    create(cp, &claim("records", phi, COMPOSITION, None))?;
    let records = ready(&pgs_phi, "records").await?;
    let st = records.status.clone().unwrap();
    let name = st.external_name.clone().unwrap();
    let i = instance(&fake, &name)?.context("instance in the fake")?;
    let s = &i["settings"];
    assert_eq!(i["databaseVersion"], "POSTGRES_16");
    assert_eq!(i["project"], project.as_str());
    assert_eq!(i["region"], "us-central1");
    assert_eq!(
        i["diskEncryptionConfiguration"]["kmsKeyName"],
        want["encryption"]["keyId"]
    );
    assert_eq!(s["ipConfiguration"]["ipv4Enabled"], false);
    assert_eq!(
        s["ipConfiguration"]["privateNetwork"],
        want["network"]["privateNetwork"]
    );
    assert_eq!(s["ipConfiguration"]["sslMode"], "ENCRYPTED_ONLY");
    let b = &s["backupConfiguration"];
    assert_eq!(b["enabled"], true);
    assert_eq!(b["pointInTimeRecoveryEnabled"], true);
    assert_eq!(b["startTime"], "03:00");
    assert_eq!(b["backupRetentionSettings"]["retainedBackups"], 14);
    assert_eq!(b["backupRetentionSettings"]["retentionUnit"], "COUNT");
    assert_eq!(s["deletionProtectionEnabled"], true, "PHI");
    assert_eq!(s["availabilityType"], "REGIONAL");
    assert_eq!(s["tier"], "db-custom-2-7680");
    assert_eq!(s["dataDiskSizeGb"], "50");
    assert_eq!(s["dataDiskType"], "PD_SSD");
    for (k, v) in [
        ("owner", "team-claims"),
        ("app", phi),
        ("cost_center", "cc-4410"),
        ("environment", "prod"),
        ("data_classification", "phi"),
    ] {
        assert_eq!(s["userLabels"][k], v, "label {k}: {}", s["userLabels"]);
    }
    let state = fake.state()?;
    assert!(
        state["databases"][format!("{project}/{name}")]
            .get(name.replace('-', "_"))
            .is_some(),
        "the claim's database exists: {}",
        state["databases"]
    );
    assert_eq!(
        state["secrets"][format!("{name}-admin")]["jsonKeys"],
        json!(["password", "username"]),
        "administrator credentials in Secret Manager"
    );
    assert_eq!(st.provider.as_deref(), Some("gcp"));
    assert_eq!(st.region.as_deref(), Some("us-central1"));
    assert_eq!(
        st.encryption_key_id.as_deref(),
        want["encryption"]["keyId"].as_str()
    );
    assert!(
        st.endpoint.as_deref().is_some_and(|e| e.starts_with("10.")),
        "private IP: {:?}",
        st.endpoint
    );
    assert_eq!(st.port, Some(5432));
    assert_eq!(st.estimated_monthly_cost.as_deref(), Some("USD 110.70"));

    // The connection Secret comes through External Secrets, from Secret Manager.
    let es = external_secret(&client, phi, "records-conn").await?;
    assert_eq!(
        es.data["spec"]["dataFrom"][0]["extract"]["key"],
        format!("{name}-admin")
    );
    assert_eq!(es.data["spec"]["secretStoreRef"]["name"], "paved");

    // Drift made in the console is corrected, through throttled list calls.
    fake.post(
        &format!("/_fake/instances/{name}/set"),
        &json!({ "settings": { "tier": "db-custom-1-3840",
                               "ipConfiguration": { "sslMode": "ALLOW_UNENCRYPTED_AND_ENCRYPTED" },
                               "backupConfiguration": { "backupRetentionSettings": { "retainedBackups": 7 } } } }),
    )?;
    fake.post(
        "/_fake/inject",
        &json!({ "status": 429, "count": 4, "retryAfter": 1, "method": "GET", "match": "/instances" }),
    )?;
    eventually("drift corrected in the fake", T, || async {
        let i = instance(&fake, &name)?.unwrap();
        let s = &i["settings"];
        Ok((s["tier"] == "db-custom-2-7680"
            && s["ipConfiguration"]["sslMode"] == "ENCRYPTED_ONLY"
            && s["backupConfiguration"]["backupRetentionSettings"]["retainedBackups"] == 14)
            .then_some(()))
    })
    .await?;
    assert!(event_reasons(cp, phi)?.contains("DriftCorrected"));

    // PHI: Snapshot, behind deletion protection: protection goes off, a final backup
    // is kept, the instance goes.
    pgs_phi.delete("records", &DeleteParams::default()).await?;
    gone(&pgs_phi, "records").await?;
    eventually(
        "the PHI instance deleted with a final backup",
        T,
        || async {
            let state = fake.state()?;
            let kept_backup = state["retainedFinalBackups"]
                .as_array()
                .unwrap()
                .iter()
                .any(|b| b["instance"] == name.as_str() && b["type"] == "FINAL");
            Ok((kept_backup && instance(&fake, &name)?.is_none()).then_some(()))
        },
    )
    .await?;
    assert!(
        !op.logs().contains("rootPassword"),
        "no request body in the log"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_and_orphan_do_what_they_say() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let internal = "e2e-gcp-internal";
    let (fake, _) = setup(cp, internal, "internal").await?;
    let pgs_internal: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), internal);
    let _op = Operator::start(cp, "gcp-policy", &FLAGS)?;
    // Deletion policies.
    create(cp, &claim("scratch", internal, COMPOSITION, Some("Delete")))?;
    create(cp, &claim("kept", internal, COMPOSITION, Some("Orphan")))?;
    let scratch = ready(&pgs_internal, "scratch").await?;
    let kept = ready(&pgs_internal, "kept").await?;
    let scratch_name = scratch.status.unwrap().external_name.unwrap();
    let kept_name = kept.status.unwrap().external_name.unwrap();
    db::confirm_delete(&pgs_internal, "scratch").await?;
    pgs_internal
        .delete("scratch", &DeleteParams::default())
        .await?;
    gone(&pgs_internal, "scratch").await?;
    eventually("scratch's instance deleted", T, || async {
        Ok(instance(&fake, &scratch_name)?.is_none().then_some(()))
    })
    .await?;
    pgs_internal
        .delete("kept", &DeleteParams::default())
        .await?;
    gone(&pgs_internal, "kept").await?;
    assert!(
        instance(&fake, &kept_name)?.is_some(),
        "Orphan left the instance"
    );
    Ok(())
}

/// A Cloud SQL instance made by hand: encrypted with the Composition's key, but with a
/// public address, a day of backups, unprotected, TLS not required, a label of its own
/// and a database `orders`.
fn legacy_instance(fake: &Fake, want: &Value, name: &str) -> Result<()> {
    let token = fake.gcp_token()?;
    let project = want["gcp"]["project"].as_str().context("project")?;
    let (status, body) = fake.call(
        "POST",
        &format!("/v1/projects/{project}/instances"),
        &token,
        Some(&json!({
            "name": name, "region": "us-central1", "databaseVersion": "POSTGRES_16",
            "rootPassword": "legacy-password-1",
            "diskEncryptionConfiguration": { "kmsKeyName": want["encryption"]["keyId"] },
            "settings": {
                "tier": "db-custom-4-15360", "dataDiskSizeGb": "250",
                "userLabels": { "team": "orders" },
                "ipConfiguration": { "ipv4Enabled": true, "sslMode": "ALLOW_UNENCRYPTED_AND_ENCRYPTED" },
                "backupConfiguration": { "enabled": true, "backupRetentionSettings": { "retainedBackups": 1, "retentionUnit": "COUNT" } },
                "deletionProtectionEnabled": false,
            },
        })),
    )?;
    anyhow::ensure!(status < 300, "creating {name}: {status} {body}");
    let deadline = std::time::Instant::now() + T;
    while !instance(fake, name)?.is_some_and(|i| i["state"] == "RUNNABLE") {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "{name} never RUNNABLE"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let (status, body) = fake.call(
        "POST",
        &format!("/v1/projects/{project}/instances/{name}/databases"),
        &token,
        Some(&json!({ "name": "orders", "instance": name, "project": project })),
    )?;
    anyhow::ensure!(status < 300, "database in {name}: {status} {body}");
    let deadline = std::time::Instant::now() + T;
    while fake.state()?["databases"][format!("{project}/{name}")]
        .get("orders")
        .is_none()
    {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "database orders never made"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_instance_is_adopted_in_place_and_its_password_rotated_when_the_composition_says(
) -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let ns = "e2e-gcp-adopt";
    let (fake, want) = setup(cp, ns, "internal").await?;
    // Rotating passwords nobody keeps is the Composition's to allow.
    db::existing_password(cp, COMPOSITION, "Rotate")?;
    let name = format!("legacy-orders-{}", std::process::id());
    legacy_instance(&fake, &want, &name)?;
    let before = instance(&fake, &name)?.context("made")?;
    let project = want["gcp"]["project"].as_str().unwrap();
    let users = |fake: &Fake| -> Result<Value> {
        Ok(fake.state()?["users"][format!("{project}/{name}")]["postgres"].clone())
    };
    let changes = users(&fake)?["passwordChanges"].as_i64().unwrap_or(0);
    db::grant(
        cp,
        "e2e-adopt-gcp",
        "team-claims",
        &[(ns, &name, COMPOSITION, "Adopt")],
    )?;
    let _op = Operator::start(cp, "gcp-adopt", &FLAGS)?;
    let pgs: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), ns);

    // First only looked at: the compliance report of what was made by hand, and
    // nothing of it written.
    let fields = db::observe_report(cp, ns, COMPOSITION, &name).await?;
    for want in ["network", "tls", "backups", "Compliant=BelowFloor"] {
        assert!(fields.iter().any(|f| f == want), "{want} in {fields:?}");
    }
    assert!(fields.iter().any(|f| f.starts_with("tag ")), "{fields:?}");
    assert_eq!(
        instance(&fake, &name)?.context("still there")?["settings"],
        before["settings"],
        "an observed instance is not written"
    );
    create(
        cp,
        &json!({
            "apiVersion": "paved.dev/v1alpha1", "kind": "PostgreSQLInstance",
            "metadata": { "name": "orders", "namespace": ns },
            "spec": { "compositionRef": { "name": COMPOSITION },
                      "existing": { "externalName": name, "mode": "Adopt", "databaseName": "orders" } },
        }),
    )?;
    let p = ready(&pgs, "orders").await?;
    let uid = p.metadata.uid.clone().unwrap();
    let i = instance(&fake, &name)?.context("never deleted")?;
    let s = &i["settings"];
    // The same instance, brought to the floor, its own label and size kept.
    assert_eq!(i["createTime"], before["createTime"], "the same instance");
    assert_eq!(s["userLabels"][OWNER_LABEL], uid.as_str());
    assert_eq!(s["userLabels"]["team"], "orders");
    assert_eq!(s["userLabels"]["paved_dev_admin-password"], uid.as_str());
    assert_eq!(s["ipConfiguration"]["ipv4Enabled"], false);
    assert_eq!(s["ipConfiguration"]["sslMode"], "ENCRYPTED_ONLY");
    assert!(
        s["backupConfiguration"]["backupRetentionSettings"]["retainedBackups"].as_i64() >= Some(14)
    );
    assert_eq!(s["tier"], "db-custom-4-15360");
    // The administrator's password was set once, to the one kept in Secret Manager
    // under the claim's name, which the connection Secret reads.
    assert_eq!(users(&fake)?["passwordChanges"].as_i64(), Some(changes + 1));
    let kept = format!("{}-admin", paved_compose::postgresql::external_name(&uid));
    assert!(
        fake.state()?["secrets"].get(&kept).is_some(),
        "{kept} in Secret Manager"
    );
    let es = external_secret(&client, ns, "orders-connection").await?;
    assert_eq!(
        es.data["spec"]["dataFrom"][0]["extract"]["key"],
        kept.as_str()
    );
    assert_eq!(
        es.data["spec"]["target"]["template"]["data"]["database"],
        "orders"
    );
    // Polls later, nothing more is written: the password is not set again.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert_eq!(users(&fake)?["passwordChanges"].as_i64(), Some(changes + 1));
    pgs.delete("orders", &DeleteParams::default()).await?;
    gone(&pgs, "orders").await?;
    assert!(
        instance(&fake, &name)?.is_some(),
        "an adopted instance outlives its claim"
    );
    Ok(())
}

/// `paved migrate --apply` of a Crossplane platform on GCP (the real provider-upjet-gcp
/// DatabaseInstance and Database CRDs, a v1 claim of the seed's shape) over an instance
/// in the Cloud SQL fake: the claim moves to Paved with the database inside the
/// instance, the same instance is Ready under Paved, no Crossplane object is left,
/// nothing deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crossplane_platform_on_gcp_moves_under_paved_without_recreating_an_instance(
) -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let ns = "e2e-gcp-migrate";
    let (fake, want) = setup(cp, ns, "internal").await?;
    db::existing_password(cp, COMPOSITION, "Rotate")?;
    crossplane::install(cp)?;
    crossplane::purge(cp)?;
    crossplane::composition(
        cp,
        "xpostgres-gcp",
        "platform.example.com/v1alpha1",
        "XPostgreSQLInstance",
    )?;
    let name = format!("legacy-ledger-{}", std::process::id());
    legacy_instance(&fake, &want, &name)?;
    let before = instance(&fake, &name)?.context("made")?;
    let project = want["gcp"]["project"].as_str().context("project")?;
    let (inst, inside) = ("ledger-x7k2p-inst", "ledger-x7k2p-db");
    let xr = crossplane::v1_claim(
        cp,
        ns,
        "ledger",
        "xpostgres-gcp",
        json!({ "storageGB": 250, "tier": "db-custom-4-15360" }),
        &[
            ("sql.gcp.upbound.io/v1beta2", "DatabaseInstance", inst),
            ("sql.gcp.upbound.io/v1beta1", "Database", inside),
        ],
    )?;
    crossplane::managed(
        cp,
        &xr,
        json!({
            "apiVersion": "sql.gcp.upbound.io/v1beta2", "kind": "DatabaseInstance",
            "metadata": { "name": inst },
            "spec": { "deletionPolicy": "Delete",
                      "forProvider": { "region": "us-central1", "databaseVersion": "POSTGRES_16", "project": project,
                                       "settings": { "tier": "db-custom-4-15360", "diskSize": 250 } } },
        }),
        Some(&name),
        json!({ "id": name, "project": project, "connectionName": format!("{project}:us-central1:{name}") }),
    )?;
    crossplane::managed(
        cp,
        &xr,
        json!({
            "apiVersion": "sql.gcp.upbound.io/v1beta1", "kind": "Database",
            "metadata": { "name": inside },
            "spec": { "deletionPolicy": "Delete", "forProvider": { "instance": name, "project": project } },
        }),
        Some(&format!(
            "projects/{project}/instances/{name}/databases/orders"
        )),
        json!({ "id": format!("projects/{project}/instances/{name}/databases/orders"), "instance": name, "project": project }),
    )?;

    let _op = Operator::start(cp, "gcp-migrate", &FLAGS)?;
    let p = crossplane::cut_over_ledger(
        cp,
        ns,
        &format!("xpostgres-gcp={COMPOSITION}"),
        &name,
        &[
            "databaseinstances.sql.gcp.upbound.io/ledger-x7k2p-inst",
            "databases.sql.gcp.upbound.io/ledger-x7k2p-db",
        ],
    )
    .await?;
    let i = instance(&fake, &name)?.context("never deleted")?;
    assert_eq!(i["createTime"], before["createTime"], "the same instance");
    assert_eq!(
        i["settings"]["userLabels"][OWNER_LABEL],
        p.metadata.uid.as_deref().unwrap()
    );
    let pgs: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), ns);
    assert!(
        fake.state()?["databases"][format!("{project}/{name}")]
            .get("orders")
            .is_some(),
        "nothing deleted"
    );
    pgs.delete("ledger", &DeleteParams::default()).await?;
    gone(&pgs, "ledger").await?;
    assert!(instance(&fake, &name)?.is_some(), "adopted: orphaned");
    crossplane::purge(cp)?;
    Ok(())
}
