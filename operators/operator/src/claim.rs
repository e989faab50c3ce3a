//! What every cloud-backed claim controller shares: the verdict a reconcile reaches,
//! the finalizer, and publishing status and Events only on change.

use std::{fmt::Debug, time::Duration};

use kube::{
    api::{Patch, PatchParams},
    runtime::events::EventType,
    Api, Resource, ResourceExt,
};
use paved_api::{annotations, conditions, ClaimStatus, Condition, Reason, Status, FINALIZER};
use paved_cloud::{
    decide::{drive, Adopted, Driven, Guard, GuardRecorder, Managed, RecordError},
    ExternalClient, ProviderError,
};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::json;

use crate::{
    apply::apply_status,
    context::{jitter, now, Context},
    Error,
};

/// A (namespaced) claim kind whose status carries Paved's conditions.
pub trait Claim:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Debug
    + Send
    + Sync
{
    type Status: ClaimStatus + Clone + PartialEq + Serialize + Default;
    fn status(&self) -> Option<&Self::Status>;
}

impl Claim for paved_api::PostgreSQLInstance {
    type Status = paved_api::PostgreSQLInstanceStatus;
    fn status(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }
}

impl Claim for paved_api::TemporalNamespace {
    type Status = paved_api::TemporalNamespaceStatus;
    fn status(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }
}

/// A reconcile's verdict for the conditions.
pub struct Verdict {
    pub ready: (Status, Reason, String),
    pub synced: (Status, Reason, String),
    pub requeue: Duration,
}

impl Verdict {
    /// Something a human must look at (or a provider error): Ready and Synced false.
    pub fn problem(reason: Reason, message: String, requeue: Duration) -> Self {
        Verdict {
            ready: (Status::False, reason, message.clone()),
            synced: (Status::False, reason, message),
            requeue,
        }
    }
    /// Applied, but not usable yet.
    pub fn waiting(reason: Reason, message: String, requeue: Duration) -> Self {
        Verdict {
            ready: (Status::False, reason, message),
            synced: (Status::True, Reason::ReconcileSuccess, String::new()),
            requeue,
        }
    }
    pub fn ready(message: String, requeue: Duration) -> Self {
        Verdict {
            ready: (Status::True, Reason::Available, message),
            synced: (Status::True, Reason::ReconcileSuccess, String::new()),
            requeue,
        }
    }
}

/// A provider error as a verdict: retried on backoff, terminal ones slowly.
pub fn provider_verdict(e: &ProviderError) -> Verdict {
    Verdict::problem(
        e.reason(),
        e.to_string(),
        jitter(e.requeue_after(Duration::from_secs(10), Duration::from_secs(300))),
    )
}

/// Replaces the finalizer list only if it is still the one we read (resourceVersion
/// precondition), so another controller's finalizer is never dropped or revived; a
/// conflict just means the next reconcile sees the newer list.
pub async fn set_finalizers<K>(api: &Api<K>, obj: &K, finalizers: Vec<String>) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let patch = json!({ "metadata": { "finalizers": finalizers, "resourceVersion": obj.resource_version() } });
    match api
        .patch(
            &obj.name_any(),
            &PatchParams {
                field_manager: Some(paved_api::RECORDS_MANAGER.into()),
                ..Default::default()
            },
            &Patch::Merge(patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Whether Paved's finalizer is on the object.
pub fn has_finalizer<K: Resource>(obj: &K) -> bool {
    has_named_finalizer(obj, FINALIZER)
}

/// Whether finalizer `name` is on the object.
pub fn has_named_finalizer<K: Resource>(obj: &K, name: &str) -> bool {
    obj.finalizers().iter().any(|f| f == name)
}

/// Adds Paved's finalizer; true when it was missing (the patch triggers the next
/// reconcile, so the caller returns). Claims of any scope (ServiceClaims too).
pub async fn ensure_finalizer<K>(api: &Api<K>, obj: &K) -> Result<bool, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    ensure_named_finalizer(api, obj, FINALIZER).await
}

/// Adds finalizer `name`; true when it was missing.
pub async fn ensure_named_finalizer<K>(api: &Api<K>, obj: &K, name: &str) -> Result<bool, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    if has_named_finalizer(obj, name) {
        return Ok(false);
    }
    let mut finalizers = obj.finalizers().to_vec();
    finalizers.push(name.to_string());
    set_finalizers(api, obj, finalizers).await?;
    Ok(true)
}

pub async fn remove_finalizer<K>(api: &Api<K>, obj: &K) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    remove_named_finalizer(api, obj, FINALIZER).await
}

