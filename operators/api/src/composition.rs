//! Composition: the platform team's defaults. Claims say what they need; a
//! Composition says how it is built here, and the compliance floor (enforced in code)
//! says what no Composition or claim can lower.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    Cloud, Condition, DeletionPolicy, EgressPeer, IngressPeer, SecretKeySelector, SloTier,
};

/// Platform-authored defaults for one kind of claim. Exactly one of `service`,
/// `postgresql` or `temporal` is set. Label a Composition
/// `paved.dev/default-for: <cloud>` (or `temporal`) to make it the default.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "paved.dev",
    version = "v1alpha1",
    kind = "Composition",
    plural = "compositions",
    singular = "composition",
    shortname = "pcomp",
    category = "paved",
    status = "CompositionStatus",
    printcolumn = r#"{"name":"READY","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"SYNCED","type":"string","jsonPath":".status.conditions[?(@.type==\"Synced\")].status"}"#,
    printcolumn = r#"{"name":"REASON","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"FOR","type":"string","jsonPath":".status.composes"}"#,
    printcolumn = r#"{"name":"PROVIDER","type":"string","jsonPath":".status.provider"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(has(self.service) ? 1 : 0) + (has(self.postgresql) ? 1 : 0) + (has(self.temporal) ? 1 : 0) == 1",
        "message": "set exactly one of spec.service, spec.postgresql or spec.temporal"
    }
]))]
pub struct CompositionSpec {
    /// How a ServiceClaim's namespace is built on one cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceComposition>,
    /// How a PostgreSQLInstance is built by one provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgresql: Option<PostgreSQLComposition>,
    /// Which Temporal cluster TemporalNamespaces live on, and their bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporal: Option<TemporalComposition>,
    /// Who may use this Composition: claims in the namespaces of the listed teams or
    /// in the listed namespaces. Absent: every claim on the Composition's cloud. A
    /// claim refused here is `Synced=False`, `CompositionNotAllowed`, naming both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<CompositionAccess>,
}

/// Who may use a Composition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompositionAccess {
    /// Teams (Team names, as in a ServiceClaim's `spec.owner`) whose namespaces may use it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[schemars(inner(length(min = 1, max = 63)))]
    pub teams: Vec<String>,
    /// Namespaces that may use it, whatever their team.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[schemars(inner(length(min = 1, max = 63)))]
    pub namespaces: Vec<String>,
}

/// Observed state of a Composition.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompositionStatus {
    /// `Ready`: the Composition satisfies the compliance floor and can be used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation last checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `service`, `postgresql` or `temporal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composes: Option<String>,
    /// The cloud or provider it targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

// ---------------------------------------------------------------- service

/// What every ServiceClaim namespace on this cloud gets.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceComposition {
    /// The cloud this Composition serves.
    pub cloud: Cloud,
    /// Pod Security Standard enforced on the namespace: `restricted` (default) or
    /// `baseline`.
    #[serde(default)]
    pub pod_security: PodSecurityLevel,
    /// Quota and container defaults per SLO tier.
    pub tiers: Tiers,
    /// The ServiceAccount annotation that binds pods to a cloud identity the platform
    /// made. Ignored where Paved makes the identity itself (`identity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity: Option<WorkloadIdentity>,
    /// The cloud identity Paved makes for each service: named from the ServiceClaim's
    /// UID (never reused by a later service of the same name), trusted by exactly the
    /// service's ServiceAccount, allowed exactly the service's own secrets, and deleted
    /// with the claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<ServiceIdentity>,
    /// Where ExternalSecrets read the service's secrets from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<SecretsConfig>,
    /// Allowances every namespace gets on top of default-deny (DNS is always allowed).
    #[serde(default)]
    pub network: CompositionNetwork,
    /// The ClusterRole the owning team is bound to in each of its namespaces: one
    /// the chart ships. `paved-developer` (default) deploys and operates workloads
    /// but cannot write NetworkPolicies, RoleBindings, quotas, LimitRanges or
    /// ExternalSecrets, so owners cannot weaken default-deny or reach another
    /// service's secrets; `paved-viewer` and `view` only read.
    #[serde(default = "default_owner_role")]
    #[schemars(extend("enum" = ["paved-developer", "paved-viewer", "view"]))]
    pub owner_role: String,
}

