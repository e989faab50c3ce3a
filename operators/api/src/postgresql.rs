//! PostgreSQLInstance: a managed, encrypted PostgreSQL database. The claim shape
//! (`parameters`, `compositionRef`, `writeConnectionSecretToRef`) is the one Crossplane
//! users already write, so their claims move over by changing apiVersion.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    CompositionReference, CompositionRevision, CompositionSelector, Condition, DeletionPolicy,
    LocalSecretReference,
};

/// A PostgreSQL database provisioned from a platform Composition (AWS RDS, Azure
/// flexible server, GCP Cloud SQL or the local provider), with its connection Secret
/// delivered into this namespace.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "paved.dev",
    version = "v1alpha1",
    kind = "PostgreSQLInstance",
    plural = "postgresqlinstances",
    singular = "postgresqlinstance",
    shortname = "pginstance",
    shortname = "pgi",
    category = "paved",
    namespaced,
    status = "PostgreSQLInstanceStatus",
    printcolumn = r#"{"name":"READY","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"SYNCED","type":"string","jsonPath":".status.conditions[?(@.type==\"Synced\")].status"}"#,
    printcolumn = r#"{"name":"REASON","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"ENDPOINT","type":"string","jsonPath":".status.endpoint"}"#,
    printcolumn = r#"{"name":"COMPLIANT","type":"string","jsonPath":".status.conditions[?(@.type==\"Compliant\")].status"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"PROVIDER","type":"string","priority":1,"jsonPath":".status.provider"}"#,
    printcolumn = r#"{"name":"CLASS","type":"string","priority":1,"jsonPath":".status.instanceClass"}"#,
    printcolumn = r#"{"name":"COST","type":"string","priority":1,"jsonPath":".status.estimatedMonthlyCost"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(oldSelf.compositionRef) || (has(self.compositionRef) && self.compositionRef.name == oldSelf.compositionRef.name)",
        "message": "spec.compositionRef is immutable once set: moving a database between compositions (and so clouds) in place is not supported"
    },
    {
        "rule": "has(self.existing) == has(oldSelf.existing) && (!has(self.existing) || (self.existing.externalName == oldSelf.existing.externalName && has(self.existing.databaseName) == has(oldSelf.existing.databaseName) && (!has(self.existing.databaseName) || self.existing.databaseName == oldSelf.existing.databaseName)))",
        "message": "spec.existing.externalName and databaseName are immutable: a claim names one existing database, or makes its own, for its whole life (its mode may change)"
    }
]))]
pub struct PostgreSQLInstanceSpec {
    /// The Composition to render this database with. Default: the PostgreSQL
    /// Composition labelled `paved.dev/default-for: <cloud>` for the namespace's
    /// cloud. Immutable once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composition_ref: Option<CompositionReference>,

    /// Selects the Composition by labels when `compositionRef` is not set
    /// (accepted for Crossplane compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composition_selector: Option<CompositionSelector>,

    /// Accepted for Crossplane compatibility: `Automatic` (default) re-renders when the
    /// Composition changes; `Manual` is treated the same, since the compliance floor
    /// must follow the platform's current Composition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composition_update_policy: Option<CompositionUpdatePolicy>,

    /// Size and shape of the database; bounds come from the Composition.
    #[serde(default)]
    pub parameters: PostgreSQLParameters,

    /// What happens to the cloud database when this claim is deleted: `Delete`,
    /// `Orphan` (leave it running, unmanaged) or `Snapshot` (take a final encrypted
    /// snapshot, then delete). Default from the Composition, where `Delete` counts as
    /// `Snapshot`. A claim that says `Delete` loses its data without a snapshot only
    /// when it is deleted on its own and carries the annotation
    /// `paved.dev/confirm-delete: <its UID>` (the explicit act); a prune, a rename in
    /// Git, or its namespace or ServiceClaim going keeps a final snapshot. PHI
    /// namespaces always keep a snapshot. Deletion acts where the database was created,
    /// whatever the Composition says now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,

    /// The Secret in this namespace that receives host, port, database, username,
    /// password, sslmode and uri. Default: `<name>-connection`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_connection_secret_to_ref: Option<LocalSecretReference>,

    /// A database that already exists, to be observed or adopted instead of created.
    /// Paved looks for it where the Composition points (its cloud, region, account).
    /// `Observe` reports in status how it falls short of the Composition's compliance
    /// floor and never writes, tags or deletes it; `Adopt` takes it over in place
    /// (same identifier, no restore) and brings it up to the floor. The platform
    /// grants it: the namespace's Team must list it in `spec.existingDatabases` (for
    /// `Adopt`, with `mode: Adopt`). The name is immutable; the mode may change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing: Option<ExistingDatabase>,
}

impl PostgreSQLInstanceSpec {
    /// Whether the claim only observes an existing database (writes nothing, holds no
    /// credentials, takes no slot of its team's cap).
    pub fn observes(&self) -> bool {
        self.existing
            .as_ref()
            .is_some_and(|e| e.mode == ExistingMode::Observe)
    }

    /// Whether the claim adopts an existing database.
    pub fn adopts(&self) -> bool {
        self.existing
            .as_ref()
            .is_some_and(|e| e.mode == ExistingMode::Adopt)
    }
}

