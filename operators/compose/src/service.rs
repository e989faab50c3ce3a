//! ServiceClaim → namespace, network policies, quota, identity, secrets wiring and
//! child claims.

use std::collections::BTreeMap;

use paved_api::{
    labels, render_template, Cloud, EgressPeer, IngressPeer, PortSpec, SecretBackend,
    SecretsConfig, ServiceClaimSpec, ServiceComposition, SECRET_STORE,
};
use serde_json::{json, Map, Value};

use crate::{check_composition_service, DesiredObject, RenderError};

/// Everything rendering a ServiceClaim depends on.
#[derive(Debug, Clone)]
pub struct ServiceInput<'a> {
    pub claim_name: &'a str,
    pub claim_uid: &'a str,
    pub spec: &'a ServiceClaimSpec,
    /// The cloud in effect: spec.cloud or the operator's default.
    pub cloud: Cloud,
    pub composition_name: &'a str,
    pub composition_generation: i64,
    pub composition: &'a ServiceComposition,
    /// The Team `spec.owner` names: its groups and sync ServiceAccounts are bound to
    /// the owner role. None (offline previews only): the group named as the owner.
    pub team: Option<&'a paved_api::TeamSpec>,
    /// The platform's secrets namespace (the `kubernetes` secret backend keeps the
    /// services' Secrets there).
    pub secrets_namespace: &'a str,
    /// The PostgreSQLInstances in the service's namespace besides `spec.databases`:
    /// their credentials are the service's to read too.
    pub databases: &'a [String],
    /// The client ID of the managed identity Paved made for the service (Azure; from
    /// the claim's status), which its ServiceAccount is annotated with.
    pub identity: Option<&'a str>,
}

/// Names of the fixed objects in every service namespace.
pub mod names {
    pub const DEFAULT_DENY: &str = "paved-default-deny";
    pub const ALLOW_DNS: &str = "paved-allow-dns";
    pub const ALLOW_INGRESS: &str = "paved-allow-ingress";
    pub const ALLOW_EGRESS: &str = "paved-allow-egress";
    pub const QUOTA: &str = "paved-quota";
    pub const LIMITS: &str = "paved-limits";
    pub const OWNER_BINDING: &str = "paved-owner";
}

/// The label selector that finds everything rendered for one ServiceClaim.
pub fn selector(claim_name: &str) -> String {
    format!(
        "{}=ServiceClaim,{}={}",
        labels::CLAIM_KIND,
        labels::CLAIM_NAME,
        claim_name
    )
}

/// Renders the desired objects for a ServiceClaim. The Namespace comes first, so
/// an apply layer that goes in order never writes into a namespace that does not
/// exist yet.
pub fn render_service(input: &ServiceInput<'_>) -> Result<Vec<DesiredObject>, RenderError> {
    let comp = input.composition;
    let violations = check_composition_service(comp);
    if !violations.is_empty() {
        return Err(RenderError::CompositionViolatesFloor {
            name: input.composition_name.to_string(),
            violations: crate::floor::join(&violations),
        });
    }
    if comp.cloud != input.cloud {
        return Err(RenderError::InvalidSpec(format!(
            "composition {} is for cloud {}, but the service runs on {}",
            input.composition_name, comp.cloud, input.cloud
        )));
    }
    let spec = input.spec;
    let ns = input.claim_name.to_string();
    let vars = template_vars(input);
    let template = |what: &str, t: &str| {
        render_template(t, &vars).map_err(|e| RenderError::Template {
            composition: input.composition_name.to_string(),
            message: format!("{what}: {e}"),
        })
    };

    let common_labels = common_labels(input);
    let meta = |name: &str, namespace: Option<&str>| -> Value {
        let mut m = json!({
            "name": name,
            "labels": common_labels,
            "ownerReferences": [owner_reference(input)],
        });
        if let Some(n) = namespace {
            m["namespace"] = json!(n);
        }
        m
    };

    let mut out = Vec::new();

    // Namespace: identity labels plus Pod Security admission at the composition's level.
    let mut ns_meta = meta(&ns, None);
    let level = comp.pod_security.as_str();
    let ns_labels = ns_meta["labels"]
        .as_object_mut()
        .expect("labels is an object");
    for mode in ["enforce", "audit", "warn"] {
        ns_labels.insert(format!("pod-security.kubernetes.io/{mode}"), json!(level));
        ns_labels.insert(
            format!("pod-security.kubernetes.io/{mode}-version"),
            json!("latest"),
        );
    }
    // The namespace's store reads as an identity Paved made for this service alone
    // (or, on local, as its ServiceAccount): admission then lets the team write its
    // own ExternalSecrets here.
    if comp.identity.is_some() || input.cloud == Cloud::Local {
        ns_labels.insert(labels::STORE_IDENTITY.into(), json!(STORE_OWN));
    }
    out.push(object(
        "v1",
        "Namespace",
        "namespaces",
        None,
        &ns,
        json!({ "metadata": ns_meta }),
    ));

    // Default deny, both directions: the floor. Allowances are separate policies so
    // the deny stays unconditional whatever the spec says.
    out.push(network_policy(
        &ns,
        names::DEFAULT_DENY,
        meta(names::DEFAULT_DENY, Some(&ns)),
        json!({ "podSelector": {}, "policyTypes": ["Ingress", "Egress"] }),
    ));
    let dns = &comp.network.dns;
    out.push(network_policy(
        &ns,
        names::ALLOW_DNS,
        meta(names::ALLOW_DNS, Some(&ns)),
        json!({
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{
                "to": [{
                    "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": dns.namespace } },
                    "podSelector": { "matchLabels": dns.pod_labels },
                }],
                "ports": [ { "protocol": "UDP", "port": 53 }, { "protocol": "TCP", "port": 53 } ],
            }],
        }),
    ));

    let network = spec.network.clone().unwrap_or_default();
    let ingress: Vec<&IngressPeer> = comp
        .network
        .ingress_from
        .iter()
        .chain(network.ingress_from.iter())
        .collect();
    if !ingress.is_empty() {
        let rules: Vec<Value> = ingress.iter().map(|p| ingress_rule(p)).collect();
        out.push(network_policy(
            &ns,
            names::ALLOW_INGRESS,
            meta(names::ALLOW_INGRESS, Some(&ns)),
            json!({ "podSelector": {}, "policyTypes": ["Ingress"], "ingress": rules }),
        ));
    }
    let egress: Vec<&EgressPeer> = comp
        .network
        .egress_to
        .iter()
        .chain(network.egress_to.iter())
        .collect();
    if !egress.is_empty() {
        let rules = egress
            .iter()
            .map(|p| egress_rule(p))
            .collect::<Result<Vec<_>, _>>()?;
        out.push(network_policy(
            &ns,
            names::ALLOW_EGRESS,
            meta(names::ALLOW_EGRESS, Some(&ns)),
            json!({ "podSelector": {}, "policyTypes": ["Egress"], "egress": rules }),
        ));
    }

    // Quota and container defaults for the tier.
    let tier = comp.tiers.get(spec.slo_tier);
    out.push(object(
        "v1",
        "ResourceQuota",
        "resourcequotas",
        Some(&ns),
        names::QUOTA,
        json!({
            "metadata": meta(names::QUOTA, Some(&ns)),
            "spec": { "hard": {
                "requests.cpu": tier.requests_cpu,
                "requests.memory": tier.requests_memory,
                "limits.cpu": tier.limits_cpu,
                "limits.memory": tier.limits_memory,
                "pods": tier.pods.to_string(),
            }},
        }),
    ));
    out.push(object(
        "v1",
        "LimitRange",
        "limitranges",
        Some(&ns),
        names::LIMITS,
        json!({
            "metadata": meta(names::LIMITS, Some(&ns)),
            "spec": { "limits": [{
                "type": "Container",
                "defaultRequest": { "cpu": tier.default_request_cpu, "memory": tier.default_request_memory },
                "default": { "cpu": tier.default_limit_cpu, "memory": tier.default_limit_memory },
            }]},
        }),
    ));

    // Identity: the service's ServiceAccount, bound to its cloud identity: the one
    // Paved makes for it, or the one the Composition names.
    let mut sa_meta = meta(&ns, Some(&ns));
    if let Some(identity) = &comp.identity {
        // AWS and GCP names are known in advance; an Azure client ID once the identity
        // exists (until then, no annotation rather than a wrong one).
        let reference = if let Some(aws) = &identity.aws {
            Some(crate::identity::role_arn(aws, input.claim_name, input.claim_uid).ok_or_else(|| {
                RenderError::CompositionViolatesFloor {
                    name: input.composition_name.to_string(),
                    violations: "spec.service.identity.aws.oidcProviderArn: not arn:aws:iam::<account>:oidc-provider/<issuer>".into(),
                }
            })?)
        } else if let Some(gcp) = &identity.gcp {
            crate::identity::gcp_email(gcp, input.claim_uid)
        } else {
            input.identity.map(String::from)
        };
        if let (Some(key), Some(value)) = (input.cloud.workload_identity_annotation(), reference) {
            sa_meta["annotations"] = json!({ key: value });
        }
    } else if let Some(wi) = &comp.workload_identity {
        let key = wi
            .annotation
            .clone()
            .or_else(|| input.cloud.workload_identity_annotation().map(String::from));
        if let Some(key) = key {
            sa_meta["annotations"] = json!({ key: template("workloadIdentity.value", &wi.value)? });
        }
    }
    out.push(object(
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        Some(&ns),
        &ns,
        json!({ "metadata": sa_meta, "automountServiceAccountToken": false }),
    ));

    // The owner group administers its own namespace, nothing more.
    out.push(object(
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        "rolebindings",
        Some(&ns),
        names::OWNER_BINDING,
        json!({
            "metadata": meta(names::OWNER_BINDING, Some(&ns)),
            "subjects": owner_subjects(&spec.owner, input.team),
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": comp.owner_role },
        }),
    ));

    // Secrets: the namespace's own SecretStore, authenticating as the service's
    // ServiceAccount, and one ExternalSecret per requested secret through it.
    // (A Composition without them is below the floor, refused above.)
    if let Some(cfg) = &comp.secrets {
        out.extend(secrets(input, cfg, &ns, &template, &meta)?);
    }

    // Child claims: their own controllers do the cloud work.
    for db in &spec.databases {
        let mut db_spec = json!({
            "parameters": serde_json::to_value(&db.parameters).expect("parameters serialize"),
            "writeConnectionSecretToRef": { "name": connection_secret(&db.name) },
        });
        if let Some(r) = &db.composition_ref {
            db_spec["compositionRef"] = json!({ "name": r.name });
        }
        if let Some(p) = db.deletion_policy {
            db_spec["deletionPolicy"] = serde_json::to_value(p).expect("policy serializes");
        }
        out.push(object(
            &format!("{}/{}", paved_api::GROUP, paved_api::VERSION),
            "PostgreSQLInstance",
            "postgresqlinstances",
            Some(&ns),
            &db.name,
            json!({ "metadata": meta(&db.name, Some(&ns)), "spec": db_spec }),
        ));
    }
    for t in &spec.temporal {
        let mut t_spec = Map::new();
        if let Some(d) = t.retention_days {
            t_spec.insert("retentionDays".into(), json!(d));
        }
        if let Some(d) = &t.description {
            t_spec.insert("description".into(), json!(d));
        }
        out.push(object(
            &format!("{}/{}", paved_api::GROUP, paved_api::VERSION),
            "TemporalNamespace",
            "temporalnamespaces",
            Some(&ns),
            &t.name,
            json!({ "metadata": meta(&t.name, Some(&ns)), "spec": t_spec }),
        ));
    }
    Ok(out)
}

