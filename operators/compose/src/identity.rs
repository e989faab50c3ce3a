//! The cloud identity Paved makes for each service, pure: what the IAM role, managed
//! identity or Google service account of a ServiceClaim must be (name, trust,
//! permissions, owner marker), and how what the cloud shows differs from it. Every
//! cloud's identity is compared as named parts, so one [`plan_identity`] decides for
//! all three; the operator observes, decides and calls the cloud's client.

use std::collections::{BTreeMap, BTreeSet};

use paved_api::{
    labels, AwsServiceIdentity, AzureServiceIdentity, Cloud, GcpServiceIdentity, SecretsConfig,
};
use serde_json::{json, Value};

/// Tag that marks a role as a claim's (by UID): a role without it, or with another
/// claim's, is never adopted, changed or deleted.
pub const OWNER_TAG: &str = labels::CLAIM_UID;

/// The IAM role a service runs as.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredRole {
    /// `<namePrefix><claim UID>`: a later service of the same name never gets it.
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
    /// Where the Composition asks for EKS Pod Identity: the association that gives
    /// the service's ServiceAccount this role.
    pub pod_identity: Option<DesiredAssociation>,
}

/// One EKS Pod Identity association: the cluster's `namespace`/`service_account`
/// runs as `role_arn`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredAssociation {
    pub cluster: String,
    pub region: String,
    /// `arn:<partition>:eks:<region>:<account>:cluster/<name>`, what the trust policy
    /// names (EKS sets it as the session tag `eks-cluster-arn`).
    pub cluster_arn: String,
    pub namespace: String,
    pub service_account: String,
    pub role_arn: String,
}

/// The role tag that records its association's ARN, so deleting the role finds and
/// deletes the association wherever the Composition points by then.
pub const ASSOCIATION_TAG: &str = "paved.dev/eks-pod-identity-association";

/// The part of an AWS role that is its EKS Pod Identity association.
pub const POD_IDENTITY: &str = "podIdentity";

impl DesiredAssociation {
    /// The association as compared with what EKS shows: it gives the role, with
    /// the session tags the role's trust relies on, to no other (target) role, and
    /// the role records it (so the role's deletion finds it).
    pub fn part(&self) -> Value {
        json!({ "cluster": self.cluster, "namespace": self.namespace,
                "serviceAccount": self.service_account, "roleArn": self.role_arn,
                "disableSessionTags": false, "targetRoleArn": null, "recorded": true })
    }
}

/// `(region, cluster, association ID)` of an association's ARN
/// (`arn:<partition>:eks:<region>:<account>:podidentityassociation/<cluster>/<id>`).
pub fn association_parts(arn: &str) -> Option<(&str, &str, &str)> {
    let mut fields = arn.strip_prefix("arn:")?.splitn(5, ':');
    let (_, service, region, _, resource) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    let mut path = resource.strip_prefix("podidentityassociation/")?.split('/');
    let (cluster, id) = (path.next()?, path.next()?);
    (service == "eks"
        && !region.is_empty()
        && !cluster.is_empty()
        && id.starts_with("a-")
        && path.next().is_none())
    .then_some((region, cluster, id))
}

/// `(account, issuer)` of an OIDC provider ARN.
pub fn oidc_parts(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.split_once(":iam::")?.1;
    let (account, provider) = rest.split_once(':')?;
    let issuer = provider.strip_prefix("oidc-provider/")?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) && !issuer.is_empty())
        .then_some((account, issuer))
}

/// The name of the identity of the ServiceClaim `claim_uid`: the Composition's prefix
/// and the UID (an AWS role, an Azure identity).
pub fn role_name(prefix: &str, claim_uid: &str) -> String {
    format!("{prefix}{claim_uid}")
}

/// Whether a name is one [`role_name`] could have made, whatever the prefix: it
/// ends in a UUID after a `-`.
pub fn named_for_a_claim(name: &str) -> bool {
    let Some((prefix, uid)) = name
        .len()
        .checked_sub(36)
        .and_then(|at| Some((name.get(..at)?, name.get(at..)?)))
    else {
        return false;
    };
    prefix.ends_with('-')
        && uid.split('-').map(str::len).eq([8, 4, 4, 4, 12])
        && uid.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
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
        role_name(&spec.name_prefix, claim_uid)
    ))
}

