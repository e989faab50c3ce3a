//! The IAM role of each service (aws-sdk-iam): observed, created, corrected and
//! deleted as `paved_compose::identity` decides, with its EKS Pod Identity
//! association where the Composition asks for one (`pod_identity`). IAM is global;
//! the client uses the default credential chain (`AWS_ENDPOINT_URL` points it
//! elsewhere, e.g. moto).

mod pod_identity;

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use async_trait::async_trait;
use aws_sdk_iam::Client as Iam;
use paved_compose::identity::{
    named_for_a_claim, role_path, DesiredIdentity, DesiredRole, ObservedIdentity, ASSOCIATION_TAG,
    OTHER_POLICIES, OWNER_TAG, POD_IDENTITY,
};
use serde_json::{json, Value};

use crate::{
    listed::{Listed, Recent},
    IdentityClient, ProviderError,
};

/// The inline policy Paved keeps on each role.
pub const POLICY_NAME: &str = "paved";

pub struct IamRoles {
    iam: Iam,
    config: aws_config::SdkConfig,
    /// Every role named `paved-…` (by name, lower case), from one account-wide list
    /// shared by all claims within the time-to-live.
    roles: Listed<ObservedIdentity>,
    /// EKS clients by region, for Pod Identity associations.
    eks: std::sync::Mutex<HashMap<String, aws_sdk_eks::Client>>,
    /// Each cluster's Pod Identity associations (scope `<region>/<cluster>`) by
    /// `<namespace>/<service account>`: their IDs and ARNs.
    associations: Listed<(String, String)>,
    /// What each association gives and whose it is, as last described, by ID.
    association_views: Recent<Value>,
}

/// What Paved reads of a role, from GetRole and its policies or from one entry of
/// GetAccountAuthorizationDetails.
struct RoleView<'a> {
    arn: &'a str,
    tags: BTreeMap<String, String>,
    trust: Option<&'a str>,
    boundary: Option<&'a str>,
    /// Paved's inline policy, if the role has it.
    policy: Option<Value>,
    /// Managed policies attached (`arn:…`) and inline policies other than Paved's.
    others: Vec<String>,
}

impl RoleView<'_> {
    /// Nothing but the owner is read of a role that is not Paved's.
    fn observed(self) -> ObservedIdentity {
        let mut observed = ObservedIdentity {
            reference: self.arn.to_string(),
            owner: self.tags.get(OWNER_TAG).cloned(),
            parts: Default::default(),
        };
        if observed.owner.is_none() {
            return observed;
        }
        let mut others = self.others;
        others.sort();
        observed.parts.insert(
            "trust",
            self.trust.and_then(document).unwrap_or(Value::Null),
        );
        observed
            .parts
            .insert("policy", self.policy.unwrap_or(Value::Null));
        observed
            .parts
            .insert("permissionsBoundary", json!(self.boundary));
        observed.parts.insert(OTHER_POLICIES, json!(others));
        // The association the role records (compared by `observe`, not a part of its
        // own).
        if let Some(a) = self.tags.get(ASSOCIATION_TAG) {
            observed.parts.insert(ASSOCIATION_TAG, json!(a));
        }
        observed
    }
}

/// A role as GetAccountAuthorizationDetails lists it.
fn view_of(r: &aws_sdk_iam::types::RoleDetail) -> Option<(String, RoleView<'_>)> {
    let name = r.role_name()?.to_string();
    let mut policy = None;
    let mut others: Vec<String> = r
        .attached_managed_policies()
        .iter()
        .filter_map(|p| p.policy_arn().map(String::from))
        .collect();
    for p in r.role_policy_list() {
        match p.policy_name() {
            Some(POLICY_NAME) => policy = p.policy_document().and_then(document),
            Some(n) => others.push(n.to_string()),
            None => {}
        }
    }
    Some((
        name,
        RoleView {
            arn: r.arn()?,
            tags: tag_map(r.tags()),
            trust: r.assume_role_policy_document(),
            boundary: r
                .permissions_boundary()
                .and_then(|b| b.permissions_boundary_arn()),
            policy,
            others,
        },
    ))
}

