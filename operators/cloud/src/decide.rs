//! The lifecycle of a cloud resource a claim makes (a database, a Temporal namespace),
//! decided and driven in one place for every kind and provider.
//!
//! `decide` is pure: from the claim's create guard, what the cloud shows and the
//! desired resource it says what one reconcile does next. `drive` is the thin layer
//! that observes, decides and calls the provider, recording the guard through a
//! [`GuardRecorder`] (the claim's annotations in the operator, memory in tests), so
//! the crash windows of a create can be tested without a cluster (see the `fake`
//! feature and the operator's driver tests). Each kind says only what differs: how a
//! resource of its own compares with the claim ([`Managed::plan`]), what may wait
//! for a maintenance window, and how it is named in messages.

use async_trait::async_trait;
use paved_api::{PostgreSQLInstanceStatus, Reason};
use paved_compose::{
    postgresql::{as_running, hold, plan, without, DesiredDatabase, ObservedDatabase},
    temporal::{plan_temporal, DesiredTemporalNamespace, ObservedTemporalNamespace},
    Drift, Plan,
};

use crate::{ExternalClient, Observation, ProviderError};

/// What the driver needs to know of one kind of cloud resource.
pub trait Managed: Sync {
    type Desired: Clone + Sync;
    type Observed: Send + Sync;
    /// Pure: the next step for a resource found under the claim's name that is the
    /// claim's own (the observation judged ownership).
    fn plan(&self, d: &Self::Desired, o: &Self::Observed) -> Plan;
    /// Pure: splits drift into what goes out now and what waits (for a maintenance
    /// window). By default nothing waits.
    fn hold(&self, drift: Vec<Drift>, _d: &Self::Desired) -> (Vec<Drift>, Vec<Drift>) {
        (drift, vec![])
    }
    /// `d` with what waits left as the resource runs it.
    fn without(&self, d: &Self::Desired, _later: &[Drift]) -> Self::Desired {
        d.clone()
    }
    /// The resource in messages: "database orders-db", "Temporal namespace svc.wf".
    fn named(&self, d: &Self::Desired) -> String;
    /// Where it is looked for, in messages: "aws/us-east-1", "frontend host:7233".
    fn place(&self, d: &Self::Desired) -> String;
    /// What records that the claim made its resource: what the platform clears to have
    /// a lost one made anew.
    fn record(&self) -> String {
        format!("annotation {}", paved_api::annotations::CREATE_SUCCEEDED)
    }
    /// An existing resource the claim only looks at: never created, written or
    /// adopted, whoever's it is.
    fn observe_only(&self, _d: &Self::Desired) -> bool {
        false
    }
    /// Pure: the desired resource completed by what is found (what an adopted
    /// database keeps as it runs). By default `d` itself.
    fn settle(&self, d: &Self::Desired, _o: &Self::Observed) -> Self::Desired {
        d.clone()
    }
    /// Pure: whether what was found already carries the claim's own mark (false for an
    /// existing database being taken over).
    fn marked(&self, _d: &Self::Desired, _o: &Self::Observed) -> bool {
        true
    }
    /// Whether the claim names a resource that exists already (observed or adopted):
    /// never created, whatever is or is not found.
    fn names_existing(&self, _d: &Self::Desired) -> bool {
        false
    }
}

/// A PostgreSQL database: disruptive changes wait for the maintenance window.
pub struct Database<'a> {
    /// The claim's status: what the database was last seen to run as.
    pub running: &'a PostgreSQLInstanceStatus,
    /// The minute of the week, UTC.
    pub now: u32,
}

impl Managed for Database<'_> {
    type Desired = DesiredDatabase;
    type Observed = ObservedDatabase;
    fn plan(&self, d: &DesiredDatabase, o: &ObservedDatabase) -> Plan {
        plan(d, Some(o))
    }
    fn hold(&self, drift: Vec<Drift>, d: &DesiredDatabase) -> (Vec<Drift>, Vec<Drift>) {
        let h = hold(drift, d, self.running, self.now);
        (h.now, h.later)
    }
    fn without(&self, d: &DesiredDatabase, later: &[Drift]) -> DesiredDatabase {
        without(d.clone(), later)
    }
    fn named(&self, d: &DesiredDatabase) -> String {
        format!("database {}", d.external_name)
    }
    fn place(&self, d: &DesiredDatabase) -> String {
        format!("{}/{}", d.provider, d.region)
    }
    fn observe_only(&self, d: &DesiredDatabase) -> bool {
        d.observe_only
    }
    fn settle(&self, d: &DesiredDatabase, o: &ObservedDatabase) -> DesiredDatabase {
        as_running(d, o)
    }
    fn marked(&self, d: &DesiredDatabase, o: &ObservedDatabase) -> bool {
        o.owner_uid.as_deref() == Some(d.owner_uid.as_str())
    }
    fn names_existing(&self, d: &DesiredDatabase) -> bool {
        d.existing().is_some()
    }
}

/// A Temporal namespace on the frontend at `address`: nothing waits.
pub struct TemporalNamespace<'a> {
    pub address: &'a str,
}

