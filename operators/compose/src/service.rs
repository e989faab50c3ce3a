//! ServiceClaim → namespace, network policies, quota, identity, secrets wiring and
//! child claims.

use std::collections::BTreeMap;

use paved_api::{
    labels, render_template, Cloud, EgressPeer, IngressPeer, PortSpec, ServiceClaimSpec,
    ServiceComposition,
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

    // Identity: the service's ServiceAccount, bound to its cloud identity.
    let mut sa_meta = meta(&ns, Some(&ns));
    if let Some(wi) = &comp.workload_identity {
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
            "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": spec.owner }],
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": comp.owner_role },
        }),
    ));

    // Secrets: one ExternalSecret each, confined to the service's path.
    if !spec.secrets.is_empty() {
        let Some(cfg) = &comp.secrets else {
            return Err(RenderError::InvalidSpec(format!(
                "spec.secrets is set, but composition {} names no secret store (spec.service.secrets)",
                input.composition_name
            )));
        };
        let base = template("secrets.path", &cfg.path)?;
        for s in &spec.secrets {
            let remote = s.remote_key.as_deref().unwrap_or(&s.name);
            if remote.split('/').any(|seg| seg == "..") {
                return Err(RenderError::InvalidSpec(format!(
                    "spec.secrets[{}].remoteKey climbs out of the service's path",
                    s.name
                )));
            }
            let key = format!("{}/{}", base.trim_end_matches('/'), remote);
            out.push(object(
                "external-secrets.io/v1",
                "ExternalSecret",
                "externalsecrets",
                Some(&ns),
                &s.name,
                json!({
                    "metadata": meta(&s.name, Some(&ns)),
                    "spec": {
                        "refreshInterval": s.refresh_interval.clone().unwrap_or_else(|| cfg.refresh_interval.clone()),
                        "secretStoreRef": { "kind": cfg.store.kind.as_str(), "name": cfg.store.name },
                        "target": { "name": s.name, "creationPolicy": "Owner", "deletionPolicy": "Retain" },
                        "dataFrom": [{ "extract": { "key": key } }],
                    },
                }),
            ));
        }
    }

    // Child claims: their own controllers do the cloud work.
    for db in &spec.databases {
        let mut db_spec = json!({
            "parameters": serde_json::to_value(&db.parameters).expect("parameters serialize"),
            "writeConnectionSecretToRef": { "name": format!("{}-connection", db.name) },
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
            if cidr == "0.0.0.0/0" || cidr == "::/0" {
                return Err(RenderError::InvalidSpec(
                    "egress to the whole internet is not allowed".into(),
                ));
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