/// Pure: the role of a service, or why it cannot be built.
pub fn aws_role(
    spec: &AwsServiceIdentity,
    input: &IdentityInput<'_>,
) -> Result<DesiredRole, String> {
    let (account, issuer) = oidc_parts(&spec.oidc_provider_arn).ok_or_else(|| {
        format!(
            "identity.aws.oidcProviderArn {:?} is not arn:aws:iam::<account>:oidc-provider/<issuer>",
            spec.oidc_provider_arn
        )
    })?;
    let partition = spec.oidc_provider_arn.split(':').nth(1).unwrap_or("aws");
    let name = role_name(&spec.name_prefix, input.claim_uid);
    let mut trust_statements = vec![json!({
        "Effect": "Allow",
        "Principal": { "Federated": spec.oidc_provider_arn },
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": { "StringEquals": {
            format!("{issuer}:sub"): format!("system:serviceaccount:{}:{}", input.namespace, input.service_account),
            format!("{issuer}:aud"): "sts.amazonaws.com",
        }},
    })];
    let arn = role_arn(spec, input.claim_name, input.claim_uid).expect("checked above");
    let pod_identity = spec.pod_identity.as_ref().map(|p| DesiredAssociation {
        cluster: p.cluster_name.clone(),
        region: p.region.clone(),
        cluster_arn: format!(
            "arn:{partition}:eks:{}:{account}:cluster/{}",
            p.region, p.cluster_name
        ),
        namespace: input.namespace.to_string(),
        service_account: input.service_account.to_string(),
        role_arn: arn.clone(),
    });
    if let Some(a) = &pod_identity {
        // EKS Pod Identity assumes the role for a pod with session tags naming the
        // pod's cluster, namespace and ServiceAccount: exactly this service's, and
        // no association elsewhere in the account can use the role.
        trust_statements.push(json!({
            "Sid": "EksPodIdentity",
            "Effect": "Allow",
            "Principal": { "Service": "pods.eks.amazonaws.com" },
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": { "StringEquals": {
                "aws:RequestTag/eks-cluster-arn": a.cluster_arn,
                "aws:RequestTag/kubernetes-namespace": a.namespace,
                "aws:RequestTag/kubernetes-service-account": a.service_account,
            }},
        }));
    }
    let trust = json!({ "Version": "2012-10-17", "Statement": trust_statements });
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
    let mut statements = if resources.is_empty() {
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
    // Where each instance is, from its master secret's ARN (RDS keeps the secret in
    // the instance's account and region): not the OIDC provider's account.
    let mut connect: Vec<String> = input
        .database_resources
        .iter()
        .filter_map(|(secret, id)| {
            let mut parts = secret.split(':');
            let (_, partition, _, region, account) = (
                parts.next()?,
                parts.next()?,
                parts.next()?,
                parts.next()?,
                parts.next()?,
            );
            (!region.is_empty() && !account.is_empty())
                .then(|| format!("arn:{partition}:rds-db:{region}:{account}:dbuser:{id}/*"))
        })
        .collect();
    connect.sort();
    connect.dedup();
    if !connect.is_empty() {
        // IAM database authentication to its own instances alone (as any of their
        // users granted `rds_iam`), never another service's.
        statements.as_array_mut().expect("statements").push(json!({
            "Sid": "OwnDatabasesConnect",
            "Effect": "Allow",
            "Action": "rds-db:connect",
            "Resource": connect,
        }));
    }
    let policy = json!({ "Version": "2012-10-17", "Statement": statements });
    let tags = owner_tags(input);
    Ok(DesiredRole {
        path: role_path(input.claim_name),
        arn,
        name,
        trust,
        policy,
        permissions_boundary: spec.permissions_boundary.clone(),
        tags,
        pod_identity,
    })
}

/// The part of an AWS role that lists managed policies attached to it and inline
/// policies other than Paved's: always empty on a role Paved keeps, so a policy
/// someone attached (widening the service's reach) is drift, and removed.
pub const OTHER_POLICIES: &str = "otherPolicies";

impl DesiredRole {
    /// The parts compared with what IAM shows.
    pub fn parts(&self) -> BTreeMap<&'static str, Value> {
        let mut parts = BTreeMap::from([
            ("trust", self.trust.clone()),
            ("policy", self.policy.clone()),
            ("permissionsBoundary", json!(self.permissions_boundary)),
            (OTHER_POLICIES, json!([])),
        ]);
        if let Some(a) = &self.pod_identity {
            parts.insert(POD_IDENTITY, a.part());
        }
        parts
    }
}

/// A service's identity in its cloud.
#[derive(Debug, Clone, PartialEq)]
pub enum DesiredIdentity {
    Aws(DesiredRole),
    Azure(DesiredManagedIdentity),
    Gcp(DesiredServiceAccount),
}

impl DesiredIdentity {
    pub fn cloud(&self) -> Cloud {
        match self {
            DesiredIdentity::Aws(_) => Cloud::Aws,
            DesiredIdentity::Azure(_) => Cloud::Azure,
            DesiredIdentity::Gcp(_) => Cloud::Gcp,
        }
    }

    /// Its name in the cloud, from the claim's UID.
    pub fn name(&self) -> &str {
        match self {
            DesiredIdentity::Aws(r) => &r.name,
            DesiredIdentity::Azure(m) => &m.name,
            DesiredIdentity::Gcp(g) => &g.account_id,
        }
    }

    /// Where it lives: the role ARN, the ARM resource ID, the resource name.
    pub fn id(&self) -> String {
        match self {
            DesiredIdentity::Aws(r) => r.arn.clone(),
            DesiredIdentity::Azure(m) => m.id(),
            DesiredIdentity::Gcp(g) => g.resource_name(),
        }
    }

    /// What people call it, for messages and Events.
    pub fn kind(&self) -> &'static str {
        match self {
            DesiredIdentity::Aws(_) => "IAM role",
            DesiredIdentity::Azure(_) => "managed identity",
            DesiredIdentity::Gcp(_) => "service account",
        }
    }

    /// The claim it belongs to (UID).
    pub fn owner(&self) -> &str {
        match self {
            DesiredIdentity::Aws(r) => r.tags.get(OWNER_TAG).map(String::as_str).unwrap_or(""),
            DesiredIdentity::Azure(m) => &m.claim_uid,
            DesiredIdentity::Gcp(g) => &g.claim_uid,
        }
    }

    /// The parts compared with what the cloud shows; a part that differs is put back
    /// whole.
    pub fn parts(&self) -> BTreeMap<&'static str, Value> {
        match self {
            DesiredIdentity::Aws(r) => r.parts(),
            DesiredIdentity::Azure(m) => m.parts(),
            DesiredIdentity::Gcp(g) => g.parts(),
        }
    }
}

/// What the cloud shows of an identity.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObservedIdentity {
    /// What the ServiceAccount is annotated with: the role ARN, the client ID, the
    /// email.
    pub reference: String,
    /// The claim UID it is marked with (tag, or the service account's description);
    /// None: not Paved's.
    pub owner: Option<String>,
    /// The same parts as [`DesiredIdentity::parts`], as the cloud shows them (only
    /// read for an identity marked as this claim's).
    pub parts: BTreeMap<&'static str, Value>,
}

