//! The reconciler tier between the pure unit tests and the e2e scenarios: the
//! operator's cloud step (`paved_cloud::decide::drive`, the code the PostgreSQLInstance
//! controller runs) against the in-memory provider, with the create guard in memory.
//! Crashes at every step of a create, injected provider errors and every deletion
//! policy, in milliseconds and without a control plane.

use std::sync::{Arc, Mutex};

use paved_api::{DeletionPolicy, PostgreSQLInstanceStatus, Reason};
use paved_cloud::{
    decide::{drive, Adopted, Database, Driven, Guard, GuardRecorder, RecordError},
    fake::{Call, FakeDatabases},
    DeleteProgress, ExternalClient, ProviderError,
};
use paved_compose::postgresql::{
    deletion_policy, doomed, DeletionCause, DesiredDatabase, ObservedDatabase, Placement,
    DEFAULT_MAINTENANCE_WINDOW,
};

/// The create guard in memory; `fail_at` makes one record fail, as a crash there would
/// leave it.
#[derive(Default)]
struct MemGuard {
    guard: Mutex<Guard>,
    failed: Mutex<bool>,
    fail_at: Mutex<Option<&'static str>>,
}

impl MemGuard {
    fn get(&self) -> Guard {
        *self.guard.lock().unwrap()
    }
    fn check(&self, at: &'static str) -> Result<(), RecordError> {
        let mut f = self.fail_at.lock().unwrap();
        if *f == Some(at) {
            *f = None;
            return Err(RecordError(format!("crashed at {at}")));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl GuardRecorder for MemGuard {
    async fn pending(&self) -> Result<(), RecordError> {
        self.check("pending")?;
        self.guard.lock().unwrap().pending = true;
        Ok(())
    }
    async fn succeeded(&self) -> Result<(), RecordError> {
        self.check("succeeded")?;
        let mut g = self.guard.lock().unwrap();
        g.pending = true;
        g.succeeded = true;
        Ok(())
    }
    async fn failed(&self) -> Result<(), RecordError> {
        *self.failed.lock().unwrap() = true;
        Ok(())
    }
}

fn desired(uid: &str) -> DesiredDatabase {
    DesiredDatabase {
        provider: paved_api::Cloud::Aws,
        region: "us-east-1".into(),
        external_name: format!("paved-{uid}"),
        owner_uid: uid.into(),
        instance_class: "db.t4g.medium".into(),
        storage_gb: 50,
        engine_version: "16".into(),
        storage_encrypted: true,
        kms_key_id: Some("key".into()),
        tls_required: true,
        backup_retention_days: 7,
        deletion_policy: DeletionPolicy::Snapshot,
        database_name: format!("paved_{uid}"),
        master_username: format!("paved_{uid}"),
        maintenance_window: DEFAULT_MAINTENANCE_WINDOW.into(),
        ..Default::default()
    }
}

/// An empty cloud and a claim that has recorded nothing.
fn fresh() -> (Arc<FakeDatabases>, Arc<MemGuard>) {
    (
        Arc::new(FakeDatabases::default()),
        Arc::new(MemGuard::default()),
    )
}

/// One reconcile, in a task of its own so a crash point can kill it (a panic there
/// stands for the process dying at that point).
async fn once(
    fake: &Arc<FakeDatabases>,
    guard: &Arc<MemGuard>,
    d: &DesiredDatabase,
    crash_at: Option<&'static str>,
) -> Option<Driven<ObservedDatabase>> {
    let (fake, guard, d) = (fake.clone(), guard.clone(), d.clone());
    let task = tokio::spawn(async move {
        let crash = move |point: &str| {
            if Some(point) == crash_at {
                panic!("crash point {point}");
            }
        };
        let g = guard.get();
        let running = PostgreSQLInstanceStatus::default();
        let kind = Database {
            running: &running,
            now: 0,
        };
        drive(&kind, fake.as_ref(), guard.as_ref(), g, &d, &crash).await
    });
    match task.await {
        Ok(Ok((driven, _adopted))) => Some(driven),
        // A record that failed or a crash: the reconcile stopped there.
        Ok(Err(_)) | Err(_) => None,
    }
}

/// Reconciles until Ready (bounded), returning every step.
async fn until_ready(
    fake: &Arc<FakeDatabases>,
    guard: &Arc<MemGuard>,
    d: &DesiredDatabase,
) -> Vec<Driven<ObservedDatabase>> {
    let mut steps = vec![];
    for _ in 0..10 {
        let step = once(fake, guard, d, None).await.expect("no crash armed");
        let ready = matches!(step, Driven::Ready { .. });
        steps.push(step);
        if ready {
            return steps;
        }
    }
    panic!("not ready after 10 reconciles: {steps:?}");
}

#[tokio::test]
async fn a_new_claim_is_created_once_and_becomes_ready() {
    let (fake, guard) = fresh();
    let d = desired("new");
    let steps = until_ready(&fake, &guard, &d).await;
    assert_eq!(steps[0], Driven::Created);
    assert_eq!(fake.count(Call::Create), 1);
    assert_eq!(
        guard.get(),
        Guard {
            pending: true,
            succeeded: true
        }
    );
    // Ready again on the next look, with nothing written.
    let again = once(&fake, &guard, &d, None).await.unwrap();
    assert!(matches!(again, Driven::Ready { .. }));
    assert_eq!((fake.count(Call::Create), fake.count(Call::Update)), (1, 0));
}

#[tokio::test]
async fn a_crash_at_every_step_of_a_create_leaves_exactly_one_database() {
    for (crash, record) in [
        (Some("before-create"), None),
        (Some("after-create"), None),
        (None, Some("pending")),
        (None, Some("succeeded")),
    ] {
        let (fake, guard) = fresh();
        *guard.fail_at.lock().unwrap() = record;
        let d = desired("crash");
        assert_eq!(
            once(&fake, &guard, &d, crash).await,
            None,
            "{crash:?} {record:?}: the reconcile died"
        );
        until_ready(&fake, &guard, &d).await;
        assert_eq!(
            fake.databases().len(),
            1,
            "{crash:?} {record:?}: exactly one database"
        );
        assert_eq!(
            guard.get(),
            Guard {
                pending: true,
                succeeded: true
            },
            "{crash:?} {record:?}"
        );
    }
}

#[tokio::test]
async fn provider_reasons_reach_the_claim_unchanged() {
    let (fake, guard) = fresh();
    let d = desired("reasons");
    fake.fail_next(
        Call::Observe,
        ProviderError::Throttled {
            retry_after: std::time::Duration::from_secs(7),
            message: "slow down".into(),
        },
    );
    let step = once(&fake, &guard, &d, None).await.unwrap();
    assert!(
        matches!(&step, Driven::Failed(e) if e.reason() == Reason::Throttled),
        "{step:?}"
    );
    for reason in [
        Reason::SecretConflict,
        Reason::ProviderMisconfigured,
        Reason::ProviderAccessDenied,
    ] {
        fake.fail_next(
            Call::Create,
            ProviderError::Terminal {
                reason,
                message: "no".into(),
            },
        );
        let step = once(&fake, &guard, &d, None).await.unwrap();
        assert!(
            matches!(&step, Driven::Failed(e) if e.reason() == reason),
            "{step:?}"
        );
        assert!(*guard.failed.lock().unwrap(), "a failed create is recorded");
    }
    assert!(fake.databases().is_empty());
}

#[tokio::test]
async fn another_claims_database_and_a_lost_one_are_left_to_a_human() {
    let (fake, guard) = fresh();
    let d = desired("taken");
    let mut theirs = ObservedDatabase {
        state: "available".into(),
        owner_uid: Some("someone-else".into()),
        ..Default::default()
    };
    fake.put(&d.external_name, theirs.clone());
    let step = once(&fake, &guard, &d, None).await.unwrap();
    assert!(
        matches!(step, Driven::Refused(Reason::OwnedByOther, _)),
        "{step:?}"
    );
    assert_eq!(fake.count(Call::Create), 0);

    // Made, then deleted outside Paved: never made again on its own.
    theirs.owner_uid = None;
    let (fake, guard) = fresh();
    *guard.guard.lock().unwrap() = Guard {
        pending: true,
        succeeded: true,
    };
    let step = once(&fake, &guard, &d, None).await.unwrap();
    assert!(
        matches!(step, Driven::Refused(Reason::ExternalResourceMissing, _)),
        "{step:?}"
    );
    assert_eq!(fake.count(Call::Create), 0);
}

#[tokio::test]
async fn every_deletion_policy_acts_on_the_recorded_placement() {
    for (policy, cause, kept) in [
        (DeletionPolicy::Delete, DeletionCause::Direct, false),
        (DeletionPolicy::Snapshot, DeletionCause::Direct, false),
        (DeletionPolicy::Orphan, DeletionCause::Direct, true),
        (DeletionPolicy::Orphan, DeletionCause::Cascade, true),
    ] {
        let (fake, guard) = fresh();
        let d = desired("gone");
        until_ready(&fake, &guard, &d).await;
        // Recorded at create; the Composition may say anything by now.
        let placement = Placement::of(&d, "pg");
        let target = doomed(
            &placement,
            &d.owner_uid,
            deletion_policy(policy, cause, true),
        );
        let mut done = None;
        for _ in 0..5 {
            match fake.delete(&target).await.unwrap() {
                DeleteProgress::Waiting(_) => continue,
                other => {
                    done = Some(other);
                    break;
                }
            }
        }
        assert!(
            matches!(done, Some(DeleteProgress::Done(_))),
            "{policy:?}: {done:?}"
        );
        assert_eq!(
            fake.databases().contains_key(&d.external_name),
            kept,
            "{policy:?} {cause:?}"
        );
    }
    // A cascade never runs a plain Delete.
    assert_eq!(
        deletion_policy(DeletionPolicy::Delete, DeletionCause::Cascade, true),
        DeletionPolicy::Snapshot
    );
}

/// An existing database as someone else left it: unmarked, public, short backups,
/// bigger than the Composition's default, with a database inside of its own name.
fn legacy(d: &DesiredDatabase) -> ObservedDatabase {
    ObservedDatabase {
        state: "available".into(),
        owner_uid: None,
        instance_class: Some("db.r6g.xlarge".into()),
        storage_gb: Some(500),
        multi_az: Some(true),
        storage_encrypted: Some(true),
        kms_key_id: d.kms_key_id.clone(),
        publicly_accessible: Some(true),
        backup_retention_days: Some(1),
        deletion_protection: Some(false),
        tls_required: Some(false),
        endpoint: Some("legacy.fake".into()),
        port: Some(5432),
        master_secret_ref: Some("legacy-admin".into()),
        database_name: Some("orders".into()),
        tags: Some([("Team".to_string(), "orders".to_string())].into()),
        ..Default::default()
    }
}

fn adopting(uid: &str, name: &str) -> DesiredDatabase {
    let mut d = desired(uid);
    d.external_name = name.into();
    d.adopting = true;
    d.deletion_policy = DeletionPolicy::Orphan;
    d.keeps_running = vec!["instanceClass", "storageGB", "multiAZ", "engineVersion"];
    d.tags = [(
        paved_compose::postgresql::OWNER_TAG.to_string(),
        uid.to_string(),
    )]
    .into();
    d
}

/// One reconcile with the `Adopted` it reports.
async fn once_adopted(
    fake: &Arc<FakeDatabases>,
    guard: &Arc<MemGuard>,
    d: &DesiredDatabase,
) -> (Driven<ObservedDatabase>, Adopted) {
    let running = PostgreSQLInstanceStatus::default();
    let kind = Database {
        running: &running,
        now: 0,
    };
    drive(
        &kind,
        fake.as_ref(),
        guard.as_ref(),
        guard.get(),
        d,
        &|_: &str| {},
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn an_existing_database_is_taken_over_in_place_at_its_own_size() {
    let (fake, guard) = fresh();
    let d = adopting("adopter", "legacy-orders");
    fake.put("legacy-orders", legacy(&d));
    let (first, how) = once_adopted(&fake, &guard, &d).await;
    assert_eq!(how, Adopted::TakenOver);
    assert!(
        matches!(&first, Driven::Updated(drift) if drift.iter().any(|x| x.field == "tags")),
        "{first:?}"
    );
    let steps = until_ready(&fake, &guard, &d).await;
    let Some(Driven::Ready { observed, .. }) = steps.last() else {
        unreachable!()
    };
    // Never created; the same one, now the claim's and at the floor, its shape kept.
    assert_eq!(fake.count(Call::Create), 0);
    assert_eq!(fake.databases().len(), 1);
    assert_eq!(observed.owner_uid.as_deref(), Some("adopter"));
    assert_eq!(observed.publicly_accessible, Some(false));
    assert_eq!(observed.backup_retention_days, Some(7));
    assert_eq!(observed.tls_required, Some(true));
    assert_eq!(observed.instance_class.as_deref(), Some("db.r6g.xlarge"));
    assert_eq!(observed.storage_gb, Some(500));
    assert_eq!(observed.multi_az, Some(true));
    assert!(guard.get().succeeded);
    // Once it is the claim's, a second look reports nothing taken over.
    let (_, how) = once_adopted(&fake, &guard, &d).await;
    assert_eq!(how, Adopted::No);
}

#[tokio::test]
async fn an_existing_database_another_key_or_another_claim_holds_is_not_taken() {
    // Another claim's mark: refused, nothing written, nothing recorded.
    let (fake, guard) = fresh();
    let d = adopting("adopter", "theirs");
    let mut theirs = legacy(&d);
    theirs.owner_uid = Some("someone-else".into());
    fake.put("theirs", theirs);
    let (step, how) = once_adopted(&fake, &guard, &d).await;
    assert!(
        matches!(&step, Driven::Refused(Reason::OwnedByOther, m) if m.contains("someone-else")),
        "{step:?}"
    );
    assert_eq!(how, Adopted::No);
    assert_eq!(
        (fake.count(Call::Update), guard.get().succeeded),
        (0, false)
    );

    // Encrypted with another key: refused with how to move it, and not recorded as
    // the claim's (so nothing of it ever is).
    let (fake, guard) = fresh();
    let d = adopting("adopter", "other-key");
    let mut other = legacy(&d);
    other.kms_key_id = Some("another-key".into());
    fake.put("other-key", other);
    let (step, _) = once_adopted(&fake, &guard, &d).await;
    assert!(
        matches!(&step, Driven::Refused(Reason::EncryptionMismatch, m) if m.contains("copy-db-snapshot")),
        "{step:?}"
    );
    assert_eq!(
        (fake.count(Call::Update), guard.get()),
        (0, Guard::default())
    );
    assert_eq!(fake.databases()["other-key"].owner_uid, None);
}
