//! TemporalNamespace controller: read → render → observe → plan → act → status.
//! The namespace is deleted from Temporal only when the claim says allowDeletion.

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::Secret;
use kube::{
    runtime::{controller::Action, events::EventType},
    Api, ResourceExt,
};
use paved_api::{
    annotations, labels, Composition, CompositionRevision, Reason, TemporalNamespace,
    TemporalNamespaceStatus,
};
use paved_cloud::{
    decide::{self, Driven, Guard},
    temporal::{TemporalProvider, TemporalTls},
    DeleteProgress, ExternalClient, Sensitive,
};
use paved_compose::temporal::{render_temporal, DesiredTemporalNamespace, TemporalInput};

use crate::{
    claim::{
        drift_corrected, drive_claim, finalizer_gate, provider_verdict, publish, recorded_guard,
        released, reported, AnnotationGuard, Verdict,
    },
    context::{jitter, Context},
    Error,
};

pub const CONTROLLER: &str = "temporalnamespace";

fn pick(all: &[Arc<Composition>], claim: &TemporalNamespace) -> Result<Arc<Composition>, String> {
    if let Some(r) = &claim.spec.composition_ref {
        return all
            .iter()
            .find(|c| {
                c.metadata.name.as_deref() == Some(r.name.as_str()) && c.spec.temporal.is_some()
            })
            .cloned()
            .ok_or_else(|| format!("temporal composition {} not found", r.name));
    }
    let defaults: Vec<_> = all
        .iter()
        .filter(|c| {
            c.spec.temporal.is_some()
                && c.labels().get(labels::DEFAULT_FOR).map(String::as_str) == Some("temporal")
        })
        .collect();
    match defaults.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(format!(
            "no temporal composition is labelled {}=temporal",
            labels::DEFAULT_FOR
        )),
        _ => Err(
            "several temporal compositions are the default; name one in spec.compositionRef".into(),
        ),
    }
}

/// TLS material from the Secret the Composition names, in the operator's namespace.
async fn tls(
    ctx: &Context,
    comp: &paved_api::TemporalComposition,
) -> Result<Option<TemporalTls>, Verdict> {
    let Some(t) = &comp.tls else { return Ok(None) };
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), &ctx.own_namespace)
        .get_opt(&t.secret_name)
        .await
        .ok()
        .flatten()
        .and_then(|s| s.data)
        .ok_or_else(|| {
            Verdict::problem(
                Reason::TlsSecretMissing,
                format!(
                    "TLS secret {}/{} for Temporal is missing",
                    ctx.own_namespace, t.secret_name
                ),
                jitter(Duration::from_secs(60)),
            )
        })?;
    let get = |k: &str| secret.get(k).map(|v| v.0.clone());
    Ok(Some(TemporalTls {
        ca_pem: get("ca.crt"),
        client_cert_pem: get("tls.crt"),
        client_key_pem: get("tls.key")
            .and_then(|k| String::from_utf8(k).ok())
            .map(Sensitive::new),
        server_name: t.server_name.clone(),
    }))
}

pub async fn reconcile(claim: Arc<TemporalNamespace>, ctx: Arc<Context>) -> Result<Action, Error> {
    let result = reconcile_inner(claim.clone(), ctx.clone()).await;
    reported(&*claim, &ctx, CONTROLLER, result).await
}

