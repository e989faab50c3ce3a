//! The database lifecycle, decided and driven in one place for every provider.
//!
//! `decide` is pure: from the claim's create guard, what the cloud shows and the
//! desired database it says what one reconcile does next. `drive` is the thin layer
//! that observes, decides and calls the provider, recording the guard through a
//! [`GuardRecorder`] (the claim's annotations in the operator, memory in tests), so
//! the crash windows of a create can be tested without a cluster (see the `fake`
//! feature and the operator's driver tests).

use async_trait::async_trait;
use paved_api::{PostgreSQLInstanceStatus, Reason};
use paved_compose::{
    postgresql::{hold, plan, without, DesiredDatabase, ObservedDatabase, Plan},
    Drift,
};

use crate::{ExternalClient, Observation, ProviderError};

/// What the claim's create guard records: `pending` is written before the create
/// call, `succeeded` after it returned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Guard {
    pub pending: bool,
    pub succeeded: bool,
}

/// What one reconcile does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Nothing there and nothing recorded as made: record `pending`, then create.
    Create,
    /// Ours by its ownership mark but never recorded as made (a crash between the
    /// create and its record): record it, then go on as `then`.
    Adopt(Box<Decision>),
    /// The cloud is still working on it.
    Wait(String),
    /// Fields to correct now.
    Update(Vec<Drift>),
    /// As desired (or waiting only for the maintenance window).
    Ready,
    /// Something a human must look at; nothing is written.
    Refuse(Reason, String),
}

/// A decision, with what waits for the maintenance window (see `postgresql::hold`).
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    pub decision: Decision,
    pub held: Vec<Drift>,
}

/// Pure: the next step for a database claim. `running` is the claim's status (what the
/// database was last seen to run as), `now` the minute of the week in UTC.
pub fn decide(
    guard: Guard,
    d: &DesiredDatabase,
    running: &PostgreSQLInstanceStatus,
    seen: &Observation<ObservedDatabase>,
    now: u32,
) -> Decided {
    let refuse = |r, m: String| Decided {
        decision: Decision::Refuse(r, m),
        held: vec![],
    };
    let o = match seen {
        Observation::OwnedByOther { owner } => {
            return refuse(
                Reason::OwnedByOther,
                format!(
                    "a database named {} exists but belongs to {owner}; Paved will not adopt it",
                    d.external_name
                ),
            )
        }
        // Made once already: never a second one. Deleted outside Paved, or looked
        // for in the wrong place; a human decides.
        Observation::Absent if guard.succeeded => {
            return refuse(
                Reason::ExternalResourceMissing,
                format!(
                    "{} was created (annotation {}) but {}/{} finds no such database; Paved will not create another. \
                     Restore it, or have the platform remove the annotation to create it anew",
                    d.external_name,
                    paved_api::annotations::CREATE_SUCCEEDED,
                    d.provider,
                    d.region
                ),
            )
        }
        // Never made, or a create that may not have reached the cloud (`pending`
        // only): the deterministic name makes a second create find the first.
        Observation::Absent => {
            return Decided {
                decision: Decision::Create,
                held: vec![],
            }
        }
        Observation::Present(o) => o,
    };
    let (step, held) = match plan(d, Some(o)) {
        Plan::Create => (Decision::Create, vec![]),
        Plan::Wait(m) => (Decision::Wait(m), vec![]),
        Plan::Terminal { reason, message } => (Decision::Refuse(reason, message), vec![]),
        Plan::UpToDate => (Decision::Ready, vec![]),
        Plan::Update(drift) => {
            let h = hold(drift, d, running, now);
            if h.now.is_empty() {
                (Decision::Ready, h.later)
            } else {
                (Decision::Update(h.now), h.later)
            }
        }
    };
    let decision = if guard.succeeded {
        step
    } else {
        Decision::Adopt(Box::new(step))
    };
    Decided { decision, held }
}

