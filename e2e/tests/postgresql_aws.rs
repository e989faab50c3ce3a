//! PostgreSQLInstance on the `aws` provider against moto, one guarantee per test, each
//! in a namespace of its own: the Crossplane-shaped claim Ready with every compliance
//! property visible in moto's state and drift corrected; a crash at any step of the
//! cloud create leaving exactly one instance; another claim's instance never adopted or
//! deleted; each deletion policy; PHI's deletion protection and final snapshot.

use anyhow::{Context, Result};
use kube::{api::DeleteParams, Api, ResourceExt};
use paved_api::{conditions, PostgreSQLInstance};
use paved_e2e::{
    control_plane,
    db::{
        self, aws_composition, clear, crash_at_every_step, create, external_secret, gone,
        namespace, ready, T,
    },
    eventually, ControlPlane, Operator,
};
use serde_json::{json, Value};

fn instance(cp: &ControlPlane, id: &str) -> Result<Option<Value>> {
    db::rds_instance(cp, id)
}

fn tag<'a>(i: &'a Value, key: &str) -> Option<&'a str> {
    i["TagList"].as_array()?.iter().find(|t| t["Key"] == key)?["Value"].as_str()
}

/// A claim exactly as a Crossplane user writes it, with only the apiVersion changed.
fn crossplane_claim(name: &str, ns: &str, policy: &str) -> Value {
    serde_yaml::from_str(&format!(
        r#"apiVersion: paved.dev/v1alpha1
kind: PostgreSQLInstance
metadata:
  name: {name}
  namespace: {ns}
spec:
  compositionRef:
    name: postgresql-aws-e2e
  parameters:
    size: small
    storageGB: 50
    multiAZ: true
  deletionPolicy: {policy}
  writeConnectionSecretToRef:
    name: {name}-conn
"#
    ))
    .expect("the claim is YAML")
}

/// moto seeded, the e2e Composition, and namespace `ns` of `classification` with no
/// claims left from an earlier run. Returns the seed and the operator flags.
async fn setup(cp: &ControlPlane, ns: &str, classification: &str) -> Result<Value> {
    let client = cp.client().await?;
    let seed = db::moto(cp, "seed.py", &[])?;
    aws_composition(cp, &seed, "postgresql-aws-e2e", "2s")?;
    namespace(cp, ns, "aws", classification)?;
    let _op = Operator::start(cp, &format!("{ns}-cleanup"), &FLAGS)?;
    clear(&client, cp, ns).await?;
    Ok(seed)
}