fn tag_map(tags: &[aws_sdk_iam::types::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

/// A policy document as IAM returns it: URL-encoded JSON (some endpoints send it
/// plain).
fn document(raw: &str) -> Option<Value> {
    serde_json::from_str(raw).ok().or_else(|| {
        let decoded = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .ok()?;
        serde_json::from_str(&decoded).ok()
    })
}

impl IamRoles {
    /// `ttl`: how long one list serves every claim; `recheck`: how long what an
    /// association gives is trusted; `on_list`, `on_eks_list`: called per page of the
    /// IAM and the EKS lists.
    pub async fn new(
        ttl: Duration,
        recheck: Duration,
        on_list: crate::ListCounter,
        on_eks_list: crate::ListCounter,
    ) -> Self {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        IamRoles {
            iam: Iam::new(&config),
            config,
            roles: Listed::new("IAM roles", ttl, on_list),
            eks: Default::default(),
            associations: Listed::new("EKS Pod Identity associations", ttl, on_eks_list),
            association_views: Recent::new(recheck),
        }
    }

    /// The role named `name` (IAM names are case-insensitive), from one paginated
    /// GetAccountAuthorizationDetails shared by every claim's poll within the
    /// time-to-live: one list per account, not four calls per role.
    async fn listed(&self, name: &str) -> Result<Option<ObservedIdentity>, ProviderError> {
        let all = self
            .roles
            .get("", |page| async move {
                let mut map = HashMap::new();
                let mut pages = self
                    .iam
                    .get_account_authorization_details()
                    .filter(aws_sdk_iam::types::EntityType::Role)
                    .into_paginator()
                    .send();
                while let Some(p) = pages.next().await {
                    page();
                    let p = p.map_err(crate::aws::classify)?;
                    // Paved's names, wherever they are and however spelt (one elsewhere
                    // is someone else's, seen as such, never created over); no other
                    // role is read further.
                    let ours = p
                        .role_detail_list()
                        .iter()
                        .filter(|r| r.role_name().is_some_and(named_for_a_claim));
                    for (name, view) in ours.filter_map(view_of) {
                        map.insert(name.to_ascii_lowercase(), view.observed());
                    }
                }
                Ok(map)
            })
            .await?;
        Ok(all.get(&name.to_ascii_lowercase()).cloned())
    }

    /// After a write to the role `name`: its entry read fresh into the list (the
    /// others stay; a rollout that touches every role does not list the account once
    /// per role).
    async fn refresh(&self, name: &str) -> Result<(), ProviderError> {
        // No list to keep current: the next poll lists anyway.
        if !self.roles.is_listed("").await {
            return Ok(());
        }
        let fresh = self.observe_role(name).await?;
        self.roles.set("", &name.to_ascii_lowercase(), fresh).await;
        Ok(())
    }

    /// After a failed write, or one whose role is unknown: the next poll lists again.
    fn forget(&self) {
        self.roles.invalidate();
    }

    /// After a write to `name`: its entry refreshed, or (the write failed, or reading
    /// it back did: what it left is unknown) the whole list forgotten.
    async fn after_write(&self, name: &str, ok: bool) {
        if !ok || self.refresh(name).await.is_err() {
            self.forget();
        }
    }

    /// The role named `name`, or None.
    async fn observe_role(&self, name: &str) -> Result<Option<ObservedIdentity>, ProviderError> {
        let role = match self.iam.get_role().role_name(name).send().await {
            Ok(r) => r.role,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(crate::aws::classify(e)),
        };
        let Some(role) = role else { return Ok(None) };
        let mut view = RoleView {
            arn: role.arn(),
            tags: tag_map(role.tags()),
            trust: role.assume_role_policy_document(),
            boundary: role
                .permissions_boundary()
                .and_then(|b| b.permissions_boundary_arn()),
            policy: None,
            others: vec![],
        };
        // Tags first: nothing more is read of a role that is not ours.
        if !view.tags.contains_key(OWNER_TAG) {
            return Ok(Some(view.observed()));
        }
        view.policy = match self
            .iam
            .get_role_policy()
            .role_name(name)
            .policy_name(POLICY_NAME)
            .send()
            .await
        {
            Ok(p) => document(p.policy_document()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                None
            }
            Err(e) => return Err(crate::aws::classify(e)),
        };
        view.others = self.other_policies(name).await?;
        Ok(Some(view.observed()))
    }

    /// Managed policies attached to the role and inline policies other than Paved's:
    /// `arn:…` for the former, names for the latter.
    async fn other_policies(&self, name: &str) -> Result<Vec<String>, ProviderError> {
        let mut out = vec![];
        let mut attached = self
            .iam
            .list_attached_role_policies()
            .role_name(name)
            .into_paginator()
            .send();
        while let Some(page) = attached.next().await {
            let page = page.map_err(crate::aws::classify)?;
            out.extend(
                page.attached_policies()
                    .iter()
                    .filter_map(|p| p.policy_arn().map(String::from)),
            );
        }
        let mut inline = self
            .iam
            .list_role_policies()
            .role_name(name)
            .into_paginator()
            .send();
        while let Some(page) = inline.next().await {
            let page = page.map_err(crate::aws::classify)?;
            out.extend(
                page.policy_names()
                    .iter()
                    .filter(|n| *n != POLICY_NAME)
                    .cloned(),
            );
        }
        out.sort();
        Ok(out)
    }

    /// Detaches and deletes every policy but Paved's (IAM refuses to delete a role
    /// that still has any).
    async fn remove_other_policies(&self, name: &str) -> Result<(), ProviderError> {
        for p in self.other_policies(name).await? {
            if p.starts_with("arn:") {
                self.iam
                    .detach_role_policy()
                    .role_name(name)
                    .policy_arn(&p)
                    .send()
                    .await
                    .map_err(crate::aws::classify)?;
            } else {
                self.iam
                    .delete_role_policy()
                    .role_name(name)
                    .policy_name(&p)
                    .send()
                    .await
                    .map_err(crate::aws::classify)?;
            }
        }
        Ok(())
    }

    /// Creates the role, tagged as the claim's, then its inline policy.
    async fn create_role(&self, d: &DesiredRole) -> Result<(), ProviderError> {
        let mut req = self
            .iam
            .create_role()
            .role_name(&d.name)
            .path(&d.path)
            .assume_role_policy_document(d.trust.to_string())
            .description("Paved: the identity of one service (ServiceClaim)");
        if let Some(b) = &d.permissions_boundary {
            req = req.permissions_boundary(b);
        }
        for (k, v) in &d.tags {
            req = req.tags(
                aws_sdk_iam::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .map_err(|e| ProviderError::Retryable(e.to_string()))?,
            );
        }
        req.send().await.map_err(crate::aws::classify)?;
        self.put_policy(d).await?;
        if let Some(a) = &d.pod_identity {
            // A new role records no association yet.
            self.ensure_association(d, a, None).await?;
        }
        Ok(())
    }

    async fn put_policy(&self, d: &DesiredRole) -> Result<(), ProviderError> {
        self.iam
            .put_role_policy()
            .role_name(&d.name)
            .policy_name(POLICY_NAME)
            .policy_document(d.policy.to_string())
            .send()
            .await
            .map_err(crate::aws::classify)?;
        Ok(())
    }

    /// Puts back the parts `paved_compose::identity::plan_identity` named.
    /// `seen`: the role as just read (its recorded association among its parts).
    async fn update_role(
        &self,
        d: &DesiredRole,
        seen: &ObservedIdentity,
        drift: &[&str],
    ) -> Result<(), ProviderError> {
        if drift.contains(&OTHER_POLICIES) {
            self.remove_other_policies(&d.name).await?;
        }
        if drift.contains(&"trust") {
            self.iam
                .update_assume_role_policy()
                .role_name(&d.name)
                .policy_document(d.trust.to_string())
                .send()
                .await
                .map_err(crate::aws::classify)?;
        }
        if drift.contains(&"policy") {
            self.put_policy(d).await?;
        }
        if let (true, Some(a)) = (drift.contains(&POD_IDENTITY), &d.pod_identity) {
            let recorded = seen.parts.get(ASSOCIATION_TAG).and_then(Value::as_str);
            self.ensure_association(d, a, recorded).await?;
        }
        if drift.contains(&"permissionsBoundary") {
            match &d.permissions_boundary {
                Some(b) => {
                    self.iam
                        .put_role_permissions_boundary()
                        .role_name(&d.name)
                        .permissions_boundary(b)
                        .send()
                        .await
                        .map_err(crate::aws::classify)?;
                }
                None => {
                    self.iam
                        .delete_role_permissions_boundary()
                        .role_name(&d.name)
                        .send()
                        .await
                        .map_err(crate::aws::classify)?;
                }
            }
        }
        Ok(())
    }

    /// Deletes every role Paved made under `path` (tagged with a claim's UID) but
    /// `keep`: roles an earlier claim of the same name left behind, which trust the
    /// same ServiceAccount name. Returns their names.
    async fn remove_stale_roles(
        &self,
        path: &str,
        keep: &str,
        trust: &Value,
    ) -> Result<Vec<String>, ProviderError> {
        let mut names = vec![];
        let mut pages = self
            .iam
            .list_roles()
            .path_prefix(path)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(crate::aws::classify)?;
            names.extend(
                page.roles()
                    .iter()
                    .map(|r| r.role_name().to_string())
                    .filter(|n| n != keep),
            );
        }
        let mut removed = vec![];
        for name in names {
            let Some(seen) = self.observe_role(&name).await? else {
                continue;
            };
            let Some(uid) = seen.owner.clone() else {
                continue;
            };
            // Only a role this cluster's token could assume as the same ServiceAccount
            // (another cluster sharing the account keeps its own).
            if seen.parts.get("trust") != Some(trust) {
                continue;
            }
            if self.delete_role(&name, &uid).await? {
                removed.push(name);
            }
        }
        Ok(removed)
    }

    /// Deletes the role if it is the claim `uid`'s: its inline policy, then the role.
    /// Returns whether there was one of ours to delete.
    async fn delete_role(&self, name: &str, uid: &str) -> Result<bool, ProviderError> {
        let Some(seen) = self.observe_role(name).await? else {
            return Ok(false);
        };
        if seen.owner.as_deref() != Some(uid) {
            return Ok(false);
        }
        let recorded = seen.parts.get(ASSOCIATION_TAG).and_then(Value::as_str);
        self.delete_association(&seen.reference, recorded).await?;
        self.remove_other_policies(name).await?;
        match self
            .iam
            .delete_role_policy()
            .role_name(name)
            .policy_name(POLICY_NAME)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) => {}
            Err(e) => return Err(crate::aws::classify(e)),
        }
        match self.iam.delete_role().role_name(name).send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(crate::aws::classify(e)),
        }
    }
}

