//! PostgreSQLInstance on the `azure` provider against the loopback Azure fake
//! (e2e/fakes/azure_postgres.py, built from the published ARM contract): the
//! operator authenticates by workload identity and talks ARM through
//! azure_mgmt_postgresql; every compliance setting lands in the fake's state, the
//! administrator credentials in Key Vault, drift is corrected through injected
//! throttling, a crash at any step of the create leaves exactly one server, and each
//! deletion policy does what it says: one guarantee per test, each in its own namespace.

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

const COMPOSITION: &str = "postgresql-azure-e2e";
const OWNER_TAG: &str = "paved.dev_claim-uid";

fn servers(fake: &Fake) -> Result<Vec<Value>> {
    Ok(fake.state()?["servers"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

fn server(fake: &Fake, name: &str) -> Result<Option<Value>> {
    Ok(servers(fake)?.into_iter().find(|s| s["name"] == name))
}

/// The e2e Composition (the shipped one, with the fake's Key Vault) and namespace `ns`
/// of `classification` with no claims left from an earlier run; returns the fake and
/// the shipped Composition's `spec.postgresql`.
async fn setup(cp: &ControlPlane, ns: &str, classification: &str) -> Result<(Fake, Value)> {
    let client = cp.client().await?;
    let fake = Fake::new(cp, "PAVED_AZURE_URL")?;
    let vault = cp.env["PAVED_AZURE_URL"].clone();
    composition(cp, "postgresql-azure-standard.yaml", COMPOSITION, |c| {
        c["spec"]["postgresql"]["azure"]["keyVaultUrl"] = json!(vault);
    })?;
    let shipped: Value = serde_yaml::from_str(&std::fs::read_to_string(
        paved_e2e::repo_root().join("compositions/postgresql-azure-standard.yaml"),
    )?)?;
    namespace(cp, ns, "azure", classification)?;
    let _op = Operator::start(cp, &format!("{ns}-cleanup"), &FLAGS)?;
    clear(&client, cp, ns).await?;
    Ok((fake, shipped["spec"]["postgresql"].clone()))
}

const FLAGS: [&str; 2] = ["--cloud-list-ttl-seconds", "1"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_every_step_of_an_azure_create_leaves_exactly_one_server() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let internal = "e2e-azure-crash";
    let (fake, _) = setup(cp, internal, "internal").await?;
    let pgs_internal: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), internal);
    let crashed = crash_at_every_step(cp, &pgs_internal, "paved-e2e-azure-crash", |name| {
        claim(name, internal, COMPOSITION, Some("Delete"))
    })
    .await?;
    assert!(
        server(&fake, &crashed[1].2)?.is_some(),
        "the create crashed right after reached Azure"
    );
    let _op = Operator::start(cp, "azure-crash", &FLAGS)?;
    for (name, uid, _) in &crashed {
        ready(&pgs_internal, name).await?;
        let owned = servers(&fake)?
            .iter()
            .filter(|s| s["tags"][OWNER_TAG] == uid.as_str())
            .count();
        assert_eq!(owned, 1, "{name}: exactly one server after the crash");
    }
    // They say Delete; deleted with the explicit act (without it Azure's Snapshot would
    // keep each server).
    for (name, _, external) in &crashed {
        db::confirm_delete(&pgs_internal, name).await?;
        pgs_internal.delete(name, &DeleteParams::default()).await?;
        gone(&pgs_internal, name).await?;
        assert!(server(&fake, external)?.is_none(), "{name}: deleted");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phi_server_is_compliant_in_the_fake_drift_is_corrected_and_it_is_kept_with_a_backup(
) -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let phi = "e2e-azure-phi";
    let (fake, want) = setup(cp, phi, "phi").await?;
    let want = &want;
    let pgs_phi: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), phi);
    // At debug, the level where azure_core prints whole requests (bodies, and its
    // Authorization header): the operator must keep those out of its log.
    let mut debug = cp.clone();
    debug.env.insert("RUST_LOG".into(), "debug".into());
    let op = Operator::start(&debug, "azure", &FLAGS)?;
    // A PHI claim: every compliance setting in the fake's state.
    create(cp, &claim("records", phi, COMPOSITION, None))?;
    let records = ready(&pgs_phi, "records").await?;
    let st = records.status.clone().unwrap();
    let name = st.external_name.clone().unwrap();
    let s = server(&fake, &name)?.context("server in the fake")?;
    let p = &s["properties"];
    assert_eq!(p["network"]["publicNetworkAccess"], "Disabled");
    assert_eq!(
        p["network"]["delegatedSubnetResourceId"],
        want["network"]["delegatedSubnetId"]
    );
    assert_eq!(
        p["network"]["privateDnsZoneArmResourceId"],
        want["network"]["privateDnsZoneId"]
    );
    assert_eq!(p["dataEncryption"]["type"], "AzureKeyVault");
    assert_eq!(
        p["dataEncryption"]["primaryKeyURI"],
        want["encryption"]["keyId"]
    );
    let identity = want["encryption"]["identityId"].as_str().unwrap();
    assert_eq!(
        p["dataEncryption"]["primaryUserAssignedIdentityId"],
        identity
    );
    assert!(
        s["identity"]["userAssignedIdentities"]
            .get(identity)
            .is_some(),
        "the key's identity is assigned: {}",
        s["identity"]
    );
    assert_eq!(
        p["dataEncryption"]["geoBackupKeyURI"], want["encryption"]["geoBackupKeyId"],
        "geo-redundant backups encrypted with the paired region's key"
    );
    assert_eq!(p["backup"]["backupRetentionDays"], 14);
    assert_eq!(p["backup"]["geoRedundantBackup"], "Enabled", "PHI");
    assert_eq!(p["highAvailability"]["mode"], "ZoneRedundant");
    assert_eq!(p["storage"]["storageSizeGB"], 64, "50 GB rounds up to 64");
    assert_eq!(p["version"], "16");
    assert_eq!(s["sku"]["name"], "Standard_D2ds_v5");
    assert_eq!(s["configurations"]["require_secure_transport"], "on");
    assert!(
        s["databases"].get(name.replace('-', "_")).is_some(),
        "the claim's database exists: {}",
        s["databases"]
    );
    for (k, v) in [
        ("Owner", "team-claims"),
        ("App", phi),
        ("CostCenter", "CC-4410"),
        ("Environment", "prod"),
        ("DataClassification", "phi"),
    ] {
        assert_eq!(s["tags"][k], v, "tag {k}");
    }
    let secret = fake.state()?["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == format!("{name}-admin"))
        .cloned()
        .context("administrator credentials in Key Vault")?;
    assert_eq!(secret["keys"], json!(["password", "username"]));
    assert_eq!(st.provider.as_deref(), Some("azure"));
    assert_eq!(st.region.as_deref(), Some("eastus"));
    assert_eq!(
        st.encryption_key_id.as_deref(),
        want["encryption"]["keyId"].as_str()
    );
    assert!(st.endpoint.as_deref().is_some_and(|e| e.starts_with(&name)));
    assert_eq!(st.port, Some(5432));
    assert_eq!(st.storage_gb, Some(64));
    assert_eq!(st.estimated_monthly_cost.as_deref(), Some("USD 133.65"));

    // The connection Secret comes through External Secrets, from Key Vault.
    let es = external_secret(&client, phi, "records-conn").await?;
    assert_eq!(
        es.data["spec"]["dataFrom"][0]["extract"]["key"],
        format!("{name}-admin")
    );
    assert_eq!(es.data["spec"]["secretStoreRef"]["name"], "paved");
    let np = cp.kubectl(&[
        "get",
        "networkpolicy",
        "-n",
        phi,
        "paved-db-records",
        "-o",
        "json",
    ])?;
    assert!(np.contains("10.30.8.0/24") && np.contains("5432"), "{np}");

    // Drift made in the portal is corrected, through throttled list calls.
    fake.post(
        &format!("/_fake/servers/{name}/set"),
        &json!({ "sku": { "name": "Standard_B2s", "tier": "Burstable" },
                 "properties": { "backup": { "backupRetentionDays": 7 } },
                 "configurations": { "require_secure_transport": "off" } }),
    )?;
    fake.post(
        "/_fake/inject",
        &json!({ "status": 429, "count": 4, "retryAfter": 1, "method": "GET", "match": "flexibleServers" }),
    )?;
    eventually("drift corrected in the fake", T, || async {
        let s = server(&fake, &name)?.unwrap();
        Ok((s["sku"]["name"] == "Standard_D2ds_v5"
            && s["properties"]["backup"]["backupRetentionDays"] == 14
            && s["configurations"]["require_secure_transport"] == "on")
            .then_some(()))
    })
    .await?;
    assert!(event_reasons(cp, phi)?.contains("DriftCorrected"));

    // PHI: Snapshot. Azure drops a server's backups with it, so the server stays
    // beside its final on-demand backup.
    pgs_phi.delete("records", &DeleteParams::default()).await?;
    gone(&pgs_phi, "records").await?;
    assert!(server(&fake, &name)?.is_some(), "the PHI server is kept");
    let backups = fake.state()?["backups"].clone();
    assert!(
        backups
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["name"] == format!("{name}-final") && b["serverName"] == name.as_str()),
        "final backup taken: {backups}"
    );
    assert!(event_reasons(cp, phi)?.contains("DeleteSkipped"));
    let log = op.logs();
    assert!(log.contains("DEBUG"), "the log is at debug");
    assert!(
        !log.contains("administratorLoginPassword"),
        "no request body in the log"
    );
    assert!(!log.contains("fake-aad."), "no access token in the log");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_and_orphan_do_what_they_say() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let internal = "e2e-azure-internal";
    let (fake, _) = setup(cp, internal, "internal").await?;
    let pgs_internal: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), internal);
    let _op = Operator::start(cp, "azure-policy", &FLAGS)?;
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
    assert!(
        server(&fake, &scratch_name)?.is_none(),
        "Delete removed the server"
    );
    pgs_internal
        .delete("kept", &DeleteParams::default())
        .await?;
    gone(&pgs_internal, "kept").await?;
    assert!(
        server(&fake, &kept_name)?.is_some(),
        "Orphan left the server"
    );
    Ok(())
}

