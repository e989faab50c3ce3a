//! PostgreSQLInstance controller: read → render → observe → plan → act → status.
//! The provider is called only for what the plan decides; deletion goes through a
//! finalizer and the claim's deletion policy.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use k8s_openapi::{api::core::v1::Secret, ByteString};
use kube::{
    api::{Patch, PatchParams},
    runtime::{controller::Action, events::EventType},
    Api, ResourceExt,
};
use paved_api::{
    annotations, labels, Cloud, CompositionRevision, PostgreSQLInstance, PostgreSQLInstanceStatus,
    Reason, FIELD_MANAGER,
};
use paved_cloud::{
    aws::AwsProvider,
    azure::AzureProvider,
    decide::{Database, Driven},
    gcp::GcpProvider,
    local::LocalProvider,
    DeleteProgress, ExternalClient, Sensitive,
};
use paved_compose::postgresql::{
    delivery_objects, describe_placement, pick_composition, render_postgresql, ClaimRef,
    DesiredDatabase, ObservedDatabase, Placement, PostgresInput,
};
use serde_json::json;

use crate::{
    apply::{apply_all, Mode},
    claim::{
        annotate, drift_corrected, drive_claim, finalizer_gate, provider_verdict, publish,
        recorded_guard, released, reported, AnnotationGuard, Verdict,
    },
    context::{aligned, jitter, unix_now, Context},
    Error,
};

pub const CONTROLLER: &str = "postgresqlinstance";

pub async fn reconcile(claim: Arc<PostgreSQLInstance>, ctx: Arc<Context>) -> Result<Action, Error> {
    let result = reconcile_inner(claim.clone(), ctx.clone()).await;
    reported(&*claim, &ctx, CONTROLLER, result).await
}

async fn reconcile_inner(
    claim: Arc<PostgreSQLInstance>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    if let Some(action) = finalizer_gate(&*claim, &ctx).await? {
        return Ok(action);
    }
    let api = crate::claim::api(&ctx, &*claim);
    if claim.metadata.deletion_timestamp.is_some() {
        return delete(&claim, &ctx, &api).await;
    }
    let mut status = claim.status.clone().unwrap_or_default();
    let verdict = match desired(&claim, &ctx, &mut status).await? {
        Err(v) => v,
        Ok(d) => converge(&claim, &ctx, &d, &mut status).await?,
    };
    // An observed claim not looked at this time (refused, gone, a provider it cannot
    // reach): what it showed is no longer vouched for. A transient miss (a 5xx, a
    // throttle) keeps the last judgement until the retry.
    if claim.spec.observes()
        && !matches!(verdict.ready.1, Reason::Available | Reason::NotAvailable)
        && !matches!(
            verdict.synced.1,
            Reason::ProviderUnavailable | Reason::Throttled
        )
    {
        unobserved(
            &mut status,
            &ctx,
            &claim,
            verdict.synced.1,
            &verdict.synced.2,
        );
    }
    // An adopted database whose grant the platform took back: nothing of it is the
    // service's any more (its identity loses the credentials on the next pass).
    if claim.spec.adopts() && verdict.synced.1 == Reason::ExistingNotGranted {
        status.credentials_secret = None;
        status.resource_id = None;
        status.encryption_key_id = None;
    }
    // The status write that follows this reconcile's create (the snapshot it started
    // from had no pending create): crash points on both sides of it.
    let created_now = !claim
        .annotations()
        .contains_key(annotations::CREATE_PENDING)
        && verdict.ready.1 == Reason::Creating;
    if created_now {
        crate::crash_point("before-status", &crash_ref(&claim));
    }
    publish(&*claim, &ctx, &api, CONTROLLER, status, &verdict).await?;
    if created_now {
        crate::crash_point("after-status", &crash_ref(&claim));
    }
    Ok(Action::requeue(verdict.requeue))
}

/// The claim as crash points name it: `namespace/name`.
fn crash_ref(claim: &PostgreSQLInstance) -> String {
    format!(
        "{}/{}",
        claim.namespace().unwrap_or_default(),
        claim.name_any()
    )
}

/// Reads the namespace and Composition and renders the desired database.
async fn desired(
    claim: &PostgreSQLInstance,
    ctx: &Context,
    status: &mut PostgreSQLInstanceStatus,
) -> Result<Result<DesiredDatabase, Verdict>, Error> {
    let ns = claim.namespace().unwrap_or_default();
    let facts = ctx.namespace_facts(&ns, false).await?;
    let before = status.clone();
    let from_cache = desired_with(claim, ctx, status, facts).await?;
    // Until a create has succeeded the facts are read fresh: the classification decides
    // the floor, and some of what it sets cannot be changed later (a cache a moment
    // behind a ServiceClaim's edit must not decide it). Only then: a claim the cached
    // facts refuse writes nothing, and is looked at again on its requeue, so thousands
    // of waiting claims cost no reads. An observed database is never created.
    let made = claim
        .annotations()
        .contains_key(annotations::CREATE_SUCCEEDED);
    if !made && !claim.spec.observes() && from_cache.is_ok() {
        *status = before;
        let fresh = ctx.namespace_facts(&ns, true).await?;
        return desired_with(claim, ctx, status, fresh).await;
    }
    Ok(from_cache)
}