/// Removes finalizer `name`.
pub async fn remove_named_finalizer<K>(api: &Api<K>, obj: &K, name: &str) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let finalizers = obj
        .finalizers()
        .iter()
        .filter(|f| *f != name)
        .cloned()
        .collect();
    set_finalizers(api, obj, finalizers).await
}

/// Sets (`Some`) or removes (`None`) annotations on a claim, as the records field
/// manager: what the operator records there before and after a cloud write.
pub async fn annotate<K: Claim>(
    ctx: &Context,
    claim: &K,
    values: &[(&str, Option<String>)],
) -> Result<(), Error> {
    let ann: serde_json::Map<String, serde_json::Value> = values
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    api(ctx, claim)
        .patch(
            &claim.name_any(),
            &PatchParams {
                field_manager: Some(paved_api::RECORDS_MANAGER.into()),
                ..Default::default()
            },
            &Patch::Merge(json!({ "metadata": { "annotations": ann } })),
        )
        .await?;
    Ok(())
}

/// The create guard as a claim's annotations record it.
pub fn recorded_guard<K: Resource>(claim: &K) -> Guard {
    let ann = claim.annotations();
    Guard {
        pending: ann.contains_key(annotations::CREATE_PENDING),
        succeeded: ann.contains_key(annotations::CREATE_SUCCEEDED),
    }
}

/// The create guard, kept in the claim's annotations: `pending` (with `place`, where
/// the resource goes, so a deletion finds it) before the create, `succeeded` after it,
/// `failed` when it failed.
pub struct AnnotationGuard<'a, K> {
    pub ctx: &'a Context,
    pub claim: &'a K,
    pub place: Vec<(&'static str, Option<String>)>,
}

impl<K: Claim> AnnotationGuard<'_, K> {
    async fn write(&self, values: &[(&str, Option<String>)]) -> Result<(), RecordError> {
        annotate(self.ctx, self.claim, values)
            .await
            .map_err(|e| RecordError(e.to_string()))
    }
}

#[async_trait::async_trait]
impl<K: Claim> GuardRecorder for AnnotationGuard<'_, K> {
    async fn pending(&self) -> Result<(), RecordError> {
        let mut v = self.place.clone();
        v.push((annotations::CREATE_PENDING, Some(now())));
        self.write(&v).await
    }

    async fn succeeded(&self) -> Result<(), RecordError> {
        let mut v = self.place.clone();
        if !recorded_guard(self.claim).pending {
            v.push((annotations::CREATE_PENDING, Some(now())));
        }
        v.push((annotations::CREATE_SUCCEEDED, Some(now())));
        v.push((annotations::CREATE_FAILED, None));
        self.write(&v).await
    }

    async fn failed(&self) -> Result<(), RecordError> {
        self.write(&[(annotations::CREATE_FAILED, Some(now()))])
            .await
    }
}

/// One reconcile's cloud side through the generic driver (observe, decide, act, the
/// create guard in the claim's annotations), with crash points named after the claim
/// and the `Adopted` Event when an unrecorded resource of the claim's was taken back.
pub async fn drive_claim<K: Claim, M: Managed>(
    ctx: &Context,
    claim: &K,
    kind: &M,
    provider: &dyn ExternalClient<M::Desired, M::Observed>,
    recorder: &AnnotationGuard<'_, K>,
    guard: Guard,
    d: &M::Desired,
) -> Result<Driven<M::Observed>, Error> {
    let at = format!(
        "{}/{}",
        claim.namespace().unwrap_or_default(),
        claim.name_any()
    );
    let crash = |point: &str| crate::crash_point(point, &at);
    let (driven, adopted) = drive(kind, provider, recorder, guard, d, &crash)
        .await
        .map_err(|e| Error::Record(e.to_string()))?;
    let note = match adopted {
        Adopted::No => None,
        Adopted::Recovered => Some(format!(
            "found {} (ours by its ownership mark) and adopted it",
            kind.named(d)
        )),
        Adopted::TakenOver => Some(format!(
            "took over existing {} in {} (spec.existing, mode Adopt): it is this claim's from now on",
            kind.named(d),
            kind.place(d)
        )),
    };
    if let Some(note) = note {
        ctx.event(claim, EventType::Normal, "Adopted", "Adopt", note)
            .await;
    }
    Ok(driven)
}

/// A deletion's end: one Event saying what became of the resource, then Paved's
/// finalizer goes and the claim with it.
pub async fn released<K: Claim>(
    obj: &K,
    ctx: &Context,
    reason: &str,
    note: String,
) -> Result<kube::runtime::controller::Action, Error> {
    ctx.event(obj, EventType::Normal, reason, "Delete", note)
        .await;
    remove_finalizer(&api(ctx, obj), obj).await?;
    Ok(kube::runtime::controller::Action::await_change())
}