async fn reconcile_inner(
    claim: Arc<TemporalNamespace>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    if let Some(action) = finalizer_gate(&*claim, &ctx).await? {
        return Ok(action);
    }
    let api = crate::claim::api(&ctx, &*claim);
    let deleting = claim.metadata.deletion_timestamp.is_some();
    let mut status = claim.status.clone().unwrap_or_default();
    let verdict = match prepare(&claim, &ctx, &mut status).await? {
        Err(v) if deleting && !claim.spec.allow_deletion => {
            // Nothing will be deleted anyway: let the claim go.
            let _ = v;
            return released(
                &*claim,
                &ctx,
                "NamespaceKept",
                "allowDeletion is false: the Temporal namespace stays".into(),
            )
            .await;
        }
        // Refused before anything was registered (a bad name, a Composition it may not
        // use): nothing on Temporal is this claim's, so there is nothing to delete.
        Err(v)
            if deleting
                && claim.status.as_ref().and_then(|s| s.held_name()).is_none()
                && !recorded_guard(&*claim).pending =>
        {
            let _ = v;
            return released(
                &*claim,
                &ctx,
                "Deleted",
                "no Temporal namespace was ever registered for this claim".into(),
            )
            .await;
        }
        Err(v) => v,
        Ok((d, provider, address)) if deleting => match provider.delete(&d).await {
            Ok(DeleteProgress::Done(m)) => {
                return released(&*claim, &ctx, "Deleted", m).await;
            }
            Ok(DeleteProgress::Skipped(m)) => {
                return released(&*claim, &ctx, "NamespaceKept", m).await;
            }
            Ok(DeleteProgress::Waiting(m)) => {
                Verdict::waiting(Reason::Deleting, m, Duration::from_secs(5))
            }
            Err(e) => {
                ctx.providers.temporal.forget(&address).await;
                provider_verdict(&e)
            }
        },
        Ok((d, provider, address)) => {
            let v = converge(&claim, &ctx, &d, &provider, &address, &mut status).await?;
            if v.synced.0 != paved_api::Status::True && v.synced.1 == Reason::ProviderUnavailable {
                ctx.providers.temporal.forget(&address).await;
            }
            v
        }
    };
    publish(&*claim, &ctx, &api, CONTROLLER, status, &verdict).await?;
    Ok(Action::requeue(verdict.requeue))
}

/// What the create guard recorded before a register call (name, frontend), while the
/// status does not hold it yet (a crash right after the call).
fn pending_record<'a>(claim: &'a TemporalNamespace, key: &str) -> Option<&'a str> {
    let ann = claim.annotations();
    ann.contains_key(annotations::CREATE_PENDING)
        .then(|| ann.get(key).map(String::as_str))
        .flatten()
}

/// The name the claim holds: its status's, or the one recorded before a register call.
fn held_name(claim: &TemporalNamespace) -> Option<&str> {
    claim
        .status
        .as_ref()
        .and_then(|s| s.held_name())
        .or_else(|| pending_record(claim, annotations::EXTERNAL_NAME))
}

type Prepared = (DesiredTemporalNamespace, TemporalProvider, String);

async fn prepare(
    claim: &TemporalNamespace,
    ctx: &Context,
    status: &mut TemporalNamespaceStatus,
) -> Result<Result<Prepared, Verdict>, Error> {
    let ns = claim.namespace().unwrap_or_default();
    let slow = jitter(Duration::from_secs(300));
    let comp = match pick(&ctx.compositions.state(), claim) {
        Ok(c) => c,
        Err(m) => return Ok(Err(Verdict::problem(Reason::CompositionNotFound, m, slow))),
    };
    let comp_name = comp.name_any();
    status.composition = Some(CompositionRevision {
        name: comp_name.clone(),
        generation: comp.metadata.generation.unwrap_or(0),
    });
    let tc = comp
        .spec
        .temporal
        .as_ref()
        .expect("picked a temporal composition");
    let facts = ctx.namespace_facts(&ns, false).await?;
    if claim.metadata.deletion_timestamp.is_none() {
        if let Err(r) = paved_compose::tenancy::admit_in_namespace(
            "Temporal namespaces",
            ctx.reserved.why(&ns, &ctx.compositions.state()),
            &comp,
            &ns,
            &facts,
        ) {
            return Ok(Err(Verdict::problem(r.reason, r.message, slow)));
        }
    }
    let uid = claim.uid().unwrap_or_default();
    let input = TemporalInput {
        claim_name: &claim.name_any(),
        claim_namespace: &ns,
        claim_uid: &uid,
        spec: &claim.spec,
        facts: &facts,
        composition_name: &comp_name,
        composition: tc,
        held_name: held_name(claim),
    };
    let d = match render_temporal(&input) {
        Ok(d) => d,
        Err(e) => return Ok(Err(Verdict::problem(e.reason(), e.to_string(), slow))),
    };
    status.temporal_namespace = Some(d.name.clone());
    let tls = match tls(ctx, tc).await {
        Ok(t) => t,
        Err(v) => return Ok(Err(v)),
    };
    // Where it was registered (or a register may have reached, recorded before the
    // call): a deletion goes there, and a Composition that points elsewhere now is
    // never followed by a second registration.
    let recorded = status
        .frontend_address
        .clone()
        .or_else(|| pending_record(claim, annotations::EXTERNAL_LOCATION).map(String::from));
    let address = match (&claim.metadata.deletion_timestamp, recorded) {
        (Some(_), Some(recorded)) => recorded,
        (None, Some(recorded)) if recorded != tc.frontend_address => {
            return Ok(Err(Verdict::problem(
                Reason::LocationChanged,
                format!(
                    "Temporal namespace {} was registered on {recorded}; the Composition now points at {}. \
                     Paved will not register a second one or move it",
                    d.name, tc.frontend_address
                ),
                slow,
            )))
        }
        _ => tc.frontend_address.clone(),
    };
    match ctx.providers.temporal.get(&address, tls).await {
        Ok(p) => Ok(Ok((d, p, address))),
        Err(e) => Ok(Err(provider_verdict(&e))),
    }
}