/// `desired`, with the namespace's facts.
async fn desired_with(
    claim: &PostgreSQLInstance,
    ctx: &Context,
    status: &mut PostgreSQLInstanceStatus,
    facts: paved_compose::postgresql::NamespaceFacts,
) -> Result<Result<DesiredDatabase, Verdict>, Error> {
    let ns = claim.namespace().unwrap_or_default();
    let slow = jitter(Duration::from_secs(300));
    let all = ctx.compositions.state();
    let comp = match pick_composition(&claim.spec, facts.cloud, &all) {
        Ok(c) => c.clone(),
        Err(m) => return Ok(Err(Verdict::problem(Reason::CompositionNotFound, m, slow))),
    };
    let comp_name = comp.name_any();
    // A claim made before placements were recorded is held to the Composition its
    // status names (the operator's record) until it gets one: the status is not moved
    // to another, or the next pass would record the other's place as this database's.
    let ann = claim.annotations();
    if ann.contains_key(annotations::CREATE_PENDING) && !ann.contains_key(annotations::PLACEMENT) {
        let was = recorded_composition(claim);
        if was != Some(comp_name.as_str()) {
            return Ok(Err(Verdict::problem(
                Reason::LocationChanged,
                format!(
                    "the database was made with Composition {} and the claim now resolves to {comp_name}; \
                     Paved will not record or act on a new place. Pin spec.compositionRef to {0}",
                    was.unwrap_or("(unknown)")
                ),
                slow,
            )));
        }
    }
    status.composition = Some(CompositionRevision {
        name: comp_name.clone(),
        generation: comp.metadata.generation.unwrap_or(0),
    });
    // Tenancy, before any cloud call.
    if let Err(r) = paved_compose::tenancy::admit_in_namespace(
        "databases",
        ctx.reserved.why(&ns, &all),
        &comp,
        &ns,
        &facts,
    ) {
        return Ok(Err(Verdict::problem(r.reason, r.message, slow)));
    }
    // The team's cap counts databases oldest first, so it holds new ones back and
    // never takes one from a database created before it.
    ctx.claims_listed().await?;
    let team = facts.team.as_deref().and_then(|t| ctx.team(t));
    let rank = team.as_ref().map_or(0, |t| {
        let dbs = ctx.team_databases(t);
        // Ranking is a pass over them: only needed past the cap.
        if dbs.len() > t.spec.limits.databases.max(0) as usize {
            paved_compose::tenancy::rank(claim, &dbs)
        } else {
            0
        }
    });
    if let Err(r) = paved_compose::tenancy::admit_database(
        &facts,
        team.as_deref(),
        // An observed database takes no slot of the team's cap.
        (!claim.spec.observes()).then_some(rank),
    ) {
        return Ok(Err(Verdict::problem(r.reason, r.message, slow)));
    }
    // Naming an existing database is the platform's grant, not the claim's say.
    if let Some(existing) = &claim.spec.existing {
        if let Err(r) = paved_compose::tenancy::admit_existing(
            &facts,
            team.as_deref(),
            &ctx.teams.state(),
            &ns,
            &comp_name,
            existing,
        ) {
            return Ok(Err(Verdict::problem(r.reason, r.message, slow)));
        }
    }
    Ok(render(claim, &facts, &comp).map_err(|(reason, m)| Verdict::problem(reason, m, slow)))
}

/// Renders the claim with a Composition (picked by the caller).
fn render(
    claim: &PostgreSQLInstance,
    facts: &paved_compose::postgresql::NamespaceFacts,
    comp: &paved_api::Composition,
) -> Result<DesiredDatabase, (Reason, String)> {
    let uid = claim.uid().unwrap_or_default();
    let ns = claim.namespace().unwrap_or_default();
    let Some(pg) = comp.spec.postgresql.as_ref() else {
        return Err((
            Reason::CompositionNotFound,
            format!(
                "composition {} is not a postgresql composition",
                comp.name_any()
            ),
        ));
    };
    let input = PostgresInput {
        claim_name: &claim.name_any(),
        claim_namespace: &ns,
        claim_uid: &uid,
        spec: &claim.spec,
        facts,
        composition_name: &comp.name_any(),
        composition: pg,
    };
    render_postgresql(&input).map_err(|e| (e.reason(), e.to_string()))
}

/// A provider client for one reconcile.
enum Provider {
    /// Boxed: it holds its parsed admin connection, the others a shared client.
    Local(Box<LocalProvider>),
    Aws(Arc<AwsProvider>),
    Azure(Arc<AzureProvider>),
    Gcp(Arc<GcpProvider>),
}

impl Provider {
    fn client(&self) -> &dyn ExternalClient<DesiredDatabase, ObservedDatabase> {
        match self {
            Provider::Local(p) => p.as_ref(),
            Provider::Aws(p) => p.as_ref(),
            Provider::Azure(p) => p.as_ref(),
            Provider::Gcp(p) => p.as_ref(),
        }
    }
}

/// The provider for a desired database, with what it needs from the cluster.
async fn provider(
    ctx: &Context,
    claim: &PostgreSQLInstance,
    d: &DesiredDatabase,
) -> Result<Result<Provider, Verdict>, Error> {
    let slow = jitter(Duration::from_secs(300));
    match d.provider {
        Cloud::Local => {}
        Cloud::Aws => return Ok(Ok(Provider::Aws(ctx.providers.aws(&d.region).await))),
        Cloud::Azure => {
            let Some(placement) = &d.azure else {
                return Ok(Err(Verdict::problem(
                    Reason::ProviderNotConfigured,
                    "the azure composition names no subscription, resource group and Key Vault"
                        .into(),
                    slow,
                )));
            };
            return Ok(ctx
                .providers
                .azure(placement)
                .await
                .map(Provider::Azure)
                .map_err(|e| provider_verdict(&e)));
        }
        Cloud::Gcp => {
            let Some(placement) = &d.gcp else {
                return Ok(Err(Verdict::problem(
                    Reason::ProviderNotConfigured,
                    "the gcp composition names no project".into(),
                    slow,
                )));
            };
            return Ok(ctx
                .providers
                .gcp(placement)
                .await
                .map(Provider::Gcp)
                .map_err(|e| provider_verdict(&e)));
        }
    }
    let Some(admin_ref) = d.local_admin.clone() else {
        return Ok(Err(Verdict::problem(
            Reason::InvalidComposition,
            "the local composition names no admin secret".into(),
            slow,
        )));
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &admin_ref.namespace);
    let dsn = secrets
        .get_opt(&admin_ref.name)
        .await?
        .and_then(|s| s.data)
        .and_then(|data| data.get(&admin_ref.key).cloned())
        .and_then(|v| String::from_utf8(v.0).ok());
    let Some(dsn) = dsn else {
        return Ok(Err(Verdict::problem(Reason::AdminSecretMissing,
            format!(
                "secret {}/{} with key {} (the local provider's admin connection string) is missing",
                admin_ref.namespace, admin_ref.name, admin_ref.key
            ),
            jitter(Duration::from_secs(30)),
        )));
    };
    // An observed database gets no credentials: nothing to read.
    let password = if d.observe_only {
        Sensitive::new(String::new())
    } else {
        connection_password(ctx, claim, d).await?
    };
    Ok(LocalProvider::new(Sensitive::new(dsn), password)
        .map(|p| Provider::Local(Box::new(p)))
        .map_err(|e| provider_verdict(&e)))
}

