//! Each database's own VPC security group (aws-sdk-ec2), where the Composition asks
//! for one: `paved-<instance>`, tagged with the claim's UID, admitting PostgreSQL from
//! the Composition's client ranges and nothing out. Observed from one paginated
//! DescribeSecurityGroups per region (the groups tagged as a claim's), shared like
//! the instance list; made, corrected and deleted with fresh reads.

use std::collections::HashMap;

use aws_sdk_ec2::types::{
    Filter, IpPermission, IpRange, Ipv6Range, ResourceType, SecurityGroup, Tag, TagSpecification,
};
use aws_sdk_rds::error::ProvideErrorMetadata;
use paved_api::OwnSecurityGroup;
use paved_compose::postgresql::{
    client_rule, own_security_group_name, DesiredDatabase, ObservedSecurityGroup, OWNER_TAG,
    POSTGRES_PORT,
};

use super::{classify, AwsProvider};
use crate::{listed::Listing, ProviderError};

/// One rule of a group, one range each, as `paved_compose` compares them.
struct Rule {
    text: String,
    permission: IpPermission,
}

/// Every rule of a group, split so each names one range (or group).
fn rules(g: &SecurityGroup) -> Vec<(bool, Rule)> {
    let mut out = vec![];
    for (ingress, perms) in [
        (true, g.ip_permissions()),
        (false, g.ip_permissions_egress()),
    ] {
        for p in perms {
            let proto = p.ip_protocol().unwrap_or("-1");
            let (from, to) = (p.from_port().unwrap_or(0), p.to_port().unwrap_or(0));
            let base = || {
                IpPermission::builder()
                    .ip_protocol(proto)
                    .set_from_port(p.from_port())
                    .set_to_port(p.to_port())
            };
            let dir = if ingress { "in" } else { "out" };
            let peers = p
                .ip_ranges()
                .iter()
                .map(|r| {
                    let cidr = r.cidr_ip().unwrap_or_default();
                    (
                        cidr,
                        base().ip_ranges(IpRange::builder().cidr_ip(cidr).build()),
                    )
                })
                .chain(p.ipv6_ranges().iter().map(|r| {
                    let cidr = r.cidr_ipv6().unwrap_or_default();
                    (
                        cidr,
                        base().ipv6_ranges(Ipv6Range::builder().cidr_ipv6(cidr).build()),
                    )
                }))
                .chain(p.user_id_group_pairs().iter().map(|g| {
                    (
                        g.group_id().unwrap_or_default(),
                        base().user_id_group_pairs(g.clone()),
                    )
                }))
                .chain(p.prefix_list_ids().iter().map(|l| {
                    (
                        l.prefix_list_id().unwrap_or_default(),
                        base().prefix_list_ids(l.clone()),
                    )
                }));
            for (peer, permission) in peers {
                out.push((
                    ingress,
                    Rule {
                        text: format!("{dir} {proto} {from}-{to} {peer}"),
                        permission: permission.build(),
                    },
                ));
            }
        }
    }
    out
}

/// A group as `paved_compose::postgresql::plan` sees it.
fn observed_group(g: &SecurityGroup) -> ObservedSecurityGroup {
    let mut texts: Vec<String> = rules(g).into_iter().map(|(_, r)| r.text).collect();
    texts.sort();
    ObservedSecurityGroup {
        id: g.group_id().unwrap_or_default().to_string(),
        owner_uid: g
            .tags()
            .iter()
            .find(|t| t.key() == Some(OWNER_TAG))
            .and_then(|t| t.value())
            .map(String::from),
        rules: texts,
    }
}