/// The account of an IAM ARN (`arn:<partition>:iam::<account>:…`).
fn arn_account(arn: &str) -> Option<&str> {
    let account = arn.strip_prefix("arn:")?.split(':').nth(3)?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then_some(account)
}

fn role(d: &DesiredIdentity) -> Result<&DesiredRole, ProviderError> {
    match d {
        DesiredIdentity::Aws(r) => Ok(r),
        other => Err(ProviderError::Terminal {
            reason: paved_api::Reason::ProviderMisconfigured,
            message: format!("the IAM client was given a {} identity", other.cloud()),
        }),
    }
}

#[async_trait]
impl IdentityClient for IamRoles {
    async fn observe(
        &self,
        d: &DesiredIdentity,
    ) -> Result<Option<ObservedIdentity>, ProviderError> {
        let r = role(d)?;
        let mut seen = self.listed(&r.name).await?;
        if let (Some(o), Some(a)) = (seen.as_mut(), &r.pod_identity) {
            // Nothing more is read for a role that is not the claim's.
            if o.owner.as_ref() == r.tags.get(OWNER_TAG) {
                let recorded = o.parts.get(ASSOCIATION_TAG).and_then(Value::as_str);
                let part = self.observe_association(a, recorded).await?;
                o.parts.insert(POD_IDENTITY, part);
            }
        }
        Ok(seen)
    }

