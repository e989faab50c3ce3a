//! paved-operator: Paved's reconcilers.

mod applied;
mod apply;
mod claim;
mod composition;
mod context;
mod leader;
mod metrics;
mod ownership;
mod postgresql;
mod service;
mod team;
mod temporal;
mod tolerant;

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::Context as _;
use axum::{extract::State, http::StatusCode, routing::get, Router};
use clap::Parser;
use futures::{future, StreamExt, TryStreamExt};
use k8s_openapi::api::{
    core::v1::{LimitRange, Namespace, ResourceQuota, ServiceAccount},
    networking::v1::NetworkPolicy,
    rbac::v1::RoleBinding,
};
use kube::{
    api::DynamicObject,
    core::PartialObjectMeta,
    runtime::{
        controller::{self, Action},
        events::{Recorder, Reporter},
        reflector, watcher, Controller, WatchStreamExt,
    },
    Api, Client, ResourceExt,
};
use paved_api::{
    labels, Cloud, Composition, PostgreSQLInstance, ServiceClaim, Team, TemporalNamespace,
};
use tracing::{error, info, warn};

use crate::{context::Context, metrics::Metrics};

/// Errors that are worth a retry: the apiserver, or a response we could not read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("serialization: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Stopped(&'static str),
}

impl Error {
    fn category(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(e)) if e.code == 429 => "throttled",
            Error::Kube(kube::Error::Api(e)) if (400..500).contains(&e.code) && e.code != 409 => {
                "terminal"
            }
            Error::Json(_) => "terminal",
            _ => "retryable",
        }
    }
}

#[derive(Parser, Debug, Clone)]
#[command(name = "paved-operator", version, about = "Paved's reconcilers")]
struct Args {
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, env = "PAVED_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Cloud for ServiceClaims that name none.
    #[arg(long, env = "PAVED_DEFAULT_CLOUD", default_value = "local")]
    default_cloud: Cloud,
    /// Elect a leader through a Lease, so only one replica writes.
    #[arg(long, env = "PAVED_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Name of the leader-election Lease.
    #[arg(long, env = "PAVED_LEASE_NAME", default_value = "paved-operator")]
    lease_name: String,
    /// Namespace of the Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "paved-system")]
    lease_namespace: String,
    /// This replica's identity in the Lease.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Seconds a Lease is valid without renewal.
    #[arg(long, env = "PAVED_LEASE_SECONDS", default_value_t = 15)]
    lease_seconds: u64,
    /// Reconciles running at once per controller.
    #[arg(long, env = "PAVED_CONCURRENCY", default_value_t = 16)]
    concurrency: u16,
    /// Seconds between drift checks of a Ready claim (jittered).
    #[arg(long, env = "PAVED_RESYNC_SECONDS", default_value_t = 600)]
    resync_seconds: u64,
    /// Seconds after which a ServiceClaim's objects are applied again even if nothing
    /// reported a change (a resync in between only reads).
    #[arg(long, env = "PAVED_FULL_APPLY_SECONDS", default_value_t = 3600)]
    full_apply_seconds: u64,
    /// Seconds one cloud list (per region) serves every claim's observe.
    #[arg(long, env = "PAVED_CLOUD_LIST_TTL_SECONDS", default_value_t = 5)]
    cloud_list_ttl_seconds: u64,
    /// Azure Resource Manager endpoint (another for a sovereign cloud).
    #[arg(
        long,
        env = "PAVED_AZURE_RESOURCE_MANAGER_ENDPOINT",
        default_value = "https://management.azure.com"
    )]
    azure_resource_manager_endpoint: String,
    /// Cloud SQL Admin API endpoint, e.g. a Private Service Connect address (default:
    /// Google's public endpoint).
    #[arg(long, env = "PAVED_GCP_SQLADMIN_ENDPOINT")]
    gcp_sqladmin_endpoint: Option<String>,
    /// Secret Manager endpoint (default: Google's public endpoint).
    #[arg(long, env = "PAVED_GCP_SECRETMANAGER_ENDPOINT")]
    gcp_secretmanager_endpoint: Option<String>,
    /// Namespaces no ServiceClaim may take and no claim is served in, besides the
    /// built-in ones (default, kube-*, argocd, the operator's own) and those a service
    /// Composition trusts as traffic peers. Comma-separated; `prefix-*` reserves a prefix.
    #[arg(long, env = "PAVED_RESERVED_NAMESPACES", value_delimiter = ',')]
    reserved_namespaces: Vec<String>,
    /// `json` (default, for log pipelines) or `text`.
    #[arg(long, env = "PAVED_LOG_FORMAT", default_value = "json")]
    log_format: String,
}