/// The password in the claim's credentials Secret in the platform's secrets
/// namespace, or a new one. That Secret is the source of truth: it is written before
/// the role is created, so a crash in between leaves a password Paved can still apply.
async fn connection_password(
    ctx: &Context,
    claim: &PostgreSQLInstance,
    d: &DesiredDatabase,
) -> Result<Sensitive, Error> {
    // A deletion's target names no Secret: dropping needs no password.
    if d.connection_secret.is_empty() {
        return Ok(Sensitive::generate_password());
    }
    let in_namespace = || async {
        Api::<Secret>::namespaced(ctx.client.clone(), &claim.namespace().unwrap_or_default())
            .get_opt(&d.connection_secret)
            .await
    };
    // A database from before the credentials moved to the secrets namespace keeps
    // the password its connection Secret has: its running apps keep working.
    let source = if ctx.is_service_namespace(&claim.namespace().unwrap_or_default()) {
        match credentials_secret(ctx, claim).await? {
            Some(s) => Some(s),
            None => in_namespace().await?,
        }
    } else {
        in_namespace().await?
    };
    let existing = source
        .and_then(|s| s.data)
        .and_then(|data| data.get("password").cloned())
        .and_then(|v| String::from_utf8(v.0).ok());
    Ok(match existing {
        Some(p) if !p.is_empty() => Sensitive::new(p),
        _ => Sensitive::generate_password(),
    })
}

/// The name of a `local` database's credentials Secret in the platform's secrets
/// namespace (what the service's SecretStore reads).
fn credentials_key(ctx: &Context, claim: &PostgreSQLInstance) -> Option<String> {
    // Recorded once written (status is the operator's): deletion finds it even when
    // the ServiceClaim that gave the owner is gone.
    if let Some(k) = claim
        .status
        .as_ref()
        .and_then(|s| s.credentials_secret.clone())
    {
        return Some(k);
    }
    let ns = claim.namespace().unwrap_or_default();
    let owner = ctx.service_owner(&ns)?;
    Some(paved_compose::service::local_credentials_key(
        &owner,
        &ns,
        &claim.name_any(),
    ))
}

/// The claim's credentials Secret, if there is one that is this claim's (by UID).
async fn credentials_secret(
    ctx: &Context,
    claim: &PostgreSQLInstance,
) -> Result<Option<Secret>, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.secrets_namespace);
    let uid = claim.uid().unwrap_or_default();
    let Some(key) = credentials_key(ctx, claim) else {
        return Ok(None);
    };
    Ok(secrets
        .get_opt(&key)
        .await?
        .filter(|s| s.labels().get(labels::CLAIM_UID) == Some(&uid)))
}

/// A Secret with the connection Secret's name that this claim does not own is
/// someone else's: never overwritten (and so never garbage-collected with the claim).
async fn secret_conflict(
    ctx: &Context,
    claim: &PostgreSQLInstance,
    d: &DesiredDatabase,
) -> Result<Option<Verdict>, Error> {
    let secrets: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &claim.namespace().unwrap_or_default());
    let uid = claim.uid().unwrap_or_default();
    Ok(secrets.get_opt(&d.connection_secret).await?.and_then(|s| {
        let ours = paved_compose::tenancy::connection_secret_is_ours(&s.metadata, &uid);
        (!ours).then(|| {
            Verdict::problem(
                Reason::SecretConflict,
                format!(
                    "Secret {} already exists and is not this claim's; choose another writeConnectionSecretToRef",
                    d.connection_secret
                ),
                jitter(Duration::from_secs(300)),
            )
        })
    }))
}

/// Writes a `local` database's credentials into the platform's secrets namespace,
/// where only its service's ServiceAccount may read them (the ServiceClaim's grant),
/// and from where its ExternalSecret delivers the connection Secret. A Secret of that
/// name that is not this claim's is never overwritten.
async fn write_credentials(
    ctx: &Context,
    claim: &PostgreSQLInstance,
    d: &DesiredDatabase,
    local: &LocalProvider,
) -> Result<Option<Verdict>, Error> {
    let Some(key) = credentials_key(ctx, claim) else {
        return Ok(Some(Verdict::waiting(
            Reason::Creating,
            "waiting for the namespace's ServiceClaim".into(),
            Duration::from_secs(5),
        )));
    };
    let uid = claim.uid().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.secrets_namespace);
    let live = secrets.get_opt(&key).await?;
    if let Some(live) = &live {
        if live.labels().get(labels::CLAIM_UID) != Some(&uid) {
            return Ok(Some(Verdict::problem(
                Reason::SecretConflict,
                format!(
                    "Secret {}/{key} (where this database's credentials are kept) exists and is not this claim's",
                    ctx.secrets_namespace
                ),
                jitter(Duration::from_secs(300)),
            )));
        }
    }
    let metadata = json!({
        "name": key,
        "namespace": ctx.secrets_namespace,
        "labels": {
            labels::MANAGED_BY: labels::MANAGED_BY_VALUE,
            labels::CLAIM_KIND: "PostgreSQLInstance",
            labels::CLAIM_NAME: claim.name_any(),
            labels::CLAIM_NAMESPACE: claim.namespace().unwrap_or_default(),
            labels::CLAIM_UID: uid,
        },
    });
    let data = [
        ("username", d.master_username.clone()),
        ("password", local.password().expose().to_string()),
    ];
    write_secret(ctx, live.as_ref(), metadata, &data).await?;
    Ok(None)
}

/// Server-side applies an Opaque Secret with `metadata` (its name and namespace
/// included) and `data`, unless `live` already says all of it: each poll of a Ready
/// database and a restarted operator's first pass write nothing.
async fn write_secret(
    ctx: &Context,
    live: Option<&Secret>,
    metadata: serde_json::Value,
    data: &[(&str, String)],
) -> Result<(), Error> {
    let data: BTreeMap<String, ByteString> = data
        .iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.clone().into_bytes())))
        .collect();
    let (name, ns) = (
        metadata["name"].as_str().unwrap_or_default().to_string(),
        metadata["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    );
    let body = json!({ "apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": "Opaque", "data": data });
    if let Some(live) = live {
        if crate::apply::holds(&serde_json::to_value(live)?, &body) {
            return Ok(());
        }
    }
    Api::<Secret>::namespaced(ctx.client.clone(), &ns)
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
    ctx.metrics.write(CONTROLLER, "apply");
    Ok(())
}

/// Writes the connection Secret itself (owned by the claim, so it goes with it): for a
/// `local` database in a namespace that is not a service's (one a Team lists), which
/// has no SecretStore of its own to deliver through. It is that team's namespace.
async fn write_connection_secret(
    ctx: &Context,
    claim: &PostgreSQLInstance,
    d: &DesiredDatabase,
    local: &LocalProvider,
) -> Result<(), Error> {
    let (host, port, password) = (local.host(), local.port(), local.password());
    let ns = claim.namespace().unwrap_or_default();
    // The local server speaks TLS only if its operator set it up.
    let sslmode = "prefer";
    let uri = format!(
        "postgresql://{}:{}@{}:{}/{}?sslmode={}",
        d.master_username,
        password.expose(),
        host,
        port,
        d.database_name,
        sslmode
    );
    let data = [
        ("host", host.to_string()),
        ("port", port.to_string()),
        ("database", d.database_name.clone()),
        ("username", d.master_username.clone()),
        ("password", password.expose().to_string()),
        ("sslmode", sslmode.to_string()),
        ("uri", uri),
    ];
    let metadata = json!({
        "name": d.connection_secret,
        "namespace": ns,
        "labels": {
            labels::MANAGED_BY: labels::MANAGED_BY_VALUE,
            labels::CLAIM_KIND: "PostgreSQLInstance",
            labels::CLAIM_NAME: claim.name_any(),
        },
        "ownerReferences": [{
            "apiVersion": "paved.dev/v1alpha1", "kind": "PostgreSQLInstance",
            "name": claim.name_any(), "uid": claim.uid().unwrap_or_default(),
            "controller": true, "blockOwnerDeletion": true,
        }],
    });
    let live = Api::<Secret>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&d.connection_secret)
        .await?;
    write_secret(ctx, live.as_ref(), metadata, &data).await
}