    async fn create(&self, d: &DesiredIdentity) -> Result<String, ProviderError> {
        let r = role(d)?;
        let made = self.create_role(r).await;
        self.after_write(&r.name, made.is_ok()).await;
        made.map(|_| r.arn.clone())
    }

    async fn update(&self, d: &DesiredIdentity, drift: &[&str]) -> Result<(), ProviderError> {
        let r = role(d)?;
        // The list may be a TTL old: whose the role is, is read fresh before a write.
        let seen = self.observe_role(&r.name).await?;
        let Some(seen) = seen.filter(|o| o.owner.as_ref() == r.tags.get(OWNER_TAG)) else {
            self.forget();
            return Err(ProviderError::Terminal {
                reason: paved_api::Reason::OwnedByOther,
                message: format!(
                    "IAM role {} is not this claim's; Paved will not change it",
                    r.name
                ),
            });
        };
        let done = self.update_role(r, &seen, drift).await;
        self.after_write(&r.name, done.is_ok()).await;
        done
    }

    async fn delete(&self, id: &str, uid: &str) -> Result<bool, ProviderError> {
        // `arn:aws:iam::<account>:role/<path>/<name>`, or a bare name.
        let name = id.rsplit('/').next().unwrap_or(id);
        // Role names are per account: a role of that name seen through credentials
        // of another account is not the one recorded, and the recorded one must not
        // be forgotten.
        if let (Some(want), Some(seen)) = (
            arn_account(id),
            self.observe_role(name)
                .await?
                .and_then(|r| arn_account(&r.reference).map(String::from)),
        ) {
            if want != seen {
                return Err(ProviderError::Terminal {
                    reason: paved_api::Reason::ProviderMisconfigured,
                    message: format!(
                        "IAM role {id} was made in account {want}; the operator's credentials are for account {seen}"
                    ),
                });
            }
        }
        let done = self.delete_role(name, uid).await;
        self.after_write(name, done.is_ok()).await;
        done
    }