const FLAGS: [&str; 2] = ["--cloud-list-ttl-seconds", "1"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_every_step_of_an_rds_create_leaves_exactly_one_instance() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let ns = "e2e-aws-crash";
    setup(cp, ns, "internal").await?;
    let pgs: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), ns);
    let crashed = crash_at_every_step(cp, &pgs, "paved-e2e-aws-crash", |name| {
        crossplane_claim(name, ns, "Delete")
    })
    .await?;
    assert!(
        instance(cp, &crashed[1].2)?.is_some(),
        "the create crashed right after reached the cloud"
    );
    let _op = Operator::start(cp, "aws-crash", &FLAGS)?;
    for (name, uid, _) in &crashed {
        ready(&pgs, name).await?;
        let owned = db::moto(cp, "query.py", &["instances"])?
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| tag(i, "paved.dev/claim-uid") == Some(uid.as_str()))
            .count();
        assert_eq!(owned, 1, "{name}: exactly one instance after the crash");
    }
    // Each instance its own DbiResourceId (what a service role's rds-db:connect names;
    // moto as shipped gives all the same one: e2e/moto/server.py).
    let ids: Vec<String> = db::moto(cp, "query.py", &["instances"])?
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["DbiResourceId"].as_str().map(String::from))
        .collect();
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    assert!(ids.len() >= 2 && distinct.len() == ids.len(), "{ids:?}");
    for (name, _, external) in &crashed {
        pgs.delete(name, &DeleteParams::default()).await?;
        gone(&pgs, name).await?;
        assert!(instance(cp, external)?.is_none(), "{name}: deleted");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phi_claim_is_compliant_in_moto_drift_is_corrected_and_deletion_keeps_a_snapshot(
) -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let phi = "e2e-aws-phi";
    let seed = setup(cp, phi, "phi").await?;
    let key = seed["kms_key_arn"].as_str().unwrap().to_string();
    let pgs_phi: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), phi);
    let _op = Operator::start(cp, "aws-phi", &FLAGS)?;
    // The Crossplane-shaped PHI claim: every compliance property in moto's state.
    create(cp, &crossplane_claim("records", phi, "Delete"))?;
    let records = ready(&pgs_phi, "records").await?;
    let st = records.status.clone().unwrap();
    let id = st.external_name.clone().unwrap();
    let i = instance(cp, &id)?.context("instance in moto")?;
    assert_eq!(i["StorageEncrypted"], true);
    assert_eq!(i["KmsKeyId"], key.as_str());
    assert_eq!(i["PubliclyAccessible"], false);
    assert_eq!(i["DBSubnetGroup"]["DBSubnetGroupName"], "paved-private-db");
    // Its own security group beside the Composition's: PostgreSQL in from the
    // client range only, nothing out; the claim's.
    let own_name = format!("paved-{id}");
    let own = db::moto(cp, "query.py", &["security-group", &own_name])?;
    let own_id = own["GroupId"]
        .as_str()
        .context("its own security group")?
        .to_string();
    let mut groups: Vec<&str> = i["VpcSecurityGroups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["VpcSecurityGroupId"].as_str())
        .collect();
    groups.sort();
    let mut want = vec![seed["security_group"].as_str().unwrap(), own_id.as_str()];
    want.sort();
    assert_eq!(groups, want);
    assert_eq!(own["VpcId"], seed["vpc_id"]);
    let rules = |g: &Value| -> Vec<String> {
        g["IpPermissions"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| {
                p["IpRanges"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(move |r| {
                        format!(
                            "{} {}-{} {}",
                            p["IpProtocol"], p["FromPort"], p["ToPort"], r["CidrIp"]
                        )
                    })
            })
            .collect()
    };
    assert_eq!(rules(&own), vec![r#""tcp" 5432-5432 "10.20.0.0/16""#]);
    assert_eq!(own["IpPermissionsEgress"], json!([]), "nothing out");
    assert!(own["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["Key"] == "paved.dev/claim-uid"
            && t["Value"] == records.metadata.uid.as_deref().unwrap()));
    // Opened to everything by hand: closed again.
    db::moto(cp, "query.py", &["widen-group", &own_id])?;
    eventually("the group's rules put back", T, || async {
        let g = db::moto(cp, "query.py", &["security-group", &own_name])?;
        Ok((rules(&g) == vec![r#""tcp" 5432-5432 "10.20.0.0/16""#]).then_some(()))
    })
    .await?;
    assert_eq!(i["BackupRetentionPeriod"], 14);
    assert_eq!(i["PreferredBackupWindow"], "03:00-04:00");
    assert_eq!(i["MultiAZ"], true);
    assert_eq!(i["DeletionProtection"], true, "PHI is deletion-protected");
    assert_eq!(i["DBInstanceClass"], "db.t4g.medium");
    assert_eq!(i["AllocatedStorage"], 50);
    assert_eq!(
        i["MasterUserSecret"]["KmsKeyId"],
        key.as_str(),
        "master secret encrypted with the composition key"
    );
    let group = i["DBParameterGroups"][0]["DBParameterGroupName"]
        .as_str()
        .unwrap()
        .to_string();
    let params = db::moto(cp, "query.py", &["parameters", &group])?;
    assert!(
        params
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["ParameterName"] == "rds.force_ssl" && p["ParameterValue"] == "1"),
        "TLS forced: {params}"
    );
    for (k, v) in [
        ("Owner", "team-claims"),
        ("App", phi),
        ("CostCenter", "CC-4410"),
        ("Environment", "prod"),
        ("DataClassification", "phi"),
    ] {
        assert_eq!(tag(&i, k), Some(v), "tag {k}");
    }
    let secret = db::moto(
        cp,
        "query.py",
        &[
            "secret",
            i["MasterUserSecret"]["SecretArn"].as_str().unwrap(),
        ],
    )?;
    assert!(
        secret["Tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["Key"] == "Owner" && t["Value"] == "team-claims"),
        "compliance tags on the master secret: {secret}"
    );
    // Status says what a platform engineer needs.
    assert_eq!(st.provider.as_deref(), Some("aws"));
    assert_eq!(st.region.as_deref(), Some("us-east-1"));
    assert_eq!(st.encryption_key_id.as_deref(), Some(key.as_str()));
    assert!(st.endpoint.as_deref().is_some_and(|e| e.contains(&id)));
    assert_eq!(st.port, Some(5432));
    assert_eq!(st.estimated_monthly_cost.as_deref(), Some("USD 53.20"));

    // The connection Secret comes through External Secrets, from the RDS-managed secret.
    let es = external_secret(&client, phi, "records-conn").await?;
    assert_eq!(
        es.data["spec"]["dataFrom"][0]["extract"]["key"],
        i["MasterUserSecret"]["SecretArn"]
    );
    assert_eq!(es.data["spec"]["secretStoreRef"]["name"], "paved");
    assert_eq!(
        es.data["spec"]["target"]["template"]["data"]["sslmode"],
        "require"
    );
    let np = cp.kubectl(&[
        "get",
        "networkpolicy",
        "-n",
        phi,
        "paved-db-records",
        "-o",
        "json",
    ])?;
    assert!(np.contains("10.20.0.0/16") && np.contains("5432"), "{np}");

    // Drift behind Paved's back is corrected, with an Event.
    db::moto(cp, "query.py", &["drift", &id])?;
    eventually("drift corrected in moto", T, || async {
        let i = instance(cp, &id)?.unwrap();
        Ok(
            (i["DBInstanceClass"] == "db.t4g.medium" && i["BackupRetentionPeriod"] == 14)
                .then_some(()),
        )
    })
    .await?;
    let events = cp.kubectl(&[
        "get",
        "events",
        "-n",
        phi,
        "-o",
        "jsonpath={.items[*].reason}",
    ])?;
    assert!(events.contains("DriftCorrected"), "{events}");

    // PHI: the claim asked for Delete, the floor keeps a snapshot; protection is
    // lifted only for the claim's own deletion.
    pgs_phi.delete("records", &DeleteParams::default()).await?;
    gone(&pgs_phi, "records").await?;
    assert!(instance(cp, &id)?.is_none());
    assert!(
        db::moto(cp, "query.py", &["security-group", &own_name])?.is_null(),
        "its own security group goes with it"
    );
    let snapshots = db::moto(cp, "query.py", &["snapshots"])?;
    assert!(
        snapshots
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["DBSnapshotIdentifier"] == format!("{id}-final") && s["Encrypted"] == true),
        "PHI keeps an encrypted final snapshot"
    );

    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_claims_instance_is_never_adopted_or_deleted() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let ns = "e2e-aws-collide";
    let seed = setup(cp, ns, "internal").await?;
    let key = seed["kms_key_arn"].as_str().unwrap();
    let pgs: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), ns);
    // Made before an operator runs: the instance of its name is someone else's.
    create(cp, &crossplane_claim("collides", ns, "Delete"))?;
    let collides = pgs.get("collides").await?.uid().unwrap();
    let collides_id = paved_compose::postgresql::external_name(&collides);
    db::moto(
        cp,
        "query.py",
        &["create", &collides_id, "someone-else", key],
    )?;
    let _op = Operator::start(cp, "aws-collide", &FLAGS)?;
    let c = eventually("collides OwnedByOther", T, || async {
        let p = pgs.get("collides").await?;
        Ok(p.status
            .and_then(|s| conditions::find(&s.conditions, "Synced").cloned())
            .filter(|c| c.reason == "OwnedByOther"))
    })
    .await?;
    assert!(c.message.contains("will not adopt"), "{}", c.message);
    pgs.delete("collides", &DeleteParams::default()).await?;
    gone(&pgs, "collides").await?;
    let i = instance(cp, &collides_id)?.context("another claim's instance is never deleted")?;
    assert_eq!(tag(&i, "paved.dev/claim-uid"), Some("someone-else"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_deletion_policy_acts_and_a_delete_without_confirmation_keeps_a_snapshot() -> Result<()>
{
    let cp = control_plane();
    let client = cp.client().await?;
    let internal = "e2e-aws-internal";
    setup(cp, internal, "internal").await?;
    let pgs_internal: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), internal);
    let _op = Operator::start(cp, "aws-policy", &FLAGS)?;
    // Deletion policies.
    for (name, policy) in [
        ("gone", "Delete"),
        ("kept", "Orphan"),
        ("snapped", "Snapshot"),
        ("pruned", "Delete"),
    ] {
        create(cp, &crossplane_claim(name, internal, policy))?;
    }
    let mut ids = vec![];
    for name in ["gone", "kept", "snapped", "pruned"] {
        ids.push(
            ready(&pgs_internal, name)
                .await?
                .status
                .unwrap()
                .external_name
                .unwrap(),
        );
    }
    // `gone` is deleted with the explicit act; `pruned`, which also says Delete, is
    // deleted as a prune or a rename in Git would delete it: without.
    db::confirm_delete(&pgs_internal, "gone").await?;
    for name in ["gone", "kept", "snapped", "pruned"] {
        pgs_internal.delete(name, &DeleteParams::default()).await?;
        gone(&pgs_internal, name).await?;
    }
    let snapshots = db::moto(cp, "query.py", &["snapshots"])?;
    let snap = |id: &str| {
        snapshots
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["DBSnapshotIdentifier"] == format!("{id}-final"))
            .cloned()
    };
    assert!(
        instance(cp, &ids[0])?.is_none() && snap(&ids[0]).is_none(),
        "Delete, confirmed: no instance, no snapshot"
    );
    assert!(
        instance(cp, &ids[3])?.is_none() && snap(&ids[3]).is_some(),
        "Delete, not confirmed: a final snapshot first"
    );
    assert!(
        instance(cp, &ids[1])?.is_some(),
        "Orphan: the instance stays"
    );
    assert!(
        instance(cp, &ids[2])?.is_none(),
        "Snapshot: the instance goes..."
    );
    let s = snap(&ids[2]).context("...after a final snapshot")?;
    assert_eq!(s["Encrypted"], true);

    Ok(())
}

/// A claim that observes `name` (an existing database) in `ns`.
fn observer(claim: &str, ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "paved.dev/v1alpha1", "kind": "PostgreSQLInstance",
        "metadata": { "name": claim, "namespace": ns },
        "spec": {
            "compositionRef": { "name": "postgresql-aws-e2e" },
            "existing": { "externalName": name },
        }
    })
}

/// What of an instance an observer must never change.
fn untouched(i: &Value) -> Value {
    json!([
        i["TagList"],
        i["BackupRetentionPeriod"],
        i["PubliclyAccessible"],
        i["DeletionProtection"],
        i["DBInstanceClass"],
        i["AllocatedStorage"],
        i["MultiAZ"],
        i["IAMDatabaseAuthenticationEnabled"],
        i["VpcSecurityGroups"],
        i["DBParameterGroups"],
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_instance_is_observed_read_only_where_its_team_grants_it() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let (ns, other) = ("e2e-aws-observe", "e2e-aws-observe-other");
    setup(cp, ns, "phi").await?;
    paved_e2e::db::team_namespace(cp, "team-orders", other, "aws", "internal")?;
    {
        let _op = Operator::start(cp, "aws-observe-cleanup", &FLAGS)?;
        clear(&client, cp, other).await?;
    }
    // A database made by hand long ago (a fresh name per run: moto keeps state).
    let legacy = format!("legacy-orders-{}", std::process::id());
    let made = db::moto(cp, "query.py", &["create-legacy", &legacy])?;
    assert_eq!(made["StorageEncrypted"], false);
    let before = untouched(&instance(cp, &legacy)?.context("made")?);
    // The platform grants it (and a name that does not exist) to namespace `ns` only.
    db::grant_existing(
        cp,
        "e2e-existing",
        "team-claims",
        &[
            (ns, &legacy, "postgresql-aws-e2e"),
            (ns, "never-made", "postgresql-aws-e2e"),
        ],
    )?;
    let op = Operator::start(cp, "aws-observe", &FLAGS)?;
    let pgs: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), ns);
    create(cp, &observer("legacy", ns, &legacy))?;
    let p = ready(&pgs, "legacy").await?;
    let st = p.status.clone().unwrap();
    assert_eq!(st.external_name.as_deref(), Some(legacy.as_str()));
    assert_eq!(st.instance_class.as_deref(), Some("db.t4g.medium"));
    assert_eq!(st.storage_gb, Some(20));
    assert!(st.endpoint.is_some());
    assert!(st.estimated_monthly_cost.is_some(), "{st:?}");
    assert!(
        st.credentials_secret.is_none() && st.resource_id.is_none(),
        "nothing of an observed database is granted to a service"
    );
    // Every shortfall, one line each; the claim says so where people look.
    let fields: Vec<&str> = st
        .violations
        .iter()
        .map(|v| v.split(':').next().unwrap())
        .collect();
    for want in [
        "encryption",
        "network",
        "backups",
        "deletionProtection",
        "tag Owner",
        "tag CostCenter",
    ] {
        assert!(fields.contains(&want), "{want} in {:#?}", st.violations);
    }
    let compliant = conditions::find(&st.conditions, "Compliant").context("Compliant")?;
    assert_eq!(
        (compliant.status.as_str(), compliant.reason.as_str()),
        ("False", "BelowFloor")
    );
    let cols = cp.kubectl(&["get", "pgi", "-n", ns, "legacy"])?;
    assert!(
        cols.contains("COMPLIANT") && cols.contains("False"),
        "{cols}"
    );
    assert!(db::event_reasons(cp, ns)?.contains("BelowFloor"));
    let metrics = op.metrics()?;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("paved_database_violations{")
                && l.contains(&format!("namespace=\"{ns}\""))
                && !l.ends_with(" 0")),
        "{metrics}"
    );
    // Several polls later nothing of it has changed: no tag, no fix, no delivery; and
    // nothing of the claim either (no status write, no second Event).
    let rv = pgs.get("legacy").await?.metadata.resource_version;
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    assert_eq!(untouched(&instance(cp, &legacy)?.unwrap()), before);
    assert_eq!(pgs.get("legacy").await?.metadata.resource_version, rv);
    // This claim's (an earlier run's claim of the name may have left Events too).
    let uid = pgs.get("legacy").await?.uid().unwrap();
    let below: Value = serde_json::from_str(&cp.kubectl(&[
        "get",
        "events",
        "-n",
        ns,
        "--field-selector",
        &format!("reason=BelowFloor,involvedObject.uid={uid}"),
        "-o",
        "json",
    ])?)?;
    let items = below["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{below}");
    assert!(items[0]["count"].as_i64().unwrap_or(1) <= 1, "{below}");
    let es = external_secret(&client, ns, "legacy-connection").await;
    assert!(
        es.as_ref().is_err_and(
            |e| format!("{e:#}").contains("NotFound") || format!("{e:#}").contains("404")
        ),
        "no credentials are delivered for an observed database: {es:?}"
    );

    // Not granted: another database, the same one from another team's namespace.
    create(cp, &observer("guess", ns, "legacy-billing"))?;
    create(cp, &observer("borrowed", other, &legacy))?;
    let pgs_other: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), other);
    for (api, name) in [(&pgs, "guess"), (&pgs_other, "borrowed")] {
        let c = eventually(&format!("{name} ExistingNotGranted"), T, || async {
            let p = api.get(name).await?;
            Ok(p.status
                .and_then(|s| conditions::find(&s.conditions, "Synced").cloned())
                .filter(|c| c.reason == "ExistingNotGranted"))
        })
        .await?;
        assert!(
            c.message.contains("spec.existingDatabases"),
            "{}",
            c.message
        );
        let p = api.get(name).await?;
        assert!(
            p.status.unwrap().endpoint.is_none(),
            "nothing read for {name}"
        );
    }
    // Granted but not there: never made in its place.
    create(cp, &observer("ghost", ns, "never-made"))?;
    let c = eventually("ghost ExternalResourceMissing", T, || async {
        let p = pgs.get("ghost").await?;
        Ok(p.status
            .and_then(|s| conditions::find(&s.conditions, "Synced").cloned())
            .filter(|c| c.reason == "ExternalResourceMissing"))
    })
    .await?;
    assert!(c.message.contains("nothing to observe"), "{}", c.message);
    let ghost = pgs.get("ghost").await?.uid().unwrap();
    assert!(
        !db::moto(cp, "query.py", &["instances"])?
            .as_array()
            .unwrap()
            .iter()
            .any(|i| tag(i, "paved.dev/claim-uid") == Some(ghost.as_str())
                || i["DBInstanceIdentifier"] == "never-made"),
        "nothing was created for a claim that observes"
    );

    // The platform takes the grant back: the claim stops reading it, and what it
    // showed is no longer vouched for.
    db::grant_existing(
        cp,
        "e2e-existing",
        "team-claims",
        &[(ns, "never-made", "postgresql-aws-e2e")],
    )?;
    let p = eventually("legacy ExistingNotGranted", T, || async {
        let p = pgs.get("legacy").await?;
        let refused = p.status.as_ref().is_some_and(|s| {
            conditions::find(&s.conditions, "Synced")
                .is_some_and(|c| c.reason == "ExistingNotGranted")
        });
        Ok(refused.then_some(p))
    })
    .await?;
    let st = p.status.unwrap();
    assert!(st.endpoint.is_none() && st.violations.is_empty(), "{st:?}");
    assert_eq!(
        conditions::find(&st.conditions, "Compliant").map(|c| c.status.as_str()),
        Some("Unknown")
    );
    assert!(
        !op.metrics()?
            .lines()
            .any(|l| l.starts_with("paved_database_violations{") && l.contains("name=\"legacy\"")),
        "the gauge goes with the grant"
    );

    // The claim goes; the database stays as it was.
    for name in ["legacy", "guess", "ghost"] {
        pgs.delete(name, &DeleteParams::default()).await?;
        gone(&pgs, name).await?;
    }
    pgs_other
        .delete("borrowed", &DeleteParams::default())
        .await?;
    gone(&pgs_other, "borrowed").await?;
    assert_eq!(untouched(&instance(cp, &legacy)?.unwrap()), before);
    assert!(db::event_reasons(cp, ns)?.contains("Released"));
    drop(op);
    Ok(())
}