/// Deletes a `local` database's credentials Secret once the claim lets the database
/// go (deleted, snapshotted or orphaned): the claim that could deliver them is gone.
async fn forget_credentials(ctx: &Context, claim: &PostgreSQLInstance) -> Result<(), Error> {
    let Some(live) = credentials_secret(ctx, claim).await? else {
        return Ok(());
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.secrets_namespace);
    match secrets.delete(&live.name_any(), &Default::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(ae)) if ae.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The deletion is done: the claim's credentials go, then its finalizer.
async fn release(
    claim: &PostgreSQLInstance,
    ctx: &Context,
    reason: &str,
    message: String,
) -> Result<Action, Error> {
    forget_credentials(ctx, claim).await?;
    released(claim, ctx, reason, message).await
}

/// Whether External Secrets has delivered a `local` database's connection Secret
/// (one marked as this claim's). Before it did, Paved wrote that Secret itself (owned
/// by the claim): such a Secret goes, so the claim's ExternalSecret can write it; any
/// other Secret of that name is left to `secret_conflict`. One read serves both.
async fn local_connection_delivered(
    ctx: &Context,
    claim: &PostgreSQLInstance,
    d: &DesiredDatabase,
) -> Result<bool, Error> {
    let secrets: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &claim.namespace().unwrap_or_default());
    let uid = claim.uid().unwrap_or_default();
    let Some(live) = secrets.get_opt(&d.connection_secret).await? else {
        return Ok(false);
    };
    let written_by_paved = live
        .owner_references()
        .iter()
        .any(|o| o.kind == "PostgreSQLInstance" && o.uid == uid && o.controller == Some(true));
    if written_by_paved {
        secrets
            .delete(&d.connection_secret, &Default::default())
            .await?;
        ctx.metrics.write(CONTROLLER, "delete");
        return Ok(false);
    }
    Ok(paved_compose::tenancy::connection_secret_is_ours(
        &live.metadata,
        &uid,
    ))
}