/// A flexible server made by hand through ARM: encrypted with the Composition's key,
/// but public, a week of backups, TLS not required, with a tag of its own and a
/// database `orders`. Returns its ARM id.
fn legacy_server(fake: &Fake, want: &Value, name: &str) -> Result<String> {
    let token = fake.azure_token()?;
    let sub = want["azure"]["subscriptionId"]
        .as_str()
        .context("subscription")?;
    let rg = want["azure"]["resourceGroup"]
        .as_str()
        .context("resource group")?;
    let id = format!(
        "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.DBforPostgreSQL/flexibleServers/{name}"
    );
    let identity = want["encryption"]["identityId"]
        .as_str()
        .context("identity")?;
    let (status, body) = fake.call(
        "PUT",
        &format!("{id}?api-version=2024-08-01"),
        &token,
        Some(&json!({
            "location": "eastus",
            "sku": { "name": "Standard_D4ds_v5", "tier": "GeneralPurpose" },
            "identity": { "type": "UserAssigned", "userAssignedIdentities": { identity: {} } },
            "tags": { "Team": "orders" },
            "properties": {
                "createMode": "Create", "version": "16",
                "administratorLogin": "legacy", "administratorLoginPassword": "Orders-Pw-2026!",
                "storage": { "storageSizeGB": 256 },
                "dataEncryption": { "type": "AzureKeyVault", "primaryKeyURI": want["encryption"]["keyId"],
                                    "primaryUserAssignedIdentityId": identity },
                "backup": { "backupRetentionDays": 7, "geoRedundantBackup": "Disabled" },
                "network": { "publicNetworkAccess": "Enabled" },
                "highAvailability": { "mode": "Disabled" },
            },
        })),
    )?;
    anyhow::ensure!(status < 300, "creating {name}: {status} {body}");
    let ready = || -> Result<bool> {
        Ok(server(fake, name)?.is_some_and(|s| s["properties"]["state"] == "Ready"))
    };
    let deadline = std::time::Instant::now() + T;
    while !ready()? {
        anyhow::ensure!(std::time::Instant::now() < deadline, "{name} never Ready");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    // One operation at a time, as Azure has it: each waits for the server to be idle.
    let put = |path: String, body: Value| -> Result<()> {
        let deadline = std::time::Instant::now() + T;
        loop {
            let (status, out) = fake.call("PUT", &path, &token, Some(&body))?;
            if status < 300 {
                return Ok(());
            }
            anyhow::ensure!(
                status == 409 && std::time::Instant::now() < deadline,
                "{path}: {status} {out}"
            );
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    };
    put(
        format!("{id}/configurations/require_secure_transport?api-version=2024-08-01"),
        json!({ "properties": { "value": "off", "source": "user-override" } }),
    )?;
    put(
        format!("{id}/databases/orders?api-version=2024-08-01"),
        json!({ "properties": { "charset": "UTF8", "collation": "en_US.utf8" } }),
    )?;
    // And until that is done too.
    let deadline = std::time::Instant::now() + T;
    while server(fake, name)?.is_none_or(|s| s["databases"].get("orders").is_none()) {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "database orders never made"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    Ok(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_server_is_adopted_in_place_its_password_handed_over_only_when_the_composition_says(
) -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let ns = "e2e-azure-adopt";
    let (fake, want) = setup(cp, ns, "internal").await?;
    // Keep passwords as they are (an earlier run's patch outlives the apply).
    db::existing_password(cp, COMPOSITION, "Keep")?;
    let name = format!("legacy-orders-{}", std::process::id());
    legacy_server(&fake, &want, &name)?;
    let before = server(&fake, &name)?.context("made")?;
    db::grant(
        cp,
        "e2e-adopt-azure",
        "team-claims",
        &[(ns, &name, COMPOSITION, "Adopt")],
    )?;
    let _op = Operator::start(cp, "azure-adopt", &FLAGS)?;
    let pgs: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), ns);

    // First only looked at: the compliance report of what was made by hand, and
    // nothing of it written.
    let fields = db::observe_report(cp, ns, COMPOSITION, &name).await?;
    for want in ["network", "tls", "backups", "Compliant=BelowFloor"] {
        assert!(fields.iter().any(|f| f == want), "{want} in {fields:?}");
    }
    assert!(fields.iter().any(|f| f.starts_with("tag ")), "{fields:?}");
    assert_eq!(
        server(&fake, &name)?.context("still there")?["tags"],
        before["tags"],
        "an observed server is not written"
    );
    let adopt = |inside: Option<&str>| {
        let mut existing = json!({ "externalName": name, "mode": "Adopt" });
        if let Some(db) = inside {
            existing["databaseName"] = json!(db);
        }
        existing
    };
    // Which database inside it the Secret names must be said.
    let adopter = |claim: &str, existing: Value| {
        json!({
            "apiVersion": "paved.dev/v1alpha1", "kind": "PostgreSQLInstance",
            "metadata": { "name": claim, "namespace": ns },
            "spec": { "compositionRef": { "name": COMPOSITION }, "existing": existing },
        })
    };
    create(cp, &adopter("unnamed", adopt(None)))?;
    let c = eventually("unnamed NotAdoptable", T, || async {
        let p = pgs.get("unnamed").await?;
        Ok(p.status
            .and_then(|s| paved_api::conditions::find(&s.conditions, "Synced").cloned())
            .filter(|c| c.reason == "NotAdoptable"))
    })
    .await?;
    assert!(c.message.contains("databaseName"), "{}", c.message);
    pgs.delete("unnamed", &DeleteParams::default()).await?;
    gone(&pgs, "unnamed").await?;

    create(cp, &adopter("orders", adopt(Some("orders"))))?;
    // Taken over and brought to the floor; its password is nobody's to hand over yet.
    let uid = eventually("orders adopted", T, || async {
        let p = pgs.get("orders").await?;
        let synced = p
            .status
            .as_ref()
            .and_then(|s| paved_api::conditions::find(&s.conditions, "Synced").cloned());
        Ok(synced
            .filter(|c| c.reason == "CredentialsNotManaged")
            .map(|_| p.metadata.uid.clone().unwrap()))
    })
    .await?;
    let s = eventually("the server at the floor", T, || async {
        let s = server(&fake, &name)?.context("still there")?;
        let p = &s["properties"];
        let floor = p["backup"]["backupRetentionDays"].as_i64() >= Some(14)
            && p["network"]["publicNetworkAccess"] == "Disabled"
            && s["configurations"]["require_secure_transport"] == "on";
        Ok(floor.then_some(s))
    })
    .await?;
    assert_eq!(
        s["systemData"]["createdAt"], before["systemData"]["createdAt"],
        "the same server"
    );
    assert_eq!(s["id"], before["id"]);
    assert_eq!(s["tags"][OWNER_TAG], uid.as_str());
    assert_eq!(s["tags"]["Team"], "orders", "its own tags are kept");
    assert_eq!(s["tags"]["CostCenter"], "CC-4410");
    assert_eq!(
        s["sku"]["name"], "Standard_D4ds_v5",
        "its size is what it runs at"
    );
    assert!(s["databases"].get("orders").is_some());
    assert!(s["tags"].get("paved.dev_admin-password").is_none());
    // The Composition rotates: the password Paved keeps in Key Vault (named by the
    // claim, never by the server's name) is set, and the claim delivers it.
    db::existing_password(cp, COMPOSITION, "Rotate")?;
    let p = ready(&pgs, "orders").await?;
    let kept = format!("{}-admin", paved_compose::postgresql::external_name(&uid));
    let secret = fake.state()?["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == kept)
        .cloned()
        .context("the administrator credentials in Key Vault")?;
    assert_eq!(secret["keys"], json!(["password", "username"]));
    assert_eq!(
        p.status.unwrap().credentials_secret.as_deref(),
        Some(kept.as_str())
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
    let s = server(&fake, &name)?.unwrap();
    assert_eq!(
        s["tags"]["paved.dev_admin-password"],
        uid.as_str(),
        "the mark names the claim"
    );
    assert_eq!(
        s["systemData"]["createdAt"],
        before["systemData"]["createdAt"]
    );
    // The claim goes; the server stays (Orphan, the default for an adopted one).
    pgs.delete("orders", &DeleteParams::default()).await?;
    gone(&pgs, "orders").await?;
    assert!(
        server(&fake, &name)?.is_some(),
        "an adopted server outlives its claim"
    );
    Ok(())
}

/// `paved migrate --apply` of a Crossplane platform on Azure (the real provider-upjet-azure
/// FlexibleServer and FlexibleServerDatabase CRDs, a v1 claim of the seed's shape) over
/// a server in the fake: the claim moves to Paved with the database inside the server,
/// the same server is Ready under Paved, no Crossplane object is left, nothing deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crossplane_platform_on_azure_moves_under_paved_without_recreating_a_server() -> Result<()>
{
    let cp = control_plane();
    let client = cp.client().await?;
    let ns = "e2e-azure-migrate";
    let (fake, want) = setup(cp, ns, "internal").await?;
    // The Composition rotates passwords nobody keeps, so the cut-over can finish.
    db::existing_password(cp, COMPOSITION, "Rotate")?;
    crossplane::install(cp)?;
    crossplane::purge(cp)?;
    crossplane::composition(
        cp,
        "xpostgres-azure",
        "platform.example.com/v1alpha1",
        "XPostgreSQLInstance",
    )?;
    let name = format!("legacy-ledger-{}", std::process::id());
    let id = legacy_server(&fake, &want, &name)?;
    let before = server(&fake, &name)?.context("made")?;
    let rg = want["azure"]["resourceGroup"].as_str().context("rg")?;
    let (srv, inside) = ("ledger-x7k2p-srv", "ledger-x7k2p-db");
    let xr = crossplane::v1_claim(
        cp,
        ns,
        "ledger",
        "xpostgres-azure",
        json!({ "storageGB": 256, "version": "16" }),
        &[
            (
                "dbforpostgresql.azure.upbound.io/v1beta2",
                "FlexibleServer",
                srv,
            ),
            (
                "dbforpostgresql.azure.upbound.io/v1beta1",
                "FlexibleServerDatabase",
                inside,
            ),
        ],
    )?;
    crossplane::managed(
        cp,
        &xr,
        json!({
            "apiVersion": "dbforpostgresql.azure.upbound.io/v1beta2", "kind": "FlexibleServer",
            "metadata": { "name": srv },
            "spec": { "deletionPolicy": "Delete",
                      "forProvider": { "location": "eastus", "resourceGroupName": rg, "version": "16",
                                       "skuName": "GP_Standard_D4ds_v5", "storageMb": 262144 } },
        }),
        Some(&name),
        json!({ "id": id, "fqdn": format!("{name}.postgres.database.azure.com") }),
    )?;
    crossplane::managed(
        cp,
        &xr,
        json!({
            "apiVersion": "dbforpostgresql.azure.upbound.io/v1beta1", "kind": "FlexibleServerDatabase",
            "metadata": { "name": inside },
            "spec": { "deletionPolicy": "Delete", "forProvider": { "serverId": id, "charset": "UTF8" } },
        }),
        Some("orders"),
        json!({ "id": format!("{id}/databases/orders"), "serverId": id }),
    )?;

    let _op = Operator::start(cp, "azure-migrate", &FLAGS)?;
    let p = crossplane::cut_over_ledger(
        cp,
        ns,
        &format!("xpostgres-azure={COMPOSITION}"),
        &name,
        &[
            "flexibleservers.dbforpostgresql.azure.upbound.io/ledger-x7k2p-srv",
            "flexibleserverdatabases.dbforpostgresql.azure.upbound.io/ledger-x7k2p-db",
        ],
    )
    .await?;
    let s = server(&fake, &name)?.context("never deleted")?;
    assert_eq!(s["id"], before["id"], "the same server");
    assert_eq!(
        s["systemData"]["createdAt"],
        before["systemData"]["createdAt"]
    );
    assert_eq!(s["tags"][OWNER_TAG], p.metadata.uid.as_deref().unwrap());
    let pgs: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), ns);
    assert!(
        server(&fake, &name)?.is_some_and(|s| s["databases"].get("orders").is_some()),
        "nothing deleted"
    );
    pgs.delete("ledger", &DeleteParams::default()).await?;
    gone(&pgs, "ledger").await?;
    assert!(server(&fake, &name)?.is_some(), "adopted: orphaned");
    crossplane::purge(cp)?;
    Ok(())
}
