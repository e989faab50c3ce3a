//! Every condition reason Paved writes, in one enum: providers, rendering, tenancy and
//! the controllers share it, so a reason reaches the claim as it was raised (never
//! mapped back from a string) and the README's table can be checked against it.

use std::fmt;

macro_rules! reasons {
    ($( $(#[doc = $doc:literal])+ $variant:ident, )+) => {
        /// A condition reason (`status.conditions[].reason`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Reason {
            $( $(#[doc = $doc])+ $variant, )+
        }

        impl Reason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)+];

            /// The reason as it appears in a condition.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( Reason::$variant => stringify!($variant), )+
                }
            }

            /// One line on what the reason means and what to do: the README's table.
            pub fn meaning(self) -> &'static str {
                match self {
                    $( Reason::$variant => concat!($($doc),+).trim_ascii(), )+
                }
            }

            /// A reason read back from a condition; `None` for one Paved does not write.
            pub fn parse(s: &str) -> Option<Reason> {
                Reason::ALL.iter().copied().find(|r| r.as_str() == s)
            }
        }
    };
}

reasons! {
    /// Ready: the resource exists and is usable.
    Available,
    /// On a Composition: it satisfies the compliance floor.
    Valid,
    /// Synced: the last reconcile applied the desired state.
    ReconcileSuccess,
    /// Synced=False: the reconcile failed (the apiserver refused a write, a timeout);
    /// retried with backoff, Ready kept as it was.
    ReconcileError,
    /// The cloud resource is being created.
    Creating,
    /// Drift from the desired state is being corrected.
    Updating,
    /// The deletion policy is running; the message says what it waits for.
    Deleting,
    /// The deletion cannot act yet; the message names what blocks it.
    DeletionBlocked,
    /// A child claim of the ServiceClaim is not Ready; the message names it.
    ChildNotReady,
    /// The Team the claim names does not exist.
    TeamNotFound,
    /// The claim's Team is being deleted: it keeps its data, its owners lose access.
    TeamDeleting,
    /// The claim was created before (or in the same second as) its Team; the platform
    /// vouches for older claims with the Team's `adoptClaimsCreatedBefore`.
    ClaimPredatesTeam,
    /// The Team may not use the claim's cloud.
    CloudNotAllowed,
    /// The Team is at its limit of services or databases (the oldest are served first).
    TeamLimitExceeded,
    /// The claim's name is a namespace reserved for the platform.
    NamespaceReserved,
    /// The Composition is not granted to this team or namespace, or is for another cloud.
    CompositionNotAllowed,
    /// The claim names an existing database its namespace's Team does not list in
    /// `spec.existingDatabases` for that namespace; the platform grants it.
    ExistingNotGranted,
    /// An existing database cannot be taken over as it is, or not on its provider (the
    /// message says why and what to do); nothing of it was changed.
    NotAdoptable,
    /// An adopted database's master password is kept by no cloud service (on AWS: not
    /// RDS-managed) and the Composition keeps it (`credentials.existingPassword:
    /// Keep`): no connection Secret is delivered; the message says how to hand it over.
    CredentialsNotManaged,
    /// An observed database meets the Composition's compliance floor (condition
    /// `Compliant`).
    MeetsFloor,
    /// An observed database falls short of the Composition's compliance floor;
    /// `status.violations` says how (condition `Compliant`).
    BelowFloor,
    /// An observed database is not available: the cloud reports it stopped, being
    /// modified, failed, ... (the message says which).
    NotAvailable,
    /// An observed database meets what its provider shows of the compliance floor, and
    /// the provider does not show the rest (the message says what): condition
    /// `Compliant` is Unknown.
    NotJudged,
    /// No Composition matches (by reference, selector or `default-for` label).
    CompositionNotFound,
    /// The Composition names another kind (e.g. a service Composition for a database).
    CompositionKindMismatch,
    /// The Composition breaks the compliance floor; the message lists what.
    CompositionViolatesFloor,
    /// A template in the Composition does not render.
    CompositionTemplateError,
    /// The Composition lacks something the provider needs.
    InvalidComposition,
    /// The claim asks for something its Composition does not allow.
    InvalidSpec,
    /// A stored object does not fit its type (an older, looser CRD); fix the object.
    InvalidObject,
    /// The provider cannot hold this data classification (PHI on `local`).
    ClassificationNotSupported,
    /// The namespace exists and is not this ServiceClaim's.
    NamespaceConflict,
    /// The namespace is still being deleted; it is recreated once gone.
    NamespaceTerminating,
    /// The Secret named for the connection exists and is not this claim's.
    SecretConflict,
    /// The apiserver refused what the claim renders to (a schema, a policy, a webhook).
    ApplyRejected,
    /// An API the claim needs is not installed (e.g. External Secrets).
    MissingAPI,
    /// The provider could not be reached; retried with backoff.
    ProviderUnavailable,
    /// The provider throttled Paved; retried after its Retry-After.
    Throttled,
    /// The provider refused Paved's credentials or permissions.
    ProviderAccessDenied,
    /// The provider refused the request; the message has its words.
    ProviderRejected,
    /// The provider's own configuration is wrong (e.g. Secret Manager not enabled).
    ProviderMisconfigured,
    /// The Composition names no placement (subscription, project) for its provider.
    ProviderNotConfigured,
    /// The local provider's admin Secret is missing.
    AdminSecretMissing,
    /// The local provider's admin Secret does not parse.
    InvalidAdminSecret,
    /// A resource of the claim's name belongs to another claim; never adopted.
    OwnedByOther,
    /// A concurrent change on the provider; retried.
    Conflict,
    /// The Secret with the Temporal client certificate the Composition names is missing.
    TlsSecretMissing,
    /// A resource the provider should have was not found.
    NotFound,
    /// The Composition now resolves to another place than where the database was
    /// created; Paved will not create a second one. Pin `compositionRef`.
    LocationChanged,
    /// The database (or Temporal namespace) was created but is gone from where it was;
    /// Paved will not create another on its own.
    ExternalResourceMissing,
    /// The database is not encrypted (or not with the Composition's key): it cannot be
    /// fixed in place.
    EncryptionMismatch,
    /// The cloud reports the database as failed.
    DatabaseFailed,
    /// The database does not accept the delivered credentials yet.
    ConnectionFailed,
    /// External Secrets has not yet written the connection Secret through the
    /// namespace's SecretStore; its ExternalSecret's status says why.
    SecretNotDelivered,
    /// Temporal reports the namespace as unusable.
    NamespaceUnavailable,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for Reason {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<Reason> for String {
    fn from(r: Reason) -> String {
        r.as_str().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip_and_say_what_they_mean() {
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.as_str()), Some(*r));
            assert!(!r.meaning().is_empty(), "{r} has no meaning");
        }
        assert_eq!(Reason::parse("Nonsense"), None);
        assert_eq!(Reason::SecretConflict.to_string(), "SecretConflict");
    }
}