fn default_owner_role() -> String {
    "paved-developer".to_string()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PodSecurityLevel {
    #[default]
    Restricted,
    Baseline,
}

impl PodSecurityLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            PodSecurityLevel::Restricted => "restricted",
            PodSecurityLevel::Baseline => "baseline",
        }
    }
}

/// Per-tier quotas.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tiers {
    pub bronze: TierSpec,
    pub silver: TierSpec,
    pub gold: TierSpec,
}

impl Tiers {
    pub fn get(&self, tier: SloTier) -> &TierSpec {
        match tier {
            SloTier::Bronze => &self.bronze,
            SloTier::Silver => &self.silver,
            SloTier::Gold => &self.gold,
        }
    }
}

/// Quantity pattern, as Kubernetes writes them (`500m`, `2Gi`, `4`).
const QUANTITY: &str = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$";

/// The namespace's ResourceQuota and LimitRange for one tier.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TierSpec {
    /// Total CPU requests in the namespace, e.g. `4`.
    #[schemars(regex(pattern = QUANTITY))]
    pub requests_cpu: String,
    /// Total memory requests, e.g. `8Gi`.
    #[schemars(regex(pattern = QUANTITY))]
    pub requests_memory: String,
    /// Total CPU limits.
    #[schemars(regex(pattern = QUANTITY))]
    pub limits_cpu: String,
    /// Total memory limits.
    #[schemars(regex(pattern = QUANTITY))]
    pub limits_memory: String,
    /// Maximum number of pods.
    #[schemars(range(min = 1))]
    pub pods: i32,
    /// Default CPU request for a container that names none.
    #[schemars(regex(pattern = QUANTITY))]
    pub default_request_cpu: String,
    /// Default memory request for a container that names none.
    #[schemars(regex(pattern = QUANTITY))]
    pub default_request_memory: String,
    /// Default CPU limit for a container that names none.
    #[schemars(regex(pattern = QUANTITY))]
    pub default_limit_cpu: String,
    /// Default memory limit for a container that names none.
    #[schemars(regex(pattern = QUANTITY))]
    pub default_limit_memory: String,
}

/// The workload-identity annotation put on the service's ServiceAccount.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadIdentity {
    /// Annotation key; default per cloud (`eks.amazonaws.com/role-arn`,
    /// `azure.workload.identity/client-id`, `iam.gke.io/gcp-service-account`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation: Option<String>,
    /// Value template. Placeholders: {service} {namespace} {owner} {system} {cloud}
    /// {costCenter} {classification} {tier}. E.g.
    /// `arn:aws:iam::111122223333:role/paved/{service}`.
    #[schemars(length(min = 1))]
    pub value: String,
}

/// The per-service cloud identity Paved makes: exactly one of the fields, the
/// Composition's cloud.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "[has(self.aws), has(self.azure), has(self.gcp)].filter(x, x).size() == 1", "message": "name exactly one identity: aws, azure or gcp"}
]))]
pub struct ServiceIdentity {
    /// An IAM role per service, assumed through the cluster's OIDC provider (IRSA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsServiceIdentity>,
    /// A user-assigned managed identity per service, with a federated credential for
    /// exactly the service's ServiceAccount (AKS workload identity) and `Key Vault
    /// Secrets User` on exactly the service's own Key Vault secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureServiceIdentity>,
    /// A Google service account per service, impersonable by exactly the service's
    /// ServiceAccount (GKE workload identity) and `secretmanager.secretAccessor` on
    /// exactly the service's own secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp: Option<GcpServiceIdentity>,
}

