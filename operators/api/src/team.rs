//! Team: the unit of tenancy, written by the platform team only. A ServiceClaim's
//! `spec.owner` names a Team; the Team says who may write that team's claims (its
//! people's OIDC groups and its GitOps sync identities), which clouds its services
//! may use and how many services and databases it may have.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Cloud, DataClassification};

/// A tenant: the people and GitOps identities that act for one team, and what the
/// platform allows it. Only the platform writes Teams. Admission (the chart's
/// ValidatingAdmissionPolicy `paved-serviceclaim-tenancy`) lets a ServiceClaim be
/// created, changed or deleted only by an identity listed in the Team its
/// `spec.owner` names; the operator refuses claims of unknown teams and enforces the
/// clouds and limits below.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "paved.dev",
    version = "v1alpha1",
    kind = "Team",
    plural = "teams",
    singular = "team",
    shortname = "pteam",
    printcolumn = r#"{"name":"GROUPS","type":"string","jsonPath":".spec.groups"}"#,
    printcolumn = r#"{"name":"CLOUDS","type":"string","jsonPath":".spec.clouds"}"#,
    printcolumn = r#"{"name":"SERVICES","type":"integer","jsonPath":".spec.limits.services"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TeamSpec {
    /// OIDC groups whose members act for the team (as they appear in the apiserver's
    /// `user.groups`). They may write the team's ServiceClaims and are bound, in each
    /// of the team's service namespaces, to the Composition's owner role.
    /// Groups of Kubernetes itself (`system:...`, e.g. `system:authenticated`) are
    /// refused: they hold everyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(inner(length(min = 1, max = 253)))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(g, !g.startsWith('system:'))", "message": "spec.groups cannot name a system: group (system:authenticated, system:serviceaccounts, ...): everyone is in them"}
    ]))]
    pub groups: Vec<String>,

    /// ServiceAccounts that act for the team: its Argo CD Application's sync
    /// identity (an AppProject's `destinationServiceAccounts`). Same rights as
    /// `groups`. Keep them in a namespace no tenant runs pods in (e.g. `argocd`):
    /// whoever can run a pod as one acts as the team.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub service_accounts: Vec<TeamServiceAccount>,

    /// Clouds the team's services may run on. A ServiceClaim on another cloud is
    /// refused (`CloudNotAllowed`).
    #[schemars(length(min = 1, max = 4))]
    pub clouds: Vec<Cloud>,

    /// How much the team may have at once.
    #[serde(default)]
    pub limits: TeamLimits,

    /// When a platform moves existing claims under Teams (an upgrade), claims of this
    /// team created before this time are the platform's to vouch for and are served
    /// although they are older than the Team (RFC 3339, e.g. `2026-12-01T00:00:00Z`).
    /// Without it, a claim older than its Team is never served (`ClaimPredatesTeam`):
    /// admission never checked who wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>", extend("format" = "date-time"))]
    pub adopt_claims_created_before: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,

    /// Namespaces Paved did not make (existing ones) where the team keeps database or
    /// Temporal claims, with the facts they are built with. A claim in a namespace
    /// neither made by a ServiceClaim nor listed here (or listed by two Teams) is
    /// treated as holding PHI, with no team and the operator's default cloud.
    /// Namespace labels are never trusted for these facts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub namespaces: Vec<TeamNamespace>,

    /// Databases that exist already (made by hand, Terraform or another platform)
    /// that the team's claims may name in `spec.existing`, each for one namespace and
    /// one Composition (where it lives), and how far (`mode`). A claim naming a
    /// database not listed here for its namespace and Composition, or adopting one
    /// granted only to be observed, is refused (`ExistingNotGranted`): what a team may
    /// look at or take over is the platform's to say.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["namespace", "externalName", "composition"]))]
    pub existing_databases: Vec<ExistingDatabaseGrant>,
}

/// An existing database a team's claims in one namespace may name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExistingDatabaseGrant {
    /// The namespace whose claims may name it.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: String,
    /// Its name where it lives, as the claim's `spec.existing.externalName` says it.
    #[schemars(length(min = 1, max = 100))]
    pub external_name: String,
    /// The PostgreSQL Composition that says where it lives (cloud, region, account,
    /// subscription, project or server): a claim naming it must resolve to this
    /// Composition, so the same name elsewhere is not granted with it.
    #[schemars(length(min = 1, max = 253))]
    pub composition: String,
    /// `Observe` (default): claims may only look at it. `Adopt`: claims may also take
    /// it over (`spec.existing.mode: Adopt`). An adoption granted by two Teams, or for
    /// two namespaces, is refused until only one grant is left.
    #[serde(default)]
    pub mode: crate::ExistingMode,
}

/// An existing namespace a team uses, and its facts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamNamespace {
    /// The namespace.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Cloud of the namespace's databases; must be one of the team's `clouds`.
    pub cloud: Cloud,
    /// Classification of the data held there. Defaults to `phi`.
    #[serde(default)]
    pub data_classification: DataClassification,
    /// The system, for labels and tags. Defaults to `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub system: Option<String>,
    /// Cost center billed. Defaults to `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub cost_center: Option<String>,
    /// A ServiceClaim of this team named like the namespace may take the namespace
    /// over (`paved migrate --service-claims` proposes it for a Crossplane platform's
    /// namespaces). Paved then writes the service's objects there as in a namespace it
    /// made: default-deny NetworkPolicies (traffic the claim's `network` does not
    /// allow stops), Pod Security labels (new pods must meet them), quota, the owners'
    /// RoleBinding, the SecretStore. When the claim goes, those and its labels go; the
    /// namespace and everything else in it stay. The claim must state this entry's
    /// `cloud` and `dataClassification` (what its databases here are built with), and
    /// the platform must also label the namespace `paved.dev/adoptable=true`: the
    /// operator may change no other namespace it did not make.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopt_by_service_claim: bool,
}

/// A ServiceAccount acting for a team.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamServiceAccount {
    /// Namespace of the ServiceAccount (e.g. `argocd`).
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: String,
    /// Name of the ServiceAccount.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
}

impl TeamServiceAccount {
    /// The username the apiserver gives this ServiceAccount.
    pub fn username(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }
}

/// Per-team caps, so one team cannot exhaust the platform.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamLimits {
    /// ServiceClaims the team may have. The oldest claims are served; a newer one past
    /// the cap is refused (`TeamLimitExceeded`) and nothing is created for it.
    #[serde(default = "default_services")]
    #[schemars(range(min = 0, max = 10000))]
    pub services: i32,
    /// PostgreSQLInstances Paved makes for the team across its namespaces; past it a
    /// new one is refused before any cloud call. Claims that observe an existing
    /// database (`spec.existing`) do not count.
    #[serde(default = "default_databases")]
    #[schemars(range(min = 0, max = 10000))]
    pub databases: i32,
}

fn default_services() -> i32 {
    50
}

fn default_databases() -> i32 {
    100
}

impl Default for TeamLimits {
    fn default() -> Self {
        TeamLimits {
            services: default_services(),
            databases: default_databases(),
        }
    }
}
