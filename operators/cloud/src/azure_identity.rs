//! The managed identity of each service on Azure: a user-assigned identity
//! (azure_mgmt_msi, 2023-01-31) with one federated credential for the service's
//! ServiceAccount, and `Key Vault Secrets User` role assignments on exactly its own
//! secrets (azure_mgmt_authorization, 2022-04-01). Authenticated like the database
//! client (workload identity).
//!
//! A poll reads two shared lists: the identities of a resource group and the role
//! assignments of a subscription, each listed once per time-to-live for every
//! claim. A federated credential, which Azure reads only one identity at a time, is
//! trusted for the recheck period (and read again at once after Paved writes it).

use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;
use azure_core::{auth::TokenCredential, Url};
use azure_mgmt_authorization::package_2022_04_01 as authz;
use azure_mgmt_msi::package_2023_01_31::{self as msi, models};
use futures::StreamExt;
use paved_api::{Cloud, Reason};
use paved_compose::{
    identity::{
        assignment_name, record_subscriptions, recorded_subscriptions, DesiredIdentity,
        DesiredManagedIdentity, ObservedIdentity, ASSIGNMENT_SUBSCRIPTIONS_TAG,
        FEDERATED_CREDENTIAL, OWNER_TAG, RECORDS_SUBSCRIPTIONS,
    },
    postgresql::cloud_tag_key,
};
use serde_json::{json, Value};

use crate::{
    azure::classify,
    listed::{Listed, Recent},
    IdentityClient, ProviderError,
};

/// One role assignment: `(scope, role definition, assignment name)`.
type Assignment = (String, String, String);

pub struct AzureIdentities {
    msi: msi::Client,
    authz: authz::Client,
    /// Each resource group's identities (scope `<subscription>/<group>`, key: name;
    /// all lower case).
    identity_list: Listed<models::Identity>,
    /// Each subscription's role assignments by principal (lower case).
    assignment_list: Listed<Vec<Assignment>>,
    /// Each identity's federated credential as last read, by identity resource ID
    /// (lower case).
    credentials: Recent<Value>,
}

fn group_scope(sub: &str, rg: &str) -> String {
    format!("{sub}/{rg}").to_ascii_lowercase()
}

fn identity_key(sub: &str, rg: &str, name: &str) -> String {
    format!("{sub}/{rg}/{name}").to_ascii_lowercase()
}

fn misconfigured(e: impl std::fmt::Display) -> ProviderError {
    ProviderError::Terminal {
        reason: Reason::ProviderMisconfigured,
        message: e.to_string(),
    }
}

/// An error, with Azure's replication delay (a new identity's principal not yet
/// visible to role assignments) taken as transient.
fn azure_error(e: azure_core::Error) -> ProviderError {
    let replicating = e
        .as_http_error()
        .is_some_and(|h| h.error_code() == Some("PrincipalNotFound"));
    match classify(e) {
        ProviderError::Terminal { message, .. } if replicating => ProviderError::Retryable(
            format!("{message} (a new identity takes a moment to reach Entra ID)"),
        ),
        other => other,
    }
}

/// A scope as the authorization client wants it: it puts the `/` in front itself.
fn arm_scope(scope: &str) -> &str {
    scope.trim_start_matches('/')
}

fn not_found(e: &ProviderError) -> bool {
    matches!(e, ProviderError::NotFound(_))
}

/// `(subscription, resource group, name)` of a user-assigned identity's resource ID.
fn parse_id(id: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = id.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["subscriptions", sub, "resourceGroups", rg, "providers", p, "userAssignedIdentities", name]
            if p.eq_ignore_ascii_case("Microsoft.ManagedIdentity") =>
        {
            Some((sub, rg, name))
        }
        _ => None,
    }
}