impl ServiceIdentity {
    /// The cloud it names (the first of aws, azure, gcp; the floor allows one).
    pub fn cloud(&self) -> Option<Cloud> {
        if self.aws.is_some() {
            Some(Cloud::Aws)
        } else if self.azure.is_some() {
            Some(Cloud::Azure)
        } else if self.gcp.is_some() {
            Some(Cloud::Gcp)
        } else {
            None
        }
    }

    /// How often the identity is checked for drift (the cloud's `pollInterval`).
    pub fn poll_interval(&self) -> &str {
        self.aws
            .as_ref()
            .map(|a| a.poll_interval.as_str())
            .or(self.azure.as_ref().map(|a| a.poll_interval.as_str()))
            .or(self.gcp.as_ref().map(|g| g.poll_interval.as_str()))
            .unwrap_or("5m")
    }
}

/// A managed identity per service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureServiceIdentity {
    /// Subscription the identities are made in.
    #[schemars(length(min = 1, max = 64))]
    pub subscription_id: String,
    /// Resource group the identities are made in (the platform's, not a team's).
    #[schemars(length(min = 1, max = 90))]
    pub resource_group: String,
    /// Azure region of the identities, e.g. `westeurope`.
    #[schemars(length(min = 1, max = 64))]
    pub location: String,
    /// The AKS cluster's OIDC issuer URL (`az aks show --query oidcIssuerProfile.issuerUrl`).
    /// Each identity trusts tokens it issued for exactly the service's ServiceAccount.
    #[schemars(length(min = 1, max = 512), regex(pattern = r"^https://"))]
    pub oidc_issuer: String,
    /// ARM resource ID of the Key Vault behind `secrets.backend.azure`
    /// (`/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.KeyVault/vaults/<name>`):
    /// role assignments are scoped to single secrets in it. The vault must use Azure RBAC.
    #[schemars(
        length(min = 1, max = 512),
        regex(
            pattern = r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.KeyVault/vaults/[^/]+$"
        )
    )]
    pub key_vault_id: String,
    /// What each identity's name starts with, before the claim's UID (default
    /// `paved-`): lower-case letters, digits and `-`, ending in `-`, at most 10
    /// characters. Names always end in the claim's UID, so no later claim gets one.
    /// Changing it makes every service's identity anew (the old one is deleted first,
    /// with a Warning Event): pods started before keep the old one until rolled out.
    #[serde(default = "default_name_prefix")]
    #[schemars(regex(pattern = r"^[a-z][a-z0-9-]{0,8}-$"), length(min = 2, max = 10))]
    pub name_prefix: String,
    /// How often each identity is checked for drift, e.g. `5m` (jittered).
    #[serde(default = "default_identity_poll")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 16))]
    pub poll_interval: String,
}

/// A Google service account per service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpServiceIdentity {
    /// Project the service accounts are made in.
    #[schemars(length(min = 1, max = 64))]
    pub project_id: String,
    /// The cluster's workload identity pool, `<cluster project>.svc.id.goog`. Default:
    /// from `secrets.backend.gcp.clusterProjectId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub workload_pool: Option<String>,
    /// What each service account's ID starts with (default `paved-`): lower-case
    /// letters, digits and `-`, ending in `-`, at most 10 characters; the rest of the
    /// 30 is the claim UID's first hex digits, so no later claim gets one. Changing it
    /// makes every service's account anew (the old one is deleted first, with a
    /// Warning Event): pods started before keep the old one until rolled out.
    #[serde(default = "default_name_prefix")]
    #[schemars(regex(pattern = r"^[a-z][a-z0-9-]{0,8}-$"), length(min = 2, max = 10))]
    pub name_prefix: String,
    /// How often each service account is checked for drift, e.g. `5m` (jittered).
    #[serde(default = "default_identity_poll")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 16))]
    pub poll_interval: String,
}