/// An Event a status change deserves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

/// Pure: the status to write (`None` when it is byte for byte the one stored: no
/// write) and the Events of the change. One rule for every kind: a Warning when
/// Synced turns False or changes reason while False; a Normal `Ready` when Ready turns
/// True; a Normal event with the reason when Ready turns False while Synced is True
/// (a database that went away). Nothing for a reconcile that changed nothing.
pub fn compute_status<S: ClaimStatus + Clone + PartialEq>(
    old: Option<&S>,
    mut status: S,
    ready: Condition,
    synced: Condition,
    generation: Option<i64>,
) -> (Option<S>, Vec<Note>) {
    let before = |t: &str| old.and_then(|s| conditions::find(s.conditions(), t).cloned());
    let (old_ready, old_synced) = (before(conditions::READY), before(conditions::SYNCED));
    conditions::upsert(status.conditions_mut(), ready.clone());
    conditions::upsert(status.conditions_mut(), synced.clone());
    status.set_observed_generation(generation);
    if old == Some(&status) {
        return (None, vec![]);
    }
    let changed = |old: &Option<Condition>, new: &Condition| {
        old.as_ref().map(|o| (&o.status, &o.reason)) != Some((&new.status, &new.reason))
    };
    let mut notes = vec![];
    if !synced.is_true() && changed(&old_synced, &synced) {
        notes.push(Note {
            warning: true,
            reason: synced.reason.to_string(),
            message: synced.message.clone(),
        });
    }
    if changed(&old_ready, &ready) {
        if ready.is_true() {
            notes.push(Note {
                warning: false,
                reason: "Ready".into(),
                message: ready.message.clone(),
            });
        } else if synced.is_true() && old_ready.as_ref().is_some_and(|o| o.is_true()) {
            notes.push(Note {
                warning: false,
                reason: ready.reason.to_string(),
                message: ready.message.clone(),
            });
        }
    }
    (Some(status), notes)
}

/// Writes what `compute_status` decided and records its Events: the one publisher
/// of every claim kind's status.
pub async fn publish_status<K, S>(
    obj: &K,
    ctx: &Context,
    api: &Api<K>,
    controller: &str,
    computed: (Option<S>, Vec<Note>),
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize,
{
    let (Some(status), notes) = computed else {
        return Ok(());
    };
    apply_status(
        api,
        &obj.name_any(),
        &K::api_version(&()),
        &K::kind(&()),
        serde_json::to_value(&status)?,
    )
    .await?;
    ctx.metrics.write(controller, "status");
    for n in notes {
        let kind = if n.warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        ctx.event(obj, kind, &n.reason, "Reconcile", n.message)
            .await;
    }
    Ok(())
}

/// A verdict published (see `compute_status`).
pub async fn publish<K: Claim>(
    obj: &K,
    ctx: &Context,
    api: &Api<K>,
    controller: &str,
    status: K::Status,
    verdict: &Verdict,
) -> Result<(), Error> {
    let gen = obj.meta().generation;
    let t = now();
    let (r, s) = (&verdict.ready, &verdict.synced);
    let ready = Condition::new(conditions::READY, r.0, r.1, r.2.clone(), gen, &t);
    let synced = Condition::new(conditions::SYNCED, s.0, s.1, s.2.clone(), gen, &t);
    let computed = compute_status(Claim::status(obj), status, ready, synced, gen);
    publish_status(obj, ctx, api, controller, computed).await
}

/// Emits the DriftCorrected Event and returns the verdict for a reconcile that just
/// corrected drift.
pub async fn drift_corrected<K: Claim>(
    ctx: &Context,
    obj: &K,
    drift: &[paved_compose::Drift],
    requeue: Duration,
) -> Verdict {
    let what = paved_compose::describe_drift(drift);
    ctx.event(
        obj,
        EventType::Normal,
        "DriftCorrected",
        "Update",
        what.clone(),
    )
    .await;
    Verdict::waiting(
        Reason::Updating,
        format!("correcting drift: {what}"),
        requeue,
    )
}

/// After a failed reconcile (the apiserver refused a write, RBAC, a webhook...):
/// best effort, says so as Synced=False/ReconcileError and keeps Ready as it was,
/// so `kubectl get` and Argo CD do not show a claim as synced while it is not.
pub async fn report_error<K: Claim>(
    obj: &K,
    ctx: &Context,
    api: &Api<K>,
    controller: &str,
    err: &Error,
) {
    let status = obj.status().cloned().unwrap_or_default();
    let ready = conditions::find(status.conditions(), conditions::READY)
        .map(|c| {
            let s = match c.status.as_str() {
                "True" => Status::True,
                "False" => Status::False,
                _ => Status::Unknown,
            };
            // A reason Paved does not write (another controller's) reads as ours.
            let reason = Reason::parse(&c.reason).unwrap_or(Reason::ReconcileError);
            (s, reason, c.message.clone())
        })
        .unwrap_or((Status::Unknown, Reason::ReconcileError, String::new()));
    let verdict = Verdict {
        ready,
        synced: (
            Status::False,
            Reason::ReconcileError,
            format!("reconcile failed: {err}"),
        ),
        requeue: Duration::ZERO,
    };
    if let Err(e) = publish(obj, ctx, api, controller, status, &verdict).await {
        tracing::debug!(error = %e, "could not report the reconcile error in status");
    }
}

/// The claim's own API, in its namespace.
pub fn api<K: Claim>(ctx: &Context, obj: &K) -> Api<K> {
    Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default())
}