/// Where the create guard is kept.
#[async_trait]
pub trait GuardRecorder: Send + Sync {
    /// Before the create call (and before any cloud write for a new claim).
    async fn pending(&self) -> Result<(), RecordError>;
    /// After the create call returned, or when an unrecorded database of ours is
    /// adopted.
    async fn succeeded(&self) -> Result<(), RecordError>;
    /// After a create call failed.
    async fn failed(&self) -> Result<(), RecordError>;
}

/// The guard could not be recorded: the reconcile stops there (and is retried).
#[derive(Debug, thiserror::Error)]
#[error("recording the create guard: {0}")]
pub struct RecordError(pub String);

/// What driving one reconcile did.
#[derive(Debug, Clone, PartialEq)]
pub enum Driven {
    /// Refused by the decision (nothing written).
    Refused(Reason, String),
    /// The provider failed; its reason reaches the claim unchanged.
    Failed(ProviderError),
    /// A create was started.
    Created,
    /// The cloud is still working on it.
    Waiting(String),
    /// Drift was corrected.
    Updated(Vec<Drift>),
    /// As desired: the observed database, and what waits for the window.
    Ready {
        observed: Box<ObservedDatabase>,
        held: Vec<Drift>,
    },
}

/// One reconcile's cloud side: observe, decide, act. `adopted` is set when an
/// unrecorded database of ours was taken back (for the caller's Event).
pub async fn drive(
    provider: &dyn ExternalClient<DesiredDatabase, ObservedDatabase>,
    recorder: &dyn GuardRecorder,
    guard: Guard,
    d: &DesiredDatabase,
    running: &PostgreSQLInstanceStatus,
    now: u32,
    crash: &(dyn Fn(&str) + Sync),
) -> Result<(Driven, bool), RecordError> {
    let seen = match provider.observe(d).await {
        Ok(s) => s,
        Err(e) => return Ok((Driven::Failed(e), false)),
    };
    let Decided { decision, held } = decide(guard, d, running, &seen, now);
    let (decision, adopted) = match decision {
        Decision::Adopt(then) => {
            recorder.succeeded().await?;
            (*then, true)
        }
        other => (other, false),
    };
    let effective = without(d.clone(), &held);
    let driven = match decision {
        Decision::Adopt(_) => unreachable!("adoption is unwrapped above"),
        Decision::Refuse(r, m) => Driven::Refused(r, m),
        Decision::Wait(m) => Driven::Waiting(m),
        Decision::Create => {
            recorder.pending().await?;
            crash("before-create");
            let created = provider.create(&effective).await;
            crash("after-create");
            match created {
                Ok(()) => {
                    recorder.succeeded().await?;
                    Driven::Created
                }
                Err(e) => {
                    recorder.failed().await?;
                    Driven::Failed(e)
                }
            }
        }
        Decision::Update(drift) => {
            let Observation::Present(o) = &seen else {
                unreachable!("an update is decided only for a present database")
            };
            match provider.update(&effective, o).await {
                Ok(()) => Driven::Updated(drift),
                Err(e) => Driven::Failed(e),
            }
        }
        Decision::Ready => {
            let Observation::Present(o) = seen else {
                unreachable!("ready is decided only for a present database")
            };
            Driven::Ready {
                observed: Box::new(o),
                held,
            }
        }
    };
    Ok((driven, adopted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use paved_compose::postgresql::minute_of_week_at;

    fn desired() -> DesiredDatabase {
        crate::tests::desired_fixture(paved_api::Cloud::Aws)
    }

    fn present(state: &str, d: &DesiredDatabase) -> Observation<ObservedDatabase> {
        Observation::Present(ObservedDatabase {
            state: state.into(),
            owner_uid: Some(d.owner_uid.clone()),
            instance_class: Some(d.instance_class.clone()),
            storage_gb: Some(d.storage_gb),
            multi_az: Some(d.multi_az),
            storage_encrypted: Some(true),
            kms_key_id: d.kms_key_id.clone(),
            publicly_accessible: Some(false),
            backup_retention_days: Some(d.backup_retention_days),
            deletion_protection: Some(d.deletion_protection),
            tls_required: Some(true),
            database_present: Some(true),
            ..Default::default()
        })
    }

    const MADE: Guard = Guard {
        pending: true,
        succeeded: true,
    };
    const PENDING: Guard = Guard {
        pending: true,
        succeeded: false,
    };
    const NEW: Guard = Guard {
        pending: false,
        succeeded: false,
    };

    fn step(guard: Guard, seen: &Observation<ObservedDatabase>) -> Decision {
        let d = desired();
        decide(guard, &d, &Default::default(), seen, minute_of_week_at(0)).decision
    }

    #[test]
    fn the_create_guard_decides_every_crash_window() {
        let d = desired();
        // Nothing there: a new claim, or a crash before the create reached the cloud.
        assert_eq!(step(NEW, &Observation::Absent), Decision::Create);
        assert_eq!(step(PENDING, &Observation::Absent), Decision::Create);
        // Made, then gone: never a second one.
        assert!(matches!(
            step(MADE, &Observation::Absent),
            Decision::Refuse(Reason::ExternalResourceMissing, _)
        ));
        // Ours but unrecorded (a crash after the create): adopted, then judged.
        assert_eq!(
            step(PENDING, &present("creating", &d)),
            Decision::Adopt(Box::new(Decision::Wait("the database is creating".into())))
        );
        assert_eq!(
            step(NEW, &present("available", &d)),
            Decision::Adopt(Box::new(Decision::Ready))
        );
        assert_eq!(step(MADE, &present("available", &d)), Decision::Ready);
    }

    #[test]
    fn another_claims_database_is_never_taken() {
        for guard in [NEW, PENDING, MADE] {
            let owned = Observation::OwnedByOther {
                owner: "claim other".into(),
            };
            assert!(matches!(
                step(guard, &owned),
                Decision::Refuse(Reason::OwnedByOther, m) if m.contains("claim other")
            ));
        }
    }

    #[test]
    fn drift_is_corrected_and_what_cannot_be_fixed_in_place_is_refused() {
        let d = desired();
        let Observation::Present(mut o) = present("available", &d) else {
            unreachable!()
        };
        o.deletion_protection = Some(!d.deletion_protection);
        assert!(matches!(
            step(MADE, &Observation::Present(o.clone())),
            Decision::Update(drift) if drift[0].field == "deletionProtection"
        ));
        o.storage_encrypted = Some(false);
        assert!(matches!(
            step(MADE, &Observation::Present(o)),
            Decision::Refuse(Reason::EncryptionMismatch, _)
        ));
        assert!(matches!(
            step(MADE, &present("failed", &d)),
            Decision::Refuse(Reason::DatabaseFailed, _)
        ));
    }

    #[test]
    fn a_new_size_outside_the_window_is_ready_with_what_waits() {
        let mut d = desired();
        let seen = present("available", &d);
        let running = PostgreSQLInstanceStatus {
            instance_class: Some(d.instance_class.clone()),
            ..Default::default()
        };
        d.instance_class = "db.r6g.2xlarge".into();
        d.maintenance_window = paved_compose::postgresql::DEFAULT_MAINTENANCE_WINDOW.into();
        // Wednesday noon: outside the default Sunday window.
        let wednesday_noon = 2 * 1440 + 12 * 60;
        let out = decide(MADE, &d, &running, &seen, wednesday_noon);
        assert_eq!(out.decision, Decision::Ready);
        assert_eq!(out.held[0].field, "instanceClass");
        let sunday_4am = 6 * 1440 + 4 * 60;
        let out = decide(MADE, &d, &running, &seen, sunday_4am);
        assert!(matches!(out.decision, Decision::Update(_)));
        assert!(out.held.is_empty());
    }
}
