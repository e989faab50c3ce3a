//! Team controller: a Team that ServiceClaims name cannot go while they exist. Its
//! finalizer keeps it, so the admission policy keeps judging those claims by it: a
//! claim whose Team is gone would be writable (and deletable, with its namespace and
//! data) by anyone who may write claims at all.

use std::{sync::Arc, time::Duration};

use kube::{
    runtime::{controller::Action, events::EventType},
    Api, ResourceExt,
};
use paved_api::Team;

use crate::{claim::set_finalizers, context::Context, Error};

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
    // An empty cache at start-up is not "no claims": that would lift every finalizer.
    ctx.claims_listed().await?;
    let claims = ctx.team_services(&name);
    let mut claims_exist = !claims.is_empty();
    if !claims_exist && team.finalizers().iter().any(|f| f == FINALIZER) {
        // Lifting it lets the Team go and its claims lose admission's guard: ask the
        // apiserver, not a cache a moment behind (a claim made a moment ago).
        claims_exist = any_claim_names(&ctx, &name).await?;
    }
    if let Some(want) = finalizers(team.finalizers(), claims_exist) {
        match set_finalizers(&Api::<Team>::all(ctx.client.clone()), &*team, want).await {
            Ok(()) => ctx.metrics.write(CONTROLLER, "patch"),
            // Gone meanwhile: nothing left to keep.
            Err(Error::Kube(kube::Error::Api(e))) if e.code == 404 => {}
            Err(e) => return Err(e),
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

/// Whether any ServiceClaim in the cluster names `team`, read fresh. Read as untyped
/// objects, so one malformed claim cannot make the answer "none".
async fn any_claim_names(ctx: &Context, team: &str) -> Result<bool, Error> {
    let ar = kube::api::ApiResource::erase::<paved_api::ServiceClaim>(&());
    let api: Api<kube::api::DynamicObject> = Api::all_with(ctx.client.clone(), &ar);
    let mut params = kube::api::ListParams::default().limit(500);
    loop {
        let page = api.list(&params).await?;
        if page
            .items
            .iter()
            .any(|c| c.data.pointer("/spec/owner").and_then(|o| o.as_str()) == Some(team))
        {
            return Ok(true);
        }
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(false),
        }
    }
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