impl Managed for TemporalNamespace<'_> {
    type Desired = DesiredTemporalNamespace;
    type Observed = ObservedTemporalNamespace;
    fn plan(&self, d: &DesiredTemporalNamespace, o: &ObservedTemporalNamespace) -> Plan {
        plan_temporal(d, o)
    }
    fn named(&self, d: &DesiredTemporalNamespace) -> String {
        format!("Temporal namespace {}", d.name)
    }
    fn place(&self, _d: &DesiredTemporalNamespace) -> String {
        format!("the Temporal frontend {}", self.address)
    }
    fn record(&self) -> String {
        format!(
            "annotation {} and status.registeredName",
            paved_api::annotations::CREATE_SUCCEEDED
        )
    }
}

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
    /// create and its record), or an existing one the claim adopts that carries no
    /// other claim's mark: record it, then go on as `then`.
    Adopt(Box<Decision>),
    /// The cloud is still working on it.
    Wait(String),
    /// Fields to correct now.
    Update(Vec<Drift>),
    /// As desired (or waiting only for the maintenance window).
    Ready,
    /// Something a human must look at; nothing is written.
    Refuse(Reason, String),
    /// An existing resource the claim only looks at: report what it is, write nothing.
    Observe,
}

/// A decision, with what waits for the maintenance window (see `Managed::hold`).
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    pub decision: Decision,
    pub held: Vec<Drift>,
}