/// The placeholders a service Composition's templates may use.
/// Who acts for the owning team in its namespace: the Team's groups and sync
/// ServiceAccounts (the group named as the owner when no Team is given).
fn owner_subjects(owner: &str, team: Option<&paved_api::TeamSpec>) -> Vec<Value> {
    let group =
        |g: &str| json!({ "apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g });
    match team {
        None => vec![group(owner)],
        Some(t) => t
            .groups
            .iter()
            .map(|g| group(g))
            .chain(t.service_accounts.iter().map(|sa| {
                json!({ "kind": "ServiceAccount", "name": sa.name, "namespace": sa.namespace })
            }))
            .collect(),
    }
}

/// How a cloud store's key joins the service's path and the secret's name: `/` in
/// Secrets Manager, `--` in Key Vault (names are letters, digits and `-`; team and
/// service names, DNS labels without `--`, then split one way only), `_` in Secret
/// Manager (DNS labels have none).
pub fn key_separator(cfg: &SecretsConfig) -> &'static str {
    if cfg.backend.azure.is_some() {
        "--"
    } else if cfg.backend.gcp.is_some() {
        "_"
    } else {
        "/"
    }
}

/// Where the service's secret `remote` lives in the store: under its path (joined by
/// [`key_separator`] in cloud stores), or, with the `kubernetes` backend, the Secret
/// `<grant>.<remote>` in the platform's secrets namespace, `<grant>` being
/// [`grant_name`].
pub fn secret_key(
    cfg: &SecretsConfig,
    base: &str,
    grant: &str,
    remote: &str,
) -> Result<String, String> {
    if remote.split('/').any(|seg| seg == "..") {
        return Err("climbs out of the service's path".into());
    }
    if cfg.backend.kubernetes.is_some() {
        // The service's database credentials live under `postgresql.`; an app
        // secret never shadows them.
        if remote.starts_with("postgresql.") {
            return Err(
                "starts with 'postgresql.', which is kept for the service's database credentials"
                    .into(),
            );
        }
        let key = format!("{grant}.{remote}");
        return if crate::is_dns_subdomain(&key) {
            Ok(key)
        } else {
            Err(format!(
                "is not a valid Secret name ({key}): with the kubernetes secret backend keys are lowercase letters, digits, '-' and '.'"
            ))
        };
    }
    let sep = key_separator(cfg);
    let key = format!("{}{sep}{remote}", base.trim_end_matches(sep));
    let (allowed, max, what): (fn(char) -> bool, usize, &str) = if cfg.backend.azure.is_some() {
        (
            |c| c.is_ascii_alphanumeric() || c == '-',
            127,
            "Key Vault names are letters, digits and '-'",
        )
    } else if cfg.backend.gcp.is_some() {
        (
            |c| c.is_ascii_alphanumeric() || c == '-' || c == '_',
            255,
            "Secret Manager IDs are letters, digits, '-' and '_'",
        )
    } else {
        (|_| true, 512, "")
    };
    if key.len() > max || !key.chars().all(allowed) {
        return Err(format!(
            "is not a valid name in the store ({key}): {what}, at most {max}"
        ));
    }
    Ok(key)
}

/// The keys of the service's own secrets (`spec.secrets`) in its store, by secret
/// name: what its ExternalSecrets extract, and what its cloud identity may read.
pub fn own_secret_keys(
    input: &ServiceInput<'_>,
    cfg: &SecretsConfig,
) -> Result<Vec<(String, String)>, RenderError> {
    let base =
        render_template(&cfg.path, &template_vars(input)).map_err(|e| RenderError::Template {
            composition: input.composition_name.to_string(),
            message: format!("secrets.path: {e}"),
        })?;
    // Key Vault names split on `--`: a team or service name with one would let two
    // services' keys coincide.
    if cfg.backend.azure.is_some() {
        for (what, name) in [
            ("spec.owner", input.spec.owner.as_str()),
            ("metadata.name", input.claim_name),
        ] {
            if name.contains("--") {
                return Err(RenderError::InvalidSpec(format!(
                    "{what} {name:?} contains '--', which separates the parts of Key Vault secret names; with Azure secrets a team or service name may not"
                )));
            }
        }
    }
    let grant = grant_name(&input.spec.owner, input.claim_name);
    input
        .spec
        .secrets
        .iter()
        .map(|s| {
            let remote = s.remote_key.as_deref().unwrap_or(&s.name);
            secret_key(cfg, &base, &grant, remote)
                .map(|k| (s.name.clone(), k))
                .map_err(|e| {
                    RenderError::InvalidSpec(format!("spec.secrets[{}].remoteKey {e}", s.name))
                })
        })
        .collect()
}

/// The prefix of every Secret service `service` of team `owner` may read in the
/// platform's secrets namespace, and the name of its Role there: `<owner>.<service>`.
/// Both are DNS labels (no `.`), so no two services share a prefix, and a later
/// service of the same name but another team never inherits the first one's Secrets.
pub fn grant_name(owner: &str, service: &str) -> String {
    format!("{owner}.{service}")
}

/// The Secret in the platform's secrets namespace that holds the master credentials of
/// the `local` database `claim` in service `service` of team `owner`: under the
/// service's prefix, so no other service's grant can ever name it.
pub fn local_credentials_key(owner: &str, service: &str, claim: &str) -> String {
    format!("{}.postgresql.{claim}", grant_name(owner, service))
}

/// The namespace's SecretStore `paved`, the ExternalSecrets of `spec.secrets`, and, with
/// the `kubernetes` backend, the Role and RoleBinding in the platform's secrets
/// namespace that let the service's ServiceAccount `get` exactly its own Secrets.
fn secrets(
    input: &ServiceInput<'_>,
    cfg: &SecretsConfig,
    ns: &str,
    template: &dyn Fn(&str, &str) -> Result<String, RenderError>,
    meta: &dyn Fn(&str, Option<&str>) -> Value,
) -> Result<Vec<DesiredObject>, RenderError> {
    let spec = input.spec;
    let sa = json!({ "name": ns });
    let provider = match &cfg.backend {
        SecretBackend {
            kubernetes: Some(k),
            ..
        } => json!({ "kubernetes": {
            "remoteNamespace": input.secrets_namespace,
            "server": {
                "url": k.server,
                "caProvider": { "type": "ConfigMap", "name": k.ca_config_map, "key": "ca.crt" },
            },
            "auth": { "serviceAccount": sa },
        }}),
        SecretBackend { aws: Some(a), .. } => json!({ "aws": {
            "service": "SecretsManager",
            "region": a.region,
            "auth": { "jwt": { "serviceAccountRef": sa } },
        }}),
        SecretBackend { azure: Some(a), .. } => json!({ "azurekv": {
            "authType": "WorkloadIdentity",
            "vaultUrl": a.vault_url,
            "serviceAccountRef": sa,
        }}),
        SecretBackend { gcp: Some(g), .. } => json!({ "gcpsm": {
            "projectID": g.project_id,
            "auth": { "workloadIdentity": {
                "clusterLocation": g.cluster_location,
                "clusterName": g.cluster_name,
                "clusterProjectID": g.cluster_project_id,
                "serviceAccountRef": sa,
            }},
        }}),
        SecretBackend { .. } => {
            return Err(RenderError::CompositionViolatesFloor {
                name: input.composition_name.to_string(),
                violations: "spec.service.secrets.backend: name exactly one secret backend".into(),
            })
        }
    };
    let mut out = vec![object(
        "external-secrets.io/v1",
        "SecretStore",
        "secretstores",
        Some(ns),
        SECRET_STORE,
        json!({
            "metadata": meta(SECRET_STORE, Some(ns)),
            "spec": { "provider": provider },
        }),
    )];
    template("secrets.path", &cfg.path)?;
    let grant = grant_name(&spec.owner, ns);
    let mut granted = std::collections::BTreeSet::new();
    let keys = own_secret_keys(input, cfg)?;
    for (s, (_, key)) in spec.secrets.iter().zip(keys) {
        granted.insert(key.clone());
        out.push(object(
            "external-secrets.io/v1",
            "ExternalSecret",
            "externalsecrets",
            Some(ns),
            &s.name,
            json!({
                "metadata": meta(&s.name, Some(ns)),
                "spec": {
                    "refreshInterval": s.refresh_interval.clone().unwrap_or_else(|| cfg.refresh_interval.clone()),
                    "secretStoreRef": store_ref(),
                    "target": { "name": s.name, "creationPolicy": "Owner", "deletionPolicy": "Retain" },
                    "dataFrom": [{ "extract": { "key": key } }],
                },
            }),
        ));
    }
    if cfg.backend.kubernetes.is_none() {
        return Ok(out);
    }
    granted.extend(
        spec.databases
            .iter()
            .map(|d| d.name.as_str())
            .chain(input.databases.iter().map(String::as_str))
            .map(|db| local_credentials_key(&spec.owner, ns, db)),
    );
    // An empty resourceNames would grant every Secret of the namespace: with nothing
    // to read there is no Role at all.
    if granted.is_empty() {
        return Ok(out);
    }
    let secrets_ns = input.secrets_namespace;
    out.push(object(
        "rbac.authorization.k8s.io/v1",
        "Role",
        "roles",
        Some(secrets_ns),
        &grant,
        json!({
            "metadata": meta(&grant, Some(secrets_ns)),
            "rules": [{
                "apiGroups": [""],
                "resources": ["secrets"],
                "resourceNames": granted,
                "verbs": ["get"],
            }],
        }),
    ));
    out.push(object(
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        "rolebindings",
        Some(secrets_ns),
        &grant,
        json!({
            "metadata": meta(&grant, Some(secrets_ns)),
            "subjects": [{ "kind": "ServiceAccount", "name": ns, "namespace": ns }],
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": grant },
        }),
    ));
    Ok(out)
}

pub fn template_vars(input: &ServiceInput<'_>) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("service", input.claim_name.to_string()),
        ("namespace", input.claim_name.to_string()),
        ("owner", input.spec.owner.clone()),
        ("system", input.spec.system.clone()),
        ("cloud", input.cloud.to_string()),
        ("costCenter", input.spec.cost_center.clone()),
        (
            "classification",
            input.spec.data_classification.as_str().to_string(),
        ),
        ("tier", input.spec.slo_tier.as_str().to_string()),
    ])
}