impl AzureIdentities {
    /// `ttl`: how long one list serves every claim; `recheck`: how long a federated
    /// credential read is trusted; `on_list`: called per list page.
    pub fn new(
        credential: Arc<dyn TokenCredential>,
        resource_manager: Url,
        ttl: Duration,
        recheck: Duration,
        on_list: crate::ListCounter,
    ) -> Result<Self, ProviderError> {
        let retry = || {
            azure_core::RetryOptions::exponential(
                azure_core::ExponentialRetryOptions::default()
                    .max_retries(3u32)
                    .initial_delay(Duration::from_millis(500))
                    .max_total_elapsed(Duration::from_secs(30)),
            )
        };
        Ok(AzureIdentities {
            msi: msi::ClientBuilder::new(credential.clone())
                .endpoint(resource_manager.clone())
                .retry(retry())
                .build()
                .map_err(misconfigured)?,
            authz: authz::ClientBuilder::new(credential)
                .endpoint(resource_manager)
                .retry(retry())
                .build()
                .map_err(misconfigured)?,
            identity_list: Listed::new("managed identities", ttl, on_list.clone()),
            assignment_list: Listed::new("role assignments", ttl, on_list),
            credentials: Recent::new(recheck),
        })
    }

    /// The identity `name` as its resource group's shared list has it.
    async fn listed(
        &self,
        sub: &str,
        rg: &str,
        name: &str,
    ) -> Result<Option<models::Identity>, ProviderError> {
        let all = self
            .identity_list
            .get(&group_scope(sub, rg), |page| async move {
                let mut map = HashMap::new();
                let mut pages = self
                    .msi
                    .user_assigned_identities_client()
                    .list_by_resource_group(sub, rg)
                    .into_stream();
                while let Some(p) = pages.next().await {
                    page();
                    for i in p.map_err(classify)?.value {
                        if let Some(n) = &i.tracked_resource.resource.name {
                            map.insert(n.to_ascii_lowercase(), i);
                        }
                    }
                }
                Ok(map)
            })
            .await?;
        Ok(all.get(&name.to_ascii_lowercase()).cloned())
    }

