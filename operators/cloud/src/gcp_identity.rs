//! The Google service account of each service (google-cloud-iam-admin-v1): made,
//! impersonable by exactly the service's Kubernetes ServiceAccount
//! (`roles/iam.workloadIdentityUser` on the account), and `secretAccessor` on exactly
//! its own Secret Manager secrets (google-cloud-secretmanager-v1). Credentials come
//! from the default chain (GKE workload identity, the metadata server).
//!
//! A poll reads one shared list, the project's service accounts, once per
//! time-to-live for every claim. IAM policies, which Google reads one resource at a
//! time, are trusted for the recheck period (and read again at once after Paved
//! writes them).

use std::time::Duration;

use async_trait::async_trait;
use google_cloud_gax::options::RequestOptionsBuilder;
use google_cloud_iam_admin_v1::{client::Iam, model::ServiceAccount};
use google_cloud_iam_v1::model::{Binding, GetPolicyOptions, Policy};
use google_cloud_secretmanager_v1::client::SecretManagerService;
use paved_api::Reason;
use paved_compose::identity::{
    gcp_claim_name, gcp_owner, DesiredIdentity, DesiredServiceAccount, ObservedIdentity,
    SECRET_ACCESSOR, WORKLOAD_IDENTITY_USER,
};
use serde_json::{json, Value};

use crate::{
    gcp::classify,
    listed::{Listed, Recent},
    IdentityClient, ProviderError,
};

pub struct GcpIdentities {
    iam: Iam,
    secrets: SecretManagerService,
    /// Each project's service accounts by email (lower case).
    account_list: Listed<ServiceAccount>,
    /// Each account's own policy (its bindings as compared), by resource name.
    account_policies: Recent<Value>,
    /// Whether a secret's policy lets a member read it, by `<secret> <member>`.
    secret_access: Recent<bool>,
}

fn access_key(secret: &str, member: &str) -> String {
    format!("{secret} {member}")
}

/// An error, with IAM's propagation delay (a new account not yet usable as a policy
/// member) taken as transient.
fn gcp_error(e: google_cloud_gax::error::Error) -> ProviderError {
    match classify(e) {
        ProviderError::Terminal { message, .. } if message.contains("does not exist") => {
            ProviderError::Retryable(format!(
                "{message} (a new service account takes a moment to reach IAM)"
            ))
        }
        other => other,
    }
}

fn account(d: &DesiredIdentity) -> Result<&DesiredServiceAccount, ProviderError> {
    match d {
        DesiredIdentity::Gcp(g) => Ok(g),
        other => Err(ProviderError::Terminal {
            reason: Reason::ProviderMisconfigured,
            message: format!(
                "the GCP identity client was given a {} identity",
                other.cloud()
            ),
        }),
    }
}

/// Bindings as compared: role and sorted members, conditions left out (Paved sets
/// none).
fn bindings(p: &Policy) -> Value {
    let mut out: Vec<Value> = p
        .bindings
        .iter()
        .map(|b| {
            let mut members = b.members.clone();
            members.sort();
            json!({ "role": b.role, "members": members })
        })
        .collect();
    out.sort_by_key(|v| v.to_string());
    Value::Array(out)
}

fn grants(p: &Policy, role: &str, member: &str) -> bool {
    p.bindings
        .iter()
        .any(|b| b.role == role && b.members.iter().any(|m| m == member))
}

impl GcpIdentities {
    /// `ttl`: how long one list serves every claim; `recheck`: how long a policy read
    /// is trusted; `on_list`: called per list page.
    pub async fn new(
        iam_endpoint: Option<&str>,
        secretmanager_endpoint: Option<&str>,
        ttl: Duration,
        recheck: Duration,
        on_list: crate::ListCounter,
    ) -> Result<Self, ProviderError> {
        let misconfigured = |e: google_cloud_gax::client_builder::Error| ProviderError::Terminal {
            reason: Reason::ProviderMisconfigured,
            message: format!("cannot build the IAM client: {e}"),
        };
        let mut iam = Iam::builder();
        if let Some(e) = iam_endpoint {
            iam = iam.with_endpoint(e);
        }
        let mut secrets = SecretManagerService::builder();
        if let Some(e) = secretmanager_endpoint {
            secrets = secrets.with_endpoint(e);
        }
        Ok(GcpIdentities {
            iam: iam.build().await.map_err(misconfigured)?,
            secrets: secrets.build().await.map_err(misconfigured)?,
            account_list: Listed::new("service accounts", ttl, on_list),
            account_policies: Recent::new(recheck),
            secret_access: Recent::new(recheck),
        })
    }