async fn converge(
    claim: &PostgreSQLInstance,
    ctx: &Context,
    d: &DesiredDatabase,
    status: &mut PostgreSQLInstanceStatus,
) -> Result<Verdict, Error> {
    fill_status(status, d);
    let composition = status
        .composition
        .as_ref()
        .map(|c| c.name.clone())
        .unwrap_or_default();
    let placement = Placement::of(d, &composition);
    if let Some(moved) = location_changed(claim, d) {
        return Ok(Verdict::problem(
            Reason::LocationChanged,
            format!(
                "the database was created in {moved}; Paved will not create a second one \
                 or move data. Pin spec.compositionRef to the original composition"
            ),
            jitter(Duration::from_secs(300)),
        ));
    }
    // A claim created before placements were recorded gets one now (desired() held
    // it to the Composition its status names).
    let ann = claim.annotations();
    if ann.contains_key(annotations::CREATE_PENDING) && !ann.contains_key(annotations::PLACEMENT) {
        annotate(
            ctx,
            claim,
            &[(
                annotations::PLACEMENT,
                Some(serde_json::to_string(&placement)?),
            )],
        )
        .await?;
    }
    let provider = match provider(ctx, claim, d).await? {
        Ok(p) => p,
        Err(v) => return Ok(v),
    };
    if d.observe_only {
        return observe_existing(claim, ctx, d, &provider, status).await;
    }
    // Every provider: the connection Secret's name may already be taken by a Secret
    // that is not this claim's (another tool's, or one a tenant points us at). A cloud
    // database being adopted is taken over first and delivered once the name is free:
    // the Secret of the tool it comes from (a Crossplane claim's) goes only after the
    // cut-over, and Paved writes nothing there before.
    let deliver_later = d.adopting && !matches!(provider, Provider::Local(_));
    if !deliver_later {
        if let Some(v) = secret_conflict(ctx, claim, d).await? {
            return Ok(v);
        }
    }
    // The Secret first for a local database not yet made: a crash after the create
    // then still has the password (read or generated once per reconcile, so the
    // Secret and the role never get two different ones).
    let guard = recorded_guard(claim);
    let through_store = ctx.is_service_namespace(&claim.namespace().unwrap_or_default());
    // Recorded before the first write, so a deletion finds the credentials even if
    // the ServiceClaim that names their owner is gone by then.
    if let (Provider::Local(_), true) = (&provider, through_store) {
        status.credentials_secret = credentials_key(ctx, claim);
    }
    if let (Provider::Local(local), false) = (&provider, guard.succeeded) {
        if !through_store {
            write_connection_secret(ctx, claim, d, local).await?;
        } else if let Some(v) = write_credentials(ctx, claim, d, local).await? {
            return Ok(v);
        }
    }
    let recorder = AnnotationGuard {
        ctx,
        claim,
        place: vec![
            (
                annotations::EXTERNAL_NAME,
                Some(placement.external_name.clone()),
            ),
            (annotations::EXTERNAL_LOCATION, Some(placement.location())),
            (
                annotations::PLACEMENT,
                Some(serde_json::to_string(&placement)?),
            ),
        ],
    };
    let running = claim.status.clone().unwrap_or_default();
    let kind = Database {
        running: &running,
        now: paved_compose::postgresql::minute_of_week_at(unix_now()),
    };
    let driven = drive_claim(ctx, claim, &kind, provider.client(), &recorder, guard, d).await?;
    let (o, held) = match driven {
        Driven::Refused(r, m) => {
            return Ok(Verdict::problem(r, m, jitter(Duration::from_secs(300))))
        }
        Driven::Failed(e) => return Ok(provider_verdict(&e)),
        Driven::Created => {
            ctx.event(
                claim,
                EventType::Normal,
                "Created",
                "Create",
                format!("created {} {} on {}", d.provider, d.external_name, d.region),
            )
            .await;
            return Ok(Verdict::waiting(
                Reason::Creating,
                format!("{} is being created", d.external_name),
                Duration::from_secs(1),
            ));
        }
        Driven::Waiting(m) => {
            return Ok(Verdict::waiting(
                Reason::Creating,
                m,
                jitter(progress_poll(d)),
            ))
        }
        Driven::Updated(drift) => {
            return Ok(drift_corrected(ctx, claim, &drift, Duration::from_secs(2)).await)
        }
        Driven::Ready { observed, held } => (*observed, held),
        // decide() observes only a claim's `spec.existing`, handled above.
        Driven::Observed(_) => {
            return Err(Error::Record(
                "a database Paved manages was driven as observed".into(),
            ))
        }
    };
    // A new size or high availability waits for the maintenance window: the status
    // shows what runs, the message what waits.
    let pending = (!held.is_empty()).then(|| {
        format!(
            "waiting for the maintenance window {} (UTC) to change {}",
            d.maintenance_window,
            paved_compose::describe_drift(&held)
        )
    });
    // An adopted database is managed at the shape it runs at, where the claim is silent.
    let effective =
        paved_compose::postgresql::without(paved_compose::postgresql::as_running(d, &o), &held);
    let d = &effective;
    if d.adopting {
        status.storage_gb = Some(d.storage_gb);
        status.estimated_monthly_cost = d.estimated_monthly_cost.clone();
        // The Composition's key (the plan refused any other): what the service's
        // identity is granted to decrypt its credentials with.
        status.encryption_key_id = d.kms_key_id.clone();
    }
    status.endpoint = o.endpoint.clone();
    status.port = o.port;
    status.instance_class = o.instance_class.clone().or(Some(d.instance_class.clone()));
    status.multi_az = o.multi_az.or(Some(d.multi_az));
    status.engine_version = o.engine_version.clone().or(Some(d.engine_version.clone()));
    // Where the connection Secret's values come from: the master credentials, read by
    // its ExternalSecret through the namespace's SecretStore. Where Paved keeps the
    // credentials (local), Ready also means the Secret was delivered.
    let mut delivered = true;
    let (endpoint, port, secret, source) = match &provider {
        Provider::Local(local) => {
            if !through_store {
                write_connection_secret(ctx, claim, d, local).await?;
            } else if let Some(v) = write_credentials(ctx, claim, d, local).await? {
                return Ok(v);
            }
            if !local.can_login(d).await {
                if let Err(e) = local.reset_password(d).await {
                    return Ok(provider_verdict(&e));
                }
                if !local.can_login(d).await {
                    return Ok(Verdict::waiting(
                        Reason::ConnectionFailed,
                        "the database does not accept its credentials yet".into(),
                        Duration::from_secs(5),
                    ));
                }
            }
            if !through_store {
                return Ok(Verdict::ready(
                    format!(
                        "accepting connections; credentials in Secret {} (namespace {} has no SecretStore of a service)",
                        d.connection_secret,
                        claim.namespace().unwrap_or_default()
                    ),
                    aligned(d.poll_interval),
                ));
            }
            delivered = local_connection_delivered(ctx, claim, d).await?;
            let Some(key) = credentials_key(ctx, claim) else {
                return Ok(Verdict::waiting(
                    Reason::Creating,
                    "waiting for the namespace's ServiceClaim".into(),
                    Duration::from_secs(5),
                ));
            };
            status.credentials_secret = Some(key.clone());
            (
                local.host().to_string(),
                i32::from(local.port()),
                key.clone(),
                format!("Secret {}/{key}", ctx.secrets_namespace),
            )
        }
        cloud => {
            if d.adopting && o.master_secret_ref.is_none() && o.endpoint.is_some() {
                return Ok(Verdict::problem(
                    Reason::CredentialsNotManaged,
                    format!(
                        "{} is this claim's, but its master password is kept by no cloud service, and the Composition \
                         keeps it as it is (credentials.existingPassword: Keep), so no connection Secret is delivered. {}",
                        d.external_name,
                        match d.provider {
                            Cloud::Aws => format!(
                                "Have RDS manage it (aws rds modify-db-instance --db-instance-identifier {} \
                                 --manage-master-user-password --master-user-secret-kms-key-id <the Composition's key> \
                                 --apply-immediately), or ask the platform for a Composition that rotates it",
                                d.external_name
                            ),
                            _ => "Ask the platform for a Composition that rotates it (credentials.existingPassword: Rotate); \
                                  clients on the old password then move to the connection Secret"
                                .to_string(),
                        }
                    ),
                    aligned(d.poll_interval),
                ));
            }
            let (Some(endpoint), Some(port), Some(secret)) =
                (&o.endpoint, o.port, &o.master_secret_ref)
            else {
                return Ok(Verdict::waiting(
                    Reason::Creating,
                    "waiting for the endpoint and the master credentials secret".into(),
                    Duration::from_secs(10),
                ));
            };
            if let Provider::Aws(aws) = cloud {
                match aws.check_master_secret(d, secret).await {
                    Err(e) => return Ok(provider_verdict(&e)),
                    Ok(Some(problem)) => {
                        return Ok(Verdict::problem(
                            Reason::EncryptionMismatch,
                            problem,
                            jitter(Duration::from_secs(300)),
                        ))
                    }
                    Ok(None) => {}
                }
            }
            let source = match d.provider {
                Cloud::Aws => "the RDS-managed secret",
                Cloud::Azure => "Key Vault",
                _ => "Secret Manager",
            };
            // Named (never its value) so the service's own identity is allowed it.
            status.credentials_secret = Some(secret.clone());
            status.resource_id = o.resource_id.clone();
            (endpoint.clone(), port, secret.clone(), source.to_string())
        }
    };
    let claim_ref = ClaimRef {
        name: &claim.name_any(),
        namespace: &claim.namespace().unwrap_or_default(),
        uid: &claim.uid().unwrap_or_default(),
    };
    if deliver_later && secret_conflict(ctx, claim, d).await?.is_some() {
        // Looked at again soon: at a cut-over the other tool's Secret goes next.
        return Ok(Verdict::problem(
            Reason::SecretConflict,
            format!(
                "{} is this claim's; its connection Secret {} still belongs to something else (the tool it was \
                 adopted from removes it at the cut-over), so it is delivered once that Secret is gone",
                d.external_name, d.connection_secret
            ),
            jitter(Duration::from_secs(10)),
        ));
    }
    let objects = delivery_objects(&claim_ref, d, &endpoint, port, &secret);
    // Checked when they change, and again every resync period so hand edits are put
    // back; not on every poll of every claim. Read before written: objects that
    // already hold what they would be applied with (a restart's first pass) need no
    // write.
    let uid = claim.uid().unwrap_or_default();
    let fingerprint = crate::applied::fingerprint(&objects);
    let mut due = ctx.applied.refresh_due(&uid, fingerprint, ctx.resync);
    if due && crate::apply::up_to_date(&ctx.client, &objects).await? {
        ctx.applied.refreshed(&uid, fingerprint);
        due = false;
    }
    if due {
        if let Err(e) = apply_all(
            &ctx.client,
            &objects,
            Mode::ApplyInExisting,
            &ctx.metrics,
            CONTROLLER,
        )
        .await
        {
            if let kube::Error::Api(ae) = &e {
                if crate::apply::missing_api(ae) {
                    return Ok(Verdict::problem(
                        Reason::MissingAPI,
                        format!("External Secrets is not installed: {}", ae.message),
                        jitter(Duration::from_secs(300)),
                    ));
                }
            }
            return Err(e.into());
        }
        ctx.applied.refreshed(&uid, fingerprint);
    }
    if !delivered {
        return Ok(Verdict::waiting(
            Reason::SecretNotDelivered,
            format!(
                "waiting for External Secrets to write Secret {} through SecretStore {} (see ExternalSecret {})",
                d.connection_secret,
                paved_api::SECRET_STORE,
                d.connection_secret
            ),
            Duration::from_secs(2),
        ));
    }
    let ready_message = format!(
        "available at {endpoint}:{port}; ExternalSecret {} delivers the credentials from {source} through SecretStore {}",
        d.connection_secret,
        paved_api::SECRET_STORE
    );
    // On the wall clock's poll ticks, so claims of one cloud wake together and
    // share one list call.
    let ready_message = match &pending {
        Some(p) => format!("{ready_message}; {p}"),
        None => ready_message,
    };
    Ok(Verdict::ready(ready_message, aligned(d.poll_interval)))
}

