//! The cloud identity Paved makes for each service, pure: what the IAM role of a
//! ServiceClaim must be (name, trust, permissions, tags), and how what the cloud shows
//! differs from it. The operator observes, decides with [`plan_role`] and calls the
//! provider.

use std::collections::BTreeMap;

use paved_api::{labels, AwsServiceIdentity, SecretsConfig};
use serde_json::{json, Value};

/// Tag that marks a role as a claim's (by UID): a role without it, or with another
/// claim's, is never adopted, changed or deleted.
pub const OWNER_TAG: &str = labels::CLAIM_UID;

/// The IAM role a service runs as.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredRole {
    /// `paved-<claim UID>`: a later service of the same name never gets it.
    pub name: String,
    /// `/paved/<claim name>/` ([`role_path`]).
    pub path: String,
    /// `arn:aws:iam::<account>:role/<name>`, what the ServiceAccount is annotated with.
    pub arn: String,
    /// The trust policy: web identity from the cluster's OIDC provider for exactly
    /// `system:serviceaccount:<ns>:<sa>`, audience `sts.amazonaws.com`.
    pub trust: Value,
    /// The inline policy `paved`: read the service's own secrets, nothing else.
    pub policy: Value,
    pub permissions_boundary: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// What the cloud shows of a role (documents parsed from IAM's URL-encoded JSON).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObservedRole {
    pub arn: String,
    pub trust: Option<Value>,
    pub policy: Option<Value>,
    pub permissions_boundary: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// What to do about a role.
#[derive(Debug, Clone, PartialEq)]
pub enum RolePlan {
    Create,
    /// Ours, as desired.
    UpToDate,
    /// Ours, with these parts to put back (`trust`, `policy`, `permissionsBoundary`).
    Update(Vec<&'static str>),
    /// A role of that name that is not this claim's.
    OwnedByOther(String),
}

/// Everything a role is made from.
pub struct RoleInput<'a> {
    pub claim_uid: &'a str,
    pub claim_name: &'a str,
    pub owner: &'a str,
    /// The ServiceAccount's namespace and name.
    pub namespace: &'a str,
    pub service_account: &'a str,
    pub spec: &'a AwsServiceIdentity,
    /// The service's secrets: its path in Secrets Manager (rendered), and the region.
    pub secrets: Option<(&'a SecretsConfig, &'a str)>,
    /// ARNs of the master secrets of the service's own databases.
    pub database_secrets: &'a [String],
    /// The KMS keys those secrets are encrypted with (decrypt through Secrets Manager
    /// only).
    pub database_keys: &'a [String],
}

/// `(account, issuer)` of an OIDC provider ARN.
pub fn oidc_parts(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.split_once(":iam::")?.1;
    let (account, provider) = rest.split_once(':')?;
    let issuer = provider.strip_prefix("oidc-provider/")?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) && !issuer.is_empty())
        .then_some((account, issuer))
}

/// The name of the role of the ServiceClaim `claim_uid`.
pub fn role_name(claim_uid: &str) -> String {
    format!("paved-{claim_uid}")
}

/// The IAM path of every role made for a ServiceClaim named `claim_name`, whatever its
/// UID: a new claim of the name finds (and removes) what an earlier one left.
pub fn role_path(claim_name: &str) -> String {
    format!("/paved/{claim_name}/")
}

/// The ARN of the role of the ServiceClaim `claim_uid` (None: a malformed provider ARN).
pub fn role_arn(spec: &AwsServiceIdentity, claim_name: &str, claim_uid: &str) -> Option<String> {
    let (account, _) = oidc_parts(&spec.oidc_provider_arn)?;
    let partition = spec.oidc_provider_arn.split(':').nth(1).unwrap_or("aws");
    Some(format!(
        "arn:{partition}:iam::{account}:role{}{}",
        role_path(claim_name),
        role_name(claim_uid)
    ))
}