/// A Paved kind's watch for its controller, cached without managedFields (the largest
/// part of a stored object, and nothing a reconcile reads). A malformed object is left
/// out and reported (see tolerant.rs) rather than breaking the watch for the others.
fn claims_stream<K>(
    client: &Client,
    malformed: &Arc<tolerant::Malformed>,
    writer: reflector::store::Writer<K>,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + tolerant::Placeholder
        + Send
        + Sync
        + 'static,
{
    tolerant::watch(client.clone(), malformed.clone())
        .modify(|o: &mut K| o.managed_fields_mut().clear())
        .reflect(writer)
        .touched_objects()
}

/// Every Composition change, for a claim controller to map to the claims it affects.
fn compositions_stream(
    client: &Client,
    malformed: &Arc<tolerant::Malformed>,
) -> impl futures::Stream<Item = Result<Composition, watcher::Error>> + Send + 'static {
    tolerant::watch(client.clone(), malformed.clone()).touched_objects()
}

/// The Controller's own trigger backoff, off: every stream it merges backs off on its
/// own (`default_backoff`), and one backoff over all of them pauses every watch for
/// each error of any one. After an apiserver restart, a dozen watches' errors (refused
/// connections, RBAC's 403s while it warms up) added up to minutes in which no
/// trigger reached a claim.
struct EachStreamBacksOff;

impl Iterator for EachStreamBacksOff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        Some(Duration::ZERO)
    }
}

impl kube::runtime::utils::Backoff for EachStreamBacksOff {
    fn reset(&mut self) {}
}

/// A metadata-only watch of one kind a ServiceClaim owns. Every change triggers the
/// owning claim's reconcile (as `owns` does); see `observe_owned`.
fn owned<K>(
    api: Api<K>,
    kind: &str,
    cfg: &watcher::Config,
    ctx: &Arc<Context>,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let ctx = ctx.clone();
    let kind = kind.to_string();
    watcher(api, cfg.clone())
        .default_backoff()
        .map_ok(move |event| {
            if let Some((m, deleted)) = changed(&event) {
                observe_owned(&ctx, &kind, m, deleted);
            }
            event
        })
        .touched_objects()
}

/// The object a watch event is about, and whether it was deleted; `None` for the
/// events that only frame a relist.
fn changed<K>(event: &watcher::Event<K>) -> Option<(&K, bool)> {
    match event {
        watcher::Event::Apply(m) | watcher::Event::InitApply(m) => Some((m, false)),
        watcher::Event::Delete(m) => Some((m, true)),
        watcher::Event::Init | watcher::Event::InitDone => None,
    }
}

/// What a change to an object seen by a watch means for ServiceClaims: the claim that
/// owns it (if Paved made it for one), to reconcile; a change that is not the echo of
/// Paved's own write also marks that claim for a fresh apply (see applied.rs).
fn observe_owned<K: kube::Resource>(
    ctx: &Context,
    kind: &str,
    m: &K,
    deleted: bool,
) -> Option<reflector::ObjectRef<ServiceClaim>> {
    // The controller reference alone (only Paved sets one to a ServiceClaim): an object
    // whose labels someone stripped is still the claim's, and its change still counts.
    let owner = owning_claim(m)?;
    let key = match m.namespace() {
        Some(ns) => format!("{kind}/{ns}/{}", m.name_any()),
        None => format!("{kind}/{}", m.name_any()),
    };
    let seen = applied::Written::seen(m.meta(), deleted);
    ctx.applied.observed(&key, &seen, &owner.name);
    Some(owner)
}

/// The ServiceClaim that controls an object, as the claim's own (cluster-scoped)
/// reference. `owns` would name it within the child's namespace: a second queue
/// entry for the same claim, so two reconciles of one claim could overlap.
fn owning_claim<K: kube::Resource>(child: &K) -> Option<reflector::ObjectRef<ServiceClaim>> {
    child
        .owner_references()
        .iter()
        .find(|o| {
            use kube::Resource;
            o.controller == Some(true)
                && o.kind == ServiceClaim::kind(&())
                && o.api_version == ServiceClaim::api_version(&())
        })
        .map(|o| reflector::ObjectRef::new(&o.name))
}

