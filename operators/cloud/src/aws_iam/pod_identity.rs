//! Each service's EKS Pod Identity association (aws-sdk-eks), where the Composition
//! asks for one: the service's namespace and ServiceAccount in the cluster run as the
//! service's role. Observed from one ListPodIdentityAssociations per cluster (shared
//! like the role list) and, for what the list does not show (the role, tags and
//! session settings), one DescribePodIdentityAssociation per association trusted for
//! the recheck period. The association is tagged with the claim's UID, and its ARN is
//! recorded as a tag on the role, so the role's deletion deletes it wherever the
//! Composition points by then. One the claim did not make is never changed
//! (`OwnedByOther`), but for one an earlier claim of the same name left, which is
//! replaced.

use std::collections::HashMap;

use aws_sdk_eks::{types::PodIdentityAssociation, Client as Eks};
use paved_api::Reason;
use paved_compose::identity::{
    association_parts, DesiredAssociation, DesiredRole, ASSOCIATION_TAG, OWNER_TAG,
};
use serde_json::{json, Value};

use super::IamRoles;
use crate::{aws::classify, ProviderError};

type EksError<E> = aws_sdk_eks::error::SdkError<E, aws_sdk_eks::config::http::HttpResponse>;

fn code<E: aws_sdk_eks::error::ProvideErrorMetadata>(e: &EksError<E>) -> Option<&str> {
    aws_sdk_eks::error::ProvideErrorMetadata::code(e)
}

fn not_found<E: aws_sdk_eks::error::ProvideErrorMetadata>(e: &EksError<E>) -> bool {
    code(e) == Some("ResourceNotFoundException")
}

fn scope(a: &DesiredAssociation) -> String {
    format!("{}/{}", a.region, a.cluster)
}

fn key(namespace: &str, service_account: &str) -> String {
    format!("{namespace}/{service_account}")
}

/// A missing cluster is the Composition's mistake, said so.
fn cluster_error<E>(cluster: &str, region: &str, e: EksError<E>) -> ProviderError
where
    E: aws_sdk_eks::error::ProvideErrorMetadata + std::fmt::Debug,
    EksError<E>: std::error::Error,
{
    if not_found(&e) {
        return ProviderError::Terminal {
            reason: Reason::ProviderMisconfigured,
            message: format!(
                "EKS cluster {cluster} not found in {region} (identity.aws.podIdentity)"
            ),
        };
    }
    classify(e)
}

/// As [`cluster_error`]; and a role EKS cannot see yet (IAM propagates a new role or
/// trust in seconds) is retried.
fn eks_error<E>(a: &DesiredAssociation, e: EksError<E>) -> ProviderError
where
    E: aws_sdk_eks::error::ProvideErrorMetadata + std::fmt::Debug,
    EksError<E>: std::error::Error,
{
    let message = aws_sdk_eks::error::ProvideErrorMetadata::message(&e)
        .unwrap_or_default()
        .to_ascii_lowercase();
    if code(&e) == Some("InvalidParameterException")
        && (message.contains("does not exist") || message.contains("trust"))
    {
        return ProviderError::Retryable(format!(
            "EKS does not see role {} yet: {message}",
            a.role_arn
        ));
    }
    cluster_error(&a.cluster, &a.region, e)
}

/// What Paved compares of an association, and whose it is.
fn view(x: &PodIdentityAssociation) -> Value {
    json!({
        "roleArn": x.role_arn(),
        "owner": x.tags().and_then(|t| t.get(OWNER_TAG)),
        "disableSessionTags": x.disable_session_tags().unwrap_or(false),
        "targetRoleArn": x.target_role_arn().filter(|t| !t.is_empty()),
    })
}

