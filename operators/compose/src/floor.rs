//! The compliance floor for Compositions: what no platform-authored default may
//! lower. The CRD schema refuses the simple cases at admission; this code is the
//! authority, runs on every render, and backs `paved validate`.

use std::collections::BTreeMap;

use paved_api::{
    render_template, Cloud, Composition, PostgreSQLComposition, ServiceComposition,
    TemporalComposition,
};

/// One way a Composition breaks the floor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The offending field, e.g. `spec.postgresql.backup.retentionDays`.
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

pub fn join(v: &[Violation]) -> String {
    v.iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The widest egress range a claim or Composition may open: a /8 for IPv4.
pub const MIN_EGRESS_PREFIX: u32 = 8;
/// The widest IPv6 egress range: a /32, a whole provider's allocation.
pub const MIN_EGRESS_PREFIX_V6: u32 = 32;

/// Ranges no egress may reach: link-local (the cloud metadata services live there:
/// 169.254.169.254, AWS's fd00:ec2::254), Azure's WireServer (168.63.129.16) and
/// Alibaba's metadata address. A pod that reaches them can read the node's cloud
/// credentials.
pub const FORBIDDEN_EGRESS: &[&str] = &[
    "169.254.0.0/16",
    "fe80::/10",
    "fd00:ec2::254/128",
    "168.63.129.16/32",
    "100.100.100.200/32",
];

/// An address range, parsed: (IPv6?, address bits as u128, prefix length).
fn parse_cidr(cidr: &str) -> Option<(bool, u128, u32)> {
    let (addr, prefix) = cidr.split_once('/')?;
    let prefix: u32 = prefix.parse().ok()?;
    match addr.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(a) if prefix <= 32 => Some((false, u32::from(a) as u128, prefix)),
        // An IPv4-mapped range (::ffff:169.254.169.254) is the IPv4 range it maps.
        std::net::IpAddr::V6(a) if (96..=128).contains(&prefix) && a.to_ipv4_mapped().is_some() => {
            Some((false, u32::from(a.to_ipv4_mapped()?) as u128, prefix - 96))
        }
        std::net::IpAddr::V6(a) if prefix <= 128 => Some((true, u128::from(a), prefix)),
        _ => None,
    }
}

/// Whether two ranges share an address (same family, and one holds the other's
/// network address).
fn overlaps(a: (bool, u128, u32), b: (bool, u128, u32)) -> bool {
    if a.0 != b.0 {
        return false;
    }
    let width = if a.0 { 128 } else { 32 };
    let p = a.2.min(b.2);
    let mask = |x: u128| if p == 0 { 0 } else { x >> (width - p) };
    mask(a.1) == mask(b.1)
}

/// True when `cidr` opens more than a /8 (IPv4) or a /32 (IPv6), or does not parse:
/// refuse what we cannot judge. `0.0.0.0/1` halves count as the internet too.
pub fn too_wide(cidr: &str) -> bool {
    match parse_cidr(cidr) {
        Some((false, _, p)) => p < MIN_EGRESS_PREFIX,
        Some((true, _, p)) => p < MIN_EGRESS_PREFIX_V6,
        None => true,
    }
}

/// The forbidden range `cidr` reaches into, if any (see [`FORBIDDEN_EGRESS`]).
pub fn forbidden_egress(cidr: &str) -> Option<&'static str> {
    let c = parse_cidr(cidr)?;
    FORBIDDEN_EGRESS
        .iter()
        .find(|f| parse_cidr(f).is_some_and(|f| overlaps(c, f)))
        .copied()
}

/// Why an egress range may not be opened, or None.
pub fn egress_cidr_problem(cidr: &str) -> Option<String> {
    if too_wide(cidr) {
        return Some(format!(
            "{cidr} is wider than a /{MIN_EGRESS_PREFIX} (IPv4) or /{MIN_EGRESS_PREFIX_V6} (IPv6) and would undo default-deny"
        ));
    }
    forbidden_egress(cidr).map(|f| {
        format!("{cidr} reaches {f}, where the cloud metadata service hands out node credentials")
    })
}

/// The ClusterRoles a Composition may bind a team's groups to in its namespaces:
/// the ones the chart ships, which hold no NetworkPolicy, RoleBinding, quota or
/// ExternalSecret writes, so an owner can never weaken default-deny or read secrets
/// from another path; and Kubernetes' read-only `view`.
pub const OWNER_ROLES: &[&str] = &["paved-developer", "paved-viewer", "view"];