/// Pure: the role of a service, or why it cannot be built.
pub fn aws_role(input: &RoleInput<'_>) -> Result<DesiredRole, String> {
    let (account, issuer) = oidc_parts(&input.spec.oidc_provider_arn).ok_or_else(|| {
        format!(
            "identity.aws.oidcProviderArn {:?} is not arn:aws:iam::<account>:oidc-provider/<issuer>",
            input.spec.oidc_provider_arn
        )
    })?;
    let partition = input
        .spec
        .oidc_provider_arn
        .split(':')
        .nth(1)
        .unwrap_or("aws");
    let name = role_name(input.claim_uid);
    let trust = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Federated": input.spec.oidc_provider_arn },
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": { "StringEquals": {
                format!("{issuer}:sub"): format!("system:serviceaccount:{}:{}", input.namespace, input.service_account),
                format!("{issuer}:aud"): "sts.amazonaws.com",
            }},
        }],
    });
    let mut resources: Vec<String> = vec![];
    if let Some((cfg, path)) = input.secrets {
        if let Some(aws) = &cfg.backend.aws {
            resources.push(format!(
                "arn:{partition}:secretsmanager:{}:{account}:secret:{}/*",
                aws.region,
                path.trim_end_matches('/')
            ));
        }
    }
    resources.extend(input.database_secrets.iter().cloned());
    resources.sort();
    resources.dedup();
    // Nothing to read is a policy that allows nothing (an empty Resource list is
    // invalid in IAM; a Deny-free policy with no statements is not accepted either).
    let statements = if resources.is_empty() {
        json!([{
            "Sid": "NothingToRead",
            "Effect": "Deny",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": "*",
        }])
    } else {
        let mut st = vec![json!({
            "Sid": "OwnSecrets",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
            "Resource": resources,
        })];
        let mut keys: Vec<&String> = input.database_keys.iter().collect();
        keys.sort();
        keys.dedup();
        if !keys.is_empty() {
            // The master secrets are encrypted with the database's key: decrypting is
            // allowed only through Secrets Manager.
            let region = input
                .secrets
                .and_then(|(c, _)| c.backend.aws.as_ref())
                .map(|a| a.region.as_str())
                .unwrap_or("*");
            st.push(json!({
                "Sid": "OwnSecretsKeys",
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": keys,
                "Condition": { "StringEquals": {
                    "kms:ViaService": format!("secretsmanager.{region}.amazonaws.com"),
                }},
            }));
        }
        Value::Array(st)
    };
    let policy = json!({ "Version": "2012-10-17", "Statement": statements });
    let tags = BTreeMap::from([
        (OWNER_TAG.to_string(), input.claim_uid.to_string()),
        (labels::CLAIM_NAME.to_string(), input.claim_name.to_string()),
        (labels::OWNER.to_string(), input.owner.to_string()),
        (
            labels::MANAGED_BY.to_string(),
            labels::MANAGED_BY_VALUE.to_string(),
        ),
    ]);
    Ok(DesiredRole {
        path: role_path(input.claim_name),
        arn: role_arn(input.spec, input.claim_name, input.claim_uid).expect("checked above"),
        name,
        trust,
        policy,
        permissions_boundary: input.spec.permissions_boundary.clone(),
        tags,
    })
}