impl IamRoles {
    /// The EKS client of `region`, made on first use.
    fn eks(&self, region: &str) -> Eks {
        let mut clients = self
            .eks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        clients
            .entry(region.to_string())
            .or_insert_with(|| {
                Eks::from_conf(
                    aws_sdk_eks::config::Builder::from(&self.config)
                        .region(aws_config::Region::new(region.to_string()))
                        .build(),
                )
            })
            .clone()
    }

    /// `(id, ARN)` of the association of the service's ServiceAccount, from the
    /// cluster's shared list.
    async fn listed_association(
        &self,
        eks: &Eks,
        a: &DesiredAssociation,
    ) -> Result<Option<(String, String)>, ProviderError> {
        let all = self
            .associations
            .get(&scope(a), |page| async move {
                let mut map = HashMap::new();
                let mut pages = eks
                    .list_pod_identity_associations()
                    .cluster_name(&a.cluster)
                    .into_paginator()
                    .send();
                while let Some(p) = pages.next().await {
                    page();
                    for s in p.map_err(|e| eks_error(a, e))?.associations() {
                        if let (Some(ns), Some(sa), Some(id), Some(arn)) = (
                            s.namespace(),
                            s.service_account(),
                            s.association_id(),
                            s.association_arn(),
                        ) {
                            map.insert(key(ns, sa), (id.to_string(), arn.to_string()));
                        }
                    }
                }
                Ok(map)
            })
            .await?;
        Ok(all.get(&key(&a.namespace, &a.service_account)).cloned())
    }

    /// One association of `cluster` (in `region`), described (`null`: gone).
    async fn describe(
        &self,
        eks: &Eks,
        (cluster, region): (&str, &str),
        id: &str,
    ) -> Result<Value, ProviderError> {
        match eks
            .describe_pod_identity_association()
            .cluster_name(cluster)
            .association_id(id)
            .send()
            .await
        {
            Ok(out) => Ok(out.association().map(view).unwrap_or(Value::Null)),
            Err(e) if not_found(&e) => Ok(Value::Null),
            Err(e) => Err(cluster_error(cluster, region, e)),
        }
    }

    /// The association as compared (`DesiredAssociation::part`; `null`: none for the
    /// service's ServiceAccount). `recorded`: the association the role records.
    pub(super) async fn observe_association(
        &self,
        a: &DesiredAssociation,
        recorded: Option<&str>,
    ) -> Result<Value, ProviderError> {
        let eks = self.eks(&a.region);
        let Some((id, arn)) = self.listed_association(&eks, a).await? else {
            return Ok(Value::Null);
        };
        let seen = self
            .association_views
            .get_or_read(&id, || self.describe(&eks, (&a.cluster, &a.region), &id))
            .await?;
        if seen.is_null() {
            return Ok(Value::Null);
        }
        let mut part = a.part();
        part["roleArn"] = seen["roleArn"].clone();
        part["disableSessionTags"] = seen["disableSessionTags"].clone();
        part["targetRoleArn"] = seen["targetRoleArn"].clone();
        part["recorded"] = json!(recorded == Some(arn.as_str()));
        Ok(part)
    }