/// The live path, on the generic driver: observe, decide (the create guard, ownership,
/// drift), act, and the status of what it found.
async fn converge(
    claim: &TemporalNamespace,
    ctx: &Context,
    d: &DesiredTemporalNamespace,
    provider: &TemporalProvider,
    address: &str,
    status: &mut TemporalNamespaceStatus,
) -> Result<Verdict, Error> {
    let mut guard = recorded_guard(claim);
    // Registered before the guard was recorded in annotations: the status holds the
    // name it was registered under (or found up to date under).
    if claim.status.as_ref().and_then(|s| s.held_name()).is_some() {
        guard = Guard {
            pending: true,
            succeeded: true,
        };
    }
    let recorder = AnnotationGuard {
        ctx,
        claim,
        place: vec![
            (annotations::EXTERNAL_NAME, Some(d.name.clone())),
            (annotations::EXTERNAL_LOCATION, Some(address.to_string())),
        ],
    };
    let kind = decide::TemporalNamespace { address };
    let driven = drive_claim(ctx, claim, &kind, provider, &recorder, guard, d).await?;
    let slow = jitter(Duration::from_secs(300));
    Ok(match driven {
        Driven::Refused(r, m) => Verdict::problem(r, m, slow),
        Driven::Failed(e) => provider_verdict(&e),
        Driven::Created => {
            // Registered under this name: the claim keeps it from now on.
            status.registered_name = Some(d.name.clone());
            status.frontend_address = Some(address.to_string());
            ctx.event(
                claim,
                EventType::Normal,
                "Registered",
                "Create",
                format!("registered Temporal namespace {}", d.name),
            )
            .await;
            Verdict::waiting(
                Reason::Creating,
                format!("registering {}", d.name),
                Duration::from_secs(1),
            )
        }
        Driven::Waiting(m) => Verdict::waiting(Reason::Creating, m, Duration::from_secs(2)),
        Driven::Updated(drift) => drift_corrected(ctx, claim, &drift, Duration::from_secs(2)).await,
        // A Temporal namespace is never observe-only (the kind says so).
        Driven::Observed(_) => {
            return Err(Error::Record(
                "a Temporal namespace was driven as observed".into(),
            ))
        }
        Driven::Ready { observed: o, .. } => {
            // Ours (the observation checked its claim-uid): the claim keeps this name.
            status.registered_name = Some(d.name.clone());
            status.frontend_address = Some(address.to_string());
            status.namespace_id = Some(o.id.clone());
            status.state = Some(o.state.clone());
            status.retention_days = Some(d.retention_days);
            Verdict::ready(
                format!("Temporal namespace {} is registered", d.name),
                jitter(d.poll_interval),
            )
        }
    })
}