/// An existing database the claim names (`spec.existing`, granted by its Team): read
/// where the Composition points, never written; status says what it runs as and every
/// way it falls short of the floor (`violations`, condition `Compliant`, one Event per
/// change, the `paved_database_violations` gauge). No credentials are delivered.
async fn observe_existing(
    claim: &PostgreSQLInstance,
    ctx: &Context,
    d: &DesiredDatabase,
    provider: &Provider,
    status: &mut PostgreSQLInstanceStatus,
) -> Result<Verdict, Error> {
    let running = PostgreSQLInstanceStatus::default();
    let kind = Database {
        running: &running,
        now: 0,
    };
    // Nothing is recorded and nothing created: the guard is never consulted.
    let recorder = AnnotationGuard {
        ctx,
        claim,
        place: vec![],
    };
    let driven = drive_claim(
        ctx,
        claim,
        &kind,
        provider.client(),
        &recorder,
        Default::default(),
        d,
    )
    .await?;
    let slow = jitter(Duration::from_secs(300));
    let o = match driven {
        Driven::Observed(o) => o,
        Driven::Refused(r, m) => return Ok(Verdict::problem(r, m, slow)),
        Driven::Failed(e) => return Ok(provider_verdict(&e)),
        other => {
            // decide() never plans a write for an observed database.
            return Err(Error::Record(format!(
                "an observed database was driven to {other:?}"
            )));
        }
    };
    status.endpoint = o.endpoint.clone();
    status.port = o.port;
    status.engine_version = o.engine_version.clone();
    status.instance_class = o.instance_class.clone();
    status.multi_az = o.multi_az;
    status.storage_gb = o.storage_gb;
    status.encryption_key_id = o.kms_key_id.clone();
    status.estimated_monthly_cost = match (&d.prices, &o.instance_class, o.storage_gb) {
        (Some(p), Some(class), Some(gb)) => paved_compose::postgresql::monthly_cost(p, class, gb),
        _ => None,
    };
    status.credentials_secret = None;
    status.resource_id = None;
    let judged = paved_compose::postgresql::judge(d, &o);
    let (compliant, reason, message) = if !judged.violations.is_empty() {
        (
            paved_api::Status::False,
            Reason::BelowFloor,
            format!(
                "{} falls short of the compliance floor in {} way(s): {}{}",
                d.external_name,
                judged.violations.len(),
                judged.violations.join("; "),
                if judged.unseen.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (not shown by {}, so not judged: {})",
                        d.provider,
                        judged.unseen.join(", ")
                    )
                }
            ),
        )
    } else if !judged.unseen.is_empty() {
        (
            paved_api::Status::Unknown,
            Reason::NotJudged,
            format!(
                "{} meets what {} shows of the floor; not shown, so not judged: {}",
                d.external_name,
                d.provider,
                judged.unseen.join(", ")
            ),
        )
    } else {
        (
            paved_api::Status::True,
            Reason::MeetsFloor,
            format!(
                "{} meets the compliance floor of its Composition",
                d.external_name
            ),
        )
    };
    judged_as(status, ctx, claim, compliant, reason, message).await;
    ctx.metrics.database_violations(
        &claim.namespace().unwrap_or_default(),
        &claim.name_any(),
        judged.violations.len(),
    );
    status.violations = judged.violations;
    // Looked at on the Composition's poll, whatever its state: Paved waits for nothing.
    if o.state != "available" {
        return Ok(Verdict::waiting(
            Reason::NotAvailable,
            format!(
                "{} is {} in {}/{}",
                d.external_name, o.state, d.provider, d.region
            ),
            aligned(d.poll_interval),
        ));
    }
    Ok(Verdict::ready(
        format!(
            "observed {} in {}/{} (read only: Paved writes, tags and deletes nothing of it)",
            d.external_name, d.provider, d.region
        ),
        aligned(d.poll_interval),
    ))
}

