//! Bad input is refused at admission by the real apiserver, with a message that names
//! the field and the reason (schema and CEL rules generated from the Rust types).

use anyhow::{Context, Result};
use paved_e2e::control_plane;

fn refused(manifest: &str, expect: &[&str]) -> Result<()> {
    let cp = control_plane();
    let (ok, out) = cp.kubectl_stdin(&["create", "--dry-run=server", "-f", "-"], manifest)?;
    assert!(!ok, "accepted but should be refused:\n{manifest}\n{out}");
    for e in expect {
        assert!(out.contains(e), "message lacks {e:?}:\n{out}");
    }
    Ok(())
}

fn accepted(manifest: &str) -> Result<()> {
    let cp = control_plane();
    let (ok, out) = cp.kubectl_stdin(&["create", "--dry-run=server", "-f", "-"], manifest)?;
    assert!(ok, "refused but should be accepted:\n{manifest}\n{out}");
    Ok(())
}

const GOOD: &str = r#"
apiVersion: paved.dev/v1alpha1
kind: ServiceClaim
metadata: { name: admission-ok }
spec: { owner: team-a, system: sys, costCenter: CC-1 }
"#;

#[test]
fn a_minimal_claim_is_accepted_and_defaulted() -> Result<()> {
    accepted(GOOD)?;
    let cp = control_plane();
    let (ok, out) = cp.kubectl_stdin(
        &[
            "create",
            "--dry-run=server",
            "-o",
            "jsonpath={.spec.dataClassification}/{.spec.sloTier}",
            "-f",
            "-",
        ],
        GOOD,
    )?;
    assert!(ok, "{out}");
    assert_eq!(
        out, "phi/silver",
        "classification defaults to phi, tier to silver"
    );
    Ok(())
}

#[test]
fn missing_owner_is_refused() -> Result<()> {
    refused(
        "apiVersion: paved.dev/v1alpha1\nkind: ServiceClaim\nmetadata: { name: a1 }\nspec: { system: s, costCenter: C }\n",
        &["spec.owner", "Required value"],
    )
}

#[test]
fn unknown_tier_cloud_and_classification_are_refused() -> Result<()> {
    refused(
        "apiVersion: paved.dev/v1alpha1\nkind: ServiceClaim\nmetadata: { name: a2 }\nspec: { owner: o, system: s, costCenter: C, sloTier: platinum, cloud: ibm, dataClassification: secret }\n",
        &["spec.sloTier", "platinum", "spec.cloud", "ibm", "spec.dataClassification", "secret"],
    )
}

#[test]
fn switching_default_deny_off_is_refused_with_the_reason() -> Result<()> {
    refused(
        "apiVersion: paved.dev/v1alpha1\nkind: ServiceClaim\nmetadata: { name: a3 }\nspec: { owner: o, system: s, costCenter: C, network: { defaultDeny: false } }\n",
        &["spec.network.defaultDeny", "default-deny cannot be turned off"],
    )
}

#[test]
fn open_internet_egress_and_unported_cidrs_are_refused() -> Result<()> {
    refused(
        "apiVersion: paved.dev/v1alpha1\nkind: ServiceClaim\nmetadata: { name: a4 }\nspec: { owner: o, system: s, costCenter: C, network: { egressTo: [ { cidr: 0.0.0.0/0, ports: [ { port: 443 } ] }, { cidr: 10.0.0.0/8 } ] } }\n",
        &["whole internet", "must name its ports"],
    )
}

#[test]
fn a_system_namespace_name_is_refused() -> Result<()> {
    refused(
        "apiVersion: paved.dev/v1alpha1\nkind: ServiceClaim\nmetadata: { name: kube-sneaky }\nspec: { owner: o, system: s, costCenter: C }\n",
        &["cannot be a system namespace"],
    )
}

#[test]
fn duplicate_database_names_are_refused() -> Result<()> {
    refused(
        "apiVersion: paved.dev/v1alpha1\nkind: ServiceClaim\nmetadata: { name: a5 }\nspec: { owner: o, system: s, costCenter: C, databases: [ { name: main }, { name: main } ] }\n",
        &["spec.databases", "Duplicate value"],
    )
}

#[test]
fn cloud_cannot_change_after_creation() -> Result<()> {
    let cp = control_plane();
    let name = "admission-immutable";
    let _ = cp.kubectl(&["delete", "serviceclaim", name, "--ignore-not-found"]);
    let (ok, out) = cp.kubectl_stdin(
        &["create", "-f", "-"],
        &format!("apiVersion: paved.dev/v1alpha1\nkind: ServiceClaim\nmetadata: {{ name: {name} }}\nspec: {{ owner: o, system: s, costCenter: C, cloud: gcp }}\n"),
    )?;
    assert!(ok, "{out}");
    let res = cp.kubectl(&[
        "patch",
        "serviceclaim",
        name,
        "--type=merge",
        "-p",
        r#"{"spec":{"cloud":"aws"}}"#,
    ]);
    let _ = cp.kubectl(&["delete", "serviceclaim", name, "--wait=false"]);
    let err = res.expect_err("changing cloud must be refused").to_string();
    assert!(err.contains("spec.cloud is immutable"), "{err}");
    Ok(())
}