    /// The account `g` names as its project's shared list has it.
    async fn listed(
        &self,
        g: &DesiredServiceAccount,
    ) -> Result<Option<ServiceAccount>, ProviderError> {
        let project = g.project.as_str();
        let all = self
            .account_list
            .get(project, |page| async move {
                Ok(self
                    .list_accounts(project, page)
                    .await?
                    .into_iter()
                    .map(|a| (a.email.to_ascii_lowercase(), a))
                    .collect())
            })
            .await?;
        Ok(all.get(&g.email.to_ascii_lowercase()).cloned())
    }

    /// Every service account of `project`; `page` is called per page.
    async fn list_accounts(
        &self,
        project: &str,
        page: crate::ListCounter,
    ) -> Result<Vec<ServiceAccount>, ProviderError> {
        let mut all = vec![];
        let mut token = String::new();
        loop {
            page();
            let p = self
                .iam
                .list_service_accounts()
                .set_name(format!("projects/{project}"))
                .set_page_size(100)
                .set_page_token(&token)
                .send()
                .await
                .map_err(gcp_error)?;
            all.extend(p.accounts);
            if p.next_page_token.is_empty() {
                return Ok(all);
            }
            token = p.next_page_token;
        }
    }

    async fn get(&self, name: &str) -> Result<Option<ServiceAccount>, ProviderError> {
        match self.iam.get_service_account().set_name(name).send().await {
            Ok(a) => Ok(Some(a)),
            Err(e) => match classify(e) {
                ProviderError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn account_policy(&self, name: &str) -> Result<Policy, ProviderError> {
        self.iam
            .get_iam_policy()
            .set_resource(name)
            // A read, though sent as a POST: safe to retry.
            .with_idempotency(true)
            .send()
            .await
            .map_err(gcp_error)
    }

    async fn secret_policy(&self, secret: &str) -> Result<Option<Policy>, ProviderError> {
        match self
            .secrets
            .get_iam_policy()
            .set_resource(secret)
            // Version 3: a policy with conditional bindings is read whole, so writing
            // it back keeps them.
            .set_options(GetPolicyOptions::new().set_requested_policy_version(3))
            .send()
            .await
        {
            Ok(p) => Ok(Some(p)),
            Err(e) => match classify(e) {
                ProviderError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    /// The account's own policy is Paved's alone: exactly one binding, the service's
    /// Kubernetes ServiceAccount as `workloadIdentityUser`.
    async fn put_account_policy(&self, g: &DesiredServiceAccount) -> Result<(), ProviderError> {
        let policy = Policy::new().set_bindings([Binding::new()
            .set_role(WORKLOAD_IDENTITY_USER)
            .set_members([g.workload_member.clone()])]);
        let written = self
            .iam
            .set_iam_policy()
            .set_resource(g.resource_name())
            .set_policy(policy)
            .send()
            .await
            .map_err(gcp_error);
        self.account_policies.forget(&g.resource_name());
        written.map(|_| ())
    }

    /// Adds the account to each of its secrets' `secretAccessor` binding, leaving every
    /// other binding as it is (read, modify, write with the etag: a concurrent change
    /// is a conflict, retried).
    async fn put_secret_access(&self, g: &DesiredServiceAccount) -> Result<(), ProviderError> {
        let member = g.member();
        let written = self.write_secret_access(g, &member).await;
        for secret in &g.secrets {
            self.secret_access.forget(&access_key(secret, &member));
        }
        written
    }

    async fn write_secret_access(
        &self,
        g: &DesiredServiceAccount,
        member: &str,
    ) -> Result<(), ProviderError> {
        let member = member.to_string();
        for secret in &g.secrets {
            let Some(mut policy) = self.secret_policy(secret).await? else {
                return Err(ProviderError::Terminal {
                    reason: Reason::NotFound,
                    message: format!(
                        "Secret Manager secret {secret} does not exist: the service's identity is granted it once it is created"
                    ),
                });
            };
            if grants(&policy, SECRET_ACCESSOR, &member) {
                continue;
            }
            match policy
                .bindings
                .iter_mut()
                .find(|b| b.role == SECRET_ACCESSOR && b.condition.is_none())
            {
                Some(b) => b.members.push(member.clone()),
                None => policy.bindings.push(
                    Binding::new()
                        .set_role(SECRET_ACCESSOR)
                        .set_members([member.clone()]),
                ),
            }
            self.secrets
                .set_iam_policy()
                .set_resource(secret)
                .set_policy(policy)
                .send()
                .await
                .map_err(gcp_error)?;
        }
        Ok(())
    }
}

#[async_trait]
impl IdentityClient for GcpIdentities {
    async fn observe(
        &self,
        d: &DesiredIdentity,
    ) -> Result<Option<ObservedIdentity>, ProviderError> {
        let g = account(d)?;
        let Some(a) = self.listed(g).await? else {
            return Ok(None);
        };
        let owner = gcp_owner(&a.description).map(String::from);
        let mut observed = ObservedIdentity {
            reference: a.email.clone(),
            owner: owner.clone(),
            parts: Default::default(),
        };
        // Nothing more is read of an account that is not ours.
        if owner.as_deref() != Some(g.claim_uid.as_str()) {
            return Ok(Some(observed));
        }
        let name = g.resource_name();
        let policy = self
            .account_policies
            .get_or_read(&name, || async {
                Ok(bindings(&self.account_policy(&name).await?))
            })
            .await?;
        observed.parts.insert("policy", policy);
        let member = g.member();
        let mut readable = vec![];
        for secret in &g.secrets {
            let reads = self
                .secret_access
                .get_or_read(&access_key(secret, &member), || async {
                    Ok(self
                        .secret_policy(secret)
                        .await?
                        .is_some_and(|p| grants(&p, SECRET_ACCESSOR, &member)))
                })
                .await?;
            if reads {
                readable.push(secret.clone());
            }
        }
        observed.parts.insert("secretAccess", json!(readable));
        Ok(Some(observed))
    }

    async fn create(&self, d: &DesiredIdentity) -> Result<String, ProviderError> {
        let g = account(d)?;
        let made = self
            .iam
            .create_service_account()
            .set_name(format!("projects/{}", g.project))
            .set_account_id(&g.account_id)
            .set_service_account(
                ServiceAccount::new()
                    .set_display_name(&g.display_name)
                    .set_description(&g.description),
            )
            .send()
            .await
            .map_err(gcp_error)?;
        self.account_list
            .set(
                &g.project,
                &made.email.to_ascii_lowercase(),
                Some(made.clone()),
            )
            .await;
        self.put_account_policy(g).await?;
        self.put_secret_access(g).await?;
        Ok(made.email)
    }

    async fn update(&self, d: &DesiredIdentity, drift: &[&str]) -> Result<(), ProviderError> {
        let g = account(d)?;
        if drift.contains(&"policy") {
            self.put_account_policy(g).await?;
        }
        if drift.contains(&"secretAccess") {
            self.put_secret_access(g).await?;
        }
        Ok(())
    }

    async fn delete(&self, id: &str, uid: &str) -> Result<bool, ProviderError> {
        let Some(a) = self.get(id).await? else {
            return Ok(false);
        };
        if gcp_owner(&a.description) != Some(uid) {
            return Ok(false);
        }
        // Its bindings on secrets stay as `deleted:serviceAccount:…`, which no later
        // account of the same email inherits.
        let deleted = match self.iam.delete_service_account().set_name(id).send().await {
            Ok(_) => Ok(true),
            Err(e) => match classify(e) {
                ProviderError::NotFound(_) => Ok(false),
                other => Err(other),
            },
        };
        if deleted.is_ok() {
            self.account_list
                .set(&a.project_id, &a.email.to_ascii_lowercase(), None)
                .await;
            self.account_policies.forget(id);
        }
        deleted
    }

    async fn remove_stale(
        &self,
        d: &DesiredIdentity,
        claim_name: &str,
    ) -> Result<Vec<String>, ProviderError> {
        let g = account(d)?;
        let mut stale = vec![];
        for a in self
            .list_accounts(&g.project, std::sync::Arc::new(|| {}))
            .await?
        {
            let owner = gcp_owner(&a.description);
            if gcp_claim_name(&a.description) == Some(claim_name)
                && owner.is_some()
                && owner != Some(g.claim_uid.as_str())
            {
                stale.push((
                    a.name.clone(),
                    owner.unwrap_or_default().to_string(),
                    a.email,
                ));
            }
        }
        let mut removed = vec![];
        for (name, owner, email) in stale {
            // Only one this cluster's token could use as the same ServiceAccount
            // (another cluster sharing the project keeps its own).
            let policy = self.account_policy(&name).await?;
            if !grants(&policy, WORKLOAD_IDENTITY_USER, &g.workload_member) {
                continue;
            }
            if self.delete(&name, &owner).await? {
                removed.push(email);
            }
        }
        Ok(removed)
    }
}
