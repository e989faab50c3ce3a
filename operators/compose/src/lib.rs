//! Pure rendering: claim + Composition → the objects and cloud specs it implies.
//! No client, no I/O: everything here is decided from its inputs and unit-tested.
//! The compliance floor is applied last, so nothing upstream can lower it.

pub mod floor;
pub mod identity;
pub mod object;
pub mod postgresql;
pub mod service;
pub mod status;
pub mod temporal;
pub mod tenancy;

pub use floor::{
    check_composition, check_composition_postgresql, check_composition_service,
    check_composition_temporal, Violation,
};
pub use object::DesiredObject;
pub use service::{render_service, ServiceInput};

/// What to do next with a cloud resource, from comparing what the claim implies with
/// what the cloud shows (see `postgresql::plan`, `temporal::plan_temporal`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Create,
    /// Still being created or changed by the cloud; wait.
    Wait(String),
    /// Mutable fields to correct.
    Update(Vec<Drift>),
    UpToDate,
    /// Cannot be fixed in place (e.g. the encryption was weakened outside Paved):
    /// a human must look. Never "fixed" by recreating the resource.
    Terminal {
        reason: paved_api::Reason,
        message: String,
    },
}

/// A field of a cloud resource that differs from what the claim implies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub field: &'static str,
    pub observed: String,
    pub desired: String,
}

/// `field observed → desired, ...`, for Events and conditions.
pub fn describe_drift(drift: &[Drift]) -> String {
    drift
        .iter()
        .map(|x| format!("{} {} → {}", x.field, x.observed, x.desired))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why rendering could not produce a desired state. Each variant is a problem a
/// human must fix (in the claim or the Composition); the reconciler shows it as
/// `Synced=False` with [`RenderError::reason`] and does not retry hot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("composition {name} violates the compliance floor: {violations}")]
    CompositionViolatesFloor { name: String, violations: String },
    #[error("composition {name} is a {actual} composition, not a {expected} one")]
    WrongCompositionKind {
        name: String,
        expected: &'static str,
        actual: &'static str,
    },
    #[error("{0}")]
    InvalidSpec(String),
    #[error("composition {composition}: {message}")]
    Template {
        composition: String,
        message: String,
    },
    /// The composition's provider cannot serve this claim as classified.
    #[error("{0}")]
    Unsupported(String),
    /// The claim adopts an existing database its provider cannot take over (yet).
    #[error("{0}")]
    NotAdoptable(String),
}

impl RenderError {
    /// The condition reason for this error.
    pub fn reason(&self) -> paved_api::Reason {
        use paved_api::Reason;
        match self {
            RenderError::CompositionViolatesFloor { .. } => Reason::CompositionViolatesFloor,
            RenderError::WrongCompositionKind { .. } => Reason::CompositionKindMismatch,
            RenderError::InvalidSpec(_) => Reason::InvalidSpec,
            RenderError::Template { .. } => Reason::CompositionTemplateError,
            RenderError::Unsupported(_) => Reason::ClassificationNotSupported,
            RenderError::NotAdoptable(_) => Reason::NotAdoptable,
        }
    }
}

/// Whether `name` is a valid name for a Secret, Role or ConfigMap (an RFC 1123 DNS
/// subdomain: lowercase letters, digits, `-` and `.`, alphanumeric at both ends of
/// each label, at most 253 characters).
pub fn is_dns_subdomain(name: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    !name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok)
}

#[cfg(test)]
mod name_tests {
    #[test]
    fn dns_subdomains() {
        use super::is_dns_subdomain as ok;
        assert!(ok("svc.app") && ok("a-b.postgresql.db-1"));
        for bad in [
            "", "Svc.app", "svc..app", "svc/app", "-svc", "svc.", "svc_app",
        ] {
            assert!(!ok(bad), "{bad}");
        }
        assert!(!ok(&"a".repeat(254)));
    }
}

/// Fixtures the unit tests of several modules share.
#[cfg(test)]
pub(crate) mod fixtures {
    /// Secrets in AWS Secrets Manager (us-east-1) under `{owner}/{service}`.
    pub fn aws_secrets() -> paved_api::SecretsConfig {
        paved_api::SecretsConfig {
            backend: paved_api::SecretBackend {
                aws: Some(paved_api::AwsSecretBackend {
                    region: "us-east-1".into(),
                }),
                ..Default::default()
            },
            path: "{owner}/{service}".into(),
            refresh_interval: "1h".into(),
        }
    }

    /// A role per service, trusted through an EKS cluster's OIDC provider.
    pub fn aws_identity() -> paved_api::AwsServiceIdentity {
        paved_api::AwsServiceIdentity {
            oidc_provider_arn:
                "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC"
                    .into(),
            permissions_boundary: None,
            pod_identity: None,
            name_prefix: "paved-".into(),
            poll_interval: "5m".into(),
        }
    }

    /// A GCP secret backend: project `p`, cluster `c` in `l`.
    pub fn gcp_backend() -> paved_api::SecretBackend {
        paved_api::SecretBackend {
            gcp: Some(paved_api::GcpSecretBackend {
                project_id: "p".into(),
                cluster_location: "l".into(),
                cluster_name: "c".into(),
                cluster_project_id: "p".into(),
            }),
            ..Default::default()
        }
    }
}