#[test]
fn database_claims_cannot_disable_encryption_or_go_public() -> Result<()> {
    refused(
        "apiVersion: paved.dev/v1alpha1\nkind: PostgreSQLInstance\nmetadata: { name: db, namespace: default }\nspec: { parameters: { storageEncrypted: false, publiclyAccessible: true } }\n",
        &["storage encryption cannot be turned off", "cannot be publicly accessible"],
    )
}

#[test]
fn temporal_retention_zero_and_bad_email_are_refused() -> Result<()> {
    refused(
        "apiVersion: paved.dev/v1alpha1\nkind: TemporalNamespace\nmetadata: { name: t, namespace: default }\nspec: { retentionDays: 0, ownerEmail: not-an-email }\n",
        &["spec.retentionDays", "ownerEmail must be an email address"],
    )
}

#[test]
fn compositions_below_the_floor_are_refused() -> Result<()> {
    // Two kinds at once, and a backup retention under seven days without a key.
    refused(
        r#"
apiVersion: paved.dev/v1alpha1
kind: Composition
metadata: { name: bad-floor }
spec:
  temporal: { frontendAddress: "x:7233", defaultRetentionDays: 1, maxRetentionDays: 2 }
  postgresql:
    provider: aws
    region: us-east-1
    engineVersion: "16"
    sizes: { small: a, medium: b, large: c }
    storage: { minGB: 20, maxGB: 100 }
    backup: { retentionDays: 3 }
    deletion: { policy: Delete }
"#,
        &[
            "exactly one of spec.service, spec.postgresql or spec.temporal",
            "retentionDays",
            "encryption.keyId is required",
        ],
    )
}

#[test]
fn egress_wider_than_a_slash_eight_is_refused() -> Result<()> {
    refused(
        "apiVersion: paved.dev/v1alpha1\nkind: ServiceClaim\nmetadata: { name: a6 }\nspec: { owner: o, system: s, costCenter: C, network: { egressTo: [ { cidr: 0.0.0.0/1, ports: [ { port: 443 } ] } ] } }\n",
        &["wider than /8"],
    )
}

#[test]
fn phi_cannot_be_lowered() -> Result<()> {
    let cp = control_plane();
    let name = "admission-phi";
    let _ = cp.kubectl(&["delete", "serviceclaim", name, "--ignore-not-found"]);
    let (ok, out) = cp.kubectl_stdin(
        &["create", "-f", "-"],
        &format!("apiVersion: paved.dev/v1alpha1\nkind: ServiceClaim\nmetadata: {{ name: {name} }}\nspec: {{ owner: o, system: s, costCenter: C, cloud: gcp }}\n"),
    )?;
    assert!(ok, "{out}");
    let res = cp.kubectl(&[
        "patch",
        "serviceclaim",
        name,
        "--type=merge",
        "-p",
        r#"{"spec":{"dataClassification":"internal"}}"#,
    ]);
    let other = cp.kubectl(&[
        "patch",
        "serviceclaim",
        name,
        "--type=merge",
        "-p",
        r#"{"spec":{"costCenter":"CC-2"}}"#,
    ]);
    let _ = cp.kubectl(&["delete", "serviceclaim", name, "--wait=false"]);
    let err = res.expect_err("lowering phi must be refused").to_string();
    assert!(err.contains("cannot be lowered from phi"), "{err}");
    other.expect("other changes to a phi claim are fine");
    Ok(())
}

#[test]
fn storage_never_shrinks_below_what_is_allocated_but_a_refused_size_can_be_reverted() -> Result<()>
{
    let cp = control_plane();
    let ns = "admission-storage";
    let _ = cp.kubectl(&["create", "namespace", ns]);
    let name = "grows";
    let _ = cp.kubectl(&[
        "delete",
        "postgresqlinstances.paved.dev",
        "-n",
        ns,
        name,
        "--ignore-not-found",
    ]);
    let (ok, out) = cp.kubectl_stdin(
        &["create", "-f", "-"],
        &format!("apiVersion: paved.dev/v1alpha1\nkind: PostgreSQLInstance\nmetadata: {{ name: {name}, namespace: {ns} }}\nspec: {{ parameters: {{ storageGB: 50 }} }}\n"),
    )?;
    assert!(ok, "{out}");
    let size = |gb: u32| {
        cp.kubectl(&[
            "patch",
            "postgresqlinstances.paved.dev",
            "-n",
            ns,
            name,
            "--type=merge",
            "-p",
            &format!(r#"{{"spec":{{"parameters":{{"storageGB":{gb}}}}}}}"#),
        ])
    };
    // Nothing allocated yet: any size may be asked for.
    size(20)?;
    // What the operator reports once it has allocated 50 GB.
    cp.kubectl(&[
        "patch",
        "postgresqlinstances.paved.dev",
        "-n",
        ns,
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"storageGB":50}}"#,
    ])?;
    let shrink = size(30);
    // A size that is never allocated (e.g. refused by the Composition), then reverted.
    size(500)?;
    let revert = size(50);
    let grow = size(60);
    let _ = cp.kubectl(&["delete", "namespace", ns, "--wait=false"]);
    let err = shrink
        .expect_err("30 GB under 50 allocated must be refused")
        .to_string();
    assert!(
        err.contains("cannot go below the storage already allocated"),
        "{err}"
    );
    revert.context("going back to the allocated size is allowed")?;
    grow.context("growing is allowed")?;
    Ok(())
}