/// Passes a reconcile's result through, reporting a failure in the claim's status.
pub async fn reported<K: Claim>(
    obj: &K,
    ctx: &Context,
    controller: &str,
    result: Result<kube::runtime::controller::Action, Error>,
) -> Result<kube::runtime::controller::Action, Error> {
    if let Err(e) = &result {
        report_error(obj, ctx, &api(ctx, obj), controller, e).await;
    }
    result
}

/// The finalizer's part of every reconcile: `Some(action)` when there is nothing
/// else to do now (the finalizer was just added — its patch triggers the next
/// reconcile — or the claim is going and Paved's finalizer is already gone).
pub async fn finalizer_gate<K: Claim>(
    obj: &K,
    ctx: &Context,
) -> Result<Option<kube::runtime::controller::Action>, Error> {
    let deleting = obj.meta().deletion_timestamp.is_some();
    let ours = has_finalizer(obj);
    if (!deleting && ensure_finalizer(&api(ctx, obj), obj).await?) || (deleting && !ours) {
        return Ok(Some(kube::runtime::controller::Action::await_change()));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use paved_api::PostgreSQLInstanceStatus;

    fn cond(t: &str, s: Status, reason: Reason) -> Condition {
        Condition::new(
            t,
            s,
            reason,
            format!("{reason}"),
            Some(1),
            "2026-12-06T00:00:00Z",
        )
    }

    fn run(
        old: Option<&PostgreSQLInstanceStatus>,
        ready: (Status, Reason),
        synced: (Status, Reason),
    ) -> (Option<PostgreSQLInstanceStatus>, Vec<Note>) {
        compute_status(
            old,
            old.cloned().unwrap_or_default(),
            cond(conditions::READY, ready.0, ready.1),
            cond(conditions::SYNCED, synced.0, synced.1),
            Some(1),
        )
    }

    #[test]
    fn one_event_per_transition_and_none_for_a_reconcile_that_changed_nothing() {
        use Reason::*;
        use Status::*;
        let reasons = |n: &[Note]| {
            n.iter()
                .map(|n| (n.warning, n.reason.clone()))
                .collect::<Vec<_>>()
        };
        // Creating: no event; the first status is written.
        let (s1, n) = run(None, (False, Creating), (True, ReconcileSuccess));
        assert!(n.is_empty());
        let s1 = s1.unwrap();
        // The same again: no write, no event.
        assert_eq!(
            run(Some(&s1), (False, Creating), (True, ReconcileSuccess)),
            (None, vec![])
        );
        // Ready: one Normal event.
        let (s2, n) = run(Some(&s1), (True, Available), (True, ReconcileSuccess));
        assert_eq!(reasons(&n), [(false, "Ready".to_string())]);
        let s2 = s2.unwrap();
        // A provider refusal: one Warning with the provider's reason, not repeated.
        let (s3, n) = run(Some(&s2), (False, SecretConflict), (False, SecretConflict));
        assert_eq!(reasons(&n), [(true, "SecretConflict".to_string())]);
        let s3 = s3.unwrap();
        assert_eq!(
            run(Some(&s3), (False, SecretConflict), (False, SecretConflict)).1,
            vec![]
        );
        // Another reason while still failing: one more Warning.
        let (_, n) = run(Some(&s3), (False, Throttled), (False, Throttled));
        assert_eq!(reasons(&n), [(true, "Throttled".to_string())]);
        // Ready lost while synced (the database went away): one Normal with the reason.
        let (_, n) = run(Some(&s2), (False, Creating), (True, ReconcileSuccess));
        assert_eq!(reasons(&n), [(false, "Creating".to_string())]);
    }
}