struct Health {
    ready: AtomicBool,
    metrics: Arc<Metrics>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_tracing(&args.log_format);
    // kube's TLS uses ring, the AWS SDK's aws-lc; with both linked rustls needs to
    // be told which serves clients that do not name one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::try_default()
        .await
        .context("connecting to Kubernetes")?;
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health {
        ready: AtomicBool::new(false),
        metrics: metrics.clone(),
    });
    tokio::spawn(serve(args.metrics_addr, health.clone()));

    let identity = args.identity.clone().unwrap_or_else(|| {
        format!(
            "{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "paved".into()),
            std::process::id()
        )
    });
    let lease = leader::LeaseConfig {
        name: args.lease_name.clone(),
        namespace: args.lease_namespace.clone(),
        identity: identity.clone(),
        duration: Duration::from_secs(args.lease_seconds),
        renew_every: Duration::from_secs((args.lease_seconds / 3).max(1)),
    };
    // Not leading yet is a healthy state for a standby replica.
    health.ready.store(true, Ordering::SeqCst);

    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut lost = if args.leader_election {
        info!(identity = %identity, "waiting for leadership");
        tokio::select! {
            rx = leader::acquire(client.clone(), lease.clone()) => Some(rx?),
            _ = &mut shutdown => { info!("shut down before leading"); return Ok(()); }
        }
    } else {
        None
    };

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let controllers = tokio::spawn(run_controllers(
        client.clone(),
        args.clone(),
        metrics,
        identity,
        stop_rx,
    ));
    let lost_lease = async {
        match lost.as_mut() {
            Some(rx) => {
                while *rx.borrow() {
                    if rx.changed().await.is_err() {
                        break;
                    }
                }
            }
            None => future::pending::<()>().await,
        }
    };
    let exit_code = 0;
    tokio::select! {
        _ = &mut shutdown => info!("shutting down"),
        _ = lost_lease => {
            // No graceful drain: another replica may already be leading, and nothing
            // this one does from here on may reach the apiserver or a cloud.
            error!("lost leadership; exiting at once so a restart starts clean");
            std::process::exit(1);
        }
    }
    let _ = stop_tx.send(true);
    match tokio::time::timeout(Duration::from_secs(20), controllers).await {
        Ok(Ok(Err(e))) => error!(error = %e, "controllers failed"),
        Err(_) => warn!("controllers did not stop within 20s"),
        _ => {}
    }
    if args.leader_election && exit_code == 0 {
        leader::release(client, &lease).await;
    }
    std::process::exit(exit_code);
}