/// An IAM role per service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsServiceIdentity {
    /// The cluster's IAM OIDC provider,
    /// `arn:aws:iam::<account>:oidc-provider/<issuer host and path>`. The role trusts
    /// tokens it issued for exactly the service's ServiceAccount.
    #[schemars(
        length(min = 1, max = 512),
        regex(pattern = r"^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/.+$")
    )]
    pub oidc_provider_arn: String,
    /// A permissions boundary every role gets (recommended: the most any service may
    /// ever do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 512),
        regex(pattern = r"^arn:aws[a-z-]*:iam::[0-9]{12}:policy/.+$")
    )]
    pub permissions_boundary: Option<String>,
    /// Also give each service's ServiceAccount its role through EKS Pod Identity in
    /// this cluster (the EKS Pod Identity Agent add-on must run there): Paved makes
    /// one association per service and keeps it pointing at the service's role. The
    /// role then also trusts `pods.eks.amazonaws.com` for exactly that cluster,
    /// namespace and ServiceAccount. The web identity trust stays (the External
    /// Secrets Operator authenticates with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_identity: Option<EksPodIdentity>,
    /// What each identity's name starts with, before the claim's UID (default
    /// `paved-`): lower-case letters, digits and `-`, ending in `-`, at most 10
    /// characters. Names always end in the claim's UID, so no later claim gets one.
    /// Changing it makes every service's identity anew (the old one is deleted first,
    /// with a Warning Event): pods started before keep the old one until rolled out.
    #[serde(default = "default_name_prefix")]
    #[schemars(regex(pattern = r"^[a-z][a-z0-9-]{0,8}-$"), length(min = 2, max = 10))]
    pub name_prefix: String,
    /// How often each role is checked for drift (deleted, policy or trust changed),
    /// e.g. `5m` (jittered).
    #[serde(default = "default_identity_poll")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 16))]
    pub poll_interval: String,
}

/// The EKS cluster whose Pod Identity associations give services their roles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EksPodIdentity {
    /// The EKS cluster's name, in the OIDC provider's account.
    #[schemars(
        length(min = 1, max = 100),
        regex(pattern = r"^[0-9A-Za-z][A-Za-z0-9_-]*$")
    )]
    pub cluster_name: String,
    /// The cluster's region, e.g. `us-east-1`.
    #[schemars(
        length(min = 1, max = 32),
        regex(pattern = r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")
    )]
    pub region: String,
}

fn default_name_prefix() -> String {
    "paved-".into()
}

fn default_identity_poll() -> String {
    "5m".into()
}

/// Where a service's secrets live, and how its namespace reaches them. Every service
/// namespace gets its own SecretStore `paved` that authenticates as the service's
/// ServiceAccount, so an ExternalSecret in it (Paved's or the team's own) can read
/// exactly what that service's identity may read, and nothing of another service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretsConfig {
    /// The store behind the namespace's SecretStore `paved`.
    pub backend: SecretBackend,
    /// The service's path in a cloud store; the claim's secret key is appended after a
    /// `/`. Same placeholders as workloadIdentity.value, e.g. `{owner}/{service}`; must
    /// contain `{service}` or `{namespace}`. With the `kubernetes` backend a key is
    /// always the Secret `<service>.<key>` in the platform's secrets namespace.
    #[schemars(length(min = 1))]
    pub path: String,
    /// Default refresh interval, e.g. `1h`.
    #[serde(default = "default_refresh")]
    pub refresh_interval: String,
}

/// The store behind each service namespace's SecretStore `paved`: exactly one of the
/// fields. Each authenticates as the service's own ServiceAccount.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "[has(self.kubernetes), has(self.aws), has(self.azure), has(self.gcp)].filter(x, x).size() == 1", "message": "name exactly one secret backend: kubernetes, aws, azure or gcp"}
]))]
pub struct SecretBackend {
    /// Secrets kept as Kubernetes Secrets in the platform's secrets namespace (the
    /// operator's `--secrets-namespace`). Paved grants each service's ServiceAccount
    /// `get` on exactly its own Secrets there; used by the `local` provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesSecretBackend>,
    /// AWS Secrets Manager, read as the service's IAM role (IRSA web identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsSecretBackend>,
    /// Azure Key Vault, read as the service's managed identity (workload identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureSecretBackend>,
    /// GCP Secret Manager, read as the service's Google service account (workload
    /// identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp: Option<GcpSecretBackend>,
}