/// Minimum days of automated backups.
pub const MIN_BACKUP_RETENTION_DAYS: i32 = 7;

fn v(field: &str, message: impl Into<String>) -> Violation {
    Violation {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Every floor violation in a Composition (empty: it may be used).
pub fn check_composition(c: &Composition) -> Vec<Violation> {
    let set = [
        c.spec.service.is_some(),
        c.spec.postgresql.is_some(),
        c.spec.temporal.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if set != 1 {
        return vec![v(
            "spec",
            "set exactly one of spec.service, spec.postgresql or spec.temporal",
        )];
    }
    let mut out = vec![];
    if let Some(s) = &c.spec.service {
        out.extend(check_composition_service(s));
    }
    if let Some(p) = &c.spec.postgresql {
        out.extend(check_composition_postgresql(p));
    }
    if let Some(t) = &c.spec.temporal {
        out.extend(check_composition_temporal(t));
    }
    out
}

/// Placeholders every template may use; rendering with these dummies catches typos
/// before any claim does.
fn dummy_vars(extra: &[&'static str]) -> BTreeMap<&'static str, String> {
    [
        "service",
        "namespace",
        "owner",
        "system",
        "cloud",
        "costCenter",
        "classification",
        "tier",
    ]
    .iter()
    .chain(extra)
    .map(|k| (*k, "x".to_string()))
    .collect()
}

pub fn check_composition_service(s: &ServiceComposition) -> Vec<Violation> {
    let mut out = vec![];
    let vars = dummy_vars(&[]);
    if let Some(wi) = &s.workload_identity {
        if let Err(e) = render_template(&wi.value, &vars) {
            out.push(v("spec.service.workloadIdentity.value", e.to_string()));
        }
        if wi.annotation.is_none() && s.cloud.workload_identity_annotation().is_none() {
            out.push(v(
                "spec.service.workloadIdentity.annotation",
                format!("cloud {} has no default annotation; name one", s.cloud),
            ));
        }
    }
    match &s.secrets {
        None => out.push(v(
            "spec.service.secrets",
            "required: the service's secrets and its databases' credentials reach it only through its own SecretStore",
        )),
        Some(sec) => {
            let b = &sec.backend;
            let named = [
                b.kubernetes.is_some(),
                b.aws.is_some(),
                b.azure.is_some(),
                b.gcp.is_some(),
            ];
            if named.iter().filter(|x| **x).count() != 1 {
                out.push(v(
                    "spec.service.secrets.backend",
                    "name exactly one secret backend: kubernetes, aws, azure or gcp",
                ));
            }
        }
    }
    if let Some(id) = &s.identity {
        let named: Vec<Cloud> = [
            (id.aws.is_some(), Cloud::Aws),
            (id.azure.is_some(), Cloud::Azure),
            (id.gcp.is_some(), Cloud::Gcp),
        ]
        .into_iter()
        .filter_map(|(has, c)| has.then_some(c))
        .collect();
        match named.as_slice() {
            [c] if *c == s.cloud => {}
            [c] => out.push(v(
                &format!("spec.service.identity.{c}"),
                format!("this Composition serves cloud {}", s.cloud),
            )),
            _ => out.push(v(
                "spec.service.identity",
                "name exactly one identity: aws, azure or gcp",
            )),
        }
        // The identity reads from the same cloud's store.
        if let Some(sec) = &s.secrets {
            let backend_cloud = if sec.backend.aws.is_some() {
                Some(Cloud::Aws)
            } else if sec.backend.azure.is_some() {
                Some(Cloud::Azure)
            } else if sec.backend.gcp.is_some() {
                Some(Cloud::Gcp)
            } else {
                None
            };
            if let ([c], Some(b)) = (named.as_slice(), backend_cloud) {
                if *c != b {
                    out.push(v(
                        "spec.service.secrets.backend",
                        format!(
                            "identity.{c} reads secrets from {c}'s store; this backend is {b}'s"
                        ),
                    ));
                }
            }
            // Each identity reads keys under its path (AWS: `<path>/*`; Azure, GCP:
            // exact names): the path must name exactly one service of one team, as
            // whole segments, and nothing a store reads as a wildcard or variable.
            // Only names Paved vouches for: a claim's own fields (costCenter, system)
            // could shift the segments.
            for var in ["{system}", "{costCenter}", "{classification}", "{tier}"] {
                if sec.path.contains(var) {
                    out.push(v(
                        "spec.service.secrets.path",
                        format!("with identity it may not contain {var}, which the claim sets: only {{owner}}, {{service}}, {{namespace}} and {{cloud}}"),
                    ));
                }
            }
            let sep = crate::service::key_separator(sec);
            let segments: Vec<&str> = sec.path.trim_matches('/').split(sep).collect();
            if !segments.contains(&"{owner}")
                || !(segments.contains(&"{service}") || segments.contains(&"{namespace}"))
                || sec.path.contains(['*', '?', '$'])
            {
                out.push(v(
                    "spec.service.secrets.path",
                    format!(
                        "with identity it must have {{owner}} and {{service}} each as a whole segment (e.g. {{owner}}{sep}{{service}}) and no *, ? or $: each identity reads exactly its own keys under it"
                    ),
                ));
            }
        }
    }
    if let Some(sec) = &s.secrets {
        match render_template(&sec.path, &vars) {
            Err(e) => out.push(v("spec.service.secrets.path", e.to_string())),
            Ok(_) if !sec.path.contains("{service}") && !sec.path.contains("{namespace}") => {
                out.push(v(
                    "spec.service.secrets.path",
                    "must contain {service} or {namespace}, so services cannot read each other's secrets",
                ))
            }
            Ok(_) => {}
        }
    }
    for (i, e) in s.network.egress_to.iter().enumerate() {
        if let Some(problem) = e.cidr.as_deref().and_then(egress_cidr_problem) {
            out.push(v(
                &format!("spec.service.network.egressTo[{i}].cidr"),
                problem,
            ));
        }
    }
    if !OWNER_ROLES.contains(&s.owner_role.as_str()) {
        out.push(v(
            "spec.service.ownerRole",
            format!(
                "{} is not one of the owner roles Paved ships ({}): a broader role lets owners rewrite the namespace's \
                 network policies, quotas or secret delivery (least privilege)",
                s.owner_role,
                OWNER_ROLES.join(", ")
            ),
        ));
    }
    out
}

pub fn check_composition_postgresql(p: &PostgreSQLComposition) -> Vec<Violation> {
    let mut out = vec![];
    let f = |x: &str| format!("spec.postgresql.{x}");
    if p.provider != Cloud::Local {
        match &p.encryption {
            Some(e) if !e.key_id.trim().is_empty() => {}
            _ => out.push(v(
                &f("encryption.keyId"),
                "cloud databases must be encrypted with a customer-managed key",
            )),
        }
        match p.provider {
            Cloud::Azure => {
                if p.azure.is_none() {
                    out.push(v(
                        &f("azure"),
                        "required for provider azure: subscriptionId, resourceGroup and keyVaultUrl",
                    ));
                }
                if p.encryption
                    .as_ref()
                    .is_some_and(|e| e.identity_id.is_none())
                {
                    out.push(v(
                        &f("encryption.identityId"),
                        "Azure customer-managed keys need the user-assigned identity that reads the key",
                    ));
                }
                // PHI always gets geo-redundant backups, which Azure encrypts with a
                // second key in the paired region.
                if p.encryption.as_ref().is_some_and(|e| {
                    e.geo_backup_key_id.is_none() || e.geo_backup_identity_id.is_none()
                }) {
                    out.push(v(
                        &f("encryption.geoBackupKeyId"),
                        "Azure geo-redundant backups (always on for PHI) need geoBackupKeyId and geoBackupIdentityId",
                    ));
                }
            }
            Cloud::Gcp if p.gcp.is_none() => {
                out.push(v(&f("gcp"), "required for provider gcp: project"))
            }
            _ => {}
        }
        let n = &p.network;
        let private = match p.provider {
            Cloud::Aws => {
                n.subnet_group_name.is_some()
                    && (!n.security_group_ids.is_empty() || n.own_security_group.is_some())
            }
            Cloud::Azure => n.delegated_subnet_id.is_some() && n.private_dns_zone_id.is_some(),
            Cloud::Gcp => n.private_network.is_some(),
            Cloud::Local => true,
        };
        if let Some(own) = &n.own_security_group {
            if p.provider != Cloud::Aws {
                out.push(v(
                    &f("network.ownSecurityGroup"),
                    "security groups are AWS's: only an aws Composition names one",
                ));
            }
            if own.client_cidrs.is_empty() {
                out.push(v(
                    &f("network.ownSecurityGroup.clientCidrs"),
                    "name who may connect: a security group that admits nobody serves nobody",
                ));
            }
            for (i, c) in own.client_cidrs.iter().enumerate() {
                if let Some(problem) = egress_cidr_problem(c) {
                    out.push(v(
                        &f(&format!("network.ownSecurityGroup.clientCidrs[{i}]")),
                        problem,
                    ));
                }
            }
        }
        if !private {
            let need = match p.provider {
                Cloud::Aws => "subnetGroupName and securityGroupIds or ownSecurityGroup",
                Cloud::Azure => "delegatedSubnetId and privateDnsZoneId",
                _ => "privateNetwork",
            };
            out.push(v(
                &f("network"),
                format!("databases must be private: {} needs {need}", p.provider),
            ));
        }
    } else if p.local.is_none() {
        out.push(v(
            &f("local.adminSecretRef"),
            "the local provider needs the admin connection Secret",
        ));
    }
    if p.backup.retention_days < MIN_BACKUP_RETENTION_DAYS {
        out.push(v(
            &f("backup.retentionDays"),
            format!(
                "{} is below the minimum of {MIN_BACKUP_RETENTION_DAYS} days",
                p.backup.retention_days
            ),
        ));
    }
    if p.storage.min_gb > p.storage.max_gb {
        out.push(v(&f("storage"), "minGB exceeds maxGB"));
    }
    if let Some(d) = p.storage.default_gb {
        if d < p.storage.min_gb || d > p.storage.max_gb {
            out.push(v(&f("storage.defaultGB"), "outside minGB..maxGB"));
        }
    }
    let vars = dummy_vars(&["name"]);
    for (k, t) in &p.tags {
        if let Err(e) = render_template(t, &vars) {
            out.push(v(&f(&format!("tags.{k}")), e.to_string()));
        }
    }
    if let Some(prices) = &p.prices {
        if prices.storage_per_gb < 0.0
            || prices
                .instances
                .values()
                .any(|x| *x < 0.0 || !x.is_finite())
        {
            out.push(v(&f("prices"), "prices cannot be negative"));
        }
    }
    out
}

/// Whether a namespace pattern renders distinct names for distinct claims: `{namespace}`
/// and `{name}` once each, with a '.' in the text between them. Kubernetes namespace
/// names and TemporalNamespace claim names (a CRD rule) hold no '.', so the first '.'
/// after the fixed prefix ends the namespace.
pub fn injective_pattern(pattern: &str) -> bool {
    let once = |p: &str| pattern.matches(p).count() == 1;
    if !(once("{namespace}") && once("{name}")) {
        return false;
    }
    let (a, b) = (
        pattern.find("{namespace}").unwrap_or(0),
        pattern.find("{name}").unwrap_or(0),
    );
    let between = if a < b {
        &pattern[a + "{namespace}".len()..b]
    } else {
        &pattern[b + "{name}".len()..a]
    };
    between.contains('.')
}

pub fn check_composition_temporal(t: &TemporalComposition) -> Vec<Violation> {
    let mut out = vec![];
    if t.default_retention_days > t.max_retention_days {
        out.push(v(
            "spec.temporal.defaultRetentionDays",
            "exceeds maxRetentionDays",
        ));
    }
    let vars: BTreeMap<&str, String> =
        [("namespace", "x".to_string()), ("name", "y".to_string())].into();
    match render_template(&t.namespace_pattern, &vars) {
        Err(e) => out.push(v("spec.temporal.namespacePattern", e.to_string())),
        Ok(_) if !injective_pattern(&t.namespace_pattern) => out.push(v(
            "spec.temporal.namespacePattern",
            "must hold {namespace} and {name} once each with a '.' between them (neither can contain one), \
             so two claims never render the same Temporal namespace: with {namespace}-{name}, namespace a's \
             claim b-c would take namespace a-b's claim c",
        )),
        Ok(_) => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use paved_api::{
        BackupSpec, CredentialsSpec, DatabaseNetwork, DeletionSpec, EncryptionSpec, PriceTable,
        StorageSpec,
    };

    fn aws() -> PostgreSQLComposition {
        PostgreSQLComposition {
            provider: Cloud::Aws,
            region: "us-east-1".into(),
            engine_version: "16".into(),
            storage: StorageSpec {
                min_gb: 20,
                max_gb: 100,
                ..Default::default()
            },
            encryption: Some(EncryptionSpec {
                key_id: "arn:key".into(),
                identity_id: None,
                ..Default::default()
            }),
            network: DatabaseNetwork {
                subnet_group_name: Some("private".into()),
                security_group_ids: vec!["sg-1".into()],
                ..Default::default()
            },
            backup: BackupSpec {
                retention_days: 7,
                ..Default::default()
            },
            deletion: DeletionSpec::default(),
            credentials: CredentialsSpec::default(),
            ..Default::default()
        }
    }

    fn fields(v: Vec<Violation>) -> Vec<String> {
        v.into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn a_databases_own_security_group_admits_bounded_ranges_only() {
        let mut p = aws();
        p.network.security_group_ids = vec![];
        p.network.own_security_group = Some(paved_api::OwnSecurityGroup {
            vpc_id: "vpc-1".into(),
            client_cidrs: vec!["10.20.0.0/16".into()],
        });
        assert!(fields(check_composition_postgresql(&p)).is_empty());
        p.network.own_security_group = Some(paved_api::OwnSecurityGroup {
            vpc_id: "vpc-1".into(),
            client_cidrs: vec!["0.0.0.0/0".into(), "169.254.169.254/32".into()],
        });
        assert_eq!(
            fields(check_composition_postgresql(&p)),
            vec![
                "spec.postgresql.network.ownSecurityGroup.clientCidrs[0]",
                "spec.postgresql.network.ownSecurityGroup.clientCidrs[1]",
            ]
        );
        p.network.own_security_group = Some(paved_api::OwnSecurityGroup {
            vpc_id: "vpc-1".into(),
            client_cidrs: vec![],
        });
        assert_eq!(
            fields(check_composition_postgresql(&p)),
            vec!["spec.postgresql.network.ownSecurityGroup.clientCidrs"]
        );
    }

    #[test]
    fn a_complete_aws_composition_passes() {
        assert_eq!(check_composition_postgresql(&aws()), vec![]);
    }

    #[test]
    fn each_postgresql_rule_names_its_field() {
        type Breaker = fn(&mut PostgreSQLComposition);
        let cases: Vec<(Breaker, &str)> = vec![
            (|p| p.encryption = None, "spec.postgresql.encryption.keyId"),
            (
                |p| {
                    p.encryption = Some(EncryptionSpec {
                        key_id: " ".into(),
                        identity_id: None,
                        ..Default::default()
                    })
                },
                "spec.postgresql.encryption.keyId",
            ),
            (
                |p| p.network.subnet_group_name = None,
                "spec.postgresql.network",
            ),
            (
                |p| p.backup.retention_days = 6,
                "spec.postgresql.backup.retentionDays",
            ),
            (|p| p.storage.min_gb = 500, "spec.postgresql.storage"),
            (
                |p| p.storage.default_gb = Some(5),
                "spec.postgresql.storage.defaultGB",
            ),
            (
                |p| {
                    p.tags.insert("App".into(), "{app}".into());
                },
                "spec.postgresql.tags.App",
            ),
            (
                |p| {
                    p.prices = Some(PriceTable {
                        storage_per_gb: -1.0,
                        ..Default::default()
                    })
                },
                "spec.postgresql.prices",
            ),
        ];
        for (break_it, field) in cases {
            let mut p = aws();
            break_it(&mut p);
            assert_eq!(
                fields(check_composition_postgresql(&p)),
                vec![field.to_string()]
            );
        }
    }

    #[test]
    fn private_networking_and_placement_are_checked_per_provider() {
        let says = |p: &PostgreSQLComposition, what: &str| {
            check_composition_postgresql(p)
                .iter()
                .any(|v| v.message.contains(what))
        };
        let mut p = aws();
        p.provider = Cloud::Azure;
        assert!(says(&p, "delegatedSubnetId"));
        assert!(says(&p, "subscriptionId, resourceGroup and keyVaultUrl"));
        assert!(says(&p, "user-assigned identity"));
        p.provider = Cloud::Gcp;
        assert!(says(&p, "privateNetwork"));
        assert!(says(&p, "project"));
        p.network.private_network = Some("projects/p/global/networks/n".into());
        p.gcp = Some(paved_api::GcpPlacement {
            project: "paved-prod".into(),
        });
        assert_eq!(check_composition_postgresql(&p), vec![]);
    }

    #[test]
    fn local_needs_its_admin_secret_but_no_key() {
        let p = PostgreSQLComposition {
            provider: Cloud::Local,
            backup: BackupSpec {
                retention_days: 7,
                ..Default::default()
            },
            storage: StorageSpec {
                min_gb: 5,
                max_gb: 10,
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            fields(check_composition_postgresql(&p)),
            vec!["spec.postgresql.local.adminSecretRef"]
        );
    }

    #[test]
    fn egress_ranges_are_bounded_and_never_reach_the_metadata_service() {
        for ok in [
            "10.20.0.0/16",
            "10.0.0.0/8",
            "2001:db8::/32",
            "2001:db8:1::/48",
            "192.168.1.10/32",
        ] {
            assert_eq!(egress_cidr_problem(ok), None, "{ok}");
        }
        for bad in [
            "0.0.0.0/0",
            "10.0.0.0/7",
            "::/0",
            "2000::/8",
            "2001:db8::/31",
            "169.254.169.254/32",
            "169.254.0.0/16",
            "169.0.0.0/8",
            "fe80::1/128",
            "fd00:ec2::254/128",
            "fd00::/8",
            "100.100.100.200/32",
            "168.63.129.16/32",
            "::ffff:169.254.169.254/128",
            "::ffff:0:0/96",
            "not-a-cidr",
            "10.0.0.0/33",
        ] {
            assert!(
                egress_cidr_problem(bad).is_some(),
                "{bad} should be refused"
            );
        }
        assert!(egress_cidr_problem("169.254.169.254/32")
            .unwrap()
            .contains("metadata"));
    }

    #[test]
    fn service_rules() {
        let mut s = ServiceComposition {
            cloud: Cloud::Local,
            owner_role: "paved-developer".into(),
            ..Default::default()
        };
        assert_eq!(
            fields(check_composition_service(&s)),
            vec!["spec.service.secrets"]
        );
        s.secrets = Some(paved_api::SecretsConfig {
            backend: paved_api::SecretBackend::default(),
            path: "{service}".into(),
            refresh_interval: "1h".into(),
        });
        assert_eq!(
            fields(check_composition_service(&s)),
            vec!["spec.service.secrets.backend"]
        );
        s.secrets.as_mut().unwrap().backend.kubernetes = Some(paved_api::KubernetesSecretBackend {
            server: "https://kubernetes.default.svc".into(),
            ca_config_map: "kube-root-ca.crt".into(),
        });
        assert_eq!(check_composition_service(&s), vec![]);
        // Only the shipped roles: `edit` writes NetworkPolicies (and, with External
        // Secrets installed, ExternalSecrets), so an owner could lift default-deny.
        for role in ["admin", "edit", "cluster-admin", "my-role"] {
            s.owner_role = role.into();
            assert_eq!(
                fields(check_composition_service(&s)),
                vec!["spec.service.ownerRole"],
                "{role}"
            );
        }
        s.owner_role = "view".into();
        assert_eq!(check_composition_service(&s), vec![]);
        s.owner_role = "paved-developer".into();
        s.workload_identity = Some(paved_api::WorkloadIdentity {
            annotation: None,
            value: "x".into(),
        });
        assert_eq!(
            fields(check_composition_service(&s)),
            vec!["spec.service.workloadIdentity.annotation"]
        );
        s.workload_identity = None;
        s.secrets = Some(paved_api::SecretsConfig {
            backend: paved_api::SecretBackend {
                aws: Some(paved_api::AwsSecretBackend {
                    region: "us-east-1".into(),
                }),
                ..Default::default()
            },
            path: "shared".into(),
            refresh_interval: "1h".into(),
        });
        assert!(check_composition_service(&s)[0]
            .message
            .contains("cannot read each other's secrets"));
        s.secrets.as_mut().unwrap().path = "{owner}/{service}".into();
        // A role's prefix: whole segments, one service of one team.
        s.cloud = Cloud::Aws;
        s.identity = Some(paved_api::ServiceIdentity {
            aws: Some(crate::fixtures::aws_identity()),
            ..Default::default()
        });
        assert_eq!(check_composition_service(&s), vec![]);
        for bad in [
            "{service}",
            "{owner}-{service}",
            "{owner}/{service}*",
            "{costCenter}/{owner}/{service}",
        ] {
            s.secrets.as_mut().unwrap().path = bad.into();
            assert_eq!(
                fields(check_composition_service(&s)),
                vec!["spec.service.secrets.path"],
                "{bad}"
            );
        }
        // An identity of another cloud than the Composition's, or reading another
        // cloud's store, is refused; each store splits keys its own way.
        s.secrets.as_mut().unwrap().path = "{owner}/{service}".into();
        let aws = s.identity.clone();
        s.identity = Some(paved_api::ServiceIdentity {
            gcp: Some(paved_api::GcpServiceIdentity {
                project_id: "p".into(),
                workload_pool: Some("p.svc.id.goog".into()),
                name_prefix: "paved-".into(),
                poll_interval: "5m".into(),
            }),
            ..Default::default()
        });
        assert_eq!(
            fields(check_composition_service(&s)),
            vec!["spec.service.identity.gcp", "spec.service.secrets.backend"]
        );
        s.cloud = Cloud::Gcp;
        s.secrets.as_mut().unwrap().backend = crate::fixtures::gcp_backend();
        s.secrets.as_mut().unwrap().path = "{owner}_{service}".into();
        assert_eq!(check_composition_service(&s), vec![]);
        s.secrets.as_mut().unwrap().path = "{owner}/{service}".into();
        assert_eq!(
            fields(check_composition_service(&s)),
            vec!["spec.service.secrets.path"]
        );
        let mut both = aws.clone().unwrap();
        both.gcp = s.identity.as_ref().unwrap().gcp.clone();
        s.identity = Some(both);
        assert!(
            fields(check_composition_service(&s)).contains(&"spec.service.identity".to_string())
        );
        s.cloud = Cloud::Aws;
        s.secrets.as_mut().unwrap().backend = paved_api::SecretBackend {
            aws: Some(paved_api::AwsSecretBackend {
                region: "us-east-1".into(),
            }),
            ..Default::default()
        };
        s.secrets.as_mut().unwrap().path = "{owner}/{service}".into();
        s.identity = None;
        s.network.egress_to = vec![paved_api::EgressPeer {
            cidr: Some("0.0.0.0/0".into()),
            ..Default::default()
        }];
        assert_eq!(
            fields(check_composition_service(&s)),
            vec!["spec.service.network.egressTo[0].cidr"]
        );
    }

    #[test]
    fn temporal_rules() {
        let mut t = TemporalComposition {
            frontend_address: "x:7233".into(),
            default_retention_days: 7,
            max_retention_days: 30,
            namespace_pattern: "{namespace}.{name}".into(),
            ..Default::default()
        };
        assert_eq!(check_composition_temporal(&t), vec![]);
        // Two claims must never render the same name: `{namespace}-{name}` gives
        // namespace a's claim b-c and namespace a-b's claim c the same one.
        for ambiguous in [
            "{name}",
            "{namespace}-{name}",
            "{namespace}{name}",
            "{namespace}.{name}.{name}",
        ] {
            t.namespace_pattern = ambiguous.into();
            assert!(
                check_composition_temporal(&t)[0]
                    .message
                    .contains("once each with a '.'"),
                "{ambiguous}"
            );
        }
        for ok in [
            "{namespace}.{name}",
            "prod-{name}.{namespace}",
            "t.{namespace}-x.{name}",
        ] {
            assert!(injective_pattern(ok), "{ok}");
        }
        t.namespace_pattern = "{namespace}-{nme}".into();
        assert!(check_composition_temporal(&t)[0].message.contains("{nme}"));
        t.namespace_pattern = "{namespace}.{name}".into();
        t.default_retention_days = 31;
        assert_eq!(
            fields(check_composition_temporal(&t)),
            vec!["spec.temporal.defaultRetentionDays"]
        );
    }

    #[test]
    fn a_composition_with_zero_or_two_kinds_is_refused() {
        let c = Composition::new("x", Default::default());
        assert_eq!(fields(check_composition(&c)), vec!["spec"]);
    }
}
