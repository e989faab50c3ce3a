//! Start-up: flags, health and metrics, leader election, and the controllers.

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
use k8s_openapi::api::core::v1::Namespace;
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

use crate::{
    composition,
    context::{self, Context},
    leader, metrics,
    metrics::Metrics,
    postgresql, service, team, temporal, tolerant,
    watches::{
        changed, claims_stream, compositions_stream, observe_owned, owned, owning_claim,
        EachStreamBacksOff, FirstList, Listed,
    },
    Error,
};

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
    /// (At least 3: a shorter lease leaves no time to step down before a standby may
    /// take over.)
    #[arg(long, env = "PAVED_LEASE_SECONDS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(3..))]
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
    /// Seconds what clouds read one identity at a time (an Azure federated
    /// credential, a GCP IAM policy, the role an EKS Pod Identity association gives)
    /// is trusted before it is read again. Identities and role assignments are listed every poll; what Paved
    /// writes is read again at once.
    #[arg(long, env = "PAVED_IDENTITY_RECHECK_SECONDS", default_value_t = 1800)]
    identity_recheck_seconds: u64,
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
    /// IAM API endpoint, where services' Google service accounts are made (default:
    /// Google's public endpoint).
    #[arg(long, env = "PAVED_GCP_IAM_ENDPOINT")]
    gcp_iam_endpoint: Option<String>,
    /// Namespaces no ServiceClaim may take and no claim is served in, besides the
    /// built-in ones (default, kube-*, argocd, the operator's own) and those a service
    /// Composition trusts as traffic peers. Comma-separated; `prefix-*` reserves a prefix.
    #[arg(long, env = "PAVED_RESERVED_NAMESPACES", value_delimiter = ',')]
    reserved_namespaces: Vec<String>,
    /// The platform's secrets namespace: the `kubernetes` secret backend keeps each
    /// service's Secrets there, and the `local` provider its databases' credentials.
    /// Reserved: no ServiceClaim may take it.
    #[arg(long, env = "PAVED_SECRETS_NAMESPACE", default_value = paved_api::DEFAULT_SECRETS_NAMESPACE)]
    secrets_namespace: String,
    /// `json` (default, for log pipelines) or `text`.
    #[arg(long, env = "PAVED_LOG_FORMAT", default_value = "json")]
    log_format: String,
}

struct Health {
    ready: AtomicBool,
    metrics: Arc<Metrics>,
}