/// Pure: the next step for a claim's resource of kind `kind`.
pub fn decide<K: Managed>(
    kind: &K,
    guard: Guard,
    d: &K::Desired,
    seen: &Observation<K::Observed>,
) -> Decided {
    let refuse = |r, m: String| Decided {
        decision: Decision::Refuse(r, m),
        held: vec![],
    };
    if kind.observe_only(d) {
        return match seen {
            Observation::Present(_) => Decided {
                decision: Decision::Observe,
                held: vec![],
            },
            // Never made here: there is nothing to make it again from.
            _ => refuse(
                Reason::ExternalResourceMissing,
                format!(
                    "{} does not exist in {}: there is nothing to observe (Paved never creates a database a claim names in spec.existing)",
                    kind.named(d),
                    kind.place(d)
                ),
            ),
        };
    }
    let o = match seen {
        Observation::OwnedByOther { owner } => {
            return refuse(
                Reason::OwnedByOther,
                format!(
                    "{} exists but belongs to {owner}; Paved will not adopt it",
                    kind.named(d)
                ),
            )
        }
        // An existing database to adopt that is not there (a typo, another account or
        // region): nothing is ever made in its place.
        Observation::Absent if kind.names_existing(d) => {
            return refuse(
                Reason::ExternalResourceMissing,
                format!(
                    "{} does not exist in {}: there is nothing to adopt (Paved never creates a database a claim names in spec.existing)",
                    kind.named(d),
                    kind.place(d)
                ),
            )
        }
        // Made once already: never a second one. Deleted outside Paved, or looked
        // for in the wrong place; a human decides.
        Observation::Absent if guard.succeeded => {
            return refuse(
                Reason::ExternalResourceMissing,
                format!(
                    "{} was created ({}) but {} has no such thing; Paved will not create another. \
                     Restore it, or have the platform clear that record to create it anew",
                    kind.named(d),
                    kind.record(),
                    kind.place(d)
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
    let (step, held) = match kind.plan(d, o) {
        Plan::Create => (Decision::Create, vec![]),
        Plan::Wait(m) => (Decision::Wait(m), vec![]),
        Plan::Terminal { reason, message } => (Decision::Refuse(reason, message), vec![]),
        Plan::UpToDate => (Decision::Ready, vec![]),
        Plan::Update(drift) => {
            let (now, later) = kind.hold(drift, d);
            if now.is_empty() {
                (Decision::Ready, later)
            } else {
                (Decision::Update(now), later)
            }
        }
    };
    let decision = match step {
        step if guard.succeeded => step,
        // An existing database is recorded as the claim's only when the step that
        // marks it goes out: one that cannot be taken over (another key), or is busy
        // (and so not judged yet), is nothing of the claim's.
        step if !kind.marked(d, o) && !matches!(step, Decision::Update(_)) => step,
        step => Decision::Adopt(Box::new(step)),
    };
    Decided { decision, held }
}

/// What an adoption took back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adopted {
    /// Nothing: the resource was recorded as the claim's already (or not there).
    No,
    /// A resource of the claim's, by its mark, that was never recorded (a crash).
    Recovered,
    /// An existing resource the claim took over (`spec.existing.mode: Adopt`).
    TakenOver,
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
pub enum Driven<O> {
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
    /// As desired: the observed resource, and what waits for the window.
    Ready { observed: Box<O>, held: Vec<Drift> },
    /// An existing resource looked at, nothing written.
    Observed(Box<O>),
}

/// One reconcile's cloud side: observe, decide, act. `Adopted` says what was taken
/// over (for the caller's Event).
pub async fn drive<K: Managed>(
    kind: &K,
    provider: &dyn ExternalClient<K::Desired, K::Observed>,
    recorder: &dyn GuardRecorder,
    guard: Guard,
    d: &K::Desired,
    crash: &(dyn Fn(&str) + Sync),
) -> Result<(Driven<K::Observed>, Adopted), RecordError> {
    let seen = match provider.observe(d).await {
        Ok(s) => s,
        Err(e) => return Ok((Driven::Failed(e), Adopted::No)),
    };
    let settled = match &seen {
        Observation::Present(o) => kind.settle(d, o),
        _ => d.clone(),
    };
    let d = &settled;
    let Decided { decision, held } = decide(kind, guard, d, &seen);
    let (decision, adopted) = match decision {
        Decision::Adopt(then) => {
            recorder.succeeded().await?;
            let how = match &seen {
                Observation::Present(o) if !kind.marked(d, o) => Adopted::TakenOver,
                _ => Adopted::Recovered,
            };
            (*then, how)
        }
        other => (other, Adopted::No),
    };
    let effective = kind.without(d, &held);
    let driven = match decision {
        Decision::Adopt(_) => unreachable!("adoption is unwrapped above"),
        Decision::Refuse(r, m) => Driven::Refused(r, m),
        Decision::Observe => {
            let Observation::Present(o) = seen else {
                unreachable!("observing is decided only for a present resource")
            };
            Driven::Observed(Box::new(o))
        }
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
                unreachable!("an update is decided only for a present resource")
            };
            match provider.update(&effective, o).await {
                Ok(()) => Driven::Updated(drift),
                Err(e) => Driven::Failed(e),
            }
        }
        Decision::Ready => {
            let Observation::Present(o) = seen else {
                unreachable!("ready is decided only for a present resource")
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
        let running = Default::default();
        let kind = Database {
            running: &running,
            now: minute_of_week_at(0),
        };
        decide(&kind, guard, &d, seen).decision
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
        let at = |now| Database {
            running: &running,
            now,
        };
        let out = decide(&at(wednesday_noon), MADE, &d, &seen);
        assert_eq!(out.decision, Decision::Ready);
        assert_eq!(out.held[0].field, "instanceClass");
        let sunday_4am = 6 * 1440 + 4 * 60;
        let out = decide(&at(sunday_4am), MADE, &d, &seen);
        assert!(matches!(out.decision, Decision::Update(_)));
        assert!(out.held.is_empty());
    }

    #[test]
    fn a_temporal_namespace_goes_through_the_same_guard() {
        let d = DesiredTemporalNamespace {
            name: "svc.wf".into(),
            owner_uid: "uid-1".into(),
            description: String::new(),
            owner_email: String::new(),
            retention_days: 7,
            data: [(
                paved_compose::temporal::OWNER_KEY.to_string(),
                "uid-1".to_string(),
            )]
            .into(),
            history_archival_uri: None,
            visibility_archival_uri: None,
            allow_deletion: false,
            poll_interval: std::time::Duration::from_secs(60),
        };
        let kind = TemporalNamespace {
            address: "127.0.0.1:7233",
        };
        let ours = ObservedTemporalNamespace {
            state: "Registered".into(),
            retention_seconds: 7 * 86_400,
            data: d.data.clone(),
            ..Default::default()
        };
        let step = |guard, seen: &Observation<ObservedTemporalNamespace>| {
            decide(&kind, guard, &d, seen).decision
        };
        assert_eq!(step(NEW, &Observation::Absent), Decision::Create);
        // Registered, then deleted in Temporal: never registered a second time.
        assert!(matches!(
            step(MADE, &Observation::Absent),
            Decision::Refuse(Reason::ExternalResourceMissing, m)
                if m.contains("svc.wf") && m.contains("127.0.0.1:7233")
        ));
        assert_eq!(
            step(PENDING, &Observation::Present(ours.clone())),
            Decision::Adopt(Box::new(Decision::Ready))
        );
        let mut shorter = ours;
        shorter.retention_seconds = 86_400;
        assert!(matches!(
            step(MADE, &Observation::Present(shorter)),
            Decision::Update(drift) if drift[0].field == "retention"
        ));
        assert!(matches!(
            step(NEW, &Observation::OwnedByOther { owner: "claim uid-2".into() }),
            Decision::Refuse(Reason::OwnedByOther, m) if m.contains("Temporal namespace svc.wf")
        ));
    }

    #[test]
    fn an_observed_database_is_only_looked_at() {
        let mut d = desired();
        d.observe_only = true;
        let running = Default::default();
        let kind = Database {
            running: &running,
            now: 0,
        };
        // Whatever the guard says and whoever's it is: never created, never adopted.
        for guard in [NEW, PENDING, MADE] {
            let mut theirs = present("available", &d);
            if let Observation::Present(o) = &mut theirs {
                o.owner_uid = Some("someone-else".into());
                o.publicly_accessible = Some(true);
            }
            assert_eq!(
                decide(&kind, guard, &d, &theirs).decision,
                Decision::Observe
            );
            assert!(matches!(
                decide(&kind, guard, &d, &Observation::Absent).decision,
                Decision::Refuse(Reason::ExternalResourceMissing, m) if m.contains("nothing to observe")
            ));
        }
    }
}