fn common_labels(input: &ServiceInput<'_>) -> BTreeMap<String, String> {
    let s = input.spec;
    BTreeMap::from([
        (labels::MANAGED_BY.into(), labels::MANAGED_BY_VALUE.into()),
        (labels::CLAIM_KIND.into(), "ServiceClaim".into()),
        (labels::CLAIM_NAME.into(), input.claim_name.into()),
        (labels::OWNER.into(), s.owner.clone()),
        (labels::SYSTEM.into(), s.system.clone()),
        (labels::SERVICE.into(), input.claim_name.into()),
        (
            labels::CLASSIFICATION.into(),
            s.data_classification.as_str().into(),
        ),
        (labels::COST_CENTER.into(), s.cost_center.clone()),
        (labels::TIER.into(), s.slo_tier.as_str().into()),
        (labels::CLOUD.into(), input.cloud.to_string()),
        (labels::COMPOSITION.into(), input.composition_name.into()),
        (
            labels::COMPOSITION_GENERATION.into(),
            input.composition_generation.to_string(),
        ),
    ])
}

fn owner_reference(input: &ServiceInput<'_>) -> Value {
    json!({
        "apiVersion": format!("{}/{}", paved_api::GROUP, paved_api::VERSION),
        "kind": "ServiceClaim",
        "name": input.claim_name,
        "uid": input.claim_uid,
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

fn object(
    api_version: &str,
    kind: &str,
    plural: &str,
    namespace: Option<&str>,
    name: &str,
    mut body: Value,
) -> DesiredObject {
    body["apiVersion"] = json!(api_version);
    body["kind"] = json!(kind);
    DesiredObject {
        api_version: api_version.into(),
        kind: kind.into(),
        plural: plural.into(),
        namespace: namespace.map(String::from),
        name: name.into(),
        body,
    }
}

fn network_policy(ns: &str, name: &str, metadata: Value, spec: Value) -> DesiredObject {
    object(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        "networkpolicies",
        Some(ns),
        name,
        json!({ "metadata": metadata, "spec": spec }),
    )
}

fn ports(ports: &[PortSpec]) -> Vec<Value> {
    ports
        .iter()
        .map(|p| json!({ "port": p.port, "protocol": p.protocol.map(|x| x.as_str()).unwrap_or("TCP") }))
        .collect()
}

fn ingress_rule(p: &IngressPeer) -> Value {
    let mut peer = json!({
        "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": p.namespace } },
    });
    if !p.pod_labels.is_empty() {
        peer["podSelector"] = json!({ "matchLabels": p.pod_labels });
    }
    let mut rule = json!({ "from": [peer] });
    if !p.ports.is_empty() {
        rule["ports"] = json!(ports(&p.ports));
    }
    rule
}

fn egress_rule(p: &EgressPeer) -> Result<Value, RenderError> {
    let peer = match (&p.namespace, &p.cidr) {
        (Some(ns), None) => {
            json!({ "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": ns } } })
        }
        (None, Some(cidr)) => {
            if p.ports.is_empty() {
                return Err(RenderError::InvalidSpec(format!(
                    "egress to {cidr} must name its ports"
                )));
            }
            if let Some(problem) = crate::floor::egress_cidr_problem(cidr) {
                return Err(RenderError::InvalidSpec(format!(
                    "egress: {problem}; name the range you need"
                )));
            }
            json!({ "ipBlock": { "cidr": cidr } })
        }
        _ => {
            return Err(RenderError::InvalidSpec(
                "an egress entry needs exactly one of namespace or cidr".into(),
            ))
        }
    };
    let mut rule = json!({ "to": [peer] });
    if !p.ports.is_empty() {
        rule["ports"] = json!(ports(&p.ports));
    }
    Ok(rule)
}