/// The `kubernetes` secret backend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesSecretBackend {
    /// URL of the Kubernetes API the External Secrets Operator reads the Secrets
    /// from. Default `https://kubernetes.default.svc`.
    #[serde(default = "default_kubernetes_server")]
    #[schemars(length(min = 1, max = 512), regex(pattern = r"^https://"))]
    pub server: String,
    /// ConfigMap in each service namespace with that API server's CA under `ca.crt`.
    /// Default `kube-root-ca.crt`, which Kubernetes publishes into every namespace.
    #[serde(default = "default_ca_config_map")]
    #[schemars(length(min = 1, max = 253))]
    pub ca_config_map: String,
}

fn default_kubernetes_server() -> String {
    "https://kubernetes.default.svc".into()
}

fn default_ca_config_map() -> String {
    "kube-root-ca.crt".into()
}

/// The `aws` secret backend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsSecretBackend {
    /// Region of Secrets Manager, e.g. `us-east-1`.
    #[schemars(length(min = 1, max = 32))]
    pub region: String,
}

/// The `azure` secret backend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureSecretBackend {
    /// Key Vault URL, `https://<vault>.vault.azure.net`.
    #[schemars(length(min = 1, max = 512), regex(pattern = r"^https://"))]
    pub vault_url: String,
}

/// The `gcp` secret backend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpSecretBackend {
    /// Project that holds the secrets.
    #[schemars(length(min = 1, max = 64))]
    pub project_id: String,
    /// The GKE cluster's location, name and project, for workload identity.
    #[schemars(length(min = 1, max = 64))]
    pub cluster_location: String,
    #[schemars(length(min = 1, max = 64))]
    pub cluster_name: String,
    #[schemars(length(min = 1, max = 64))]
    pub cluster_project_id: String,
}

/// Name of the SecretStore Paved makes in every service namespace; the ExternalSecrets
/// of the service's secrets and databases read through it.
pub const SECRET_STORE: &str = "paved";

fn default_refresh() -> String {
    "1h".to_string()
}

/// Allowances every service namespace gets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompositionNetwork {
    /// Where cluster DNS runs; egress to it on port 53 is always allowed.
    #[serde(default)]
    pub dns: DnsPeer,
    /// Extra sources allowed in every namespace (e.g. the ingress controller, monitoring).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub ingress_from: Vec<IngressPeer>,
    /// Extra destinations allowed from every namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub egress_to: Vec<EgressPeer>,
}

/// The cluster DNS pods.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DnsPeer {
    /// Namespace of the DNS pods. Default `kube-system`.
    pub namespace: String,
    /// Labels of the DNS pods. Default `k8s-app: kube-dns`.
    pub pod_labels: BTreeMap<String, String>,
}

impl Default for DnsPeer {
    fn default() -> Self {
        DnsPeer {
            namespace: "kube-system".into(),
            pod_labels: BTreeMap::from([("k8s-app".into(), "kube-dns".into())]),
        }
    }
}

// ---------------------------------------------------------------- postgresql