/// What to do about an identity.
#[derive(Debug, Clone, PartialEq)]
pub enum IdentityPlan {
    Create,
    /// Ours, as desired.
    UpToDate,
    /// Ours, with these parts to put back.
    Update(Vec<&'static str>),
    /// One of that name that is not this claim's.
    OwnedByOther(String),
}

/// Pure: what to do about the identity, given what the cloud shows (None: none).
pub fn plan_identity(d: &DesiredIdentity, seen: Option<&ObservedIdentity>) -> IdentityPlan {
    let Some(o) = seen else {
        return IdentityPlan::Create;
    };
    match o.owner.as_deref() {
        Some(uid) if uid == d.owner() => {}
        Some(uid) => return IdentityPlan::OwnedByOther(format!("claim {uid}")),
        None => return IdentityPlan::OwnedByOther("no Paved claim".into()),
    }
    let drift: Vec<&'static str> = d
        .parts()
        .into_iter()
        .filter(|(k, v)| o.parts.get(k) != Some(v))
        .map(|(k, _)| k)
        .collect();
    if drift.is_empty() {
        IdentityPlan::UpToDate
    } else {
        IdentityPlan::Update(drift)
    }
}

/// Everything the identity of a service is made from, whatever the cloud.
pub struct IdentityInput<'a> {
    pub claim_uid: &'a str,
    pub claim_name: &'a str,
    pub owner: &'a str,
    /// The ServiceAccount's namespace and name.
    pub namespace: &'a str,
    pub service_account: &'a str,
    /// The service's secrets config and its rendered path.
    pub secrets: Option<(&'a SecretsConfig, &'a str)>,
    /// The service's own secret keys in the store (`spec.secrets`, rendered).
    pub secret_keys: &'a [String],
    /// Where the master credentials of the service's own databases are kept (Secrets
    /// Manager ARNs, Key Vault secret names, Secret Manager secret IDs).
    pub database_secrets: &'a [String],
    /// AWS: the KMS keys those secrets are encrypted with.
    pub database_keys: &'a [String],
    /// AWS: each of the service's own databases as its master secret's ARN (which
    /// says the partition, region and account the instance is in) and its resource ID
    /// (`db-…`), which IAM database authentication names.
    pub database_resources: &'a [(String, String)],
}

/// Pure: the identity a Composition's `identity` asks for, or why it cannot be built.
pub fn desired_identity(
    spec: &paved_api::ServiceIdentity,
    input: &IdentityInput<'_>,
) -> Result<DesiredIdentity, String> {
    if let Some(aws) = &spec.aws {
        return aws_role(aws, input).map(DesiredIdentity::Aws);
    }
    if let Some(azure) = &spec.azure {
        return Ok(DesiredIdentity::Azure(azure_identity(azure, input)));
    }
    if let Some(gcp) = &spec.gcp {
        return gcp_account(gcp, input).map(DesiredIdentity::Gcp);
    }
    Err("identity names no cloud: name exactly one of aws, azure, gcp".into())
}

/// Where the identity of the ServiceClaim `claim_name`/`claim_uid` lives, as
/// [`DesiredIdentity::id`] says (None: the spec cannot name one).
pub fn identity_id(
    spec: &paved_api::ServiceIdentity,
    claim_name: &str,
    claim_uid: &str,
) -> Option<String> {
    if let Some(aws) = &spec.aws {
        return role_arn(aws, claim_name, claim_uid);
    }
    if let Some(a) = &spec.azure {
        return Some(managed_identity_id(
            &a.subscription_id,
            &a.resource_group,
            &role_name(&a.name_prefix, claim_uid),
        ));
    }
    let g = spec.gcp.as_ref()?;
    Some(service_account_name(
        &g.project_id,
        &gcp_email(g, claim_uid)?,
    ))
}

/// The ARM resource ID of a user-assigned identity.
fn managed_identity_id(subscription: &str, resource_group: &str, name: &str) -> String {
    format!(
        "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
    )
}

/// The email of service account `account_id` of `project`.
fn account_email(account_id: &str, project: &str) -> String {
    format!("{account_id}@{project}.iam.gserviceaccount.com")
}

/// The resource name of a Google service account.
fn service_account_name(project: &str, email: &str) -> String {
    format!("projects/{project}/serviceAccounts/{email}")
}

/// Built-in role `Key Vault Secrets User`: read secret contents, nothing else.
pub const KEY_VAULT_SECRETS_USER: &str = "4633458b-17de-408a-b874-0445c86b69e6";
/// The audience AKS workload identity tokens carry for Entra ID.
pub const AZURE_AUDIENCE: &str = "api://AzureADTokenExchange";
/// The one federated credential Paved keeps on each managed identity.
pub const FEDERATED_CREDENTIAL: &str = "kubernetes";

/// The managed identity a service runs as on Azure.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredManagedIdentity {
    pub subscription_id: String,
    pub resource_group: String,
    /// `<namePrefix><claim UID>`.
    pub name: String,
    pub location: String,
    pub claim_uid: String,
    /// The Key Vault its secrets are in.
    pub key_vault_id: String,
    /// Tags, the owner tag among them.
    pub tags: BTreeMap<String, String>,
    /// The federated credential: issuer, `system:serviceaccount:<ns>:<sa>`, audience.
    pub issuer: String,
    pub subject: String,
    /// Scopes (single Key Vault secrets) the identity is `Key Vault Secrets User` on.
    pub scopes: BTreeSet<String>,
    /// `/subscriptions/<sub>/providers/Microsoft.Authorization/roleDefinitions/<KV secrets user>`.
    pub role_definition_id: String,
}