/// Pure: what to do about the role, given what IAM shows (None: no such role).
pub fn plan_role(d: &DesiredRole, seen: Option<&ObservedRole>) -> RolePlan {
    let Some(o) = seen else {
        return RolePlan::Create;
    };
    match o.tags.get(OWNER_TAG) {
        Some(uid) if Some(uid) == d.tags.get(OWNER_TAG) => {}
        other => {
            return RolePlan::OwnedByOther(match other {
                Some(uid) => format!("claim {uid}"),
                None => "no Paved claim".into(),
            })
        }
    }
    let mut drift = vec![];
    if o.trust.as_ref() != Some(&d.trust) {
        drift.push("trust");
    }
    if o.policy.as_ref() != Some(&d.policy) {
        drift.push("policy");
    }
    if o.permissions_boundary != d.permissions_boundary {
        drift.push("permissionsBoundary");
    }
    if drift.is_empty() {
        RolePlan::UpToDate
    } else {
        RolePlan::Update(drift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paved_api::{AwsSecretBackend, SecretBackend};

    fn spec() -> AwsServiceIdentity {
        AwsServiceIdentity {
            oidc_provider_arn:
                "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC"
                    .into(),
            permissions_boundary: None,
            poll_interval: "5m".into(),
        }
    }

    fn secrets() -> SecretsConfig {
        SecretsConfig {
            backend: SecretBackend {
                aws: Some(AwsSecretBackend {
                    region: "us-east-1".into(),
                }),
                ..Default::default()
            },
            path: "{owner}/{service}".into(),
            refresh_interval: "1h".into(),
        }
    }

    /// The role of service `svc` of team-a: with its secrets and these databases'
    /// secrets and keys, or with no secrets at all.
    fn build(
        spec: &AwsServiceIdentity,
        with_secrets: bool,
        dbs: &[String],
        keys: &[String],
    ) -> Result<DesiredRole, String> {
        let s = secrets();
        aws_role(&RoleInput {
            claim_uid: "0a1b-uid",
            claim_name: "svc",
            owner: "team-a",
            namespace: "svc",
            service_account: "svc",
            spec,
            secrets: with_secrets.then_some((&s, "team-a/svc")),
            database_secrets: dbs,
            database_keys: keys,
        })
    }

    fn role(dbs: &[String]) -> DesiredRole {
        build(&spec(), true, dbs, &[]).unwrap()
    }

    #[test]
    fn the_role_is_the_claims_trusted_by_exactly_its_service_account() {
        let r = role(&[]);
        assert_eq!(r.name, "paved-0a1b-uid");
        assert_eq!(
            r.arn,
            "arn:aws:iam::123456789012:role/paved/svc/paved-0a1b-uid"
        );
        let st = &r.trust["Statement"][0];
        assert_eq!(st["Action"], "sts:AssumeRoleWithWebIdentity");
        assert_eq!(
            st["Condition"]["StringEquals"]["oidc.eks.us-east-1.amazonaws.com/id/ABC:sub"],
            "system:serviceaccount:svc:svc"
        );
        assert_eq!(
            st["Condition"]["StringEquals"]["oidc.eks.us-east-1.amazonaws.com/id/ABC:aud"],
            "sts.amazonaws.com"
        );
        assert_eq!(r.tags[OWNER_TAG], "0a1b-uid");
    }

    #[test]
    fn the_policy_reads_its_own_secrets_and_nothing_else() {
        let db = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-1-AbCd".to_string();
        let r = role(std::slice::from_ref(&db));
        let st = &r.policy["Statement"];
        assert_eq!(st.as_array().unwrap().len(), 1);
        assert_eq!(st[0]["Effect"], "Allow");
        assert_eq!(
            st[0]["Resource"],
            json!([
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-1-AbCd",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:team-a/svc/*",
            ])
        );
        assert!(
            !r.policy.to_string().contains("\"*\""),
            "no wildcard resource"
        );
    }

    #[test]
    fn nothing_to_read_allows_nothing() {
        let r = build(&spec(), false, &[], &[]).unwrap();
        assert_eq!(r.policy["Statement"][0]["Effect"], "Deny");
    }

    #[test]
    fn the_database_key_decrypts_only_through_secrets_manager() {
        let keys = vec!["arn:aws:kms:us-east-1:123456789012:key/k1".to_string()];
        let db = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-1".to_string();
        let r = build(&spec(), true, &[db], &keys).unwrap();
        let kms = &r.policy["Statement"][1];
        assert_eq!(kms["Action"], "kms:Decrypt");
        assert_eq!(kms["Resource"], json!(keys));
        assert_eq!(
            kms["Condition"]["StringEquals"]["kms:ViaService"],
            "secretsmanager.us-east-1.amazonaws.com"
        );
    }

    #[test]
    fn a_bad_provider_arn_is_a_clear_error() {
        let mut spec = spec();
        spec.oidc_provider_arn = "arn:aws:iam::1:role/x".into();
        let err = build(&spec, false, &[], &[]).unwrap_err();
        assert!(err.contains("oidcProviderArn"), "{err}");
    }

    #[test]
    fn another_claims_role_is_never_taken_and_drift_is_named() {
        let d = role(&[]);
        assert_eq!(plan_role(&d, None), RolePlan::Create);
        let mut o = ObservedRole {
            arn: d.arn.clone(),
            trust: Some(d.trust.clone()),
            policy: Some(d.policy.clone()),
            permissions_boundary: None,
            tags: d.tags.clone(),
        };
        assert_eq!(plan_role(&d, Some(&o)), RolePlan::UpToDate);
        o.policy =
            Some(json!({ "Statement": [{ "Effect": "Allow", "Action": "*", "Resource": "*" }] }));
        assert_eq!(plan_role(&d, Some(&o)), RolePlan::Update(vec!["policy"]));
        o.tags.insert(OWNER_TAG.into(), "other".into());
        assert!(
            matches!(plan_role(&d, Some(&o)), RolePlan::OwnedByOther(m) if m.contains("other"))
        );
        o.tags.clear();
        assert!(matches!(plan_role(&d, Some(&o)), RolePlan::OwnedByOther(_)));
    }
}
