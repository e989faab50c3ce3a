//! Team controller: a Team that ServiceClaims name cannot go while they exist. Its
//! finalizer keeps it, so the admission policy keeps judging those claims by it: a
//! claim whose Team is gone would be writable (and deletable, with its namespace and
//! data) by anyone who may write claims at all.

use std::{sync::Arc, time::Duration};

use kube::{
    api::{Patch, PatchParams},
    runtime::{controller::Action, events::EventType},
    Api, ResourceExt,
};
use paved_api::Team;

use crate::{context::Context, Error};

pub const CONTROLLER: &str = "team";
/// Kept on a Team while ServiceClaims name it.
pub const FINALIZER: &str = "paved.dev/claims-exist";

/// Pure: the finalizers a Team should have now, or None when they are right.
pub fn finalizers(current: &[String], claims_exist: bool) -> Option<Vec<String>> {
    let has = current.iter().any(|f| f == FINALIZER);
    match (claims_exist, has) {
        (true, false) => Some(
            current
                .iter()
                .cloned()
                .chain(std::iter::once(FINALIZER.to_string()))
                .collect(),
        ),
        (false, true) => Some(
            current
                .iter()
                .filter(|f| *f != FINALIZER)
                .cloned()
                .collect(),
        ),
        _ => None,
    }
}

pub async fn reconcile(team: Arc<Team>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = team.name_any();
    let claims = ctx.team_services(&name);
    if let Some(want) = finalizers(team.finalizers(), !claims.is_empty()) {
        // The resourceVersion makes it a compare-and-swap: another controller's
        // finalizer, added meanwhile, is never dropped.
        let patch = serde_json::json!({ "metadata": {
            "finalizers": want,
            "resourceVersion": team.resource_version(),
        }});
        match Api::<Team>::all(ctx.client.clone())
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => ctx.metrics.write(CONTROLLER, "patch"),
            // Changed or gone meanwhile: the next event brings it back here.
            Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    if team.metadata.deletion_timestamp.is_some() && !claims.is_empty() {
        let mut names: Vec<String> = claims.iter().map(|c| c.name_any()).collect();
        names.sort();
        ctx.event(
            &*team,
            EventType::Warning,
            "DeletionWaiting",
            "Delete",
            format!(
                "Team {name} is kept while ServiceClaims name it ({}); their owners have lost access. \
                 Delete them, or move them to another team, first",
                names.join(", ")
            ),
        )
        .await;
    }
    // A claim moved to another team triggers only its new team: look again now and then.
    Ok(Action::requeue(crate::context::jitter(
        Duration::from_secs(600),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_finalizer_follows_whether_claims_name_the_team() {
        let other = "example.com/keep".to_string();
        assert_eq!(
            finalizers(std::slice::from_ref(&other), true),
            Some(vec![other.clone(), FINALIZER.to_string()])
        );
        assert_eq!(finalizers(&[FINALIZER.to_string()], true), None);
        assert_eq!(
            finalizers(&[other.clone(), FINALIZER.to_string()], false),
            Some(vec![other.clone()])
        );
        assert_eq!(finalizers(&[other], false), None);
    }
}