    async fn remove_stale(
        &self,
        d: &DesiredIdentity,
        claim_name: &str,
    ) -> Result<Vec<String>, ProviderError> {
        let r = role(d)?;
        let removed = self
            .remove_stale_roles(&role_path(claim_name), &r.name, &r.trust)
            .await;
        match &removed {
            Ok(names) => {
                for n in names {
                    self.after_write(n, true).await;
                }
            }
            Err(_) => self.forget(),
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_account_of_an_arn() {
        assert_eq!(
            super::arn_account("arn:aws:iam::123456789012:role/paved/svc/paved-x"),
            Some("123456789012")
        );
        assert_eq!(
            super::arn_account("arn:aws-us-gov:iam::210987654321:role/x"),
            Some("210987654321")
        );
        assert_eq!(super::arn_account("paved-x"), None);
        assert_eq!(super::arn_account("arn:aws:iam::12:role/x"), None);
    }

    #[test]
    fn documents_are_read_encoded_or_plain() {
        let plain = r#"{"Version":"2012-10-17"}"#;
        assert_eq!(super::document(plain).unwrap()["Version"], "2012-10-17");
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%7D";
        assert_eq!(super::document(encoded).unwrap()["Version"], "2012-10-17");
        assert!(super::document("%7Bnot").is_none());
    }

    #[test]
    fn a_listed_role_reads_as_a_fetched_one() {
        use aws_sdk_iam::types::{
            AttachedPermissionsBoundary, AttachedPolicy, PolicyDetail, RoleDetail, Tag,
        };
        let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build().unwrap();
        let ours = RoleDetail::builder()
            .role_name("paved-uid-1")
            .arn("arn:aws:iam::123456789012:role/paved/svc/paved-uid-1")
            .path("/paved/svc/")
            .assume_role_policy_document("%7B%22Version%22%3A%222012-10-17%22%7D")
            .tags(tag(super::OWNER_TAG, "uid-1"))
            .role_policy_list(
                PolicyDetail::builder()
                    .policy_name(super::POLICY_NAME)
                    .policy_document(r#"{"Statement":[]}"#)
                    .build(),
            )
            .role_policy_list(PolicyDetail::builder().policy_name("zz-extra").build())
            .attached_managed_policies(
                AttachedPolicy::builder()
                    .policy_arn("arn:aws:iam::aws:policy/AdministratorAccess")
                    .build(),
            )
            .permissions_boundary(
                AttachedPermissionsBoundary::builder()
                    .permissions_boundary_arn("arn:aws:iam::123456789012:policy/b")
                    .build(),
            )
            .build();
        let (name, view) = super::view_of(&ours).unwrap();
        assert_eq!(name, "paved-uid-1");
        let o = view.observed();
        assert_eq!(o.owner.as_deref(), Some("uid-1"));
        assert_eq!(o.parts["trust"]["Version"], "2012-10-17");
        assert_eq!(o.parts["policy"], serde_json::json!({ "Statement": [] }));
        assert_eq!(
            o.parts["permissionsBoundary"],
            "arn:aws:iam::123456789012:policy/b"
        );
        assert_eq!(
            o.parts[super::OTHER_POLICIES],
            serde_json::json!(["arn:aws:iam::aws:policy/AdministratorAccess", "zz-extra"])
        );
        // Someone else's role of a Paved-like name: its owner (none) and nothing more.
        let theirs = RoleDetail::builder()
            .role_name("paved-uid-2")
            .arn("arn:aws:iam::123456789012:role/paved-uid-2")
            .build();
        let o = super::view_of(&theirs).unwrap().1.observed();
        assert_eq!(o.owner, None);
        assert!(o.parts.is_empty());
    }
}