/// An existing database named by a claim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExistingDatabase {
    /// Its name where it lives: the RDS instance identifier, the Azure flexible
    /// server's name, the Cloud SQL instance's name, or the local database's name.
    #[schemars(
        length(min = 1, max = 100),
        regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
    )]
    pub external_name: String,
    /// `Observe` (default): read only; status and the `Compliant` condition say what
    /// falls short of the floor. `Adopt`: marked as this claim's and managed like a
    /// database Paved made: what can change in place is brought up to the floor
    /// (tags, backup retention, deletion protection, public access, TLS), what cannot
    /// is refused with how to fix it (`EncryptionMismatch`), and the connection
    /// Secret is delivered. Size, storage and high availability stay as they run
    /// unless `parameters` says otherwise. A database marked as another claim's is
    /// never adopted (`OwnedByOther`). Going back to `Observe` stops every write.
    #[serde(default)]
    pub mode: ExistingMode,
    /// The database inside the server that the connection Secret names, for an
    /// adopted Azure flexible server or Cloud SQL instance (which hold several);
    /// refused elsewhere (an RDS instance says its own, and a `local` one is the
    /// database itself). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$")
    )]
    pub database_name: Option<String>,
}

/// What Paved does with an existing database.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ExistingMode {
    /// Read only: never written, tagged or deleted.
    #[default]
    Observe,
    /// Taken over in place and managed; see `mode`. Deleting the claim leaves it
    /// running (`Orphan`) unless the claim's `deletionPolicy` says otherwise.
    Adopt,
}

impl ExistingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ExistingMode::Observe => "Observe",
            ExistingMode::Adopt => "Adopt",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CompositionUpdatePolicy {
    Automatic,
    Manual,
}

/// T-shirt sizes; each Composition maps them to instance classes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseSize {
    Small,
    Medium,
    Large,
    Xlarge,
}

impl DatabaseSize {
    pub fn as_str(self) -> &'static str {
        match self {
            DatabaseSize::Small => "small",
            DatabaseSize::Medium => "medium",
            DatabaseSize::Large => "large",
            DatabaseSize::Xlarge => "xlarge",
        }
    }
}

/// Database parameters. Anything not set comes from the Composition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostgreSQLParameters {
    /// T-shirt size: `small`, `medium`, `large` or `xlarge`; the Composition maps it
    /// to an instance class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<DatabaseSize>,

    /// An explicit instance class (e.g. `db.t4g.medium`); must be one the Composition
    /// allows. Overrides `size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[A-Za-z0-9][-A-Za-z0-9_.]*$")
    )]
    pub instance_class: Option<String>,

    /// Allocated storage in GB, within the Composition's bounds. Storage can grow but
    /// never shrink below what is allocated (`status.storageGB`); a size that was
    /// refused and never allocated can be taken back.
    #[serde(default, rename = "storageGB", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 5, max = 65536))]
    pub storage_gb: Option<i32>,

    /// Run a standby in a second zone (AWS Multi-AZ; same as `highAvailability`).
    #[serde(default, rename = "multiAZ", skip_serializing_if = "Option::is_none")]
    pub multi_az: Option<bool>,

    /// Zone-redundant high availability (Azure / GCP wording of `multiAZ`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_availability: Option<bool>,

    /// PostgreSQL major version, e.g. `16`; default from the Composition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{2}(\.[0-9]+)?$"), length(max = 8))]
    pub engine_version: Option<String>,

    /// Encryption at rest is part of the compliance floor. The field exists so that
    /// `false` is refused with a reason instead of being silently dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self == true", "message": "storage encryption cannot be turned off (compliance floor)"}
    ]))]
    pub storage_encrypted: Option<bool>,

    /// Databases are never publicly reachable. The field exists so that `true` is
    /// refused with a reason instead of being silently dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self == false", "message": "a database cannot be publicly accessible (compliance floor); reach it through the namespace's network policy"}
    ]))]
    pub publicly_accessible: Option<bool>,
}

/// Observed state of a PostgreSQLInstance. Never contains credentials.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostgreSQLInstanceStatus {
    /// `Ready`: the database accepts connections and the connection Secret is
    /// delivered. `Synced`: the last reconcile applied the desired state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation of the spec last acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The Composition (and its generation) the database was rendered with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composition: Option<CompositionRevision>,
    /// `aws`, `azure`, `gcp` or `local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Cloud region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The cloud resource's name (derived from this claim's UID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_name: Option<String>,
    /// Host name clients connect to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Port clients connect to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// Running PostgreSQL version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
    /// Key that encrypts the storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key_id: Option<String>,
    /// Instance class in effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_class: Option<String>,
    /// Allocated storage in GB.
    #[serde(default, rename = "storageGB", skip_serializing_if = "Option::is_none")]
    pub storage_gb: Option<i32>,
    /// Whether the database runs highly available (Multi-AZ, zone-redundant HA, a
    /// regional instance).
    #[serde(default, rename = "multiAZ", skip_serializing_if = "Option::is_none")]
    pub multi_az: Option<bool>,
    /// Where the master credentials are kept, which the service's SecretStore reads
    /// (never the values): for `local`, the Secret in the platform's secrets namespace;
    /// for a cloud, the cloud-managed secret (on AWS, its ARN, which the service's IAM
    /// role is allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
    /// AWS: the instance's immutable resource ID (`db-…`), which IAM database
    /// authentication names: the service's role may `rds-db:connect` to this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// Estimated monthly cost from the Composition's price table, e.g. `USD 53.20`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_monthly_cost: Option<String>,
    /// An observed database (`spec.existing`): every way it falls short of the
    /// Composition's compliance floor, one line each (`field: found, floor wants …`).
    /// Empty when it meets the floor; see the `Compliant` condition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<String>,
}