/// How PostgreSQL databases are built by one provider.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.provider == 'local' || has(self.encryption)", "message": "encryption.keyId is required: cloud databases are encrypted with a customer-managed key (compliance floor)"},
    {"rule": "self.storage.minGB <= self.storage.maxGB", "message": "storage.minGB must not exceed storage.maxGB"},
    {"rule": "self.provider != 'local' || has(self.local)", "message": "the local provider needs local.adminSecretRef"}
]))]
pub struct PostgreSQLComposition {
    /// `aws`, `azure`, `gcp` or `local`.
    pub provider: Cloud,
    /// Cloud region (AWS region, Azure location, GCP region); `local` for the local provider.
    #[schemars(length(min = 1))]
    pub region: String,
    /// Default PostgreSQL major version.
    #[schemars(regex(pattern = r"^[0-9]{2}(\.[0-9]+)?$"))]
    pub engine_version: String,
    /// Instance class for each size.
    pub sizes: SizeMap,
    /// Instance classes a claim may ask for explicitly. The sizes' classes are
    /// always allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_instance_classes: Vec<String>,
    /// Storage bounds and type.
    pub storage: StorageSpec,
    /// Customer-managed encryption key. Required for every provider but `local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionSpec>,
    /// Private network placement.
    #[serde(default)]
    pub network: DatabaseNetwork,
    /// Automated backups.
    pub backup: BackupSpec,
    /// Deletion defaults.
    pub deletion: DeletionSpec,
    /// How the connection Secret is delivered.
    #[serde(default)]
    pub credentials: CredentialsSpec,
    /// Settings of the local provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalProviderSpec>,
    /// Where the azure provider creates servers and keeps their administrator
    /// credentials. Required when provider is `azure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzurePlacement>,
    /// Where the gcp provider creates instances and keeps their administrator
    /// credentials. Required when provider is `gcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp: Option<GcpPlacement>,
    /// Tags on every cloud resource. Placeholders as in workloadIdentity.value. Owner,
    /// App, Environment and CostCenter are always set by Paved and cannot be
    /// overridden by a claim.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// How often to check the cloud for drift, e.g. `5m` (jittered).
    #[serde(default = "default_poll")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"))]
    pub poll_interval: String,
    /// Monthly prices for the cost estimate in status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prices: Option<PriceTable>,
    /// When changes that restart or fail over a database are made. Default: the
    /// window `sun:03:00-sun:05:00` (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<MaintenanceSpec>,
}

/// When disruptive changes go out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceSpec {
    /// Weekly window in UTC, `ddd:hh:mm-ddd:hh:mm` (e.g. `sun:03:00-sun:05:00`). A
    /// change of a claim's or this Composition's size or high availability (instance
    /// class, multiAZ), which restarts or fails over the database, waits for it and the
    /// claim says so. Security fixes (public access, TLS, deletion protection), backups,
    /// storage growth and the repair of a change made by hand are never held back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^(mon|tue|wed|thu|fri|sat|sun):([01][0-9]|2[0-3]):[0-5][0-9]-(mon|tue|wed|thu|fri|sat|sun):([01][0-9]|2[0-3]):[0-5][0-9]$"
    ))]
    pub window: Option<String>,
    /// Make disruptive changes at once instead of in the window (for development).
    #[serde(default)]
    pub apply_immediately: bool,
}

fn default_poll() -> String {
    "5m".to_string()
}

/// Instance class per size.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SizeMap {
    pub small: String,
    pub medium: String,
    pub large: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xlarge: Option<String>,
}

/// Storage bounds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Smallest allowed storageGB.
    #[serde(rename = "minGB")]
    #[schemars(range(min = 5))]
    pub min_gb: i32,
    /// Largest allowed storageGB.
    #[serde(rename = "maxGB")]
    #[schemars(range(min = 5, max = 65536))]
    pub max_gb: i32,
    /// storageGB when the claim names none; default minGB.
    #[serde(default, rename = "defaultGB", skip_serializing_if = "Option::is_none")]
    pub default_gb: Option<i32>,
    /// Storage type, e.g. `gp3` (AWS), `Premium_LRS` (Azure), `PD_SSD` (GCP).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
}

/// Customer-managed encryption.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionSpec {
    /// The key: an AWS KMS key ARN, an Azure Key Vault key URI, or a GCP KMS key name.
    #[schemars(length(min = 1))]
    pub key_id: String,
    /// Azure only: the user-assigned identity that may use the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_id: Option<String>,
    /// Azure only: the key (in a vault of the paired region) that encrypts
    /// geo-redundant backups. Required with geo-redundant backups, and so for PHI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo_backup_key_id: Option<String>,
    /// Azure only: the user-assigned identity that may use the geo-backup key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo_backup_identity_id: Option<String>,
}

