//! Kubernetes-shaped status conditions and the pure logic that keeps their
//! transition times honest.

use compact_str::CompactString;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

// The short fields are `CompactString`s: up to 24 bytes they are held inline, not
// allocated. Every cached claim holds its conditions; at 10,000 claims that is megabytes
// of the operator's memory (BENCHMARKS.md, memory per claim). Not a doc comment: this
// one is what `kubectl explain` shows.
/// A condition in the standard Kubernetes shape (metav1.Condition).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The kind of condition: `Ready` (the claim's resources are usable) or
    /// `Synced` (the last reconcile applied the desired state without error).
    #[serde(rename = "type")]
    #[schemars(with = "String")]
    pub type_: CompactString,
    /// `True`, `False` or `Unknown`.
    #[schemars(with = "String")]
    pub status: CompactString,
    /// A CamelCase word that says why the condition is what it is, e.g. `Available`,
    /// `ChildNotReady`, `CompositionNotFound`.
    #[schemars(with = "String")]
    pub reason: CompactString,
    /// A human-readable explanation. Never contains secret values.
    #[serde(default)]
    pub message: String,
    /// When the status last changed (RFC 3339).
    #[schemars(with = "String")]
    pub last_transition_time: CompactString,
    /// The `metadata.generation` this condition was computed for; lower than the
    /// object's generation means the controller has not caught up yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

pub const READY: &str = "Ready";
pub const SYNCED: &str = "Synced";
/// On a ServiceClaim: True while databases removed from its spec are kept.
pub const DATABASES_RETAINED: &str = "DatabasesRetained";
/// On an observed PostgreSQLInstance (`spec.existing`): whether the database meets the
/// Composition's compliance floor (`status.violations` says how it does not).
pub const COMPLIANT: &str = "Compliant";

/// Well-known reasons as strings (see [`crate::Reason`], which holds them all).
pub mod reasons {
    use crate::Reason;
    pub const AVAILABLE: &str = Reason::Available.as_str();
    pub const RECONCILE_SUCCESS: &str = Reason::ReconcileSuccess.as_str();
    pub const RECONCILE_ERROR: &str = Reason::ReconcileError.as_str();
    pub const CREATING: &str = Reason::Creating.as_str();
    pub const CHILD_NOT_READY: &str = Reason::ChildNotReady.as_str();
    pub const DELETING: &str = Reason::Deleting.as_str();
    pub const DELETION_BLOCKED: &str = Reason::DeletionBlocked.as_str();
    pub const COMPOSITION_NOT_FOUND: &str = Reason::CompositionNotFound.as_str();
    pub const COMPOSITION_INVALID: &str = Reason::CompositionViolatesFloor.as_str();
    pub const INVALID_SPEC: &str = Reason::InvalidSpec.as_str();
    pub const NAMESPACE_CONFLICT: &str = Reason::NamespaceConflict.as_str();
}

/// The status value of a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    True,
    False,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
}

impl Condition {
    pub fn new(
        type_: &str,
        status: Status,
        reason: impl AsRef<str>,
        message: impl Into<String>,
        generation: Option<i64>,
        now: &str,
    ) -> Self {
        Condition {
            type_: type_.into(),
            status: status.as_str().into(),
            reason: reason.as_ref().into(),
            message: message.into(),
            last_transition_time: now.into(),
            observed_generation: generation,
        }
    }

    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
}

/// Finds a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Sets `new` into `conditions`, keeping the old transition time when the status did
/// not change, so `lastTransitionTime` means what it says and a no-op reconcile
/// produces a byte-identical status (and therefore no write).
pub fn upsert(conditions: &mut Vec<Condition>, mut new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time.clone();
            }
            *old = new;
        }
        None => conditions.push(new),
    }
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

/// Removes the condition of a type, if present.
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// True when the object's Ready condition is True and was computed for its current generation.
pub fn is_ready(conditions: &[Condition], generation: Option<i64>) -> bool {
    find(conditions, READY).is_some_and(|c| {
        c.is_true() && (generation.is_none() || c.observed_generation == generation)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsert_keeps_transition_time_when_status_is_unchanged() {
        let mut cs = vec![Condition::new(
            READY,
            Status::False,
            "A",
            "m",
            Some(1),
            "t1",
        )];
        upsert(
            &mut cs,
            Condition::new(READY, Status::False, "B", "m2", Some(2), "t2"),
        );
        assert_eq!(cs[0].last_transition_time, "t1");
        assert_eq!(cs[0].reason, "B");
        upsert(
            &mut cs,
            Condition::new(READY, Status::True, "C", "", Some(2), "t3"),
        );
        assert_eq!(cs[0].last_transition_time, "t3");
    }

    #[test]
    fn ready_requires_current_generation() {
        let cs = vec![Condition::new(READY, Status::True, "A", "", Some(1), "t")];
        assert!(is_ready(&cs, Some(1)));
        assert!(!is_ready(&cs, Some(2)));
        assert!(!is_ready(&[], Some(1)));
    }

    #[test]
    fn conditions_are_sorted_by_type() {
        let mut cs = vec![];
        upsert(
            &mut cs,
            Condition::new(SYNCED, Status::True, "A", "", None, "t"),
        );
        upsert(
            &mut cs,
            Condition::new(READY, Status::True, "A", "", None, "t"),
        );
        assert_eq!(cs[0].type_, READY);
    }
}

/// A status with Paved's conditions, so one piece of code can publish any claim's.
pub trait ClaimStatus {
    fn conditions(&self) -> &[Condition];
    fn conditions_mut(&mut self) -> &mut Vec<Condition>;
    fn set_observed_generation(&mut self, generation: Option<i64>);
}

macro_rules! claim_status {
    ($($t:ty),*) => {$(
        impl ClaimStatus for $t {
            fn conditions(&self) -> &[Condition] {
                &self.conditions
            }
            fn conditions_mut(&mut self) -> &mut Vec<Condition> {
                &mut self.conditions
            }
            fn set_observed_generation(&mut self, generation: Option<i64>) {
                self.observed_generation = generation;
            }
        }
    )*};
}

claim_status!(
    crate::PostgreSQLInstanceStatus,
    crate::TemporalNamespaceStatus,
    crate::ServiceClaimStatus,
    crate::CompositionStatus
);