/// Sets the `Compliant` condition, with one Event when it changes.
async fn judged_as(
    status: &mut PostgreSQLInstanceStatus,
    ctx: &Context,
    claim: &PostgreSQLInstance,
    compliant: paved_api::Status,
    reason: Reason,
    message: String,
) {
    let was = paved_api::conditions::find(&status.conditions, paved_api::conditions::COMPLIANT)
        .map(|c| (c.status.as_str(), c.reason.as_str(), c.message.as_str()));
    if was != Some((compliant.as_str(), reason.as_str(), message.as_str())) {
        let kind = if compliant == paved_api::Status::False {
            EventType::Warning
        } else {
            EventType::Normal
        };
        ctx.event(claim, kind, reason.as_str(), "Observe", message.clone())
            .await;
    }
    paved_api::conditions::upsert(
        &mut status.conditions,
        paved_api::Condition::new(
            paved_api::conditions::COMPLIANT,
            compliant,
            reason,
            message,
            claim.metadata.generation,
            &crate::context::now(),
        ),
    );
}

/// An observed claim that could not be looked at this time (refused, not found, the
/// cloud failing): what it showed before is no longer vouched for.
fn unobserved(
    status: &mut PostgreSQLInstanceStatus,
    ctx: &Context,
    claim: &PostgreSQLInstance,
    reason: Reason,
    message: &str,
) {
    status.endpoint = None;
    status.port = None;
    status.engine_version = None;
    status.instance_class = None;
    status.multi_az = None;
    status.storage_gb = None;
    status.encryption_key_id = None;
    status.estimated_monthly_cost = None;
    status.violations.clear();
    ctx.metrics
        .forget_claim(&claim.namespace().unwrap_or_default(), &claim.name_any());
    paved_api::conditions::upsert(
        &mut status.conditions,
        paved_api::Condition::new(
            paved_api::conditions::COMPLIANT,
            paved_api::Status::Unknown,
            reason,
            format!("not judged: {message}"),
            claim.metadata.generation,
            &crate::context::now(),
        ),
    );
}

/// How often to look at a create, change or deletion in progress: the Composition's
/// poll interval, at most 10 s.
fn progress_poll(d: &DesiredDatabase) -> Duration {
    d.poll_interval
        .clamp(Duration::from_secs(1), Duration::from_secs(10))
}

/// The placement recorded at create (`paved.dev/placement`), if any.
fn recorded_placement(claim: &PostgreSQLInstance) -> Option<Placement> {
    claim
        .annotations()
        .get(annotations::PLACEMENT)
        .and_then(|v| serde_json::from_str(v).ok())
}

/// The Composition the operator last reconciled the claim with, as its status (which
/// tenants cannot write) records it.
fn recorded_composition(claim: &PostgreSQLInstance) -> Option<&str> {
    claim
        .status
        .as_ref()
        .and_then(|s| s.composition.as_ref())
        .map(|c| c.name.as_str())
}

/// Where the database was created, when the claim now resolves elsewhere: the
/// recorded placement, or for older claims the recorded `provider/region`.
fn location_changed(claim: &PostgreSQLInstance, d: &DesiredDatabase) -> Option<String> {
    if let Some(p) = recorded_placement(claim) {
        return p.moved(d).map(|_| describe_placement(&p));
    }
    let at = claim.annotations().get(annotations::EXTERNAL_LOCATION)?;
    (*at != format!("{}/{}", d.provider, d.region)).then(|| at.clone())
}

/// What the claim says about where and what the database is. The instance class and
/// high availability are not among them: they are what the database was seen running
/// as (set when Ready), because the maintenance window judges a new size against them.
fn fill_status(status: &mut PostgreSQLInstanceStatus, d: &DesiredDatabase) {
    status.provider = Some(d.provider.to_string());
    status.region = Some(d.region.clone());
    status.external_name = Some(d.external_name.clone());
    // An observed database's status is what it was seen as, never what is wanted; an
    // adopted one's size is what it runs at (set once it is seen).
    if d.observe_only || d.adopting {
        return;
    }
    status.encryption_key_id = d.kms_key_id.clone();
    status.storage_gb = Some(d.storage_gb);
    status.estimated_monthly_cost = d.estimated_monthly_cost.clone();
}

/// A claim's deletion: acts where the database was created (its recorded placement),
/// with the policy the claim has now; one Event when it is done. While it cannot act,
/// the claim stays `Deleting` with a reason that says what blocks it.
async fn delete(
    claim: &PostgreSQLInstance,
    ctx: &Context,
    api: &Api<PostgreSQLInstance>,
) -> Result<Action, Error> {
    let ann = claim.annotations();
    ctx.metrics
        .forget_claim(&claim.namespace().unwrap_or_default(), &claim.name_any());
    // An observed database was never Paved's: the claim goes, the database stays
    // (nor are there credentials of it to forget).
    if let Some(e) = claim
        .spec
        .existing
        .as_ref()
        .filter(|_| claim.spec.observes())
    {
        return released(
            claim,
            ctx,
            "Released",
            format!("{} was only observed: left as it is", e.external_name),
        )
        .await;
    }
    // An adopted database outlives its claim unless the claim itself says otherwise:
    // it was not made here, and whoever ran it before may still count on it. Only the
    // claim's own way in goes with it (on `local`, its login role).
    // A claim whose adoption grant was taken back may not delete what it adopted
    // either: it is left as with Orphan.
    let revoked = claim.spec.adopts() && !adoption_granted(claim, ctx).await?;
    if let Some(e) = claim.spec.existing.as_ref().filter(|_| {
        revoked
            || matches!(
                claim.spec.deletion_policy,
                None | Some(paved_api::DeletionPolicy::Orphan)
            )
    }) {
        let local = recorded_placement(claim).is_some_and(|p| p.provider == Cloud::Local);
        let mut note = String::new();
        if local && ann.contains_key(annotations::CREATE_SUCCEEDED) {
            let status = claim.status.clone().unwrap_or_default();
            let blocked = match deletion_target(claim, ctx).await? {
                Err(blocked) => Some(blocked),
                Ok(mut d) => {
                    d.deletion_policy = paved_api::DeletionPolicy::Orphan;
                    match provider(ctx, claim, &d).await? {
                        Err(v) => Some(v.synced.2),
                        Ok(p) => match p.client().delete(&d).await {
                            Ok(_) => {
                                note = format!("; its login role {} is dropped", d.master_username);
                                None
                            }
                            Err(e) => Some(e.to_string()),
                        },
                    }
                }
            };
            if let Some(why) = blocked {
                let verdict = Verdict::problem(
                    Reason::DeletionBlocked,
                    format!(
                        "the adopted database stays, but the claim's login role on the server must go first: {why}"
                    ),
                    jitter(Duration::from_secs(60)),
                );
                publish(claim, ctx, api, CONTROLLER, status, &verdict).await?;
                return Ok(Action::requeue(verdict.requeue));
            }
        }
        return release(
            claim,
            ctx,
            "Orphaned",
            format!(
                "adopted database {} left in place (Orphan, the default for an adopted database; it keeps Paved's \
                 ownership mark, which the platform removes to let another claim adopt it){note}",
                e.external_name
            ),
        )
        .await;
    }
    // The create guard records "pending" before any cloud call, so a claim without
    // it never created anything: there is nothing in the cloud to clean up.
    if !ann.contains_key(annotations::CREATE_PENDING) {
        return release(
            claim,
            ctx,
            "Deleted",
            "no cloud resource was ever created for this claim".into(),
        )
        .await;
    }
    // Orphan, said by the claim itself: nothing to do in the cloud, so nothing can
    // block it (the way out of a blocked deletion).
    if claim.spec.deletion_policy == Some(paved_api::DeletionPolicy::Orphan) {
        let name = ann
            .get(annotations::EXTERNAL_NAME)
            .cloned()
            .unwrap_or_default();
        return release(
            claim,
            ctx,
            "Orphaned",
            format!("database {name} left in place (Orphan)"),
        )
        .await;
    }
    let status = claim.status.clone().unwrap_or_default();
    let verdict = match deletion_target(claim, ctx).await? {
        Err(blocked) => Verdict::problem(
            Reason::DeletionBlocked,
            blocked,
            jitter(Duration::from_secs(60)),
        ),
        Ok(d) if d.deletion_policy == paved_api::DeletionPolicy::Orphan => {
            // Nothing to do in the cloud, so nothing to connect to.
            return release(
                claim,
                ctx,
                "Orphaned",
                format!("{} {} left in place (Orphan)", d.provider, d.external_name),
            )
            .await;
        }
        Ok(d) => match provider(ctx, claim, &d).await? {
            Err(v) => v,
            Ok(p) => match p.client().delete(&d).await {
                Ok(DeleteProgress::Done(m)) => {
                    return release(claim, ctx, "Deleted", m).await;
                }
                Ok(DeleteProgress::Skipped(m)) => {
                    return release(claim, ctx, "DeleteSkipped", m).await;
                }
                Ok(DeleteProgress::Waiting(m)) => {
                    Verdict::waiting(Reason::Deleting, m, jitter(progress_poll(&d)))
                }
                Err(e) => provider_verdict(&e),
            },
        },
    };
    publish(claim, ctx, api, CONTROLLER, status, &verdict).await?;
    Ok(Action::requeue(verdict.requeue))
}

