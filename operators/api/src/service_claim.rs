//! ServiceClaim: the golden path. Five answers from a developer; a namespace with
//! everything a compliant service needs.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    Cloud, CompositionReference, CompositionRevision, Condition, DataClassification,
    DeletionPolicy, PostgreSQLParameters, SloTier,
};

/// A service's request for a compliant home: a namespace with default-deny network
/// policies, quotas, identity, secrets wiring, databases and Temporal namespaces.
/// The namespace is named after the claim.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "paved.dev",
    version = "v1alpha1",
    kind = "ServiceClaim",
    plural = "serviceclaims",
    singular = "serviceclaim",
    shortname = "svcclaim",
    category = "paved",
    status = "ServiceClaimStatus",
    printcolumn = r#"{"name":"READY","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"SYNCED","type":"string","jsonPath":".status.conditions[?(@.type==\"Synced\")].status"}"#,
    printcolumn = r#"{"name":"REASON","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"OWNER","type":"string","jsonPath":".spec.owner"}"#,
    printcolumn = r#"{"name":"TIER","type":"string","jsonPath":".spec.sloTier"}"#,
    printcolumn = r#"{"name":"CLOUD","type":"string","jsonPath":".status.cloud"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"MESSAGE","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.cloud) == has(oldSelf.cloud) && (!has(self.cloud) || self.cloud == oldSelf.cloud)",
        "message": "spec.cloud is immutable: a service cannot move clouds in place; create a new claim instead"
    },
    {
        "rule": "oldSelf.dataClassification != 'phi' || self.dataClassification == 'phi'",
        "message": "spec.dataClassification cannot be lowered from phi: data once classified PHI keeps its protections (deletion protection, snapshots)"
    },
    {
        "rule": "!has(self.secrets) || !has(self.databases) || self.secrets.all(s, !self.databases.exists(d, s.name == d.name + '-connection'))",
        "message": "spec.secrets[].name cannot be <database>-connection: that name is spec.databases' connection Secret, and two objects of one claim never share a Secret"
    }
]))]
pub struct ServiceClaimSpec {
    /// The group that owns the service (e.g. `team-claims`). It is bound to the
    /// namespace's edit role and stamped on every resource as the Owner tag.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub owner: String,

    /// The larger system this service belongs to (e.g. `claims-platform`); a label on
    /// the namespace and a tag on cloud resources.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub system: String,

    /// Where the service's cloud resources live: `aws`, `azure`, `gcp` or `local`.
    /// Optional: when omitted, the operator's default cloud is used and recorded in
    /// `status.cloud`. Immutable once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<Cloud>,

    /// How sensitive the service's data is: `public`, `internal`, `confidential` or
    /// `phi` (protected health information). Defaults to `phi`, the safe choice:
    /// PHI gets customer-managed encryption and deletion protection, and is refused
    /// by providers that cannot guarantee them.
    #[serde(default)]
    pub data_classification: DataClassification,

    /// Service-level tier: `bronze`, `silver` or `gold`. Sets the namespace's quota and
    /// container defaults, and database sizing defaults. Defaults to `silver`.
    #[serde(default)]
    pub slo_tier: SloTier,

    /// Cost center billed for the service's resources (e.g. `CC-4410`); a label on the
    /// namespace and the CostCenter tag on cloud resources.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
    )]
    pub cost_center: String,

    /// Network allowances on top of the namespace's default-deny policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSpec>,

    /// Secrets to deliver into the namespace from the service's path in the secret
    /// store (one ExternalSecret each).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub secrets: Vec<SecretRequest>,

    /// PostgreSQL databases the service needs; each becomes a PostgreSQLInstance claim
    /// in the service's namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub databases: Vec<DatabaseRequest>,

    /// Temporal namespaces the service needs; each becomes a TemporalNamespace claim in
    /// the service's namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub temporal: Vec<TemporalRequest>,
}

/// Network allowances. Every claim namespace denies all ingress and egress by
/// default (DNS egress excepted); this adds what the service needs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    /// Default-deny is part of the compliance floor and cannot be turned off. The
    /// field exists so that `false` is refused with a reason instead of being
    /// silently dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self == true", "message": "default-deny cannot be turned off: every claim namespace denies ingress and egress by default (compliance floor); add allowances in ingressFrom / egressTo instead"}
    ]))]
    pub default_deny: Option<bool>,

    /// Namespaces (optionally narrowed to pods with given labels) allowed to connect
    /// to this service's pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub ingress_from: Vec<IngressPeer>,

    /// Destinations this service's pods may connect to: another namespace, or a CIDR
    /// with ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub egress_to: Vec<EgressPeer>,
}

/// A source allowed to reach the service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressPeer {
    /// Name of the namespace traffic may come from.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: String,
    /// Only pods with these labels in that namespace (all pods when empty).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 16))]
    #[schemars(extend("additionalProperties" = {"type": "string", "maxLength": 63}))]
    pub pod_labels: BTreeMap<String, String>,
    /// Only these ports on this service's pods (all ports when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub ports: Vec<PortSpec>,
}

