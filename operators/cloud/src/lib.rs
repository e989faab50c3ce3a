//! The provider framework: one trait in the shape of crossplane-runtime's external
//! client. `observe` never mutates; the reconciler, not the provider, decides
//! whether to `create`, `update` or `delete`. Errors are data, so the reconciler can
//! tell a blip from a problem a human must fix.
//!
//! The cloud clients (aws, azure, gcp, local) and Temporal implement this trait in
//! their own modules; this crate carries the shared vocabulary.

use std::time::Duration;

use async_trait::async_trait;
use paved_api::Reason;

pub mod aws;
pub mod aws_iam;
pub mod azure;
pub mod azure_identity;
pub mod decide;
#[cfg(feature = "fake")]
pub mod fake;
pub mod gcp;
pub mod gcp_identity;
pub mod listed;
pub mod local;
pub mod temporal;

/// One cloud's service identities (IAM roles, managed identities, Google service
/// accounts), acted on as `paved_compose::identity::plan_identity` decides. Every
/// method acts only on what carries the claim's owner marker.
#[async_trait]
pub trait IdentityClient: Send + Sync {
    /// The identity `d` names, or None.
    async fn observe(
        &self,
        d: &paved_compose::identity::DesiredIdentity,
    ) -> Result<Option<paved_compose::identity::ObservedIdentity>, ProviderError>;
    /// Makes it, marked as the claim's; returns what the ServiceAccount is annotated
    /// with (ARN, client ID, email).
    async fn create(
        &self,
        d: &paved_compose::identity::DesiredIdentity,
    ) -> Result<String, ProviderError>;
    /// Puts back the parts `plan_identity` named.
    async fn update(
        &self,
        d: &paved_compose::identity::DesiredIdentity,
        drift: &[&str],
    ) -> Result<(), ProviderError>;
    /// Deletes the identity at `id` (`DesiredIdentity::id`, as recorded in the claim's
    /// status) and what Paved granted it, if it is the claim `uid`'s. Returns whether
    /// there was one of ours.
    async fn delete(&self, id: &str, uid: &str) -> Result<bool, ProviderError>;
    /// Deletes the identities an earlier ServiceClaim of `d`'s claim name left where
    /// `d` would be made (they trust the same ServiceAccount name). Returns their names.
    async fn remove_stale(
        &self,
        d: &paved_compose::identity::DesiredIdentity,
        claim_name: &str,
    ) -> Result<Vec<String>, ProviderError>;
}

/// Called once per page of a shared instance list sent to a cloud API (a metric).
pub type ListCounter = std::sync::Arc<dyn Fn() + Send + Sync>;

/// A secret value (password, connection string). Its Debug and Display never show
/// it, so it cannot leak through logs, Events or error messages by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Sensitive(String);

impl Sensitive {
    pub fn new(s: impl Into<String>) -> Self {
        Sensitive(s.into())
    }
    /// The value itself, for the one place that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// A fresh random password: 32 letters and digits (no quoting hazards in SQL,
    /// URIs or shells), with an upper-case letter, a lower-case letter and a digit in
    /// it (Azure refuses a password of fewer kinds, and about one in 280 random ones
    /// has no digit).
    pub fn generate_password() -> Self {
        use rand::{distr::Alphanumeric, Rng};
        loop {
            let p = Sensitive(
                rand::rng()
                    .sample_iter(&Alphanumeric)
                    .take(32)
                    .map(char::from)
                    .collect(),
            );
            if p.is_complex() {
                return p;
            }
        }
    }

    /// Whether it has an upper-case letter, a lower-case letter and a digit.
    pub fn is_complex(&self) -> bool {
        let has = |f: fn(&char) -> bool| self.0.chars().any(|c| f(&c));
        has(char::is_ascii_uppercase) && has(char::is_ascii_lowercase) && has(char::is_ascii_digit)
    }
}

impl std::fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sensitive(***)")
    }
}

/// What a provider error means for the reconciler.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// A transient failure (network, 5xx, a resource busy in another operation):
    /// retry with backoff.
    #[error("retryable: {0}")]
    Retryable(String),
    /// The API asked us to slow down; do not call again before `retry_after`.
    #[error("throttled (retry after {retry_after:?}): {message}")]
    Throttled {
        retry_after: Duration,
        message: String,
    },
    /// Needs a human (bad credentials, quota, a name owned by someone else): shown as
    /// `Synced=False` with `reason`, re-checked slowly, never retried hot.
    #[error("{reason}: {message}")]
    Terminal { reason: Reason, message: String },
    /// The resource does not exist.
    #[error("not found: {0}")]
    NotFound(String),
}

impl ProviderError {
    /// How long to wait before the next attempt, given the configured base backoff.
    pub fn requeue_after(&self, backoff: Duration, slow: Duration) -> Duration {
        match self {
            ProviderError::Retryable(_) => backoff,
            ProviderError::Throttled { retry_after, .. } => (*retry_after).max(backoff),
            ProviderError::Terminal { .. } => slow,
            ProviderError::NotFound(_) => backoff,
        }
    }