impl DesiredManagedIdentity {
    pub fn id(&self) -> String {
        managed_identity_id(&self.subscription_id, &self.resource_group, &self.name)
    }

    /// Where its role assignments are listed: its own subscription and its Key
    /// Vault's (which may be another), lower case.
    pub fn subscriptions(&self) -> BTreeSet<String> {
        std::iter::once(self.subscription_id.as_str())
            .chain(subscription_of(&self.key_vault_id))
            .chain(self.scopes.iter().filter_map(|s| subscription_of(s)))
            .map(str::to_ascii_lowercase)
            .collect()
    }

    /// The federated credential as compared (`null`: none).
    pub fn credential(&self) -> Value {
        json!({ "issuer": self.issuer, "subject": self.subject, "audiences": [AZURE_AUDIENCE] })
    }

    /// A role assignment as compared: `{scope, role}`, case-folded as ARM compares
    /// IDs, one leading `/`, and the role by its GUID (ARM answers with either the
    /// subscription's or the tenant's form of a built-in role's ID).
    pub fn assignment(scope: &str, role_definition_id: &str) -> Value {
        let scope = format!("/{}", scope.trim_start_matches('/').to_ascii_lowercase());
        let role = role_definition_id
            .rsplit('/')
            .next()
            .unwrap_or(role_definition_id)
            .to_ascii_lowercase();
        json!({ "scope": scope, "role": role })
    }

    pub fn parts(&self) -> BTreeMap<&'static str, Value> {
        let mut assignments: Vec<Value> = self
            .scopes
            .iter()
            .map(|s| Self::assignment(s, &self.role_definition_id))
            .collect();
        assignments.sort_by_key(|v| v.to_string());
        BTreeMap::from([
            ("federatedCredential", self.credential()),
            ("roleAssignments", Value::Array(assignments)),
            (RECORDS_SUBSCRIPTIONS, json!(true)),
        ])
    }

    /// Whether an identity's tag records every subscription this one makes role
    /// assignments in (the observed value of `RECORDS_SUBSCRIPTIONS`).
    pub fn recorded_in(&self, tag: Option<&str>) -> bool {
        self.subscriptions().is_subset(&recorded_subscriptions(tag))
    }

    /// Every subscription its role assignments are looked for in: where it makes
    /// them now and where its tag says it made them before.
    pub fn assignment_subscriptions(&self, tag: Option<&str>) -> BTreeSet<String> {
        let mut subs = recorded_subscriptions(tag);
        subs.extend(self.subscriptions());
        subs
    }
}

/// The part of an Azure identity that says its tag records every subscription its
/// role assignments are in (false: an identity made before, or a vault moved).
pub const RECORDS_SUBSCRIPTIONS: &str = "recordsSubscriptions";

/// The managed identity of a service: trusted by exactly its ServiceAccount, reading
/// exactly its own Key Vault secrets (each its own role assignment scope: Key Vault
/// has no path prefixes).
pub fn azure_identity(
    spec: &AzureServiceIdentity,
    input: &IdentityInput<'_>,
) -> DesiredManagedIdentity {
    let vault = spec.key_vault_id.trim_end_matches('/');
    let scopes = input
        .secret_keys
        .iter()
        .chain(input.database_secrets)
        .map(|k| format!("{vault}/secrets/{k}"))
        .collect();
    let mut m = DesiredManagedIdentity {
        subscription_id: spec.subscription_id.clone(),
        resource_group: spec.resource_group.clone(),
        name: role_name(&spec.name_prefix, input.claim_uid),
        location: spec.location.clone(),
        claim_uid: input.claim_uid.to_string(),
        key_vault_id: vault.to_string(),
        tags: crate::postgresql::cloud_tags(Cloud::Azure, &owner_tags(input)),
        issuer: spec.oidc_issuer.clone(),
        subject: format!(
            "system:serviceaccount:{}:{}",
            input.namespace, input.service_account
        ),
        scopes,
        role_definition_id: format!(
            "/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{KEY_VAULT_SECRETS_USER}",
            spec.subscription_id
        ),
    };
    let recorded = record_subscriptions(&m.subscriptions());
    m.tags.insert(
        crate::postgresql::cloud_tag_key(Cloud::Azure, ASSIGNMENT_SUBSCRIPTIONS_TAG),
        recorded,
    );
    m
}

/// The identity tag naming every subscription its role assignments were looked for
/// in, so its deletion finds them all (Azure lists assignments per subscription, and
/// keeps them, orphaned, when their principal goes).
pub const ASSIGNMENT_SUBSCRIPTIONS_TAG: &str = "paved.dev/assignment-subscriptions";

/// The tag's value: the subscriptions, space-separated.
pub fn record_subscriptions(subs: &BTreeSet<String>) -> String {
    subs.iter().cloned().collect::<Vec<_>>().join(" ")
}