/// A destination the service may reach: exactly one of `namespace` or `cidr`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.namespace) != has(self.cidr)", "message": "set exactly one of namespace or cidr"},
    {"rule": "!has(self.cidr) || (has(self.ports) && size(self.ports) > 0)", "message": "a cidr egress must name its ports: open-ended egress to an address range is not allowed"},
    {"rule": "!has(self.cidr) || !(self.cidr in ['0.0.0.0/0', '::/0'])", "message": "egress to the whole internet is not allowed; name the range you need"},
    {"rule": "!has(self.cidr) || !isCIDR(self.cidr) || cidr(self.cidr).prefixLength() >= (cidr(self.cidr).ip().family() == 4 ? 8 : 32)", "message": "an egress range wider than /8 (IPv4) or /32 (IPv6) is not allowed; name the range you need"},
    {"rule": "!has(self.cidr) || !isCIDR(self.cidr) || !['169.254.0.0/16', 'fe80::/10', 'fd00:ec2::254/128', '168.63.129.16/32', '100.100.100.200/32'].exists(m, cidr(m).containsCIDR(self.cidr) || cidr(self.cidr).containsCIDR(m))", "message": "egress to link-local and cloud metadata addresses (169.254.0.0/16, fe80::/10, fd00:ec2::254, 168.63.129.16, 100.100.100.200) is never allowed: they hand out node credentials"}
]))]
pub struct EgressPeer {
    /// A namespace the service may connect to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: Option<String>,
    /// An IP range the service may connect to, e.g. `10.20.0.0/16`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "isCIDR(self)", "message": "must be a CIDR such as 10.20.0.0/16"}
    ]))]
    #[schemars(length(max = 43))]
    pub cidr: Option<String>,
    /// Destination ports (all ports of a namespace when empty; required for a cidr).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub ports: Vec<PortSpec>,
}

/// A port and protocol.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortSpec {
    /// Port number.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// `TCP` (default), `UDP` or `SCTP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Protocol {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

/// A secret to deliver into the namespace through an ExternalSecret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRequest {
    /// Name of the Kubernetes Secret to create in the service's namespace.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Key under the service's secret path in the store; defaults to `name`. Cannot
    /// climb out of the service's path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[A-Za-z0-9_][-A-Za-z0-9_./]*$")
    )]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "!self.contains('..')", "message": "remoteKey cannot contain '..': secrets are read only from the service's own path"}
    ]))]
    pub remote_key: Option<String>,
    /// How often to re-read the secret from the store, e.g. `1h` (default from the
    /// composition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 16))]
    pub refresh_interval: Option<String>,
}

/// A PostgreSQL database for the service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseRequest {
    /// Name of the PostgreSQLInstance claim created in the service's namespace; the
    /// connection Secret is `<name>-connection`.
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// A specific PostgreSQL Composition; default: the one for the service's cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composition_ref: Option<CompositionReference>,
    /// Size and shape of the database.
    #[serde(default)]
    pub parameters: PostgreSQLParameters,
    /// What happens to the cloud database when its PostgreSQLInstance is deleted:
    /// `Delete`, `Orphan` or `Snapshot` (default from the Composition; PHI keeps a
    /// snapshot). Removing or renaming this entry deletes nothing: the database is kept
    /// and listed in `status.retainedDatabases` until its PostgreSQLInstance is deleted
    /// by hand. When the whole ServiceClaim goes, `Delete` takes a final snapshot first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
}

/// A Temporal namespace for the service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemporalRequest {
    /// Name of the TemporalNamespace claim created in the service's namespace.
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Days Temporal keeps closed workflow histories (1 up to the composition's maximum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3650))]
    pub retention_days: Option<i32>,
    /// Description shown in Temporal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
}

/// Observed state of a ServiceClaim.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceClaimStatus {
    /// `Ready`: every resource the claim implies exists and every child claim is
    /// Ready. `Synced`: the last reconcile applied the desired state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation of the spec last acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The namespace created for the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The cloud in effect (spec.cloud, or the operator's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<Cloud>,
    /// The service Composition the namespace was rendered with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composition: Option<CompositionRevision>,
    /// Child claims and their readiness.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildStatus>,
    /// Databases removed from (or renamed in) `spec.databases` that Paved keeps,
    /// running and managed, because removing an entry is not a request to destroy
    /// data. Delete one for real with `kubectl delete postgresqlinstance <name> -n
    /// <namespace>` (its deletion policy then applies), or add the entry back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retained_databases: Vec<String>,
    /// A digest of what Paved last applied (the rendered objects, and Paved's fields on
    /// them as the apply left them). A restarted operator writes nothing for a claim
    /// whose objects still match it. For the operator, not for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<String>,
    /// The cloud identity Paved made for the service, as its ServiceAccount is
    /// annotated with it: the IAM role ARN (AWS), the managed identity's client ID
    /// (Azure), or the Google service account's email (GCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Where that identity lives (the role ARN, the managed identity's ARM resource
    /// ID, the service account's resource name): deleting the claim deletes it there,
    /// whatever the Composition says by then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_id: Option<String>,
}

/// Readiness of one child claim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChildStatus {
    /// Kind of the child (`PostgreSQLInstance`, `TemporalNamespace`).
    pub kind: String,
    /// Name of the child in the service's namespace.
    pub name: String,
    /// Whether the child is Ready at its current generation.
    pub ready: bool,
    /// The child's Ready reason, or why it is not known yet.
    #[serde(default)]
    pub reason: String,
}
