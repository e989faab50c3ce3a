//! Paved's API: the custom resource types of `paved.dev/v1alpha1`, their conditions,
//! and pure helpers. Nothing here talks to a cluster.

pub mod common;
pub mod composition;
pub mod conditions;
pub mod crds;
pub mod postgresql;
pub mod reason;
pub mod service_claim;
pub mod team;
pub mod temporal;

pub use common::*;
pub use composition::*;
pub use conditions::*;
pub use postgresql::*;
pub use reason::Reason;
pub use service_claim::*;
pub use team::*;
pub use temporal::*;

/// The API group of every Paved kind.
pub const GROUP: &str = "paved.dev";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";
/// The field manager Paved's reconcilers use for every server-side apply.
pub const FIELD_MANAGER: &str = "paved-operator";
/// The platform's secrets namespace unless the operator is told another
/// (`--secrets-namespace`): the `kubernetes` secret backend keeps services' Secrets and
/// the `local` provider its databases' credentials there.
pub const DEFAULT_SECRETS_NAMESPACE: &str = "paved-secrets";

/// The field manager of the operator's own record-keeping on claims (finalizers, the
/// create and placement annotations): kept apart from `FIELD_MANAGER`, whose applies
/// would otherwise take over, and drop, those fields.
pub const RECORDS_MANAGER: &str = "paved-operator-records";

/// The dynamic API resource for a kind, from its apiVersion (`group/version`, or
/// `v1` for core) and plural.
pub fn api_resource(api_version: &str, kind: &str, plural: &str) -> kube::core::ApiResource {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    kube::core::ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// Annotations Paved keeps on claims.
pub mod annotations {
    /// On a namespace a ServiceClaim took over (it did not make it): that claim's UID.
    /// Written by the operator only; a namespace it controls carries an owner
    /// reference instead.
    pub const ADOPTED_BY: &str = "paved.dev/adopted-by";
    /// Set before a cloud create is called: a crash after this point means "look
    /// before creating again" (the deterministic name makes the look reliable).
    pub const CREATE_PENDING: &str = "paved.dev/create-pending";
    /// Set once the create call returned successfully.
    pub const CREATE_SUCCEEDED: &str = "paved.dev/create-succeeded";
    /// Set when a create call failed, with the time.
    pub const CREATE_FAILED: &str = "paved.dev/create-failed";
    /// The cloud resource's name.
    pub const EXTERNAL_NAME: &str = "paved.dev/external-name";
    /// Where it was created (`provider/region`), so a Composition change cannot make
    /// Paved look elsewhere and create a second one.
    pub const EXTERNAL_LOCATION: &str = "paved.dev/external-location";
    /// Where it was created, in full (JSON: composition, provider, region, external
    /// name, and the subscription, project or server): deletion acts there.
    pub const PLACEMENT: &str = "paved.dev/placement";
    /// Set to the claim's own UID (`metadata.uid`) by whoever deletes it, to drop a
    /// `Delete` claim's data without a final snapshot: the explicit act, which no
    /// manifest written before the claim existed can carry. Without it (a prune, a
    /// move between Git directories, a namespace going) a final snapshot is kept.
    pub const CONFIRM_DELETE: &str = "paved.dev/confirm-delete";
}

/// Finalizer on claims whose deletion must reach the cloud first.
pub const FINALIZER: &str = "paved.dev/cleanup";

/// Finalizer on a ServiceClaim that took over a namespace it did not make: its marks
/// come off the namespace, which stays, before the claim goes.
pub const NAMESPACE_FINALIZER: &str = "paved.dev/adopted-namespace";

/// Labels Paved puts on everything it creates, so ownership is visible and
/// orphans can be found with one label selector.
pub mod labels {
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    pub const MANAGED_BY_VALUE: &str = "paved";
    pub const CLAIM_KIND: &str = "paved.dev/claim-kind";
    pub const CLAIM_NAME: &str = "paved.dev/claim-name";
    pub const CLAIM_NAMESPACE: &str = "paved.dev/claim-namespace";
    pub const CLAIM_UID: &str = "paved.dev/claim-uid";
    pub const OWNER: &str = "paved.dev/owner";
    pub const SYSTEM: &str = "paved.dev/system";
    pub const SERVICE: &str = "paved.dev/service";
    pub const CLASSIFICATION: &str = "paved.dev/data-classification";
    pub const COST_CENTER: &str = "paved.dev/cost-center";
    pub const TIER: &str = "paved.dev/slo-tier";
    pub const CLOUD: &str = "paved.dev/cloud";
    /// On a service namespace: `service` when its SecretStore reads as an identity of
    /// that service alone (Paved made it, or the local ServiceAccount), so admission lets
    /// the team write its own ExternalSecrets there.
    pub const STORE_IDENTITY: &str = "paved.dev/store-identity";
    /// On an existing namespace, set to `true` by the platform: the operator may take
    /// it over for the ServiceClaim its Team grants it to
    /// (`spec.namespaces[].adoptByServiceClaim`). The operator's admission policy lets
    /// it change no other namespace it did not make.
    pub const ADOPTABLE: &str = "paved.dev/adoptable";
    pub const COMPOSITION: &str = "paved.dev/composition";
    pub const COMPOSITION_GENERATION: &str = "paved.dev/composition-generation";
    /// On a Composition: it is the default for this cloud (or `local`).
    pub const DEFAULT_FOR: &str = "paved.dev/default-for";
}

/// A claim whose status records the Composition it was rendered with.
pub trait HasComposition {
    fn composition_name(&self) -> Option<&str>;
}

macro_rules! has_composition {
    ($($t:ty),*) => {$(
        impl HasComposition for $t {
            fn composition_name(&self) -> Option<&str> {
                self.status.as_ref()?.composition.as_ref().map(|c| c.name.as_str())
            }
        }
    )*};
}

has_composition!(ServiceClaim, PostgreSQLInstance, TemporalNamespace);