    /// Makes the service's association, or puts back the claim's own; replaces one
    /// an earlier claim of the name left (its role under the same path); refuses one
    /// anyone else made. Then records the association on the role, deleting one it
    /// recorded before elsewhere (the Composition moved the cluster).
    /// `recorded`: the association the role records now.
    pub(super) async fn ensure_association(
        &self,
        r: &DesiredRole,
        a: &DesiredAssociation,
        recorded: Option<&str>,
    ) -> Result<(), ProviderError> {
        let uid = r
            .tags
            .get(OWNER_TAG)
            .map(String::as_str)
            .unwrap_or_default();
        let eks = self.eks(&a.region);
        let found = eks
            .list_pod_identity_associations()
            .cluster_name(&a.cluster)
            .namespace(&a.namespace)
            .service_account(&a.service_account)
            .send()
            .await
            .map_err(|e| eks_error(a, e))?;
        let existing = found
            .associations()
            .iter()
            .find(|s| {
                s.namespace() == Some(a.namespace.as_str())
                    && s.service_account() == Some(a.service_account.as_str())
            })
            .and_then(|s| {
                Some((
                    s.association_id()?.to_string(),
                    s.association_arn()?.to_string(),
                ))
            });
        let mut ours = None;
        if let Some((id, arn)) = existing {
            let seen = self.describe(&eks, (&a.cluster, &a.region), &id).await?;
            let role = seen["roleArn"].as_str().unwrap_or_default();
            if seen["owner"] == uid {
                let mut req = eks
                    .update_pod_identity_association()
                    .cluster_name(&a.cluster)
                    .association_id(&id)
                    .role_arn(&a.role_arn)
                    .disable_session_tags(false);
                if !seen["targetRoleArn"].is_null() {
                    // An empty target removes it.
                    req = req.target_role_arn("");
                }
                req.send().await.map_err(|e| eks_error(a, e))?;
                ours = Some(arn);
            } else if role.contains(&format!(":role{}", r.path)) {
                // An earlier claim of this name's (its role is gone or going).
                self.delete_association_id(&eks, (&a.cluster, &a.region), &id)
                    .await?;
            } else if !seen.is_null() {
                self.association_views.forget(&id);
                return Err(ProviderError::Terminal {
                    reason: Reason::OwnedByOther,
                    message: format!(
                        "EKS Pod Identity association {arn} for {}/{} is not this claim's (it gives {role}); Paved will not change it",
                        a.namespace, a.service_account
                    ),
                });
            }
            self.association_views.forget(&id);
        }
        let arn = match ours {
            Some(arn) => arn,
            None => {
                let made = eks
                    .create_pod_identity_association()
                    .cluster_name(&a.cluster)
                    .namespace(&a.namespace)
                    .service_account(&a.service_account)
                    .role_arn(&a.role_arn)
                    .tags(OWNER_TAG, uid)
                    .send()
                    .await
                    .map_err(|e| eks_error(a, e))?;
                made.association()
                    .and_then(|x| x.association_arn())
                    .ok_or_else(|| ProviderError::Retryable("EKS answered no association".into()))?
                    .to_string()
            }
        };
        self.associations.invalidate();
        if recorded != Some(arn.as_str()) {
            self.delete_association(&r.arn, recorded).await?;
        }
        self.iam
            .tag_role()
            .role_name(&r.name)
            .tags(
                aws_sdk_iam::types::Tag::builder()
                    .key(ASSOCIATION_TAG)
                    .value(arn)
                    .build()
                    .map_err(|e| ProviderError::Retryable(e.to_string()))?,
            )
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn delete_association_id(
        &self,
        eks: &Eks,
        (cluster, region): (&str, &str),
        id: &str,
    ) -> Result<(), ProviderError> {
        match eks
            .delete_pod_identity_association()
            .cluster_name(cluster)
            .association_id(id)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(cluster_error(cluster, region, e)),
        }
        self.associations.invalidate();
        self.association_views.forget(id);
        Ok(())
    }

    /// Deletes the association a role records (its `ASSOCIATION_TAG`), if it still
    /// gives that role, `role_arn`: one pointed elsewhere since is not the role's to
    /// take.
    pub(super) async fn delete_association(
        &self,
        role_arn: &str,
        recorded: Option<&str>,
    ) -> Result<(), ProviderError> {
        // Where it is, as the ARN says (whatever the Composition says now).
        let Some((region, cluster, id)) = recorded.and_then(association_parts) else {
            return Ok(());
        };
        let eks = self.eks(region);
        // Gone, with its cluster or by itself: `null`, nothing to delete.
        let seen = self.describe(&eks, (cluster, region), id).await?;
        if seen["roleArn"].as_str() != Some(role_arn) {
            return Ok(());
        }
        self.delete_association_id(&eks, (cluster, region), id)
            .await
    }
}
