//! PostgreSQLInstance on the `aws` provider against moto: the Crossplane-shaped claim
//! Ready with every compliance property visible in moto's state, drift corrected,
//! a crash right after the cloud create leaving exactly one instance, each deletion
//! policy, and PHI's deletion protection and final snapshot.

use anyhow::{Context, Result};
use kube::{api::DeleteParams, Api, ResourceExt};
use paved_api::{conditions, PostgreSQLInstance};
use paved_e2e::{
    control_plane,
    db::{
        self, aws_composition, clear, crash_at, crashed_after_create, create, external_secret,
        gone, namespace, ready, T,
    },
    eventually, ControlPlane, Operator,
};
use serde_json::Value;

fn instance(cp: &ControlPlane, id: &str) -> Result<Option<Value>> {
    Ok(db::moto(cp, "query.py", &["instances"])?
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["DBInstanceIdentifier"] == id)
        .cloned())
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_claims_are_compliant_in_moto_and_deleted_by_policy() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let seed = db::moto(cp, "seed.py", &[])?;
    aws_composition(cp, &seed, "postgresql-aws-e2e", "2s")?;
    let key = seed["kms_key_arn"].as_str().unwrap().to_string();
    let (phi, internal) = ("e2e-aws-phi", "e2e-aws-internal");
    namespace(cp, phi, "aws", "phi")?;
    namespace(cp, internal, "aws", "internal")?;
    let flags = ["--cloud-list-ttl-seconds", "1"];
    {
        let _op = Operator::start(cp, "aws-cleanup", &flags)?;
        clear(&client, cp, phi).await?;
        clear(&client, cp, internal).await?;
    }

    // A crash right after the cloud create, before anything is recorded.
    create(cp, &crossplane_claim("crashy", internal, "Delete"))?;
    // Started with the crash point armed: it aborts right after CreateDBInstance.
    crash_at(cp, "paved-e2e-aws-crash", "after-create").await?;
    let pgs_internal: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), internal);
    let (crashy_uid, crashy_id) = crashed_after_create(&pgs_internal, "crashy").await?;
    assert!(
        instance(cp, &crashy_id)?.is_some(),
        "the create reached the cloud"
    );

    let op = Operator::start(cp, "aws", &flags)?;
    ready(&pgs_internal, "crashy").await?;
    let owned: Vec<_> = db::moto(cp, "query.py", &["instances"])?
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| tag(i, "paved.dev/claim-uid") == Some(crashy_uid.as_str()))
        .cloned()
        .collect();
    assert_eq!(owned.len(), 1, "exactly one instance after the crash");

    // The Crossplane-shaped PHI claim: every compliance property in moto's state.
    create(cp, &crossplane_claim("records", phi, "Delete"))?;
    let pgs_phi: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), phi);
    let records = ready(&pgs_phi, "records").await?;
    let st = records.status.clone().unwrap();
    let id = st.external_name.clone().unwrap();
    let i = instance(cp, &id)?.context("instance in moto")?;
    assert_eq!(i["StorageEncrypted"], true);
    assert_eq!(i["KmsKeyId"], key.as_str());
    assert_eq!(i["PubliclyAccessible"], false);
    assert_eq!(i["DBSubnetGroup"]["DBSubnetGroupName"], "paved-private-db");
    assert_eq!(
        i["VpcSecurityGroups"][0]["VpcSecurityGroupId"],
        seed["security_group"]
    );
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
    assert_eq!(
        es.data["spec"]["secretStoreRef"]["name"],
        "aws-secrets-manager"
    );
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

    // A name collision with another claim's instance is refused, never adopted.
    drop(op);
    create(cp, &crossplane_claim("collides", internal, "Delete"))?;
    let collides = pgs_internal.get("collides").await?.uid().unwrap();
    let collides_id = paved_compose::postgresql::external_name(&collides);
    db::moto(
        cp,
        "query.py",
        &["create", &collides_id, "someone-else", &key],
    )?;
    let _op = Operator::start(cp, "aws-2", &flags)?;
    eventually("collides OwnedByOther", T, || async {
        let p = pgs_internal.get("collides").await?;
        Ok(p.status
            .and_then(|s| conditions::find(&s.conditions, "Synced").cloned())
            .filter(|c| c.reason == "OwnedByOther"))
    })
    .await?;

    // Deletion policies.
    for (name, policy) in [
        ("gone", "Delete"),
        ("kept", "Orphan"),
        ("snapped", "Snapshot"),
    ] {
        create(cp, &crossplane_claim(name, internal, policy))?;
    }
    let mut ids = vec![];
    for name in ["gone", "kept", "snapped"] {
        ids.push(
            ready(&pgs_internal, name)
                .await?
                .status
                .unwrap()
                .external_name
                .unwrap(),
        );
    }
    for name in ["gone", "kept", "snapped", "collides"] {
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
        "Delete: no instance, no snapshot"
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
    assert!(
        instance(cp, &collides_id)?.is_some(),
        "another claim's instance is never deleted"
    );

    // PHI: the claim asked for Delete, the floor keeps a snapshot; protection is
    // lifted only for the claim's own deletion.
    pgs_phi.delete("records", &DeleteParams::default()).await?;
    gone(&pgs_phi, "records").await?;
    assert!(instance(cp, &id)?.is_none());
    let snapshots = db::moto(cp, "query.py", &["snapshots"])?;
    assert!(
        snapshots
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["DBSnapshotIdentifier"] == format!("{id}-final") && s["Encrypted"] == true),
        "PHI keeps an encrypted final snapshot"
    );

    pgs_internal
        .delete("crashy", &DeleteParams::default())
        .await?;
    gone(&pgs_internal, "crashy").await?;
    Ok(())
}