fn key(vpc: &str, name: &str) -> String {
    format!("{vpc}/{name}")
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

impl AwsProvider {
    /// The database's own group as the shared list has it (None: not there, or not
    /// tagged as any claim's).
    pub(super) async fn own_group(
        &self,
        d: &DesiredDatabase,
    ) -> Result<Option<ObservedSecurityGroup>, ProviderError> {
        let Some(own) = &d.network.own_security_group else {
            return Ok(None);
        };
        let all = self.groups().await?;
        Ok(all
            .get(&key(&own.vpc_id, &own_security_group_name(d)))
            .cloned())
    }

    /// Every security group in the region tagged as a claim's: one paginated list
    /// shared by every claim within the time-to-live.
    async fn groups(&self) -> Result<Listing<ObservedSecurityGroup>, ProviderError> {
        self.groups
            .get("", |page| async move {
                let mut map = HashMap::new();
                let mut pages = self
                    .ec2
                    .describe_security_groups()
                    .filters(filter("tag-key", OWNER_TAG))
                    .into_paginator()
                    .send();
                while let Some(p) = pages.next().await {
                    page();
                    for g in p.map_err(classify)?.security_groups() {
                        if let (Some(vpc), Some(name)) = (g.vpc_id(), g.group_name()) {
                            map.insert(key(vpc, name), observed_group(g));
                        }
                    }
                }
                Ok(map)
            })
            .await
    }

    /// The database's own group, read fresh: made if missing (refused if one of that
    /// name is not the claim's), its rules put back to exactly the desired ones.
    /// Returns its ID.
    pub(super) async fn ensure_own_group(
        &self,
        d: &DesiredDatabase,
        own: &OwnSecurityGroup,
    ) -> Result<String, ProviderError> {
        let name = own_security_group_name(d);
        let group = match self.find_group(&own.vpc_id, &name).await? {
            Some(g) => g,
            None => {
                let made = self
                    .ec2
                    .create_security_group()
                    .group_name(&name)
                    .vpc_id(&own.vpc_id)
                    .description(format!("Paved: database {}, clients only", d.external_name))
                    .tag_specifications(
                        TagSpecification::builder()
                            .resource_type(ResourceType::SecurityGroup)
                            .tags(Tag::builder().key(OWNER_TAG).value(&d.owner_uid).build())
                            .tags(Tag::builder().key("Name").value(&name).build())
                            .build(),
                    )
                    .send()
                    .await;
                match made {
                    Ok(_) => {}
                    // Made meanwhile (a retried create): read it below.
                    Err(e) if e.code() == Some("InvalidGroup.Duplicate") => {}
                    Err(e) => return Err(classify(e)),
                }
                self.find_group(&own.vpc_id, &name).await?.ok_or_else(|| {
                    ProviderError::Retryable(format!("security group {name} not visible yet"))
                })?
            }
        };
        let seen = observed_group(&group);
        if seen.owner_uid.as_deref() != Some(d.owner_uid.as_str()) {
            return Err(ProviderError::Terminal {
                reason: paved_api::Reason::OwnedByOther,
                message: format!(
                    "security group {name} ({}) in {} is not this claim's; Paved will not take it over",
                    seen.id, own.vpc_id
                ),
            });
        }
        self.correct_rules(&group, own).await?;
        Ok(seen.id)
    }

    async fn find_group(
        &self,
        vpc: &str,
        name: &str,
    ) -> Result<Option<SecurityGroup>, ProviderError> {
        let out = self
            .ec2
            .describe_security_groups()
            .filters(filter("vpc-id", vpc))
            .filters(filter("group-name", name))
            .send()
            .await
            .map_err(classify)?;
        Ok(out.security_groups().first().cloned())
    }

    /// Revokes every rule but the desired ones (the default allow-all egress too) and
    /// authorizes the missing ones.
    async fn correct_rules(
        &self,
        g: &SecurityGroup,
        own: &OwnSecurityGroup,
    ) -> Result<(), ProviderError> {
        let id = g.group_id().unwrap_or_default();
        let want: Vec<String> = own.client_cidrs.iter().map(|c| client_rule(c)).collect();
        let have = rules(g);
        for (ingress, r) in have.iter().filter(|(_, r)| !want.contains(&r.text)) {
            let res = if *ingress {
                self.ec2
                    .revoke_security_group_ingress()
                    .group_id(id)
                    .ip_permissions(r.permission.clone())
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(classify)
            } else {
                self.ec2
                    .revoke_security_group_egress()
                    .group_id(id)
                    .ip_permissions(r.permission.clone())
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(classify)
            };
            res?;
        }
        let present: Vec<&str> = have.iter().map(|(_, r)| r.text.as_str()).collect();
        let missing: Vec<IpPermission> = own
            .client_cidrs
            .iter()
            .filter(|c| !present.contains(&client_rule(c).as_str()))
            .map(|c| {
                let p = IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(POSTGRES_PORT)
                    .to_port(POSTGRES_PORT);
                if c.contains(':') {
                    p.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(c).build())
                } else {
                    p.ip_ranges(IpRange::builder().cidr_ip(c).build())
                }
                .build()
            })
            .collect();
        if !missing.is_empty() {
            self.ec2
                .authorize_security_group_ingress()
                .group_id(id)
                .set_ip_permissions(Some(missing))
                .send()
                .await
                .map_err(classify)?;
        }
        Ok(())
    }

    /// After the instance is gone: deletes the groups made for it (by name and the
    /// claim's tag, in whichever VPC). `Some` says what is still in the way.
    pub(super) async fn delete_own_groups(
        &self,
        d: &DesiredDatabase,
    ) -> Result<Option<String>, ProviderError> {
        let out = self
            .ec2
            .describe_security_groups()
            .filters(filter("group-name", &own_security_group_name(d)))
            .filters(filter(&format!("tag:{OWNER_TAG}"), &d.owner_uid))
            .send()
            .await
            .map_err(classify)?;
        for g in out.security_groups() {
            let id = g.group_id().unwrap_or_default();
            match self.ec2.delete_security_group().group_id(id).send().await {
                Ok(_) => {}
                Err(e) if e.code() == Some("InvalidGroup.NotFound") => {}
                // The instance's network interfaces are still being released.
                Err(e) if e.code() == Some("DependencyViolation") => {
                    return Ok(Some(format!(
                        "security group {id} of {} is still in use; deleting it once released",
                        d.external_name
                    )))
                }
                Err(e) => return Err(classify(e)),
            }
        }
        if !out.security_groups().is_empty() {
            self.invalidate();
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::types::UserIdGroupPair;

    #[test]
    fn a_groups_rules_read_one_range_each() {
        let g = SecurityGroup::builder()
            .group_id("sg-own")
            .tags(Tag::builder().key(OWNER_TAG).value("uid-1").build())
            .ip_permissions(
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(5432)
                    .to_port(5432)
                    .ip_ranges(IpRange::builder().cidr_ip("10.1.0.0/16").build())
                    .ip_ranges(IpRange::builder().cidr_ip("10.0.0.0/16").build())
                    .user_id_group_pairs(UserIdGroupPair::builder().group_id("sg-x").build())
                    .build(),
            )
            .ip_permissions_egress(
                IpPermission::builder()
                    .ip_protocol("-1")
                    .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                    .build(),
            )
            .build();
        let o = observed_group(&g);
        assert_eq!(o.id, "sg-own");
        assert_eq!(o.owner_uid.as_deref(), Some("uid-1"));
        assert_eq!(
            o.rules,
            vec![
                "in tcp 5432-5432 10.0.0.0/16",
                "in tcp 5432-5432 10.1.0.0/16",
                "in tcp 5432-5432 sg-x",
                "out -1 0-0 0.0.0.0/0",
            ]
        );
        // Each rule revokes on its own: one range per permission.
        for (_, r) in rules(&g) {
            let p = &r.permission;
            assert_eq!(
                p.ip_ranges().len() + p.ipv6_ranges().len() + p.user_id_group_pairs().len(),
                1,
                "{}",
                r.text
            );
        }
    }
}