    /// The condition reason to show: the provider's own, unchanged.
    pub fn reason(&self) -> Reason {
        match self {
            ProviderError::Retryable(_) => Reason::ProviderUnavailable,
            ProviderError::Throttled { .. } => Reason::Throttled,
            ProviderError::Terminal { reason, .. } => *reason,
            ProviderError::NotFound(_) => Reason::NotFound,
        }
    }

    /// The seconds form of a `Retry-After` header (RFC 9110 10.2.3); the HTTP-date
    /// form and garbage read as absent (the caller's default applies).
    pub fn retry_after(header: Option<&str>) -> Option<Duration> {
        header?.trim().parse::<u64>().ok().map(Duration::from_secs)
    }

    /// Classifies an HTTP status from a cloud API.
    pub fn from_http(status: u16, retry_after: Option<Duration>, message: String) -> Self {
        match status {
            404 => ProviderError::NotFound(message),
            429 => ProviderError::Throttled {
                retry_after: retry_after.unwrap_or(Duration::from_secs(10)),
                message,
            },
            409 | 408 | 500..=599 => ProviderError::Retryable(message),
            401 | 403 => ProviderError::Terminal {
                reason: Reason::ProviderAccessDenied,
                message,
            },
            _ => ProviderError::Terminal {
                reason: Reason::ProviderRejected,
                message,
            },
        }
    }
}

/// What `observe` found.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation<O> {
    /// Nothing with the claim's deterministic name exists.
    Absent,
    /// Ours (carries our ownership tag), in this state.
    Present(O),
    /// A resource with our name carries another claim's ownership tag: a terminal
    /// conflict, never adopted silently.
    OwnedByOther { owner: String },
}

/// `Present` when the resource carries `want` as its ownership mark, otherwise
/// `OwnedByOther` naming the claim it carries (or `unmarked`, for one with no mark).
/// A claim that names an existing database (`existing`) sees it whoever's it is when
/// it only observes, and when it adopts, unless another claim's mark is on it.
pub fn ownership<O>(
    observed: O,
    owner: Option<&str>,
    want: &str,
    unmarked: &str,
    existing: Option<paved_api::ExistingMode>,
) -> Observation<O> {
    use paved_api::ExistingMode;
    match (owner, existing) {
        (_, Some(ExistingMode::Observe)) => Observation::Present(observed),
        (Some(uid), _) if uid == want => Observation::Present(observed),
        (None, Some(ExistingMode::Adopt)) => Observation::Present(observed),
        (Some(uid), _) => Observation::OwnedByOther {
            owner: format!("claim {uid}"),
        },
        (None, None) => Observation::OwnedByOther {
            owner: unmarked.to_string(),
        },
    }
}

/// The last operation a provider started on a resource, as far as it tracks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpState {
    /// None tracked (or it succeeded).
    None,
    /// Still running: a resource it creates may not be listed yet.
    Running,
    /// Failed, with the cloud's message.
    Failed(String),
}

/// What to observe for a resource missing from the list, given its last operation:
/// a create still running is a database being created (never "absent", which would
/// read as lost), a failed one is the cloud's error.
pub fn absent_unless<O: Default>(
    op: OpState,
    owner_uid: &str,
    what: &str,
    with_state: impl FnOnce(O, String, String) -> O,
) -> Result<Observation<O>, ProviderError> {
    match op {
        OpState::None => Ok(Observation::Absent),
        OpState::Running => Ok(Observation::Present(with_state(
            O::default(),
            "creating".into(),
            owner_uid.into(),
        ))),
        OpState::Failed(m) => Err(ProviderError::Terminal {
            reason: Reason::ProviderRejected,
            message: format!("{what}: {m}"),
        }),
    }
}

/// Progress of a deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteProgress {
    /// Finished; the message says what became of the resource (deleted, a final
    /// snapshot kept, left in place), for the one Event that reports it.
    Done(String),
    /// Still going; the message says what it waits for.
    Waiting(String),
    /// Nothing of ours was there to delete (the message says what was found).
    Skipped(String),
}

/// An external resource client. `D` is the desired spec rendered by
/// paved-compose, `O` the observed state.
#[async_trait]
pub trait ExternalClient<D: Sync, O: Send>: Send + Sync {
    /// Reads the resource's current state. Never mutates.
    async fn observe(&self, desired: &D) -> Result<Observation<O>, ProviderError>;
    /// Creates the resource under its deterministic name.
    async fn create(&self, desired: &D) -> Result<(), ProviderError>;
    /// Brings the mutable fields of an existing resource to `desired`.
    async fn update(&self, desired: &D, observed: &O) -> Result<(), ProviderError>;
    /// Deletes (or snapshots, or leaves) the resource.
    async fn delete(&self, desired: &D) -> Result<DeleteProgress, ProviderError>;
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use paved_api::{Cloud, DatabaseNetwork, DeletionPolicy};
    use paved_compose::postgresql::{DesiredDatabase, OWNER_TAG};