/// The connection Secret (and its ExternalSecret) of a service's database `db`.
pub fn connection_secret(db: &str) -> String {
    format!("{db}-connection")
}

/// Whether a rendered Namespace says its SecretStore reads as the service alone (an
/// identity Paved made for it, or on `local` its ServiceAccount): only then may the
/// team keep ExternalSecrets of its own there.
pub fn store_reads_as_service(namespace: &DesiredObject) -> bool {
    namespace.body["metadata"]["labels"][labels::STORE_IDENTITY] == STORE_OWN
}

/// The namespace label's value where its store reads as the service alone (the only
/// one admission lets a team write ExternalSecrets under).
pub const STORE_OWN: &str = "service";

/// How an ExternalSecret names the namespace's SecretStore `paved`.
pub fn store_ref() -> Value {
    json!({ "kind": "SecretStore", "name": SECRET_STORE })
}

/// The namespace label's value while a store stops reading as the service alone,
/// `revoking-<unix seconds>`: admission refuses the team's ExternalSecrets (only
/// `service` admits them) and Paved removes what the team wrote, before the
/// ServiceAccount switches.
pub const STORE_REVOKING: &str = "revoking";

/// How long a namespace stays `revoking` before the ServiceAccount switches: admission
/// reads namespaces from a cache, so a write just after the label changed may still
/// be judged by the old one; the second removal, this much later, finds it.
pub const STORE_REVOKING_SECONDS: u64 = 5;

/// Pure: the rendered Namespace (`render_service`'s first object) for a namespace the
/// claim took over rather than made: no owner reference, which would hand the
/// namespace and everything in it to the garbage collector when the claim goes, and
/// the claim's UID in `paved.dev/adopted-by`, which says whose it is instead. Its
/// other objects keep their owner references: they go with the claim.
pub fn as_adopted_namespace(ns: &mut DesiredObject, uid: &str) {
    if let Some(m) = ns.body["metadata"].as_object_mut() {
        m.remove("ownerReferences");
        m.entry("annotations")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|a| a.insert(paved_api::annotations::ADOPTED_BY.into(), json!(uid)));
    }
}

/// The label value that starts a revocation at `now` (unix seconds).
pub fn store_revoking_label(now: u64) -> String {
    format!("{STORE_REVOKING}-{now}")
}

/// What revoking a namespace's store takes this pass.
#[derive(Debug, PartialEq, Eq)]
pub enum Revoke {
    /// Label the namespace `revoking-<now>`, remove the team's ExternalSecrets, change
    /// nothing else yet.
    Begin,
    /// Labelled; wait this many more seconds.
    Wait(u64),
    /// Remove them again, then apply everything (the label goes).
    Finish,
}

/// Pure: where the rendered namespace's store no longer reads as the service alone
/// but the live namespace still says it does (`service`) or is on the way
/// (`revoking-…`), what this pass does; `None`: nothing to revoke.
pub fn store_revoking(namespace: &DesiredObject, live: Option<&str>, now: u64) -> Option<Revoke> {
    if store_reads_as_service(namespace) {
        return None;
    }
    // Any value but a well-formed `revoking-<t>` starts over (fails closed): so does a
    // time further ahead than one wait, set by a leader whose clock ran fast.
    let since = live?
        .strip_prefix(STORE_REVOKING)
        .and_then(|s| s.strip_prefix('-'))
        .and_then(|t| t.parse::<u64>().ok());
    let Some(t) = since.filter(|t| *t <= now.saturating_add(STORE_REVOKING_SECONDS)) else {
        return Some(Revoke::Begin);
    };
    let ready = t.saturating_add(STORE_REVOKING_SECONDS);
    Some(if now >= ready {
        Revoke::Finish
    } else {
        Revoke::Wait((ready - now).min(STORE_REVOKING_SECONDS))
    })
}