/// Private network placement. Which fields apply depends on the provider.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseNetwork {
    /// AWS: DB subnet group of private subnets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_group_name: Option<String>,
    /// AWS: VPC security groups every database is in. With `ownSecurityGroup` they
    /// should admit no database clients themselves (groups add up).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_group_ids: Vec<String>,
    /// AWS: give each database a security group of its own, `paved-<instance>`, that
    /// admits PostgreSQL (5432) from `clientCidrs` only and allows nothing out. Paved
    /// creates it with the database, puts back rules changed by hand, and deletes it
    /// once the database is gone. Without it, every database shares
    /// `securityGroupIds` and what they admit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own_security_group: Option<OwnSecurityGroup>,
    /// Azure: delegated subnet resource id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegated_subnet_id: Option<String>,
    /// Azure: private DNS zone resource id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_dns_zone_id: Option<String>,
    /// GCP: VPC network self link for private IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_network: Option<String>,
    /// The address range databases live in; the claim namespace gets egress to it on
    /// the database port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_cidr: Option<String>,
}

/// AWS: each database's own security group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OwnSecurityGroup {
    /// The VPC of `subnetGroupName`, e.g. `vpc-0abc123`.
    #[schemars(regex(pattern = r"^vpc-[0-9a-f]+$"))]
    pub vpc_id: String,
    /// Who may connect on the database port: the narrowest ranges the services' pods
    /// come from (the cluster's pod or node subnets). Each at most a /8 (IPv4) or a
    /// /32 (IPv6), never link-local. A security group cannot tell one service's pod
    /// from another's on the same subnet (without EKS security groups for pods): in
    /// the cluster, each service's NetworkPolicy allows egress to its own databases'
    /// endpoints alone.
    #[schemars(length(min = 1))]
    pub client_cidrs: Vec<String>,
}

/// Backups.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// Days automated backups are kept; at least 7 (compliance floor).
    #[schemars(range(min = 7, max = 35))]
    pub retention_days: i32,
    /// Daily backup window (UTC), e.g. `03:00-04:00`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub window: Option<String>,
    /// Geo-redundant backups (Azure / GCP); always on for PHI.
    #[serde(default)]
    pub geo_redundant: bool,
}

/// Deletion defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletionSpec {
    /// Default deletion policy for claims that name none: `Snapshot` or `Orphan`. A
    /// `Delete` here is applied as `Snapshot`: data is dropped without a final
    /// snapshot only when the claim itself says `deletionPolicy: Delete`.
    pub policy: DeletionPolicy,
    /// Turn on the cloud's deletion protection; always on for PHI.
    #[serde(default)]
    pub protection: bool,
}

impl Default for DeletionSpec {
    fn default() -> Self {
        DeletionSpec {
            policy: DeletionPolicy::Snapshot,
            protection: true,
        }
    }
}

/// Credentials delivery: the connection Secret is written by an ExternalSecret that
/// reads the master credentials through the namespace's own SecretStore `paved`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSpec {
    /// How often the connection Secret is refreshed, e.g. `1h`.
    #[serde(default = "default_refresh")]
    pub refresh_interval: String,
    /// An adopted database (`spec.existing.mode: Adopt`) whose master password no
    /// cloud service keeps (on AWS: not RDS-managed). `Keep` (default): the password
    /// is left alone and no connection Secret is delivered (`CredentialsNotManaged`,
    /// whose message says how to hand it over). `Rotate`: the cloud is made to manage
    /// it (AWS: RDS-managed in Secrets Manager, encrypted with the Composition's key),
    /// which replaces the password: clients still using the old one must move to the
    /// connection Secret. Where the cloud already manages it, it is used as it is.
    #[serde(default)]
    pub existing_password: ExistingPassword,
}

impl Default for CredentialsSpec {
    fn default() -> Self {
        CredentialsSpec {
            refresh_interval: default_refresh(),
            existing_password: ExistingPassword::default(),
        }
    }
}