async fn run_controllers(
    client: Client,
    args: Args,
    metrics: Arc<Metrics>,
    identity: String,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        while !*rx.borrow() {
            if rx.changed().await.is_err() {
                break;
            }
        }
    };

    let events = {
        let client = client.clone();
        let reporter = Reporter {
            controller: "paved-operator".into(),
            instance: Some(identity),
        };
        Arc::new(context::Events::new(
            context::EVENTS_PER_RECORDER,
            move || Recorder::new(client.clone(), reporter.clone()),
        ))
    };
    let malformed = tolerant::Malformed::new(client.clone(), events.clone());

    // Compositions: one reflector for lookups by every controller.
    let (comp_store, comp_writer) = reflector::store();
    let comp_reflector = reflector(
        comp_writer,
        tolerant::watch(client.clone(), malformed.clone()),
    )
    .touched_objects()
    .for_each(|_| future::ready(()));
    tokio::spawn(comp_reflector);

    // Every namespace's metadata, for the facts a claim's namespace labels give and the
    // takeover check, without a request per reconcile. The same watch triggers the
    // claims whose namespaces change (a second, label-selected watch would have the
    // apiserver send every namespace event twice).
    let (ns_store, ns_writer) = reflector::store();
    // Teams: few, platform-written; one reflector for every lookup, whose events
    // also trigger the ServiceClaim controller, so a Team change is judged only once
    // the store holds it. (Its buffer holds the first list until the controller reads.)
    let (team_store, team_writer) = reflector::store_shared(4096);
    let team_changes = team_writer
        .subscribe()
        .context("the Team store is shared")?;
    // The Team controller reads the same store and events: one watch of Teams.
    let team_events = team_writer
        .subscribe()
        .context("the Team store is shared")?;
    tokio::spawn(
        watcher(Api::<Team>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .reflect_shared(team_writer)
            .for_each(|_| future::ready(())),
    );
    let (svc_reader, svc_writer) = reflector::store();
    let (pg_reader, pg_writer) = reflector::store();
    let ctx = Arc::new(Context {
        client: client.clone(),
        events,
        metrics: metrics.clone(),
        default_cloud: args.default_cloud,
        compositions: comp_store.clone(),
        namespaces: ns_store.clone(),
        resync: Duration::from_secs(args.resync_seconds),
        aws_regions: Default::default(),
        azure_groups: Default::default(),
        gcp_projects: Default::default(),
        azure_endpoints: paved_cloud::azure::AzureEndpoints {
            resource_manager: args
                .azure_resource_manager_endpoint
                .parse()
                .context("--azure-resource-manager-endpoint")?,
        },
        gcp_endpoints: paved_cloud::gcp::GcpEndpoints {
            sqladmin: args.gcp_sqladmin_endpoint.clone(),
            secretmanager: args.gcp_secretmanager_endpoint.clone(),
        },
        cloud_list_ttl: Duration::from_secs(args.cloud_list_ttl_seconds),
        connections: Default::default(),
        applied: Default::default(),
        full_apply_every: Duration::from_secs(args.full_apply_seconds),
        own_namespace: args.lease_namespace.clone(),
        teams: team_store.clone(),
        service_claims: svc_reader.clone(),
        databases: pg_reader.clone(),
        reserved: paved_compose::tenancy::Reserved::new(
            &args.lease_namespace,
            &args.reserved_namespaces,
        ),
    });
    let (ns_triggers, ns_changes) = futures::channel::mpsc::unbounded();
    let ns_reflector = {
        let ctx = ctx.clone();
        reflector(
            ns_writer,
            watcher(
                Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
                watcher::Config::default(),
            )
            // Judged with its managedFields (whose fields are Paved's), cached with only
            // what is read from the cache.
            .map_ok(move |event| {
                if let Some((m, deleted)) = changed(&event) {
                    if let Some(claim) = observe_owned(&ctx, "Namespace", m, deleted) {
                        // Closed only once the ServiceClaim controller has stopped.
                        let _ = ns_triggers.unbounded_send(claim);
                    }
                }
                event
            })
            .modify(|n| Context::for_namespace_cache(&mut n.metadata)),
        )
        .default_backoff()
        .for_each(|_| future::ready(()))
    };
    tokio::spawn(ns_reflector);
    comp_store
        .wait_until_ready()
        .await
        .context("composition cache")?;
    ns_store
        .wait_until_ready()
        .await
        .context("namespace cache")?;
    team_store.wait_until_ready().await.context("team cache")?;

    // Only watch what Paved made, so the caches stay small on a busy cluster.
    let managed = watcher::Config::default().labels(&format!(
        "{}={}",
        labels::MANAGED_BY,
        labels::MANAGED_BY_VALUE
    ));
    // A short debounce folds the burst of events one apply causes (each owned object,
    // then the status) into one reconcile.
    let cfg = controller::Config::default()
        .concurrency(args.concurrency)
        .debounce(Duration::from_millis(200));
    let (tns_reader, tns_writer) = reflector::store();

    // Every ServiceClaim event (its deletion too) also re-judges the Team it names, so
    // the one ServiceClaim watch serves the Team controller as well.
    let (team_triggers, claims_of_teams) = futures::channel::mpsc::unbounded();
    let svc_claims =
        claims_stream(&client, &malformed, svc_writer).inspect_ok(move |c: &ServiceClaim| {
            // A malformed claim's placeholder names no team.
            if !c.spec.owner.is_empty() {
                // Closed only once the Team controller has stopped.
                let _ = team_triggers.unbounded_send(
                    kube::runtime::reflector::ObjectRef::<Team>::new(&c.spec.owner),
                );
            }
        });
    let svc = Controller::for_stream(svc_claims, svc_reader)
        .with_config(cfg.clone())
        .trigger_backoff(EachStreamBacksOff);
    // Every kind a ServiceClaim owns, watched metadata-only (see `owned`).
    macro_rules! owns_all {
        ($controller:expr, $($kind:ty),+ $(,)?) => {
            $controller$(.watches_stream(owned(
                Api::<PartialObjectMeta<$kind>>::all(client.clone()),
                &<$kind as kube::Resource>::kind(&()),
                &managed,
                &ctx,
            ), |c| owning_claim(&c)))+
        };
    }
    let mut svc = owns_all!(
        svc,
        NetworkPolicy,
        ResourceQuota,
        LimitRange,
        ServiceAccount,
        RoleBinding,
        PostgreSQLInstance,
        TemporalNamespace,
    );
    if has_api(&client, "external-secrets.io/v1", "ExternalSecret").await {
        let ar = apply::api_resource(
            "external-secrets.io/v1",
            "ExternalSecret",
            "externalsecrets",
        );
        svc = svc.watches_stream_with(
            owned(
                Api::<PartialObjectMeta<DynamicObject>>::all_with(client.clone(), &ar),
                "ExternalSecret",
                &managed,
                &ctx,
            ),
            |c| owning_claim(&c),
            ar,
        );
    } else {
        warn!("external-secrets.io/v1 ExternalSecret is not installed: claims with secrets will report MissingAPI");
    }
    // A Composition change re-renders the claims built from it (and the ones
    // waiting for a Composition to appear).
    let claims = svc.store();
    let team_ctx = ctx.clone();
    let svc = svc
        .reconcile_on(ns_changes)
        // A Team change (its groups, clouds, limits; its creation) re-judges its claims.
        .watches_shared_stream(team_changes, move |t: Arc<Team>| {
            team_ctx
                .team_services(&t.name_any())
                .iter()
                .map(|c| kube::runtime::reflector::ObjectRef::from_obj(&**c))
                .collect::<Vec<_>>()
        })
        .watches_stream(
            compositions_stream(&client, &malformed),
            move |c: Composition| claims_using(&claims, &c),
        )
        .graceful_shutdown_on(stopped(stop.clone()))
        .run(
            instrumented(service::CONTROLLER, service::reconcile),
            error_policy::<ServiceClaim>(service::CONTROLLER),
            ctx.clone(),
        )
        .for_each(|_| future::ready(()));

    let pg = Controller::for_stream(claims_stream(&client, &malformed, pg_writer), pg_reader)
        .with_config(cfg.clone())
        // No watch of Secrets: that needs list and watch on every Secret in the
        // cluster. A lost connection Secret is found by the claim's next poll.
        .trigger_backoff(EachStreamBacksOff);
    let pg_claims = pg.store();
    let pg = pg
        .watches_stream(
            compositions_stream(&client, &malformed),
            move |c: Composition| claims_using(&pg_claims, &c),
        )
        .graceful_shutdown_on(stopped(stop.clone()))
        .run(
            instrumented(postgresql::CONTROLLER, postgresql::reconcile),
            error_policy::<PostgreSQLInstance>(postgresql::CONTROLLER),
            ctx.clone(),
        )
        .for_each(|_| future::ready(()));

    let tns = Controller::for_stream(claims_stream(&client, &malformed, tns_writer), tns_reader)
        .with_config(cfg.clone())
        .trigger_backoff(EachStreamBacksOff);
    let tns_claims = tns.store();
    let tns = tns
        .watches_stream(
            compositions_stream(&client, &malformed),
            move |c: Composition| claims_using(&tns_claims, &c),
        )
        .graceful_shutdown_on(stopped(stop.clone()))
        .run(
            instrumented(temporal::CONTROLLER, temporal::reconcile),
            error_policy::<TemporalNamespace>(temporal::CONTROLLER),
            ctx.clone(),
        )
        .for_each(|_| future::ready(()));

    let (comp_reader, comp_writer) = reflector::store();
    let comp = Controller::for_stream(claims_stream(&client, &malformed, comp_writer), comp_reader)
        .with_config(cfg.clone())
        .trigger_backoff(EachStreamBacksOff)
        .graceful_shutdown_on(stopped(stop.clone()))
        .run(
            instrumented(composition::CONTROLLER, composition::reconcile),
            error_policy::<Composition>(composition::CONTROLLER),
            ctx.clone(),
        )
        .for_each(|_| future::ready(()));

    // Teams keep a finalizer while ServiceClaims name them; a claim's creation or
    // deletion re-judges its Team (from the ServiceClaim watch above).
    let teams = Controller::for_shared_stream(team_events, team_store.clone())
        .with_config(cfg.clone())
        .reconcile_on(claims_of_teams)
        .graceful_shutdown_on(stopped(stop.clone()))
        .run(
            instrumented(team::CONTROLLER, team::reconcile),
            error_policy::<Team>(team::CONTROLLER),
            ctx.clone(),
        )
        .for_each(|_| future::ready(()));

    info!("controllers started");
    future::join5(svc, pg, tns, comp, teams).await;
    info!("controllers stopped");
    Ok(())
}