/// The operator: parse flags, log, serve health and metrics, lead, run the
/// controllers until a signal (or a lost lease) stops it.
pub async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    crate::logging::init_tracing(&args.log_format);
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
        renew_every: leader::renew_period(Duration::from_secs(args.lease_seconds)),
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
    tokio::pin!(lost_lease);
    let exit_code = 0;
    tokio::select! {
        _ = &mut shutdown => info!("shutting down"),
        _ = &mut lost_lease => {
            // No graceful drain: another replica may already be leading, and nothing
            // this one does from here on may reach the apiserver or a cloud.
            error!("lost leadership; exiting at once so a restart starts clean");
            std::process::exit(1);
        }
    }
    let _ = stop_tx.send(true);
    tokio::select! {
        stopped = tokio::time::timeout(Duration::from_secs(20), controllers) => match stopped {
            Ok(Ok(Err(e))) => error!(error = %e, "controllers failed"),
            Err(_) => warn!("controllers did not stop within 20s"),
            _ => {}
        },
        // Still only the holder reconciles while it drains.
        _ = &mut lost_lease => {
            error!("lost leadership while stopping; exiting at once");
            std::process::exit(1);
        }
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
    // And the database controller: a Team's grants decide what its claims may observe.
    let team_grants = team_writer
        .subscribe()
        .context("the Team store is shared")?;
    tokio::spawn(
        watcher(Api::<Team>::all(client.clone()), crate::watches::config())
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
        providers: crate::registry::Providers::new(
            paved_cloud::azure::AzureEndpoints {
                resource_manager: args
                    .azure_resource_manager_endpoint
                    .parse()
                    .context("--azure-resource-manager-endpoint")?,
            },
            paved_cloud::gcp::GcpEndpoints {
                sqladmin: args.gcp_sqladmin_endpoint.clone(),
                secretmanager: args.gcp_secretmanager_endpoint.clone(),
                iam: args.gcp_iam_endpoint.clone(),
            },
            Duration::from_secs(args.cloud_list_ttl_seconds),
            Duration::from_secs(args.identity_recheck_seconds),
            metrics.clone(),
        ),
        applied: Default::default(),
        grants: Default::default(),
        identity_wants: Default::default(),
        full_apply_every: Duration::from_secs(args.full_apply_seconds),
        own_namespace: args.lease_namespace.clone(),
        teams: team_store.clone(),
        service_claims: svc_reader.clone(),
        service_claims_listed: Listed::default(),
        databases: pg_reader.clone(),
        databases_listed: Listed::default(),
        reserved: paved_compose::tenancy::Reserved::new(
            &args.lease_namespace,
            &[
                args.reserved_namespaces.clone(),
                vec![args.secrets_namespace.clone()],
            ]
            .concat(),
        ),
        secrets_namespace: args.secrets_namespace.clone(),
    });
    // The owned-object watches (the installed kinds of the table) and Namespaces:
    // their first lists are the baseline claims resume from.
    let mut owned_kinds = vec![];
    for kind in service::OWNED_KINDS {
        if has_api(&client, kind.api_version, kind.kind).await {
            owned_kinds.push(*kind);
        } else {
            warn!(
                kind = kind.kind,
                api_version = kind.api_version,
                "not installed: claims that need it will report MissingAPI"
            );
        }
    }
    ctx.applied.expect_lists(owned_kinds.len() + 1);
    let (ns_triggers, ns_changes) = futures::channel::mpsc::unbounded();
    let ns_reflector = {
        let ctx = ctx.clone();
        let mut first_list = FirstList::new("Namespace");
        reflector(
            ns_writer,
            watcher(
                Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
                crate::watches::config(),
            )
            // Judged with its managedFields (whose fields are Paved's), cached with only
            // what is read from the cache (see namespaces.rs).
            .map_ok(move |event| {
                let baseline = first_list.during(&event, &ctx);
                if let Some((m, deleted)) = changed(&event) {
                    if let Some(claim) = observe_owned(&ctx, "Namespace", m, deleted, baseline) {
                        // Closed only once the ServiceClaim controller has stopped.
                        let _ = ns_triggers.unbounded_send(claim);
                    }
                }
                crate::namespaces::cached(event)
            }),
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
    let managed = crate::watches::config().labels(&format!(
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
    let (db_triggers, standalone_dbs) = futures::channel::mpsc::unbounded();
    let svc_claims = claims_stream(
        &client,
        &malformed,
        svc_writer,
        Some(&ctx.service_claims_listed),
    )
    .inspect_ok(move |c: &ServiceClaim| {
        // A malformed claim's placeholder names no team.
        if !c.spec.owner.is_empty() {
            // Closed only once the Team controller has stopped.
            let _ = team_triggers.unbounded_send(kube::runtime::reflector::ObjectRef::<Team>::new(
                &c.spec.owner,
            ));
        }
    });
    let svc = Controller::for_stream(svc_claims, svc_reader)
        .with_config(cfg.clone())
        .trigger_backoff(EachStreamBacksOff);
    // Every kind a ServiceClaim owns, watched metadata-only (see `owned`): the same
    // table the orphan search uses. A kind whose API is not installed is not watched
    // (a claim that needs it reports MissingAPI).
    let mut svc = svc;
    for kind in &owned_kinds {
        let ar = kind.api_resource();
        svc = svc.watches_stream_with(
            owned(
                Api::<PartialObjectMeta<DynamicObject>>::all_with(client.clone(), &ar),
                kind.kind,
                &managed,
                &ctx,
            ),
            |c| owning_claim(&c),
            ar,
        );
    }
    // A Composition change re-renders the claims built from it (and the ones
    // waiting for a Composition to appear).
    let claims = svc.store();
    let team_ctx = ctx.clone();
    let svc = svc
        .reconcile_on(ns_changes)
        .reconcile_on(standalone_dbs)
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

    // A database the team made itself in a service namespace is the service's to read
    // too: its ServiceClaim re-renders the grant (its own databases trigger it through
    // the owned watch already).
    let pg_claims_stream =
        claims_stream(&client, &malformed, pg_writer, Some(&ctx.databases_listed)).inspect_ok(
            move |d: &PostgreSQLInstance| {
                let by_service = d
                    .owner_references()
                    .iter()
                    .any(|o| o.kind == "ServiceClaim" || o.kind == "PostgreSQLInstance");
                if let (false, Some(ns)) = (by_service, d.namespace()) {
                    // Closed only once the ServiceClaim controller has stopped.
                    let _ = db_triggers.unbounded_send(kube::runtime::reflector::ObjectRef::<
                        ServiceClaim,
                    >::new(&ns));
                }
            },
        );
    let pg = Controller::for_stream(pg_claims_stream, pg_reader)
        .with_config(cfg.clone())
        // No watch of Secrets: that needs list and watch on every Secret in the
        // cluster. A lost connection Secret is found by the claim's next poll.
        .trigger_backoff(EachStreamBacksOff);
    let pg_claims = pg.store();
    let observers = pg.store();
    let pg = pg
        .watches_stream(
            compositions_stream(&client, &malformed),
            move |c: Composition| claims_using(&pg_claims, &c),
        )
        // A Team change may grant or revoke what claims observe (`spec.existing`):
        // those claims (few) are judged again at once. All of them, not only those in
        // the Team's namespaces now: a revocation removes the namespace it was for.
        .watches_shared_stream(team_grants, move |_: Arc<Team>| {
            observers
                .state()
                .iter()
                .filter(|p| p.spec.existing.is_some())
                .map(|p| kube::runtime::reflector::ObjectRef::from_obj(&**p))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(stopped(stop.clone()))
        .run(
            instrumented(postgresql::CONTROLLER, postgresql::reconcile),
            error_policy::<PostgreSQLInstance>(postgresql::CONTROLLER),
            ctx.clone(),
        )
        .for_each(|_| future::ready(()));

    let tns = Controller::for_stream(
        claims_stream(&client, &malformed, tns_writer, None),
        tns_reader,
    )
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
    let comp = Controller::for_stream(
        claims_stream(&client, &malformed, comp_writer, None),
        comp_reader,
    )
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
                category: category.as_str().into(),
            })
            .inc();
        warn!(controller, name = obj.meta().name.as_deref().unwrap_or(""), category = category.as_str(), error = %err, "reconcile failed");
        Action::requeue(context::jitter(category.backoff()))
    }
}

/// Whether the apiserver serves `kind` in `api_version` (the core group, `v1`, has
/// its own discovery path).
async fn has_api(client: &Client, api_version: &str, kind: &str) -> bool {
    let list = if api_version.contains('/') {
        client.list_api_group_resources(api_version).await
    } else {
        client.list_core_api_resources(api_version).await
    };
    match list {
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