/// What adopting does to a master password no cloud service keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ExistingPassword {
    /// Left alone; no connection Secret.
    #[default]
    Keep,
    /// Replaced by one the cloud manages.
    Rotate,
}

/// The local provider: databases on a PostgreSQL server the operator can reach.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalProviderSpec {
    /// Secret key holding the admin connection string
    /// (`postgres://user:password@host:port/postgres`).
    pub admin_secret_ref: SecretKeySelector,
}

/// Azure placement of flexible servers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzurePlacement {
    /// Subscription id that holds the servers.
    #[schemars(length(min = 1))]
    pub subscription_id: String,
    /// Resource group that holds the servers.
    #[schemars(length(min = 1, max = 90))]
    pub resource_group: String,
    /// Key Vault URL (`https://<vault>.vault.azure.net`) where Paved keeps each
    /// server's administrator credentials, as a JSON secret named after the server.
    /// The ExternalSecret reads them through `credentials.secretStore`, which must
    /// point at the same vault.
    #[schemars(length(min = 1))]
    pub key_vault_url: String,
}

/// GCP placement of Cloud SQL instances.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpPlacement {
    /// Project that holds the instances and the Secret Manager secrets with their
    /// administrator credentials (read through `credentials.secretStore`).
    #[schemars(regex(pattern = r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$"))]
    pub project: String,
}

/// Prices, per month, in `currency`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PriceTable {
    /// Currency code; default `USD`.
    #[serde(default = "default_currency")]
    pub currency: String,
    /// Monthly price of each instance class.
    #[serde(default)]
    pub instances: BTreeMap<String, f64>,
    /// Monthly price of one GB of storage.
    #[serde(default, rename = "storagePerGB")]
    pub storage_per_gb: f64,
}

fn default_currency() -> String {
    "USD".to_string()
}

// ---------------------------------------------------------------- temporal

/// The Temporal cluster and the bounds of namespaces on it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.defaultRetentionDays <= self.maxRetentionDays", "message": "defaultRetentionDays must not exceed maxRetentionDays"}
]))]
pub struct TemporalComposition {
    /// Frontend gRPC address, e.g. `temporal-frontend.temporal:7233`.
    #[schemars(length(min = 1))]
    pub frontend_address: String,
    /// TLS to the frontend; mutual TLS when the Secret carries a client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TemporalTls>,
    /// Retention when a claim names none.
    #[schemars(range(min = 1, max = 3650))]
    pub default_retention_days: i32,
    /// Largest retention a claim may ask for.
    #[schemars(range(min = 1, max = 3650))]
    pub max_retention_days: i32,
    /// Name of the namespace on Temporal. Placeholders: {namespace} (the claim's
    /// Kubernetes namespace) and {name} (the claim's name).
    #[serde(default = "default_ns_pattern")]
    pub namespace_pattern: String,
    /// Archival URIs; claims may turn archival on only when these are set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archival: Option<TemporalArchivalUris>,
    /// How often to check Temporal for drift, e.g. `1m`.
    #[serde(default = "default_poll")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"))]
    pub poll_interval: String,
}

fn default_ns_pattern() -> String {
    "{namespace}.{name}".to_string()
}

/// TLS settings for the Temporal frontend.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemporalTls {
    /// Secret (in the operator's namespace) with `ca.crt`, and `tls.crt` / `tls.key`
    /// for mutual TLS.
    pub secret_name: String,
    /// Server name to verify, when it differs from the address host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

/// Archival destinations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemporalArchivalUris {
    /// History archival URI, e.g. `s3://bucket/history`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_uri: Option<String>,
    /// Visibility archival URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility_uri: Option<String>,
}

impl Composition {
    /// Which kind of claim this Composition is for.
    pub fn composes(&self) -> &'static str {
        if self.spec.service.is_some() {
            "service"
        } else if self.spec.postgresql.is_some() {
            "postgresql"
        } else if self.spec.temporal.is_some() {
            "temporal"
        } else {
            "nothing"
        }
    }
}