fn adopter(claim: &str, ns: &str, name: &str, mode: &str) -> Value {
    json!({
        "apiVersion": "paved.dev/v1alpha1", "kind": "PostgreSQLInstance",
        "metadata": { "name": claim, "namespace": ns },
        "spec": {
            "compositionRef": { "name": "postgresql-aws-adopt" },
            "existing": { "externalName": name, "mode": mode },
        }
    })
}

/// What of an instance adopting must never change: it is the same database.
fn same_database(i: &Value) -> Value {
    json!([
        i["DbiResourceId"],
        i["InstanceCreateTime"],
        i["DBInstanceArn"],
        i["KmsKeyId"],
        i["DBName"],
        i["MasterUsername"],
    ])
}

/// The Synced condition's reason and message once it is `reason`.
async fn synced_as(
    pgs: &Api<PostgreSQLInstance>,
    name: &str,
    reason: &str,
) -> Result<paved_api::Condition> {
    eventually(&format!("{name} {reason}"), T, || async {
        let p = pgs.get(name).await?;
        Ok(p.status
            .and_then(|s| conditions::find(&s.conditions, "Synced").cloned())
            .filter(|c| c.reason == reason))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_instance_is_adopted_in_place_and_brought_to_the_floor() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let ns = "e2e-aws-adopt";
    let seed = setup(cp, ns, "phi").await?;
    // The platform's Composition for adopted databases: it keeps passwords as they
    // are until told to rotate them.
    aws_composition(cp, &seed, "postgresql-aws-adopt", "2s")?;
    let passwords = |how: &str| db::existing_password(cp, "postgresql-aws-adopt", how);
    // (An earlier run's patch outlives the apply above.)
    passwords("Keep")?;
    let key = seed["kms_key_arn"].as_str().context("key")?;
    let run = std::process::id();
    // Made by hand: encrypted with the platform's key, but public, a day of backups,
    // unprotected, its own tag only, TLS not forced, a password nobody manages, and
    // bigger than the Composition's default size.
    let legacy = format!("legacy-adopt-{run}");
    db::moto(
        cp,
        "query.py",
        &[
            "create-legacy-encrypted",
            &legacy,
            key,
            "db.m5.large",
            "200",
        ],
    )?;
    // Unencrypted: cannot be taken over in place. Another claim's: never taken.
    let plain = format!("legacy-plain-{run}");
    db::moto(cp, "query.py", &["create-legacy", &plain])?;
    let theirs = format!("legacy-theirs-{run}");
    db::moto(
        cp,
        "query.py",
        &["create", &theirs, "another-claims-uid", key],
    )?;
    let before = instance(cp, &legacy)?.context("made")?;
    let (plain_before, theirs_before) = (
        untouched(&instance(cp, &plain)?.unwrap()),
        untouched(&instance(cp, &theirs)?.unwrap()),
    );
    db::grant(
        cp,
        "e2e-adopt",
        "team-claims",
        &[
            (ns, &legacy, "postgresql-aws-adopt", "Adopt"),
            (ns, &plain, "postgresql-aws-adopt", "Adopt"),
            (ns, &theirs, "postgresql-aws-adopt", "Adopt"),
        ],
    )?;
    let op = Operator::start(cp, "aws-adopt", &FLAGS)?;
    let pgs: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), ns);
    create(cp, &adopter("legacy", ns, &legacy, "Adopt"))?;

    // Taken over and brought to the floor, its password left alone: no Secret yet.
    let c = synced_as(&pgs, "legacy", "CredentialsNotManaged").await?;
    assert!(
        c.message.contains("manage-master-user-password"),
        "{}",
        c.message
    );
    let uid = pgs.get("legacy").await?.uid().unwrap();
    let i = eventually("the instance at the floor", T, || async {
        let i = instance(cp, &legacy)?.context("still there")?;
        let floor = i["BackupRetentionPeriod"].as_i64() >= Some(7)
            && i["PubliclyAccessible"] == false
            && i["DeletionProtection"] == true
            && i["IAMDatabaseAuthenticationEnabled"] == true
            && i["DBParameterGroups"][0]["DBParameterGroupName"]
                == format!("paved-{legacy}-force-ssl").as_str();
        Ok(floor.then_some(i))
    })
    .await?;
    assert_eq!(
        same_database(&i),
        same_database(&before),
        "the same database"
    );
    // Its own parameter group was copied, not replaced: its settings stay, TLS forced.
    let params = db::moto(
        cp,
        "query.py",
        &["parameters", &format!("paved-{legacy}-force-ssl")],
    )?;
    let param = |n: &str| {
        params
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["ParameterName"] == n)
            .and_then(|p| p["ParameterValue"].as_str().map(String::from))
    };
    assert_eq!(param("rds.force_ssl").as_deref(), Some("1"));
    assert_eq!(
        param("shared_preload_libraries").as_deref(),
        Some("pg_stat_statements")
    );
    assert_eq!(tag(&i, "paved.dev/claim-uid"), Some(uid.as_str()));
    assert_eq!(tag(&i, "CostCenter"), Some("CC-4410"));
    assert_eq!(tag(&i, "Team"), Some("orders"), "its own tags are kept");
    // Its size is what it runs at (the claim says none), and its old groups stay.
    assert_eq!(
        (
            i["DBInstanceClass"].as_str(),
            i["AllocatedStorage"].as_i64()
        ),
        (Some("db.m5.large"), Some(200))
    );
    let groups = |i: &Value| -> Vec<String> {
        i["VpcSecurityGroups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["VpcSecurityGroupId"].as_str().unwrap().to_string())
            .collect()
    };
    for g in groups(&before) {
        assert!(groups(&i).contains(&g), "{g} kept in {:?}", groups(&i));
    }
    assert!(groups(&i).contains(&seed["security_group"].as_str().unwrap().to_string()));
    assert!(db::event_reasons_about(cp, ns, "legacy")?.contains("Adopted"));

    // The platform lets adoption rotate passwords: RDS now keeps it, under the
    // Composition's key, and the claim delivers it like any other.
    passwords("Rotate")?;
    let p = ready(&pgs, "legacy").await?;
    let st = p.status.unwrap();
    let i = instance(cp, &legacy)?.unwrap();
    let secret = i["MasterUserSecret"]["SecretArn"]
        .as_str()
        .context("managed")?;
    assert_eq!(st.credentials_secret.as_deref(), Some(secret));
    assert_eq!(st.instance_class.as_deref(), Some("db.m5.large"));
    assert_eq!(st.storage_gb, Some(200));
    assert_eq!(same_database(&i), same_database(&before));
    let es = external_secret(&client, ns, "legacy-connection").await?;
    assert_eq!(es.data["spec"]["dataFrom"][0]["extract"]["key"], secret);
    assert_eq!(
        es.data["spec"]["target"]["template"]["data"]["database"],
        "orders"
    );

    // Back to observing: nothing is written any more, not even a repair.
    let mode = |m: &str| {
        cp.kubectl(&[
            "patch",
            "pgi",
            "-n",
            ns,
            "legacy",
            "--type=merge",
            "-p",
            &format!(r#"{{"spec":{{"existing":{{"mode":"{m}"}}}}}}"#),
        ])
    };
    mode("Observe")?;
    eventually("legacy judged as observed", T, || async {
        let p = pgs.get("legacy").await?;
        Ok(p.status
            .and_then(|s| conditions::find(&s.conditions, "Compliant").cloned())
            .filter(|c| c.status != "Unknown"))
    })
    .await?;
    db::moto(cp, "query.py", &["drift", &legacy])?;
    let drifted = untouched(&instance(cp, &legacy)?.unwrap());
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    assert_eq!(untouched(&instance(cp, &legacy)?.unwrap()), drifted);
    // Managing again: the drift is repaired.
    mode("Adopt")?;
    eventually("backups repaired", T, || async {
        let i = instance(cp, &legacy)?.unwrap();
        Ok((i["BackupRetentionPeriod"].as_i64() >= Some(7)).then_some(()))
    })
    .await?;

    // Unencrypted: refused with how to bring it over, and nothing of it changed.
    create(cp, &adopter("plain", ns, &plain, "Adopt"))?;
    let c = synced_as(&pgs, "plain", "EncryptionMismatch").await?;
    assert!(c.message.contains("copy-db-snapshot"), "{}", c.message);
    // Another claim's: never taken.
    create(cp, &adopter("theirs", ns, &theirs, "Adopt"))?;
    let c = synced_as(&pgs, "theirs", "OwnedByOther").await?;
    assert!(c.message.contains("another-claims-uid"), "{}", c.message);
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert_eq!(untouched(&instance(cp, &plain)?.unwrap()), plain_before);
    assert_eq!(untouched(&instance(cp, &theirs)?.unwrap()), theirs_before);

    // The claims go; every database stays (an adopted one too: Orphan by default).
    for name in ["legacy", "plain", "theirs"] {
        pgs.delete(name, &DeleteParams::default()).await?;
        gone(&pgs, name).await?;
    }
    let i = instance(cp, &legacy)?.context("an adopted database outlives its claim")?;
    assert_eq!(same_database(&i), same_database(&before));
    assert!(db::event_reasons_about(cp, ns, "legacy")?.contains("Orphaned"));
    assert_eq!(untouched(&instance(cp, &plain)?.unwrap()), plain_before);
    assert_eq!(untouched(&instance(cp, &theirs)?.unwrap()), theirs_before);
    drop(op);
    Ok(())
}

/// e2e/fakes/fault_proxy.py in front of moto, stopped by PID when dropped.
struct FaultProxy {
    child: std::process::Child,
    addr: String,
}

impl FaultProxy {
    fn start(upstream: &str) -> Result<FaultProxy> {
        use std::io::BufRead;
        let mut child = std::process::Command::new("python3")
            .arg(paved_e2e::repo_root().join("e2e/fakes/fault_proxy.py"))
            .args(["--upstream", upstream])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line)?;
        let port: u16 = line.trim().parse().context("the proxy printed its port")?;
        Ok(FaultProxy {
            child,
            addr: format!("127.0.0.1:{port}"),
        })
    }

    fn inject(&self, fault: Value) -> Result<()> {
        paved_e2e::http_post(&self.addr, "/_fake/inject", &fault.to_string())?;
        Ok(())
    }

    fn calls(&self) -> Result<Value> {
        Ok(serde_json::from_str(&paved_e2e::http_get(
            &self.addr,
            "/_fake/calls",
        )?)?)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_5xx_and_throttling_are_retried_and_converge_with_no_duplicate() -> Result<()> {
    let base = control_plane();
    let client = base.client().await?;
    let seed = db::moto(base, "seed.py", &[])?;
    aws_composition(base, &seed, "postgresql-aws-e2e", "2s")?;
    let ns = "e2e-aws-faults";
    namespace(base, ns, "aws", "internal")?;
    let flags = ["--cloud-list-ttl-seconds", "1"];
    {
        let _op = Operator::start(base, "aws-faults-cleanup", &flags)?;
        clear(&client, base, ns).await?;
    }
    // The operator reaches moto only through the proxy.
    let proxy = FaultProxy::start(&base.env["AWS_ENDPOINT_URL"])?;
    let mut cp = base.clone();
    cp.env
        .insert("AWS_ENDPOINT_URL".into(), format!("http://{}", proxy.addr));
    // More 503s on the creates than the SDK's three attempts per call can absorb for
    // two claims (2 x 2), so Paved's own backoff is exercised too; throttling (RDS answers HTTP 400 Throttling) with a
    // Retry-After on the list every claim's observe starts with.
    proxy.inject(json!({ "status": 503, "count": 8, "match": "CreateDBInstance" }))?;
    proxy.inject(
        json!({ "status": 400, "count": 4, "match": "DescribeDBInstances", "retryAfter": 2 }),
    )?;
    let _op = Operator::start(&cp, "aws-faults", &flags)?;
    let pgs: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), ns);
    for name in ["flaky-a", "flaky-b"] {
        create(base, &crossplane_claim(name, ns, "Delete"))?;
    }
    let mut uids = vec![];
    for name in ["flaky-a", "flaky-b"] {
        uids.push(ready(&pgs, name).await?.uid().unwrap());
    }
    let instances = db::moto(base, "query.py", &["instances"])?;
    for uid in &uids {
        let owned = instances
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| tag(i, "paved.dev/claim-uid") == Some(uid.as_str()))
            .count();
        assert_eq!(
            owned, 1,
            "exactly one instance per claim despite the faults"
        );
    }
    let calls = proxy.calls()?;
    assert_eq!(
        calls["faults"],
        json!({ "CreateDBInstance": 8, "DescribeDBInstances": 4 }),
        "every injected fault was met: {calls}"
    );
    // The 8 faults and one success per claim: no create was sent twice (moto would
    // have answered a duplicate, and it would count here).
    assert_eq!(
        calls["calls"]["CreateDBInstance"], 10,
        "CreateDBInstance calls: {calls}"
    );
    let log = calls["log"].as_array().unwrap();
    let create_times: Vec<f64> = log
        .iter()
        .filter(|e| e["action"] == "CreateDBInstance")
        .map(|e| e["t"].as_f64().unwrap())
        .collect();
    // Back to back would be milliseconds; the SDK's and Paved's backoffs are jittered,
    // so the bound is well below their sum.
    let span = create_times.last().unwrap() - create_times.first().unwrap();
    assert!(
        span >= 0.3,
        "the failed creates were not retried back to back ({span:.3}s): {create_times:?}"
    );
    // One Warning per transition, with the provider's own reason (a 5xx is
    // ProviderUnavailable, a throttle Throttled).
    let reasons = db::event_reasons(base, ns)?;
    assert!(
        reasons.contains("ProviderUnavailable") || reasons.contains("Throttled"),
        "the failure Paved saw is an Event with its reason: {reasons}"
    );
    for name in ["flaky-a", "flaky-b"] {
        pgs.delete(name, &DeleteParams::default()).await?;
        gone(&pgs, name).await?;
    }
    Ok(())
}