/// Whether an adopting claim's namespace is still granted its database (by the Team
/// that lists the namespace, for the Composition it was adopted with).
async fn adoption_granted(claim: &PostgreSQLInstance, ctx: &Context) -> Result<bool, Error> {
    let Some(existing) = &claim.spec.existing else {
        return Ok(false);
    };
    let (facts, _) = ctx.deletion_facts(claim).await?;
    let team = facts.team.as_deref().and_then(|t| ctx.team(t));
    let composition = recorded_placement(claim)
        .map(|p| p.composition)
        .or_else(|| recorded_composition(claim).map(String::from))
        .unwrap_or_default();
    Ok(paved_compose::tenancy::admit_existing(
        &facts,
        team.as_deref(),
        &ctx.teams.state(),
        &claim.namespace().unwrap_or_default(),
        &composition,
        existing,
    )
    .is_ok())
}

/// What the deletion acts on: the recorded placement, the claim's identity, and the
/// policy (raised to a final snapshot when the claim goes with its namespace or its
/// ServiceClaim). `Err` says what blocks it.
async fn deletion_target(
    claim: &PostgreSQLInstance,
    ctx: &Context,
) -> Result<Result<DesiredDatabase, String>, Error> {
    let uid = claim.uid().unwrap_or_default();
    let (facts, cause) = ctx.deletion_facts(claim).await?;
    let all = ctx.compositions.state();
    let placement = match recorded_placement(claim) {
        Some(p) => p,
        // Claims created before the placement was recorded: the Composition the
        // operator last reconciled them with (in status, which tenants cannot write)
        // must still say where they were created.
        None => {
            let was = recorded_composition(claim).unwrap_or_default();
            let Some(comp) = all
                .iter()
                .find(|c| c.name_any() == was && c.spec.postgresql.is_some())
                .cloned()
            else {
                return Ok(Err(format!(
                    "blocked by the Composition: the database was made with {was:?}, which no longer exists; \
                     restore it, or set spec.deletionPolicy: Orphan to let the claim go and leave the database"
                )));
            };
            let d = match render(claim, &facts, &comp) {
                Ok(d) => d,
                Err((_, m)) => {
                    return Ok(Err(format!(
                        "blocked by the Composition {}: {m}",
                        comp.name_any()
                    )))
                }
            };
            let p = Placement::of(&d, &comp.name_any());
            if let Some(at) = claim.annotations().get(annotations::EXTERNAL_LOCATION) {
                if *at != p.location() {
                    return Ok(Err(format!(
                        "blocked by the location: the database was created in {at}, but its Composition now says {}; \
                         pin spec.compositionRef to the Composition it was created with",
                        p.location()
                    )));
                }
            }
            p
        }
    };
    // The admin Secret a local deletion reads must be one a Composition names: the
    // record is the operator's, but a Secret read on a record alone is one step from a
    // confused deputy.
    if let Some(admin) = &placement.local_admin {
        let named = all.iter().any(|c| {
            c.spec
                .postgresql
                .as_ref()
                .and_then(|p| p.local.as_ref())
                .is_some_and(|l| l.admin_secret_ref == *admin)
        });
        if !named {
            return Ok(Err(format!(
                "blocked by the server: no Composition names the admin Secret {}/{} the database was made with any more; \
                 restore it in a local Composition, or set spec.deletionPolicy: Orphan to let the claim go",
                admin.namespace, admin.name
            )));
        }
    }
    let comp_default = all
        .iter()
        .find(|c| c.name_any() == placement.composition)
        .and_then(|c| c.spec.postgresql.as_ref())
        .map(|pg| pg.deletion.policy);
    let policy = paved_compose::postgresql::policy_at_deletion(
        claim.spec.deletion_policy,
        comp_default,
        facts.classification,
    );
    let policy = paved_compose::postgresql::deletion_policy(
        policy,
        cause,
        claim
            .annotations()
            .get(annotations::CONFIRM_DELETE)
            .is_some_and(|v| Some(v) == claim.metadata.uid.as_ref()),
    );
    Ok(Ok(
        match claim.spec.existing.as_ref().filter(|_| claim.spec.adopts()) {
            Some(e) => paved_compose::postgresql::doomed_adopted(&placement, &uid, policy, e),
            None => paved_compose::postgresql::doomed(&placement, &uid, policy),
        },
    ))
}