    #[test]
    fn retry_after_reads_seconds_only() {
        assert_eq!(
            ProviderError::retry_after(Some(" 7 ")),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            ProviderError::retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
        assert_eq!(ProviderError::retry_after(Some("-1")), None);
        assert_eq!(ProviderError::retry_after(None), None);
        match ProviderError::from_http(429, ProviderError::retry_after(Some("3")), "x".into()) {
            ProviderError::Throttled { retry_after, .. } => {
                assert_eq!(retry_after, Duration::from_secs(3))
            }
            other => panic!("429 is throttling, got {other:?}"),
        }
    }

    /// A desired database as a composition for `provider` renders it.
    pub(crate) fn desired_fixture(provider: Cloud) -> DesiredDatabase {
        DesiredDatabase {
            provider,
            region: "eastus".into(),
            external_name: "paved-0a1b".into(),
            owner_uid: "uid-1".into(),
            instance_class: "Standard_D2ds_v5".into(),
            storage_gb: 64,
            storage_type: None,
            engine_version: "16".into(),
            multi_az: true,
            storage_encrypted: true,
            kms_key_id: Some("https://kv.vault.azure.net/keys/k/1".into()),
            encryption_identity: Some("/subscriptions/s/resourceGroups/r/providers/Microsoft.ManagedIdentity/userAssignedIdentities/i".into()),
            geo_backup_key_id: Some("https://kv-west.vault.azure.net/keys/k/1".into()),
            geo_backup_identity: Some("/subscriptions/s/resourceGroups/r/providers/Microsoft.ManagedIdentity/userAssignedIdentities/geo".into()),
            publicly_accessible: false,
            tls_required: true,
            backup_retention_days: 14,
            backup_window: Some("03:00-04:00".into()),
            geo_redundant_backup: true,
            deletion_protection: true,
            deletion_policy: DeletionPolicy::Snapshot,
            network: DatabaseNetwork {
                private_network: Some("projects/p/global/networks/n".into()),
                ..Default::default()
            },
            credentials: Default::default(),
            local_admin: None,
            azure: None,
            gcp: None,
            tags: [
                (OWNER_TAG.to_string(), "uid-1".to_string()),
                ("Owner".to_string(), "team-a@example.com".to_string()),
            ]
            .into(),
            connection_secret: "db-connection".into(),
            database_name: "paved_0a1b".into(),
            master_username: "paved_0a1b".into(),
            estimated_monthly_cost: None,
            poll_interval: Duration::from_secs(300),
            ..Default::default()
        }
    }

    #[test]
    fn generated_passwords_have_every_kind_of_character_a_cloud_asks_for() {
        for _ in 0..3000 {
            assert!(Sensitive::generate_password().is_complex());
        }
        assert!(!Sensitive::new("abcdefghijklmnopqrstuvwxyzABCDEF").is_complex());
    }

    #[test]
    fn sensitive_values_do_not_print() {
        let s = Sensitive::generate_password();
        assert_eq!(s.expose().len(), 32);
        assert!(!format!("{s:?}").contains(s.expose()));
        assert_ne!(Sensitive::generate_password(), s);
    }

    #[test]
    fn http_statuses_map_to_categories() {
        assert!(matches!(
            ProviderError::from_http(503, None, "x".into()),
            ProviderError::Retryable(_)
        ));
        assert!(matches!(
            ProviderError::from_http(404, None, "x".into()),
            ProviderError::NotFound(_)
        ));
        assert_eq!(
            ProviderError::from_http(403, None, "x".into()).reason(),
            Reason::ProviderAccessDenied
        );
        assert_eq!(
            ProviderError::from_http(400, None, "x".into()).reason(),
            Reason::ProviderRejected
        );
        let t = ProviderError::from_http(429, Some(Duration::from_secs(42)), "slow down".into());
        assert_eq!(
            t.requeue_after(Duration::from_secs(1), Duration::from_secs(300)),
            Duration::from_secs(42)
        );
    }

    #[test]
    fn terminal_errors_wait_long_and_throttles_never_shorter_than_backoff() {
        let term = ProviderError::Terminal {
            reason: Reason::Conflict,
            message: "m".into(),
        };
        assert_eq!(
            term.requeue_after(Duration::from_secs(1), Duration::from_secs(300)),
            Duration::from_secs(300)
        );
        let t = ProviderError::Throttled {
            retry_after: Duration::from_millis(1),
            message: "m".into(),
        };
        assert_eq!(
            t.requeue_after(Duration::from_secs(5), Duration::from_secs(300)),
            Duration::from_secs(5)
        );
    }
}