/// The subscriptions a tag value names (lower case; anything not ID-like ignored).
pub fn recorded_subscriptions(tag: Option<&str>) -> BTreeSet<String> {
    tag.unwrap_or_default()
        .split_whitespace()
        .filter(|s| s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .map(str::to_ascii_lowercase)
        .collect()
}

/// The subscription of an ARM resource ID (`/subscriptions/<id>/…`).
fn subscription_of(id: &str) -> Option<&str> {
    let mut parts = id.trim_start_matches('/').split('/');
    parts
        .next()?
        .eq_ignore_ascii_case("subscriptions")
        .then(|| parts.next())
        .flatten()
        .filter(|s| !s.is_empty())
}

/// The tags (or description fields) that mark an identity as a claim's.
fn owner_tags(input: &IdentityInput<'_>) -> BTreeMap<String, String> {
    BTreeMap::from([
        (OWNER_TAG.to_string(), input.claim_uid.to_string()),
        (labels::CLAIM_NAME.to_string(), input.claim_name.to_string()),
        (labels::OWNER.to_string(), input.owner.to_string()),
        (
            labels::MANAGED_BY.to_string(),
            labels::MANAGED_BY_VALUE.to_string(),
        ),
    ])
}

/// The Google service account a service runs as.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredServiceAccount {
    pub project: String,
    /// `<namePrefix>` and the claim UID's hex digits (service account IDs are at most
    /// 30 characters).
    pub account_id: String,
    pub email: String,
    pub claim_uid: String,
    pub display_name: String,
    /// Google service accounts carry no labels: the owner marker is the description,
    /// `paved.dev/claim-uid=<uid> paved.dev/claim-name=<name>`.
    pub description: String,
    /// `serviceAccount:<pool>[<ns>/<sa>]`, the one member that may impersonate it.
    pub workload_member: String,
    /// Secret Manager secrets (`projects/<p>/secrets/<id>`) it may read.
    pub secrets: BTreeSet<String>,
}

/// The role that lets a Kubernetes ServiceAccount act as a Google service account.
pub const WORKLOAD_IDENTITY_USER: &str = "roles/iam.workloadIdentityUser";
/// The role that reads a secret's versions.
pub const SECRET_ACCESSOR: &str = "roles/secretmanager.secretAccessor";

impl DesiredServiceAccount {
    pub fn resource_name(&self) -> String {
        service_account_name(&self.project, &self.email)
    }

    /// The IAM member that names this account.
    pub fn member(&self) -> String {
        format!("serviceAccount:{}", self.email)
    }

    pub fn parts(&self) -> BTreeMap<&'static str, Value> {
        BTreeMap::from([
            (
                "policy",
                json!([{ "role": WORKLOAD_IDENTITY_USER, "members": [self.workload_member] }]),
            ),
            ("secretAccess", json!(self.secrets)),
        ])
    }
}

/// The email of the service account of the ServiceClaim `claim_uid` (None: a UID too
/// short to name one).
pub fn gcp_email(spec: &GcpServiceIdentity, claim_uid: &str) -> Option<String> {
    gcp_account_id(&spec.name_prefix, claim_uid).map(|id| account_email(&id, &spec.project_id))
}

/// The prefix and as many of the claim UID's hex digits as fill the 30 characters
/// of an account ID (24 after `paved-`; at least 20).
fn gcp_account_id(prefix: &str, claim_uid: &str) -> Option<String> {
    let want = 30usize.checked_sub(prefix.len())?;
    let hex: String = claim_uid
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .take(want)
        .collect();
    (want >= 20 && hex.len() == want).then(|| format!("{prefix}{hex}"))
}

/// The owner marker of a service account: its description.
pub fn gcp_description(claim_uid: &str, claim_name: &str) -> String {
    format!(
        "{}={claim_uid} {}={claim_name}",
        labels::CLAIM_UID,
        labels::CLAIM_NAME
    )
}

/// The claim UID a service account's description marks it with.
pub fn gcp_owner(description: &str) -> Option<&str> {
    description
        .split_whitespace()
        .find_map(|f| f.strip_prefix(labels::CLAIM_UID)?.strip_prefix('='))
}

/// The claim name a service account's description marks it with.
pub fn gcp_claim_name(description: &str) -> Option<&str> {
    description
        .split_whitespace()
        .find_map(|f| f.strip_prefix(labels::CLAIM_NAME)?.strip_prefix('='))
}

/// The service account of a service: impersonable by exactly its ServiceAccount,
/// reading exactly its own secrets.
pub fn gcp_account(
    spec: &GcpServiceIdentity,
    input: &IdentityInput<'_>,
) -> Result<DesiredServiceAccount, String> {
    let pool = match (
        &spec.workload_pool,
        input.secrets.and_then(|(c, _)| c.backend.gcp.as_ref()),
    ) {
        (Some(p), _) => p.clone(),
        (None, Some(g)) => format!("{}.svc.id.goog", g.cluster_project_id),
        (None, None) => {
            return Err(
                "identity.gcp.workloadPool is required when secrets.backend is not gcp".into(),
            )
        }
    };
    let account_id = gcp_account_id(&spec.name_prefix, input.claim_uid).ok_or_else(|| {
        format!(
            "identity.gcp.namePrefix {:?} and claim UID {:?} do not make a service account ID (30 characters, at least 20 of them the UID's hex)",
            spec.name_prefix,
            input.claim_uid
        )
    })?;
    let project = spec.project_id.clone();
    let secret_project = input
        .secrets
        .and_then(|(c, _)| c.backend.gcp.as_ref())
        .map(|g| g.project_id.clone())
        .unwrap_or_else(|| project.clone());
    let secrets = input
        .secret_keys
        .iter()
        .chain(input.database_secrets)
        .map(|k| {
            if k.starts_with("projects/") {
                k.clone()
            } else {
                format!("projects/{secret_project}/secrets/{k}")
            }
        })
        .collect();
    Ok(DesiredServiceAccount {
        email: account_email(&account_id, &project),
        project,
        account_id,
        claim_uid: input.claim_uid.to_string(),
        display_name: format!("Paved service {}", input.claim_name),
        description: gcp_description(input.claim_uid, input.claim_name),
        workload_member: format!(
            "serviceAccount:{pool}[{}/{}]",
            input.namespace, input.service_account
        ),
        secrets,
    })
}