/// Pure: whether an ExternalSecret's spec reads exactly one key, through the
/// namespace's SecretStore `paved`, and nothing else (no `data`, no `find`, no
/// generator, no other store).
pub fn reads_exactly(spec: &Value, key: &str) -> bool {
    let store = &spec["secretStoreRef"];
    let data_empty = spec
        .get("data")
        .is_none_or(|d| d.is_null() || d.as_array().is_some_and(|a| a.is_empty()));
    let from = spec["dataFrom"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    data_empty
        && store["name"] == SECRET_STORE
        && (store.get("kind").is_none() || store["kind"] == "SecretStore")
        && from.len() == 1
        && from[0]["extract"]["key"] == key
        && from[0].get("find").is_none()
        && from[0].get("sourceRef").is_none()
}

/// What revoking a store does to the namespace's ExternalSecrets.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sweep<'a> {
    /// Not Paved's: deleted.
    pub remove: Vec<&'a str>,
    /// Paved's by name, edited (a `data` entry, a `find`, another key or store): put
    /// back to reading exactly this key through the store `paved`, in place, so the
    /// Secret they deliver is never taken away.
    pub repair: Vec<(&'a str, String)>,
}

/// Pure: what to do with the ExternalSecrets of a namespace whose store stops reading
/// as the service alone. Paved's are the claim's own (`objects`) and each database's
/// connection (`databases`: its connection Secret's name and the key its credentials
/// are kept under, from its status, which only the operator writes); each must read
/// exactly its key through the store `paved` and nothing else. A name alone decides
/// nothing a team could not forge: one that is Paved's but reads otherwise (the team
/// could edit even Paved's while the store read as the service alone) is repaired,
/// every other one is removed.
pub fn sweep_external_secrets<'a>(
    objects: &[DesiredObject],
    databases: &[(String, Option<String>)],
    live: &'a [(String, Value)],
) -> Sweep<'a> {
    let mut keys: std::collections::BTreeMap<&str, &str> = objects
        .iter()
        .filter(|o| o.kind == "ExternalSecret")
        .filter_map(|o| {
            let key = o.body["spec"]["dataFrom"][0]["extract"]["key"].as_str()?;
            Some((o.name.as_str(), key))
        })
        .collect();
    for (conn, key) in databases {
        if let Some(k) = key {
            keys.entry(conn.as_str()).or_insert(k.as_str());
        }
    }
    let mut sweep = Sweep::default();
    for (name, spec) in live {
        match keys.get(name.as_str()) {
            Some(key) if reads_exactly(spec, key) => {}
            Some(key) => sweep.repair.push((name.as_str(), key.to_string())),
            None => sweep.remove.push(name.as_str()),
        }
    }
    sweep
}

/// The merge patch that repairs one of Paved's ExternalSecrets (see [`Sweep`]).
pub fn repair_patch(key: &str) -> Value {
    json!({ "spec": {
        "data": null,
        "dataFrom": [{ "extract": { "key": key } }],
        "secretStoreRef": store_ref(),
    }})
}

/// Why a Composition could not be chosen.
#[derive(Debug, PartialEq, Eq)]
pub struct NoComposition(pub String);

