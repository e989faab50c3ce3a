//! Composition controller: checks each Composition against the compliance floor and
//! reports the result as its Ready condition, so a bad one is visible before any
//! claim uses it.

use std::sync::Arc;

use kube::{
    runtime::{controller::Action, events::EventType},
    Api, ResourceExt,
};
use paved_api::{conditions, Composition, CompositionStatus, Condition, Reason, Status};
use paved_compose::check_composition;

use crate::{apply::apply_status, context::Context, Error};

pub const CONTROLLER: &str = "composition";

/// Pure: the status a Composition should have.
pub fn desired_status(c: &Composition, now: &str) -> CompositionStatus {
    let gen = c.metadata.generation;
    let mut status = c.status.clone().unwrap_or_default();
    let violations = check_composition(c);
    let (ready, reason, message) = if violations.is_empty() {
        (
            Status::True,
            Reason::Valid,
            "satisfies the compliance floor".to_string(),
        )
    } else {
        (
            Status::False,
            Reason::CompositionViolatesFloor,
            violations
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )
    };
    conditions::upsert(
        &mut status.conditions,
        Condition::new(conditions::READY, ready, reason, message, gen, now),
    );
    conditions::upsert(
        &mut status.conditions,
        Condition::new(
            conditions::SYNCED,
            Status::True,
            Reason::ReconcileSuccess,
            "",
            gen,
            now,
        ),
    );
    status.observed_generation = gen;
    status.composes = Some(c.composes().to_string());
    status.provider = c
        .spec
        .service
        .as_ref()
        .map(|s| s.cloud.to_string())
        .or_else(|| c.spec.postgresql.as_ref().map(|p| p.provider.to_string()))
        .or_else(|| c.spec.temporal.as_ref().map(|_| "temporal".to_string()));
    status
}

pub async fn reconcile(c: Arc<Composition>, ctx: Arc<Context>) -> Result<Action, Error> {
    let status = desired_status(&c, &crate::context::now());
    if c.status.as_ref() != Some(&status) {
        let was_ready = c
            .status
            .as_ref()
            .and_then(|s| conditions::find(&s.conditions, conditions::READY))
            .map(|r| r.status.clone());
        let ready = conditions::find(&status.conditions, conditions::READY).cloned();
        let api: Api<Composition> = Api::all(ctx.client.clone());
        apply_status(
            &api,
            &c.name_any(),
            "paved.dev/v1alpha1",
            "Composition",
            serde_json::to_value(&status)?,
        )
        .await?;
        ctx.metrics.write(CONTROLLER, "status");
        if let Some(r) = ready {
            if !r.is_true() && was_ready.as_deref() != Some("False") {
                ctx.event(
                    &*c,
                    EventType::Warning,
                    &r.reason,
                    "Validate",
                    r.message.clone(),
                )
                .await;
            }
        }
    }
    Ok(Action::await_change())
}