    /// The role assignments of `principal` as its subscription's shared list has
    /// them: one list of every assignment in the subscription (at, above or below
    /// it) serves every identity's poll.
    async fn listed_assignments(
        &self,
        sub: &str,
        principal: &str,
    ) -> Result<Vec<Assignment>, ProviderError> {
        let all = self
            .assignment_list
            .get(&sub.to_ascii_lowercase(), |page| {
                self.list_assignments(sub, None, page)
            })
            .await?;
        Ok(all
            .get(&principal.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default())
    }

    /// After writing `principal`'s role assignments: its entry read fresh into the
    /// shared list (or, that failing, the list forgotten).
    async fn refresh_assignments(&self, sub: &str, principal: &str) {
        let scope = sub.to_ascii_lowercase();
        if !self.assignment_list.is_listed(&scope).await {
            return;
        }
        match self.assignments(sub, principal).await {
            Ok(fresh) => {
                self.assignment_list
                    .set(&scope, &principal.to_ascii_lowercase(), Some(fresh))
                    .await
            }
            Err(_) => self.assignment_list.invalidate(),
        }
    }

    /// The federated credential as last read within the recheck period, or read now.
    async fn credential(&self, m: &DesiredManagedIdentity) -> Result<Value, ProviderError> {
        let key = identity_key(&m.subscription_id, &m.resource_group, &m.name);
        self.credentials
            .get_or_read(&key, || async {
                match self
                    .msi
                    .federated_identity_credentials_client()
                    .get(&m.subscription_id, &m.resource_group, &m.name, FEDERATED_CREDENTIAL)
                    .await
                {
                    Ok(f) => Ok(f
                        .properties
                        .map(|p| serde_json::json!({ "issuer": p.issuer, "subject": p.subject, "audiences": p.audiences }))
                        .unwrap_or(Value::Null)),
                    Err(e) => match classify(e) {
                        ProviderError::NotFound(_) => Ok(Value::Null),
                        other => Err(other),
                    },
                }
            })
            .await
    }

    async fn get(
        &self,
        sub: &str,
        rg: &str,
        name: &str,
    ) -> Result<Option<models::Identity>, ProviderError> {
        match self
            .msi
            .user_assigned_identities_client()
            .get(sub, rg, name)
            .await
        {
            Ok(i) => Ok(Some(i)),
            Err(e) => match classify(e) {
                ProviderError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    /// The role assignments in subscription `sub` (at, above or below it) by principal
    /// (lower case): all of them, or `principal`'s alone. `page` is called per page.
    async fn list_assignments(
        &self,
        sub: &str,
        principal: Option<&str>,
        page: crate::ListCounter,
    ) -> Result<HashMap<String, Vec<Assignment>>, ProviderError> {
        let mut map: HashMap<String, Vec<Assignment>> = HashMap::new();
        let mut list = self
            .authz
            .role_assignments_client()
            .list_for_scope(format!("subscriptions/{sub}"));
        if let Some(principal) = principal {
            list = list.filter(format!("principalId eq '{principal}'"));
        }
        let mut pages = list.into_stream();
        while let Some(p) = pages.next().await {
            page();
            for a in p.map_err(azure_error)?.value {
                if let (Some(p), Some(name)) = (a.properties, a.name) {
                    map.entry(p.principal_id.to_ascii_lowercase())
                        .or_default()
                        .push((p.scope.unwrap_or_default(), p.role_definition_id, name));
                }
            }
        }
        Ok(map)
    }

    /// Every role assignment of `principal` in the subscription, read fresh.
    async fn assignments(
        &self,
        sub: &str,
        principal: &str,
    ) -> Result<Vec<Assignment>, ProviderError> {
        let mut map = self
            .list_assignments(sub, Some(principal), Arc::new(|| {}))
            .await?;
        Ok(map
            .remove(&principal.to_ascii_lowercase())
            .unwrap_or_default())
    }

    /// Deletes one role assignment (gone already is fine).
    async fn delete_assignment(&self, scope: &str, name: &str) -> Result<(), ProviderError> {
        match self
            .authz
            .role_assignments_client()
            .delete(arm_scope(scope), name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match azure_error(e) {
                e if not_found(&e) => Ok(()),
                e => Err(e),
            },
        }
    }

    async fn put_credential(&self, m: &DesiredManagedIdentity) -> Result<(), ProviderError> {
        let mut fic = models::FederatedIdentityCredential::new();
        fic.properties = Some(models::FederatedIdentityCredentialProperties::new(
            m.issuer.clone(),
            m.subject.clone(),
            vec![paved_compose::identity::AZURE_AUDIENCE.to_string()],
        ));
        let written = self
            .msi
            .federated_identity_credentials_client()
            .create_or_update(
                &m.subscription_id,
                &m.resource_group,
                &m.name,
                FEDERATED_CREDENTIAL,
                fic,
            )
            .await
            .map_err(azure_error);
        self.credentials.forget(&identity_key(
            &m.subscription_id,
            &m.resource_group,
            &m.name,
        ));
        written?;
        Ok(())
    }

    /// Makes the role assignments `m` wants that are missing and deletes those of its
    /// principal it does not want (someone granted it more), from a fresh read; the
    /// shared list is brought up to date after.
    async fn put_assignments(
        &self,
        m: &DesiredManagedIdentity,
        i: &models::Identity,
    ) -> Result<(), ProviderError> {
        let Some(principal) = Self::principal(i) else {
            return Err(ProviderError::Retryable(format!(
                "managed identity {} has no principal yet",
                m.name
            )));
        };
        let subs =
            m.assignment_subscriptions(Self::tag(i, ASSIGNMENT_SUBSCRIPTIONS_TAG).as_deref());
        let done = self.write_assignments(m, &subs, &principal).await;
        for sub in &subs {
            self.refresh_assignments(sub, &principal).await;
        }
        done
    }

    /// `principal`'s role assignments read fresh, in every subscription they may be
    /// in (`subs`).
    async fn all_assignments(
        &self,
        subs: &BTreeSet<String>,
        principal: &str,
    ) -> Result<Vec<Assignment>, ProviderError> {
        let mut all = vec![];
        for sub in subs {
            for a in self.assignments(sub, principal).await? {
                if !all.contains(&a) {
                    all.push(a);
                }
            }
        }
        Ok(all)
    }

    async fn write_assignments(
        &self,
        m: &DesiredManagedIdentity,
        subs: &BTreeSet<String>,
        principal: &str,
    ) -> Result<(), ProviderError> {
        let seen = self.all_assignments(subs, principal).await?;
        let wanted: Vec<Value> = m
            .scopes
            .iter()
            .map(|s| DesiredManagedIdentity::assignment(s, &m.role_definition_id))
            .collect();
        let want = |scope: &str, role: &str| {
            wanted.contains(&DesiredManagedIdentity::assignment(scope, role))
        };
        for (scope, role, name) in &seen {
            if !want(scope, role) {
                self.delete_assignment(scope, name).await?;
            }
        }
        for scope in &m.scopes {
            if seen.iter().any(|(s, r, _)| {
                DesiredManagedIdentity::assignment(s, r)
                    == DesiredManagedIdentity::assignment(scope, &m.role_definition_id)
            }) {
                continue;
            }
            let mut props = authz::models::RoleAssignmentProperties::new(
                m.role_definition_id.clone(),
                principal.to_string(),
            );
            props.principal_type =
                Some(authz::models::role_assignment_properties::PrincipalType::ServicePrincipal);
            props.description = Some(format!("Paved: {} reads its own secret", m.subject));
            self.authz
                .role_assignments_client()
                .create(
                    arm_scope(scope),
                    assignment_name(principal, scope),
                    authz::models::RoleAssignmentCreateParameters::new(props),
                )
                .await
                .map_err(azure_error)?;
        }
        Ok(())
    }

    fn principal(i: &models::Identity) -> Option<String> {
        i.properties.as_ref()?.principal_id.clone()
    }

    fn owner(i: &models::Identity) -> Option<String> {
        Self::tag(i, OWNER_TAG)
    }

    /// One of Paved's tags (`paved.dev/…`, as Azure spells it) on the identity.
    fn tag(i: &models::Identity, key: &str) -> Option<String> {
        i.tracked_resource
            .tags
            .as_ref()?
            .get(cloud_tag_key(Cloud::Azure, key))?
            .as_str()
            .map(String::from)
    }

    /// Creates the identity, or replaces its tags (a PUT keeps its principal), and
    /// keeps the shared list up to date.
    async fn put_identity(
        &self,
        m: &DesiredManagedIdentity,
        tags: Value,
    ) -> Result<models::Identity, ProviderError> {
        let mut tracked = models::TrackedResource::new(m.location.clone());
        tracked.tags = Some(tags);
        let made = self
            .msi
            .user_assigned_identities_client()
            .create_or_update(
                &m.subscription_id,
                &m.resource_group,
                &m.name,
                models::Identity::new(tracked),
            )
            .await
            .map_err(azure_error)?;
        self.identity_list
            .set(
                &group_scope(&m.subscription_id, &m.resource_group),
                &m.name.to_ascii_lowercase(),
                Some(made.clone()),
            )
            .await;
        Ok(made)
    }

    /// Records on the identity every subscription `m` makes role assignments in
    /// (those recorded before stay: a vault moved to another subscription leaves
    /// assignments in the old one until the identity goes).
    async fn keep_subscriptions_recorded(
        &self,
        m: &DesiredManagedIdentity,
        i: &models::Identity,
    ) -> Result<(), ProviderError> {
        let mut subs =
            recorded_subscriptions(Self::tag(i, ASSIGNMENT_SUBSCRIPTIONS_TAG).as_deref());
        if m.subscriptions().is_subset(&subs) {
            return Ok(());
        }
        subs.extend(m.subscriptions());
        let mut tags = i
            .tracked_resource
            .tags
            .clone()
            .unwrap_or_else(|| serde_json::json!({}));
        tags[cloud_tag_key(Cloud::Azure, ASSIGNMENT_SUBSCRIPTIONS_TAG)] =
            Value::String(record_subscriptions(&subs));
        self.put_identity(m, tags).await?;
        Ok(())
    }

    /// Deletes an identity of ours: its role assignments first (Azure keeps them,
    /// orphaned, otherwise), then the identity (its credentials go with it).
    async fn delete_identity(
        &self,
        sub: &str,
        rg: &str,
        name: &str,
        i: &models::Identity,
    ) -> Result<(), ProviderError> {
        let principal = Self::principal(i);
        if let Some(principal) = &principal {
            // Its own subscription, and every other its assignments were made in.
            let mut subs =
                recorded_subscriptions(Self::tag(i, ASSIGNMENT_SUBSCRIPTIONS_TAG).as_deref());
            subs.insert(sub.to_ascii_lowercase());
            for s in &subs {
                for (scope, _, assignment) in self.assignments(s, principal).await? {
                    self.delete_assignment(&scope, &assignment).await?;
                }
            }
        }
        let deleted = match self
            .msi
            .user_assigned_identities_client()
            .delete(sub, rg, name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match classify(e) {
                e if not_found(&e) => Ok(()),
                e => Err(e),
            },
        };
        if deleted.is_ok() {
            self.identity_list
                .set(&group_scope(sub, rg), &name.to_ascii_lowercase(), None)
                .await;
            if let Some(principal) = &principal {
                self.assignment_list
                    .set(
                        &sub.to_ascii_lowercase(),
                        &principal.to_ascii_lowercase(),
                        None,
                    )
                    .await;
            }
            self.credentials.forget(&identity_key(sub, rg, name));
        }
        deleted
    }
}

fn managed(d: &DesiredIdentity) -> Result<&DesiredManagedIdentity, ProviderError> {
    match d {
        DesiredIdentity::Azure(m) => Ok(m),
        other => Err(misconfigured(format!(
            "the Azure identity client was given a {} identity",
            other.cloud()
        ))),
    }
}

#[async_trait]
impl IdentityClient for AzureIdentities {
    async fn observe(
        &self,
        d: &DesiredIdentity,
    ) -> Result<Option<ObservedIdentity>, ProviderError> {
        let m = managed(d)?;
        let Some(i) = self
            .listed(&m.subscription_id, &m.resource_group, &m.name)
            .await?
        else {
            return Ok(None);
        };
        let owner = Self::owner(&i);
        let mut observed = ObservedIdentity {
            reference: i
                .properties
                .as_ref()
                .and_then(|p| p.client_id.clone())
                .unwrap_or_default(),
            owner: owner.clone(),
            parts: Default::default(),
        };
        // Nothing more is read of an identity that is not ours.
        if owner.as_deref() != Some(m.claim_uid.as_str()) {
            return Ok(Some(observed));
        }
        observed
            .parts
            .insert("federatedCredential", self.credential(m).await?);
        let tag = Self::tag(&i, ASSIGNMENT_SUBSCRIPTIONS_TAG);
        observed
            .parts
            .insert(RECORDS_SUBSCRIPTIONS, json!(m.recorded_in(tag.as_deref())));
        let mut assignments: Vec<Value> = vec![];
        if let Some(p) = Self::principal(&i) {
            for sub in m.assignment_subscriptions(tag.as_deref()) {
                assignments.extend(
                    self.listed_assignments(&sub, &p)
                        .await?
                        .iter()
                        .map(|(scope, role, _)| DesiredManagedIdentity::assignment(scope, role)),
                );
            }
        }
        // An assignment at or above both subscriptions' common scope shows in each.
        assignments.sort_by_key(|v| v.to_string());
        assignments.dedup();
        observed
            .parts
            .insert("roleAssignments", Value::Array(assignments));
        Ok(Some(observed))
    }

    async fn create(&self, d: &DesiredIdentity) -> Result<String, ProviderError> {
        let m = managed(d)?;
        let made = self
            .put_identity(m, serde_json::to_value(&m.tags).unwrap_or_default())
            .await?;
        self.put_credential(m).await?;
        self.put_assignments(m, &made).await?;
        Ok(made
            .properties
            .and_then(|p| p.client_id)
            .unwrap_or_default())
    }

    async fn update(&self, d: &DesiredIdentity, drift: &[&str]) -> Result<(), ProviderError> {
        let m = managed(d)?;
        // The list may be a TTL old: whose the identity is, is read fresh before a
        // write.
        let i = self
            .get(&m.subscription_id, &m.resource_group, &m.name)
            .await?
            .ok_or_else(|| {
                ProviderError::Retryable(format!("managed identity {} is gone", m.name))
            })?;
        if Self::owner(&i).as_deref() != Some(m.claim_uid.as_str()) {
            self.identity_list.invalidate();
            return Err(ProviderError::Terminal {
                reason: Reason::OwnedByOther,
                message: format!(
                    "managed identity {} is not this claim's; Paved will not change it",
                    m.name
                ),
            });
        }
        if drift.contains(&"federatedCredential") {
            self.put_credential(m).await?;
        }
        if drift.contains(&RECORDS_SUBSCRIPTIONS) || drift.contains(&"roleAssignments") {
            // Recorded before any assignment is made where deletion would not look.
            self.keep_subscriptions_recorded(m, &i).await?;
        }
        if drift.contains(&"roleAssignments") {
            self.put_assignments(m, &i).await?;
        }
        Ok(())
    }

    async fn delete(&self, id: &str, uid: &str) -> Result<bool, ProviderError> {
        let Some((sub, rg, name)) = parse_id(id) else {
            return Err(misconfigured(format!(
                "{id:?} is not a managed identity's resource ID"
            )));
        };
        let Some(i) = self.get(sub, rg, name).await? else {
            return Ok(false);
        };
        if Self::owner(&i).as_deref() != Some(uid) {
            return Ok(false);
        }
        self.delete_identity(sub, rg, name, &i).await?;
        Ok(true)
    }

    async fn remove_stale(
        &self,
        d: &DesiredIdentity,
        claim_name: &str,
    ) -> Result<Vec<String>, ProviderError> {
        let m = managed(d)?;
        let name_tag = cloud_tag_key(Cloud::Azure, paved_api::labels::CLAIM_NAME);
        let mut stale = vec![];
        let mut pages = self
            .msi
            .user_assigned_identities_client()
            .list_by_resource_group(&m.subscription_id, &m.resource_group)
            .into_stream();
        while let Some(page) = pages.next().await {
            for i in page.map_err(classify)?.value {
                let tags = i.tracked_resource.tags.clone().unwrap_or_default();
                let same_claim = tags.get(&name_tag).and_then(Value::as_str) == Some(claim_name);
                let owner = Self::owner(&i);
                if same_claim && owner.is_some() && owner.as_deref() != Some(m.claim_uid.as_str()) {
                    if let Some(name) = i.tracked_resource.resource.name.clone() {
                        stale.push((name, i));
                    }
                }
            }
        }
        let mut removed = vec![];
        for (name, i) in stale {
            // Only one this cluster's token could use as the same ServiceAccount
            // (another cluster sharing the resource group keeps its own).
            let same_subject = match self
                .msi
                .federated_identity_credentials_client()
                .get(
                    &m.subscription_id,
                    &m.resource_group,
                    &name,
                    FEDERATED_CREDENTIAL,
                )
                .await
            {
                Ok(f) => f
                    .properties
                    .is_some_and(|p| p.issuer == m.issuer && p.subject == m.subject),
                Err(e) => match classify(e) {
                    ProviderError::NotFound(_) => false,
                    other => return Err(other),
                },
            };
            if !same_subject {
                continue;
            }
            self.delete_identity(&m.subscription_id, &m.resource_group, &name, &i)
                .await?;
            removed.push(name);
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn identity_ids_are_parsed_or_refused() {
        assert_eq!(
            super::parse_id("/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/paved-x"),
            Some(("s", "rg", "paved-x"))
        );
        assert_eq!(super::parse_id("arn:aws:iam::1:role/x"), None);
        assert_eq!(
            super::parse_id(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/x"
            ),
            None
        );
    }
}