/// Pure: the service Composition for a cloud (the operator's and `paved render`'s) — the one labelled
/// `paved.dev/default-for: <cloud>`. Exactly one must exist.
pub fn pick_service_composition(
    all: &[std::sync::Arc<paved_api::Composition>],
    cloud: Cloud,
) -> Result<std::sync::Arc<paved_api::Composition>, NoComposition> {
    let mut matches: Vec<_> = all
        .iter()
        .filter(|c| {
            c.spec.service.is_some()
                && kube::ResourceExt::labels(c.as_ref())
                    .get(labels::DEFAULT_FOR)
                    .map(String::as_str)
                    == Some(cloud.as_str())
        })
        .cloned()
        .collect();
    matches.sort_by_key(|c| kube::ResourceExt::name_any(c.as_ref()));
    match matches.len() {
        1 => Ok(matches.remove(0)),
        0 => Err(NoComposition(format!(
            "no service Composition is labelled {}={cloud}; install the defaults from compositions/ or label one",
            labels::DEFAULT_FOR
        ))),
        _ => Err(NoComposition(format!(
            "several service Compositions are labelled {}={cloud} ({}); keep exactly one",
            labels::DEFAULT_FOR,
            matches.iter().map(|c| kube::ResourceExt::name_any(c.as_ref())).collect::<Vec<_>>().join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paved_api::{
        DataClassification, KubernetesSecretBackend, SecretRequest, SloTier, TierSpec, Tiers,
        WorkloadIdentity,
    };

    fn tier(pods: i32) -> TierSpec {
        TierSpec {
            requests_cpu: "1".into(),
            requests_memory: "1Gi".into(),
            limits_cpu: "2".into(),
            limits_memory: "2Gi".into(),
            pods,
            default_request_cpu: "100m".into(),
            default_request_memory: "128Mi".into(),
            default_limit_cpu: "500m".into(),
            default_limit_memory: "512Mi".into(),
        }
    }

    fn comp() -> ServiceComposition {
        ServiceComposition {
            cloud: Cloud::Aws,
            tiers: Tiers {
                bronze: tier(10),
                silver: tier(20),
                gold: tier(30),
            },
            workload_identity: Some(WorkloadIdentity {
                annotation: None,
                value: "arn:aws:iam::1:role/{owner}/{service}".into(),
            }),
            secrets: Some(crate::fixtures::aws_secrets()),
            owner_role: "paved-developer".into(),
            ..Default::default()
        }
    }

    fn spec() -> ServiceClaimSpec {
        ServiceClaimSpec {
            owner: "team-a".into(),
            system: "sys".into(),
            cost_center: "CC-1".into(),
            slo_tier: SloTier::Gold,
            data_classification: DataClassification::Phi,
            ..Default::default()
        }
    }

    fn render(
        spec: &ServiceClaimSpec,
        comp: &ServiceComposition,
    ) -> Result<Vec<DesiredObject>, RenderError> {
        render_with(spec, comp, Cloud::Aws, &[])
    }

    fn render_with(
        spec: &ServiceClaimSpec,
        comp: &ServiceComposition,
        cloud: Cloud,
        databases: &[String],
    ) -> Result<Vec<DesiredObject>, RenderError> {
        render_on(spec, comp, cloud, databases, None)
    }

    fn input<'a>(
        spec: &'a ServiceClaimSpec,
        comp: &'a ServiceComposition,
        cloud: Cloud,
        databases: &'a [String],
        identity: Option<&'a str>,
    ) -> ServiceInput<'a> {
        ServiceInput {
            claim_name: "svc",
            claim_uid: "uid-1",
            spec,
            cloud,
            composition_name: "service-aws",
            composition_generation: 3,
            composition: comp,
            team: None,
            secrets_namespace: "paved-secrets",
            databases,
            identity,
        }
    }

    fn render_on(
        spec: &ServiceClaimSpec,
        comp: &ServiceComposition,
        cloud: Cloud,
        databases: &[String],
        identity: Option<&str>,
    ) -> Result<Vec<DesiredObject>, RenderError> {
        render_service(&input(spec, comp, cloud, databases, identity))
    }

    /// A service identity on AWS (each service its own role).
    fn aws_identity() -> paved_api::ServiceIdentity {
        paved_api::ServiceIdentity {
            aws: Some(crate::fixtures::aws_identity()),
            ..Default::default()
        }
    }

    fn local() -> ServiceComposition {
        let mut c = comp();
        c.cloud = Cloud::Local;
        c.workload_identity = None;
        c.secrets.as_mut().unwrap().backend = SecretBackend {
            kubernetes: Some(KubernetesSecretBackend {
                server: "https://kubernetes.default.svc".into(),
                ca_config_map: "kube-root-ca.crt".into(),
            }),
            ..Default::default()
        };
        c
    }

    fn find<'a>(objs: &'a [DesiredObject], kind: &str, name: &str) -> &'a DesiredObject {
        objs.iter()
            .find(|o| o.kind == kind && o.name == name)
            .unwrap_or_else(|| panic!("no {kind}/{name}"))
    }

    #[test]
    fn namespace_comes_first_with_identity_labels_and_pod_security() {
        let objs = render(&spec(), &comp()).unwrap();
        assert_eq!(objs[0].kind, "Namespace");
        let labels = &objs[0].body["metadata"]["labels"];
        assert_eq!(labels["paved.dev/owner"], "team-a");
        assert_eq!(labels["paved.dev/data-classification"], "phi");
        assert_eq!(labels["paved.dev/cost-center"], "CC-1");
        assert_eq!(labels["paved.dev/composition-generation"], "3");
        assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
        // A store reading as a platform-made identity that may serve others: the team
        // writes no ExternalSecrets of its own here.
        assert!(labels.get("paved.dev/store-identity").is_none());
        let mut c = comp();
        c.identity = Some(aws_identity());
        let objs = render(&spec(), &c).unwrap();
        assert_eq!(
            objs[0].body["metadata"]["labels"]["paved.dev/store-identity"],
            "service"
        );
    }

    #[test]
    fn a_store_revoked_keeps_only_paveds_external_secrets_as_paved_wrote_them() {
        let mut s = spec();
        s.secrets = vec![SecretRequest {
            name: "api".into(),
            ..Default::default()
        }];
        let objs = render(&s, &comp()).unwrap();
        // The Composition's shared role: a namespace still labelled `service` is
        // revoked in two passes; one never labelled has nothing to revoke.
        assert!(!store_reads_as_service(&objs[0]));
        assert_eq!(
            store_revoking(&objs[0], Some("service"), 100),
            Some(Revoke::Begin)
        );
        let label = store_revoking_label(100);
        assert_eq!(label, "revoking-100");
        assert_eq!(
            store_revoking(&objs[0], Some(&label), 101),
            Some(Revoke::Wait(4))
        );
        assert_eq!(
            store_revoking(&objs[0], Some(&label), 105),
            Some(Revoke::Finish)
        );
        // Anything else present starts over: a malformed value, or a time from a clock
        // far ahead.
        for odd in ["revoking", "revoking-", "revoking-abc", "revokingX", "x"] {
            assert_eq!(
                store_revoking(&objs[0], Some(odd), 1),
                Some(Revoke::Begin),
                "{odd}"
            );
        }
        assert_eq!(
            store_revoking(&objs[0], Some("revoking-200"), 100),
            Some(Revoke::Begin)
        );
        assert_eq!(
            store_revoking(&objs[0], Some("revoking-104"), 100),
            Some(Revoke::Wait(5))
        );
        assert_eq!(store_revoking(&objs[0], None, 100), None);
        let api = find(&objs, "ExternalSecret", "api").body["spec"].clone();
        let key = api["dataFrom"][0]["extract"]["key"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(reads_exactly(&api, &key));
        let conn = |k: &str| {
            json!({ "secretStoreRef": { "kind": "SecretStore", "name": "paved" },
                    "dataFrom": [{ "extract": { "key": k } }] })
        };
        let mut widened = api.clone();
        widened["data"] = json!([{ "secretKey": "x", "remoteRef": { "key": "team-b/other/api" } }]);
        let mut found = api.clone();
        found["dataFrom"] = json!([{ "find": { "name": { "regexp": ".*" } } }]);
        let live: Vec<(String, Value)> = vec![
            ("api".into(), api.clone()),
            ("main-connection".into(), conn("arn:main")),
            ("team-db-connection".into(), conn("arn:team-db")),
            ("other-connection".into(), conn("arn:someone-elses")),
            ("mine".into(), conn("team-a/svc/mine")),
            ("widened".into(), widened.clone()),
        ];
        let dbs = vec![
            ("main-connection".to_string(), Some("arn:main".to_string())),
            (
                "team-db-connection".to_string(),
                Some("arn:team-db".to_string()),
            ),
            (
                "other-connection".to_string(),
                Some("arn:other".to_string()),
            ),
        ];
        // The team's own goes; Paved's read otherwise (a key its database does not
        // keep, an extra `data` entry) are put back in place.
        let sweep = sweep_external_secrets(&objs, &dbs, &live);
        assert_eq!(sweep.remove, vec!["mine", "widened"]);
        assert_eq!(
            sweep.repair,
            vec![("other-connection", "arn:other".to_string())]
        );
        // Paved's own, edited by the team while it could: repaired to its key.
        let live_widened = widened.clone();
        for edited in [widened, found] {
            let live = vec![("api".to_string(), edited)];
            let sweep = sweep_external_secrets(&objs, &dbs, &live);
            assert_eq!(sweep.repair, vec![("api", key.clone())]);
            assert!(sweep.remove.is_empty());
        }
        // The repair, merged as the apiserver merges it, reads exactly the key.
        let mut repaired = live_widened;
        for (k, v) in repair_patch(&key)["spec"].as_object().unwrap() {
            match v {
                Value::Null => drop(repaired.as_object_mut().unwrap().remove(k)),
                v => repaired[k] = v.clone(),
            }
        }
        assert!(reads_exactly(&repaired, &key));
        // A database not yet told where its credentials are: nothing of it is Paved's.
        let live = vec![("new-connection".to_string(), conn("arn:x"))];
        assert_eq!(
            sweep_external_secrets(&objs, &[("new-connection".into(), None)], &live).remove,
            vec!["new-connection"]
        );
        // The service's own identity, or local: nothing to revoke.
        let mut c = comp();
        c.identity = Some(aws_identity());
        let objs = render(&s, &c).unwrap();
        assert_eq!(store_revoking(&objs[0], Some("service"), 100), None);
        let objs = render_with(&s, &local(), Cloud::Local, &[]).unwrap();
        assert_eq!(store_revoking(&objs[0], Some("service"), 100), None);
    }

    #[test]
    fn a_namespace_taken_over_is_not_owned_and_says_whose_it_is() {
        let mut objs = render(&spec(), &comp()).unwrap();
        as_adopted_namespace(&mut objs[0], "uid-1");
        let m = &objs[0].body["metadata"];
        assert!(m.get("ownerReferences").is_none(), "{m}");
        assert_eq!(m["annotations"]["paved.dev/adopted-by"], "uid-1");
        assert_eq!(m["labels"]["paved.dev/claim-name"], "svc");
        assert_eq!(m["labels"]["paved.dev/claim-kind"], "ServiceClaim");
        // What is in it still goes with the claim.
        assert!(objs[1..]
            .iter()
            .all(|o| o.body["metadata"]["ownerReferences"][0]["uid"] == "uid-1"));
    }

    #[test]
    fn every_object_is_owned_and_labelled_for_pruning() {
        for o in render(&spec(), &comp()).unwrap() {
            let m = &o.body["metadata"];
            assert_eq!(m["ownerReferences"][0]["uid"], "uid-1", "{}", o.key());
            assert_eq!(m["ownerReferences"][0]["controller"], true);
            assert_eq!(m["labels"]["paved.dev/claim-name"], "svc");
            assert_eq!(m["labels"]["app.kubernetes.io/managed-by"], "paved");
            assert_eq!(o.body["kind"], o.kind);
        }
    }

    #[test]
    fn default_deny_is_unconditional_and_dns_is_allowed() {
        let objs = render(&spec(), &comp()).unwrap();
        let deny = find(&objs, "NetworkPolicy", names::DEFAULT_DENY);
        assert_eq!(
            deny.body["spec"],
            json!({ "podSelector": {}, "policyTypes": ["Ingress", "Egress"] })
        );
        let dns = find(&objs, "NetworkPolicy", names::ALLOW_DNS);
        assert_eq!(dns.body["spec"]["egress"][0]["ports"][0]["port"], 53);
        // No allowances asked for: no allow policies rendered.
        assert!(!objs
            .iter()
            .any(|o| o.name == names::ALLOW_INGRESS || o.name == names::ALLOW_EGRESS));
    }

    #[test]
    fn tier_picks_the_quota() {
        let objs = render(&spec(), &comp()).unwrap();
        assert_eq!(
            find(&objs, "ResourceQuota", names::QUOTA).body["spec"]["hard"]["pods"],
            "30"
        );
    }

    #[test]
    fn workload_identity_annotation_defaults_per_cloud_and_renders_placeholders() {
        let objs = render(&spec(), &comp()).unwrap();
        let sa = find(&objs, "ServiceAccount", "svc");
        assert_eq!(
            sa.body["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
            "arn:aws:iam::1:role/team-a/svc"
        );
        assert_eq!(sa.body["automountServiceAccountToken"], false);
    }

    #[test]
    fn cloud_store_keys_split_one_way_only_and_name_the_identity_paved_made() {
        let mut s = spec();
        s.secrets = vec![SecretRequest {
            name: "api".into(),
            ..Default::default()
        }];
        // Key Vault: `--` between the parts, and no `--` inside a team or service name.
        let mut c = comp();
        c.cloud = Cloud::Azure;
        c.secrets = Some(SecretsConfig {
            backend: SecretBackend {
                azure: Some(paved_api::AzureSecretBackend {
                    vault_url: "https://kv.vault.azure.net".into(),
                }),
                ..Default::default()
            },
            path: "{owner}--{service}".into(),
            refresh_interval: "1h".into(),
        });
        c.workload_identity = None;
        c.identity = Some(paved_api::ServiceIdentity {
            azure: Some(paved_api::AzureServiceIdentity {
                subscription_id: "s".into(),
                resource_group: "rg".into(),
                location: "westeurope".into(),
                oidc_issuer: "https://issuer/".into(),
                key_vault_id:
                    "/subscriptions/s/resourceGroups/kv/providers/Microsoft.KeyVault/vaults/kv"
                        .into(),
                name_prefix: "paved-".into(),
                poll_interval: "5m".into(),
            }),
            ..Default::default()
        });
        let objs = render_on(&s, &c, Cloud::Azure, &[], Some("client-1")).unwrap();
        assert_eq!(
            find(&objs, "ExternalSecret", "api").body["spec"]["dataFrom"][0]["extract"]["key"],
            "team-a--svc--api"
        );
        assert_eq!(
            find(&objs, "ServiceAccount", "svc").body["metadata"]["annotations"]
                ["azure.workload.identity/client-id"],
            "client-1"
        );
        // Not made yet: no annotation rather than a wrong one.
        let objs = render_on(&s, &c, Cloud::Azure, &[], None).unwrap();
        assert!(find(&objs, "ServiceAccount", "svc").body["metadata"]["annotations"].is_null());
        let mut bad = s.clone();
        bad.owner = "team--a".into();
        let err = render_on(&bad, &c, Cloud::Azure, &[], None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("spec.owner") && err.contains("'--'"), "{err}");
        s.secrets[0].remote_key = Some("a/b".into());
        let err = render_on(&s, &c, Cloud::Azure, &[], None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("Key Vault names"), "{err}");

        // Secret Manager: `_`, and the account's email known in advance.
        s.secrets[0].remote_key = None;
        c.cloud = Cloud::Gcp;
        c.secrets.as_mut().unwrap().backend = crate::fixtures::gcp_backend();
        c.secrets.as_mut().unwrap().path = "{owner}_{service}".into();
        c.identity = Some(paved_api::ServiceIdentity {
            gcp: Some(paved_api::GcpServiceIdentity {
                project_id: "ids".into(),
                workload_pool: None,
                name_prefix: "paved-".into(),
                poll_interval: "5m".into(),
            }),
            ..Default::default()
        });
        let mut uid_spec = s.clone();
        uid_spec.owner = "team-a".into();
        let objs = render_service(&ServiceInput {
            claim_uid: "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d",
            ..input(&uid_spec, &c, Cloud::Gcp, &[], None)
        })
        .unwrap();
        assert_eq!(
            find(&objs, "ExternalSecret", "api").body["spec"]["dataFrom"][0]["extract"]["key"],
            "team-a_svc_api"
        );
        assert_eq!(
            find(&objs, "ServiceAccount", "svc").body["metadata"]["annotations"]
                ["iam.gke.io/gcp-service-account"],
            "paved-0a1b2c3d4e5f6a7b8c9d0e1f@ids.iam.gserviceaccount.com"
        );
    }

    #[test]
    fn secrets_read_only_the_service_path() {
        let mut s = spec();
        s.secrets = vec![
            SecretRequest {
                name: "app".into(),
                ..Default::default()
            },
            SecretRequest {
                name: "db".into(),
                remote_key: Some("rds/master".into()),
                refresh_interval: Some("5m".into()),
            },
        ];
        let objs = render(&s, &comp()).unwrap();
        let store = find(&objs, "SecretStore", "paved");
        assert_eq!(
            store.body["spec"]["provider"]["aws"]["auth"]["jwt"]["serviceAccountRef"]["name"],
            "svc",
            "the store authenticates as the service's own ServiceAccount"
        );
        let app = find(&objs, "ExternalSecret", "app");
        assert_eq!(
            app.body["spec"]["secretStoreRef"],
            json!({ "kind": "SecretStore", "name": "paved" })
        );
        assert_eq!(
            app.body["spec"]["dataFrom"][0]["extract"]["key"],
            "team-a/svc/app"
        );
        assert_eq!(app.body["spec"]["refreshInterval"], "1h");
        let db = find(&objs, "ExternalSecret", "db");
        assert_eq!(
            db.body["spec"]["dataFrom"][0]["extract"]["key"],
            "team-a/svc/rds/master"
        );
        assert_eq!(db.body["spec"]["refreshInterval"], "5m");

        s.secrets = vec![SecretRequest {
            name: "x".into(),
            remote_key: Some("../other/x".into()),
            ..Default::default()
        }];
        assert!(
            matches!(render(&s, &comp()), Err(RenderError::InvalidSpec(m)) if m.contains("climbs out"))
        );
    }

    #[test]
    fn a_composition_without_a_secret_backend_is_refused() {
        let mut s = spec();
        s.secrets = vec![SecretRequest {
            name: "app".into(),
            ..Default::default()
        }];
        let mut c = comp();
        c.secrets = None;
        let err = render(&s, &c).unwrap_err();
        assert_eq!(err.reason().as_str(), "CompositionViolatesFloor");
        assert!(err.to_string().contains("spec.service.secrets"), "{err}");
    }

    #[test]
    fn the_kubernetes_backend_grants_the_service_exactly_its_own_secrets() {
        let mut s = spec();
        s.secrets = vec![SecretRequest {
            name: "app".into(),
            ..Default::default()
        }];
        s.databases = vec![paved_api::DatabaseRequest {
            name: "orders".into(),
            ..Default::default()
        }];
        let objs = render_with(
            &s,
            &local(),
            Cloud::Local,
            &["legacy".into(), "orders".into()],
        )
        .unwrap();
        let store = &find(&objs, "SecretStore", "paved").body["spec"]["provider"]["kubernetes"];
        assert_eq!(store["remoteNamespace"], "paved-secrets");
        assert_eq!(store["auth"]["serviceAccount"]["name"], "svc");
        let app = find(&objs, "ExternalSecret", "app");
        assert_eq!(
            app.body["spec"]["dataFrom"][0]["extract"]["key"],
            "team-a.svc.app"
        );
        let role = find(&objs, "Role", "team-a.svc");
        assert_eq!(role.namespace.as_deref(), Some("paved-secrets"));
        assert_eq!(
            role.body["rules"],
            json!([{
                "apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
                "resourceNames": ["team-a.svc.app", "team-a.svc.postgresql.legacy", "team-a.svc.postgresql.orders"],
            }])
        );
        let binding = find(&objs, "RoleBinding", "team-a.svc");
        assert_eq!(binding.namespace.as_deref(), Some("paved-secrets"));
        assert_eq!(
            binding.body["subjects"],
            json!([{ "kind": "ServiceAccount", "name": "svc", "namespace": "svc" }])
        );
        // Owned by the claim, so it goes with it.
        assert_eq!(role.body["metadata"]["ownerReferences"][0]["uid"], "uid-1");
    }

    #[test]
    fn nothing_to_read_is_no_role_never_an_empty_grant() {
        // An empty resourceNames grants every Secret in the namespace.
        let objs = render_with(&spec(), &local(), Cloud::Local, &[]).unwrap();
        assert!(objs.iter().all(|o| o.kind != "Role"));
        assert!(
            objs.iter()
                .all(|o| !(o.kind == "RoleBinding"
                    && o.namespace.as_deref() == Some("paved-secrets")))
        );
        find(&objs, "SecretStore", "paved");
    }

    #[test]
    fn kubernetes_backend_keys_must_be_secret_names() {
        let mut s = spec();
        s.secrets = vec![SecretRequest {
            name: "x".into(),
            remote_key: Some("team/Other".into()),
            ..Default::default()
        }];
        let err = render_with(&s, &local(), Cloud::Local, &[]).unwrap_err();
        assert!(
            err.to_string().contains("spec.secrets[x].remoteKey"),
            "{err}"
        );
    }

    #[test]
    fn a_composition_below_the_floor_is_refused() {
        let mut c = comp();
        c.owner_role = "cluster-admin".into();
        let err = render(&spec(), &c).unwrap_err();
        assert_eq!(err.reason().as_str(), "CompositionViolatesFloor");
        assert!(err.to_string().contains("spec.service.ownerRole"), "{err}");
    }

    #[test]
    fn a_composition_for_another_cloud_is_refused() {
        let mut c = comp();
        c.cloud = Cloud::Gcp;
        assert!(render(&spec(), &c)
            .unwrap_err()
            .to_string()
            .contains("is for cloud gcp"));
    }

    #[test]
    fn egress_and_ingress_allowances_render_as_separate_policies() {
        let mut s = spec();
        s.network = Some(paved_api::NetworkSpec {
            ingress_from: vec![IngressPeer {
                namespace: "ingress".into(),
                ..Default::default()
            }],
            egress_to: vec![
                EgressPeer {
                    namespace: Some("shared".into()),
                    ..Default::default()
                },
                EgressPeer {
                    cidr: Some("10.1.0.0/16".into()),
                    ports: vec![PortSpec {
                        port: 443,
                        protocol: None,
                    }],
                    ..Default::default()
                },
            ],
            ..Default::default()
        });
        let objs = render(&s, &comp()).unwrap();
        let eg = &find(&objs, "NetworkPolicy", names::ALLOW_EGRESS).body["spec"]["egress"];
        assert_eq!(eg[1]["to"][0]["ipBlock"]["cidr"], "10.1.0.0/16");
        assert_eq!(eg[1]["ports"][0], json!({ "port": 443, "protocol": "TCP" }));
        let ing = &find(&objs, "NetworkPolicy", names::ALLOW_INGRESS).body["spec"]["ingress"];
        assert_eq!(
            ing[0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
            "ingress"
        );
    }

    #[test]
    fn open_ended_egress_is_refused_even_if_admission_was_bypassed() {
        let mut s = spec();
        s.network = Some(paved_api::NetworkSpec {
            egress_to: vec![EgressPeer {
                cidr: Some("0.0.0.0/0".into()),
                ports: vec![PortSpec {
                    port: 443,
                    protocol: None,
                }],
                ..Default::default()
            }],
            ..Default::default()
        });
        assert!(render(&s, &comp()).is_err());
        s.network.as_mut().unwrap().egress_to = vec![EgressPeer {
            cidr: Some("10.0.0.0/8".into()),
            ..Default::default()
        }];
        assert!(render(&s, &comp()).is_err());
    }

    #[test]
    fn child_claims_carry_parameters_and_connection_secret_names() {
        let mut s = spec();
        s.databases = vec![paved_api::DatabaseRequest {
            name: "main".into(),
            parameters: paved_api::PostgreSQLParameters {
                storage_gb: Some(50),
                ..Default::default()
            },
            deletion_policy: Some(paved_api::DeletionPolicy::Orphan),
            ..Default::default()
        }];
        s.temporal = vec![paved_api::TemporalRequest {
            name: "wf".into(),
            retention_days: Some(30),
            description: None,
        }];
        let objs = render(&s, &comp()).unwrap();
        let db = find(&objs, "PostgreSQLInstance", "main");
        assert_eq!(db.body["spec"]["parameters"]["storageGB"], 50);
        assert_eq!(db.body["spec"]["deletionPolicy"], "Orphan");
        assert_eq!(
            db.body["spec"]["writeConnectionSecretToRef"]["name"],
            "main-connection"
        );
        assert_eq!(
            find(&objs, "TemporalNamespace", "wf").body["spec"]["retentionDays"],
            30
        );
    }

    #[test]
    fn rendering_is_deterministic() {
        assert_eq!(
            render(&spec(), &comp()).unwrap(),
            render(&spec(), &comp()).unwrap()
        );
    }
}

#[cfg(test)]
mod picker_tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use kube::ResourceExt;
    use paved_api::{labels, Cloud, Composition};
    use paved_api::{CompositionSpec, ServiceComposition};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    fn comp(name: &str, cloud: Cloud, default_for: Option<&str>) -> Arc<Composition> {
        let mut c = Composition::new(
            name,
            CompositionSpec {
                service: Some(ServiceComposition {
                    cloud,
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        c.metadata = ObjectMeta {
            name: Some(name.into()),
            labels: default_for
                .map(|d| BTreeMap::from([(labels::DEFAULT_FOR.to_string(), d.to_string())])),
            ..Default::default()
        };
        Arc::new(c)
    }

    #[test]
    fn picks_the_one_default_for_the_cloud() {
        let all = vec![
            comp("a", Cloud::Aws, Some("aws")),
            comp("l", Cloud::Local, Some("local")),
        ];
        assert_eq!(
            pick_service_composition(&all, Cloud::Local)
                .unwrap()
                .name_any(),
            "l"
        );
    }

    #[test]
    fn no_default_or_two_defaults_is_an_error_that_says_so() {
        let all = vec![comp("a", Cloud::Aws, None)];
        assert!(pick_service_composition(&all, Cloud::Aws)
            .unwrap_err()
            .0
            .contains("no service Composition"));
        let all = vec![
            comp("a", Cloud::Aws, Some("aws")),
            comp("b", Cloud::Aws, Some("aws")),
        ];
        assert!(pick_service_composition(&all, Cloud::Aws)
            .unwrap_err()
            .0
            .contains("a, b"));
    }
}