/// Test builds only (feature `test-crash-points`): `PAVED_TEST_CRASH_POINT=<name>`
/// kills the process at that point, as SIGKILL would, to prove crash consistency;
/// with `PAVED_TEST_CRASH_CLAIM=<namespace>/<name>` only while reconciling that claim, so one
/// armed run stops at one claim's step while it handles the others normally.
/// Release builds compile this to nothing.
pub fn crash_point(name: &str, claim: &str) {
    #[cfg(feature = "test-crash-points")]
    if std::env::var("PAVED_TEST_CRASH_POINT").as_deref() == Ok(name)
        && std::env::var("PAVED_TEST_CRASH_CLAIM").map_or(true, |c| c == claim)
    {
        eprintln!(
            "{{\"level\":\"WARN\",\"message\":\"test crash point {name} at {claim}: aborting\"}}"
        );
        std::process::abort();
    }
    let _ = (name, claim);
}

/// A Composition changed: the claims rendered from it, and those still waiting for
/// one, are reconciled again.
fn claims_using<K>(
    store: &kube::runtime::reflector::Store<K>,
    composition: &Composition,
) -> Vec<kube::runtime::reflector::ObjectRef<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + paved_api::HasComposition + 'static,
{
    let name = composition.name_any();
    store
        .state()
        .into_iter()
        .filter(|s| s.composition_name().is_none_or(|n| n == name))
        .map(|s| kube::runtime::reflector::ObjectRef::from_obj(&*s))
        .collect()
}

type ReconcileFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Action, Error>> + Send>>;

/// Wraps a reconciler with metrics and a span.
fn instrumented<K, F, Fut>(
    controller: &'static str,
    f: F,
) -> impl Fn(Arc<K>, Arc<Context>) -> ReconcileFuture
where
    K: kube::Resource + Send + Sync + 'static,
    F: Fn(Arc<K>, Arc<Context>) -> Fut + Send + Sync + Copy + 'static,
    Fut: std::future::Future<Output = Result<Action, Error>> + Send + 'static,
{
    move |obj: Arc<K>, ctx: Arc<Context>| {
        Box::pin(async move {
            let label = metrics::ControllerLabel {
                controller: controller.into(),
            };
            ctx.metrics.reconciles.get_or_create(&label).inc();
            let start = std::time::Instant::now();
            let name = obj.meta().name.clone().unwrap_or_default();
            let ns = obj.meta().namespace.clone().unwrap_or_default();
            let result = f(obj, ctx.clone()).await;
            ctx.metrics
                .duration
                .get_or_create(&label)
                .observe(start.elapsed().as_secs_f64());
            tracing::debug!(
                controller,
                name,
                namespace = ns,
                ok = result.is_ok(),
                "reconciled"
            );
            result
        })
    }
}

fn error_policy<K>(controller: &'static str) -> impl Fn(Arc<K>, &Error, Arc<Context>) -> Action
where
    K: kube::Resource,
{
    move |obj: Arc<K>, err: &Error, ctx: Arc<Context>| {
        let category = err.category();
        ctx.metrics
            .errors
            .get_or_create(&metrics::ErrorLabels {
                controller: controller.into(),
                category: category.into(),
            })
            .inc();
        warn!(controller, name = obj.meta().name.as_deref().unwrap_or(""), category, error = %err, "reconcile failed");
        let base = match category {
            "throttled" => Duration::from_secs(30),
            // Not hot, but soon enough that a human fix (RBAC, a policy) is picked up.
            "terminal" => Duration::from_secs(30),
            _ => Duration::from_secs(5),
        };
        Action::requeue(context::jitter(base))
    }
}

async fn has_api(client: &Client, api_version: &str, kind: &str) -> bool {
    match client.list_api_group_resources(api_version).await {
        Ok(list) => list.resources.iter().any(|r| r.kind == kind),
        Err(_) => false,
    }
}

async fn serve(addr: SocketAddr, health: Arc<Health>) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(h): State<Arc<Health>>| async move {
                if h.ready.load(Ordering::SeqCst) {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "starting")
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(h): State<Arc<Health>>| async move {
                (
                    [(
                        "content-type",
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    h.metrics.encode(),
                )
            }),
        )
        .with_state(health);
    match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => {
            info!(%addr, "serving /metrics, /healthz, /readyz");
            if let Err(e) = axum::serve(listener, app).await {
                error!(error = %e, "metrics server stopped");
            }
        }
        Err(e) => {
            error!(%addr, error = %e, "cannot bind the metrics address");
            std::process::exit(2);
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Targets that print credentials below info, so they never log below info whatever
/// `RUST_LOG` asks: azure_core logs every request with its body (Key Vault secrets)
/// and, inverting its own redaction, its Authorization header; tokio-postgres logs every
/// statement (role passwords) should its `log` output ever be bridged.
const CREDENTIAL_PRINTING_TARGETS: &[&str] = &["azure_core", "tokio_postgres"];

fn prints_credentials(m: &tracing::Metadata<'_>) -> bool {
    *m.level() > tracing::Level::INFO
        && CREDENTIAL_PRINTING_TARGETS.iter().any(|t| {
            m.target()
                .strip_prefix(t)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        })
}

/// The operator's log: `RUST_LOG` (default info), as JSON or text, without the
/// credential-printing targets' debug output (a filter of its own, so no directive,
/// however specific, turns them back on).
fn log_subscriber<W>(
    rust_log: Option<&str>,
    format: &str,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    use tracing_subscriber::{filter::filter_fn, layer::SubscriberExt, EnvFilter, Layer};
    let env = rust_log
        .and_then(|s| EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| EnvFilter::new("info,kube=warn,tower=warn,hyper=warn"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    let fmt = if format == "text" {
        fmt.boxed()
    } else {
        fmt.json()
            .flatten_event(true)
            .with_current_span(false)
            .boxed()
    };
    Box::new(
        tracing_subscriber::registry()
            .with(env)
            .with(fmt.with_filter(filter_fn(|m| !prints_credentials(m)))),
    )
}

fn init_tracing(format: &str) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let subscriber = log_subscriber(rust_log.as_deref(), format, std::io::stderr);
    tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Capture {
            self.clone()
        }
    }

    fn logged(rust_log: &str) -> String {
        let out = Capture::default();
        let subscriber = super::log_subscriber(Some(rust_log), "json", out.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "tokio_postgres::simple_query", "ALTER ROLE r PASSWORD 's3cret'");
            tracing::debug!(target: "azure_core::policies::transport", "Authorization: Bearer t0ken");
            tracing::debug!(target: "paved_operator", "reconciled");
            tracing::info!(target: "tokio_postgres", "connection closed");
        });
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn a_child_names_its_claim_as_the_claim_itself_is_named() {
        use k8s_openapi::{
            api::networking::v1::NetworkPolicy,
            apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
        };
        use kube::runtime::reflector::ObjectRef;
        let child = |api_version: &str, controller: Option<bool>| NetworkPolicy {
            metadata: ObjectMeta {
                name: Some("default-deny".into()),
                namespace: Some("svc".into()),
                owner_references: Some(vec![OwnerReference {
                    api_version: api_version.into(),
                    kind: "ServiceClaim".into(),
                    name: "svc".into(),
                    uid: "u".into(),
                    controller,
                    ..Default::default()
                }]),
                ..Default::default()
            },
            ..Default::default()
        };
        let claim = super::owning_claim(&child("paved.dev/v1alpha1", Some(true))).unwrap();
        assert_eq!(claim, ObjectRef::new("svc"));
        assert_eq!(claim.namespace, None, "cluster-scoped, like the claim");
        assert!(super::owning_claim(&child("paved.dev/v1alpha1", None)).is_none());
        assert!(super::owning_claim(&child("other.io/v1", Some(true))).is_none());
    }

    #[test]
    fn debug_logging_never_reaches_the_targets_that_print_credentials() {
        for rust_log in [
            "debug",
            "trace",
            "debug,azure_core::policies::transport=trace,tokio_postgres=debug",
        ] {
            let log = logged(rust_log);
            assert!(log.contains("reconciled"), "{rust_log}: debug is on: {log}");
            assert!(
                log.contains("connection closed"),
                "{rust_log}: info still shows"
            );
            assert!(
                !log.contains("s3cret"),
                "{rust_log}: a statement was logged"
            );
            assert!(!log.contains("t0ken"), "{rust_log}: a request was logged");
        }
    }
}