/// The name of the deterministic role assignment of `principal` on `scope`: ARM
/// wants a GUID; the same inputs give the same one, so a retried PUT is idempotent.
pub fn assignment_name(principal: &str, scope: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("paved:{principal}:{}", scope.to_ascii_lowercase()).as_bytes(),
    )
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fixtures::{aws_identity as spec, aws_secrets as secrets};

    /// The role of service `svc` of team-a: with its secrets and these databases'
    /// secrets and keys, or with no secrets at all.
    fn build(
        spec: &AwsServiceIdentity,
        with_secrets: bool,
        dbs: &[String],
        keys: &[String],
        resources: &[(String, String)],
    ) -> Result<DesiredRole, String> {
        let s = secrets();
        aws_role(
            spec,
            &IdentityInput {
                claim_uid: "0a1b-uid",
                claim_name: "svc",
                owner: "team-a",
                namespace: "svc",
                service_account: "svc",
                secrets: with_secrets.then_some((&s, "team-a/svc")),
                secret_keys: &[],
                database_secrets: dbs,
                database_keys: keys,
                database_resources: resources,
            },
        )
    }

    fn role(dbs: &[String]) -> DesiredRole {
        build(&spec(), true, dbs, &[], &[]).unwrap()
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
    fn with_pod_identity_the_role_also_trusts_eks_for_exactly_its_service_account() {
        assert!(role(&[]).pod_identity.is_none());
        assert!(!role(&[]).parts().contains_key(POD_IDENTITY));
        let mut with = spec();
        with.pod_identity = Some(paved_api::EksPodIdentity {
            cluster_name: "prod-1".into(),
            region: "eu-west-1".into(),
        });
        let r = build(&with, true, &[], &[], &[]).unwrap();
        let a = r.pod_identity.clone().unwrap();
        assert_eq!(
            a.cluster_arn,
            "arn:aws:eks:eu-west-1:123456789012:cluster/prod-1"
        );
        assert_eq!(
            (a.namespace.as_str(), a.service_account.as_str()),
            ("svc", "svc")
        );
        assert_eq!(a.role_arn, r.arn);
        let st = r.trust["Statement"].as_array().unwrap();
        assert_eq!(
            st.len(),
            2,
            "web identity stays, for the External Secrets Operator"
        );
        assert_eq!(st[0]["Action"], "sts:AssumeRoleWithWebIdentity");
        assert_eq!(st[1]["Principal"]["Service"], "pods.eks.amazonaws.com");
        assert_eq!(st[1]["Action"], json!(["sts:AssumeRole", "sts:TagSession"]));
        assert_eq!(
            st[1]["Condition"]["StringEquals"],
            json!({ "aws:RequestTag/eks-cluster-arn": "arn:aws:eks:eu-west-1:123456789012:cluster/prod-1",
                    "aws:RequestTag/kubernetes-namespace": "svc",
                    "aws:RequestTag/kubernetes-service-account": "svc" })
        );
        assert_eq!(
            r.parts()[POD_IDENTITY],
            json!({ "cluster": "prod-1", "namespace": "svc", "serviceAccount": "svc", "roleArn": r.arn,
                    "disableSessionTags": false, "targetRoleArn": null, "recorded": true })
        );
        // An association gone, or pointed at another role by hand, is drift.
        let d = DesiredIdentity::Aws(r.clone());
        let mut o = observed(&d);
        o.parts.insert(POD_IDENTITY, Value::Null);
        assert_eq!(
            plan_identity(&d, Some(&o)),
            IdentityPlan::Update(vec![POD_IDENTITY])
        );
    }

    #[test]
    fn the_composition_names_the_prefix_and_the_uid_the_rest() {
        let mut with = spec();
        with.name_prefix = "acme-".into();
        let r = build(&with, true, &[], &[], &[]).unwrap();
        assert_eq!(r.name, "acme-0a1b-uid");
        assert!(r.arn.ends_with(":role/paved/svc/acme-0a1b-uid"));
        let uid = "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d";
        assert!(named_for_a_claim(&format!("paved-{uid}")));
        assert!(named_for_a_claim(&format!("acme-{uid}")));
        assert!(named_for_a_claim(&format!("ACME-{}", uid.to_uppercase())));
        for other in [
            "paved-x",
            "admin",
            uid,
            &format!("paved{uid}"),
            &format!("p-{}x", &uid[1..]),
        ] {
            assert!(!named_for_a_claim(other), "{other}");
        }
        // A Google account ID holds 30 characters: the prefix, then the UID's hex.
        assert_eq!(
            gcp_account_id("paved-", uid).as_deref(),
            Some("paved-0a1b2c3d4e5f6a7b8c9d0e1f")
        );
        assert_eq!(
            gcp_account_id("platform1-", uid).as_deref(),
            Some("platform1-0a1b2c3d4e5f6a7b8c9d")
        );
        assert_eq!(
            gcp_account_id("much-too-long-", uid),
            None,
            "under 20 hex digits"
        );
    }

    #[test]
    fn association_arns_are_read_or_refused() {
        assert_eq!(
            association_parts(
                "arn:aws:eks:eu-west-1:123456789012:podidentityassociation/prod-1/a-abcdefghijklmnopq"
            ),
            Some(("eu-west-1", "prod-1", "a-abcdefghijklmnopq"))
        );
        for bad in [
            "arn:aws:eks:eu-west-1:123456789012:cluster/prod-1",
            "arn:aws:iam::123456789012:podidentityassociation/prod-1/a-x",
            "arn:aws:eks:eu-west-1:123456789012:podidentityassociation/prod-1/x",
            "arn:aws:eks:eu-west-1:123456789012:podidentityassociation/prod-1/a-x/y",
            "not-an-arn",
        ] {
            assert_eq!(association_parts(bad), None, "{bad}");
        }
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
        let r = build(&spec(), false, &[], &[], &[]).unwrap();
        assert_eq!(r.policy["Statement"][0]["Effect"], "Deny");
    }

    #[test]
    fn the_database_key_decrypts_only_through_secrets_manager() {
        let keys = vec!["arn:aws:kms:us-east-1:123456789012:key/k1".to_string()];
        let db = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-1".to_string();
        let r = build(&spec(), true, &[db], &keys, &[]).unwrap();
        let kms = &r.policy["Statement"][1];
        assert_eq!(kms["Action"], "kms:Decrypt");
        assert_eq!(kms["Resource"], json!(keys));
        assert_eq!(
            kms["Condition"]["StringEquals"]["kms:ViaService"],
            "secretsmanager.us-east-1.amazonaws.com"
        );
    }

    #[test]
    fn the_role_connects_to_its_own_databases_alone() {
        let dbs = [
            (
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-1".to_string(),
                "db-ONE".to_string(),
            ),
            (
                "arn:aws:secretsmanager:eu-west-1:210987654321:secret:rds!db-2".to_string(),
                "db-TWO".to_string(),
            ),
            ("not-an-arn".to_string(), "db-THREE".to_string()),
        ];
        let r = build(&spec(), true, &[], &[], &dbs).unwrap();
        let st = r.policy["Statement"].as_array().unwrap();
        let connect = st.iter().find(|s| s["Action"] == "rds-db:connect").unwrap();
        assert_eq!(
            connect["Resource"],
            json!([
                "arn:aws:rds-db:eu-west-1:210987654321:dbuser:db-TWO/*",
                "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ONE/*",
            ])
        );
        // Without databases, no connect statement at all.
        assert!(!role(&[]).policy.to_string().contains("rds-db"));
    }

    #[test]
    fn a_bad_provider_arn_is_a_clear_error() {
        let mut spec = spec();
        spec.oidc_provider_arn = "arn:aws:iam::1:role/x".into();
        let err = build(&spec, false, &[], &[], &[]).unwrap_err();
        assert!(err.contains("oidcProviderArn"), "{err}");
    }

    fn observed(d: &DesiredIdentity) -> ObservedIdentity {
        ObservedIdentity {
            reference: d.id(),
            owner: Some(d.owner().to_string()),
            parts: d.parts(),
        }
    }

    #[test]
    fn another_claims_identity_is_never_taken_and_drift_is_named() {
        let d = DesiredIdentity::Aws(role(&[]));
        assert_eq!(plan_identity(&d, None), IdentityPlan::Create);
        let mut o = observed(&d);
        assert_eq!(plan_identity(&d, Some(&o)), IdentityPlan::UpToDate);
        o.parts.insert(
            "policy",
            json!({ "Statement": [{ "Effect": "Allow", "Action": "*", "Resource": "*" }] }),
        );
        assert_eq!(
            plan_identity(&d, Some(&o)),
            IdentityPlan::Update(vec!["policy"])
        );
        o.owner = Some("other".into());
        assert!(
            matches!(plan_identity(&d, Some(&o)), IdentityPlan::OwnedByOther(m) if m.contains("other"))
        );
        o.owner = None;
        assert!(matches!(
            plan_identity(&d, Some(&o)),
            IdentityPlan::OwnedByOther(_)
        ));
    }

    #[test]
    fn a_policy_attached_to_a_role_outside_paved_is_drift() {
        let d = DesiredIdentity::Aws(role(&[]));
        let mut o = observed(&d);
        o.parts.insert(
            OTHER_POLICIES,
            json!(["arn:aws:iam::aws:policy/AdministratorAccess"]),
        );
        assert_eq!(
            plan_identity(&d, Some(&o)),
            IdentityPlan::Update(vec![OTHER_POLICIES])
        );
    }

    fn input<'a>(
        keys: &'a [String],
        dbs: &'a [String],
        secrets: Option<(&'a SecretsConfig, &'a str)>,
    ) -> IdentityInput<'a> {
        IdentityInput {
            claim_uid: "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d",
            claim_name: "svc",
            owner: "team-a",
            namespace: "svc",
            service_account: "svc",
            secrets,
            secret_keys: keys,
            database_secrets: dbs,
            database_keys: &[],
            database_resources: &[],
        }
    }

    fn azure_spec() -> AzureServiceIdentity {
        AzureServiceIdentity {
            subscription_id: "sub".into(),
            resource_group: "platform".into(),
            location: "westeurope".into(),
            oidc_issuer: "https://oidc.example/abc/".into(),
            key_vault_id:
                "/subscriptions/sub/resourceGroups/kv/providers/Microsoft.KeyVault/vaults/v1".into(),
            name_prefix: "paved-".into(),
            poll_interval: "5m".into(),
        }
    }

    #[test]
    fn the_managed_identity_trusts_its_service_account_and_reads_only_its_secrets() {
        let keys = vec!["team-a--svc--api".to_string()];
        let dbs = vec!["paved-db-admin".to_string()];
        let m = azure_identity(&azure_spec(), &input(&keys, &dbs, None));
        assert_eq!(m.name, "paved-0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d");
        assert_eq!(m.subject, "system:serviceaccount:svc:svc");
        assert_eq!(
            m.scopes.iter().cloned().collect::<Vec<_>>(),
            vec![
                "/subscriptions/sub/resourceGroups/kv/providers/Microsoft.KeyVault/vaults/v1/secrets/paved-db-admin",
                "/subscriptions/sub/resourceGroups/kv/providers/Microsoft.KeyVault/vaults/v1/secrets/team-a--svc--api",
            ]
        );
        assert!(m.role_definition_id.ends_with(KEY_VAULT_SECRETS_USER));
        assert_eq!(
            m.id(),
            "/subscriptions/sub/resourceGroups/platform/providers/Microsoft.ManagedIdentity/userAssignedIdentities/paved-0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"
        );
        // An assignment someone added (another secret, or a wider role) is drift.
        let d = DesiredIdentity::Azure(m.clone());
        let mut o = observed(&d);
        let mut extra = d.parts()["roleAssignments"].as_array().unwrap().clone();
        extra.push(DesiredManagedIdentity::assignment(
            "/subscriptions/sub/resourceGroups/kv/providers/Microsoft.KeyVault/vaults/v1",
            &m.role_definition_id,
        ));
        o.parts.insert("roleAssignments", Value::Array(extra));
        assert_eq!(
            plan_identity(&d, Some(&o)),
            IdentityPlan::Update(vec!["roleAssignments"])
        );
    }

    #[test]
    fn where_an_identity_lives_is_known_from_the_spec_alone() {
        let keys = vec![];
        let m = azure_identity(&azure_spec(), &input(&keys, &keys, None));
        let spec = paved_api::ServiceIdentity {
            azure: Some(azure_spec()),
            ..Default::default()
        };
        let uid = m.claim_uid.clone();
        assert_eq!(
            identity_id(&spec, "svc", &uid),
            Some(DesiredIdentity::Azure(m).id())
        );
        let r = role(&[]);
        let spec = paved_api::ServiceIdentity {
            aws: Some(super::tests::spec()),
            ..Default::default()
        };
        assert_eq!(identity_id(&spec, "svc", "0a1b-uid"), Some(r.arn));
    }

    #[test]
    fn role_assignments_are_looked_for_in_the_vaults_subscription_too() {
        let keys = vec!["team-a--svc--api".to_string()];
        let m = azure_identity(&azure_spec(), &input(&keys, &[], None));
        assert_eq!(
            m.subscriptions().into_iter().collect::<Vec<_>>(),
            vec!["sub"]
        );
        // Recorded on the identity, so deletion finds every assignment.
        let tag = &m.tags["paved.dev_assignment-subscriptions"];
        assert_eq!(tag, "sub");
        assert_eq!(
            recorded_subscriptions(Some("sub Vaults x/../y")),
            ["sub".to_string(), "vaults".to_string()].into()
        );
        assert!(recorded_subscriptions(None).is_empty());
        let mut spec = azure_spec();
        spec.key_vault_id =
            "/subscriptions/VAULTS/resourceGroups/kv/providers/Microsoft.KeyVault/vaults/v1".into();
        let m = azure_identity(&spec, &input(&keys, &[], None));
        assert_eq!(
            m.subscriptions().into_iter().collect::<Vec<_>>(),
            vec!["sub", "vaults"]
        );
        assert_eq!(m.tags["paved.dev_assignment-subscriptions"], "sub vaults");
        // Even with no secret to read yet: an assignment made there by hand is seen.
        let m = azure_identity(&spec, &input(&[], &[], None));
        assert_eq!(m.subscriptions().len(), 2);
        // An identity whose tag misses one is drift; one recorded before stays looked at.
        assert!(m.recorded_in(Some("vaults sub")));
        assert!(!m.recorded_in(Some("sub")) && !m.recorded_in(None));
        assert_eq!(
            m.assignment_subscriptions(Some("old-vaults")).len(),
            3,
            "a vault's former subscription is still looked at"
        );
    }

    #[test]
    fn assignment_names_are_stable_guids() {
        let a = assignment_name("p1", "/Subscriptions/S/x");
        assert_eq!(a, assignment_name("p1", "/subscriptions/s/x"));
        assert_ne!(a, assignment_name("p2", "/subscriptions/s/x"));
        assert_eq!(a.len(), 36);
    }

    #[test]
    fn the_service_account_is_named_from_the_uid_and_marked_as_the_claims() {
        let spec = GcpServiceIdentity {
            project_id: "ids".into(),
            workload_pool: Some("cluster-proj.svc.id.goog".into()),
            name_prefix: "paved-".into(),
            poll_interval: "5m".into(),
        };
        let keys = vec!["team-a_svc_api".to_string()];
        let dbs = vec!["projects/data/secrets/db-admin".to_string()];
        let g = gcp_account(&spec, &input(&keys, &dbs, None)).unwrap();
        assert_eq!(g.account_id, "paved-0a1b2c3d4e5f6a7b8c9d0e1f");
        assert!(g.account_id.len() <= 30);
        assert_eq!(
            g.email,
            "paved-0a1b2c3d4e5f6a7b8c9d0e1f@ids.iam.gserviceaccount.com"
        );
        assert_eq!(
            g.workload_member,
            "serviceAccount:cluster-proj.svc.id.goog[svc/svc]"
        );
        assert_eq!(
            g.secrets.iter().cloned().collect::<Vec<_>>(),
            vec![
                "projects/data/secrets/db-admin",
                "projects/ids/secrets/team-a_svc_api"
            ]
        );
        assert_eq!(
            gcp_owner(&g.description),
            Some("0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d")
        );
        assert_eq!(gcp_claim_name(&g.description), Some("svc"));
        assert_eq!(gcp_owner("made by hand"), None);
        let no_pool = GcpServiceIdentity {
            workload_pool: None,
            ..spec
        };
        assert!(gcp_account(&no_pool, &input(&keys, &dbs, None))
            .unwrap_err()
            .contains("workloadPool"));
    }
}
