//! `make bench`: Paved's throughput, cost and footprint on the real local control plane,
//! each figure measured in this run (ratios against references from the same run), and
//! kro (kubernetes-sigs/kro) beside it on the same plane with the same claims.
//!
//! 1. memory points below the rounds' claims: PostgreSQLInstances cached, the operator
//!    restarted over them, its peak RSS; then they are deleted;
//! 2. rounds: a plain client server-side-applies the objects `paved render` gives for N
//!    ServiceClaims and creates (POST) them, then the operator gets N ServiceClaims at
//!    once (all Ready, p50/p99 creation → Ready, apiserver requests and CPU), `rounds`
//!    times, and the plain client once more; each round's ratio is over the plain runs
//!    around it (creates: the headline; applies);
//! 3. a periodic resync that changes nothing: its writes and the objects changed
//!    (target 0); drift repair: a NetworkPolicy deleted by hand in K namespaces;
//! 4. restart: start-up to the first reconcile, and to every claim reconciled, and the
//!    writes of that first pass (target 0: nothing changed while it was away);
//! 5. kro, with Paved stopped: its CRDs, the RGD e2e/kro/serviceclaim-rgd.yaml, the
//!    plain client's runs just before, N instances at once (as in 2), an idle resync
//!    (PATCH requests sent, objects changed), drift repair, steady arrival;
//! 6. Paved again: the cache grown to `--cache-claims` (restarts at the memory points on
//!    the way), claims arriving at fixed rates with every claim cached;
//! 7. cloud: `--aws-instances` PostgreSQLInstances on moto, RDS list pages per poll;
//!    `--aws-identities` ServiceClaims on AWS, each with its own IAM role, IAM list
//!    pages per poll; then `--cloud-identities` each on Azure and GCP (the loopback
//!    fakes): calls per poll counted by the fakes;
//! 8. the memory points above `--cache-claims`.
//!
//! Prints the tables, writes target/paved-bench/results.json and BENCHMARKS.md.

mod claims;
mod cloud;
mod kro;
mod measure;
mod plain;
mod report;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use kube::{
    api::{DeleteParams, ListParams},
    Api, Client,
};
use paved_api::{conditions, Cloud, PostgreSQLInstance, ServiceClaim};
use paved_e2e::{control_plane_with_env, db, eventually, repo_root, ControlPlane, Operator};
use serde_json::{json, Value};

use claims::{burst, create_all, drift_repair, spread_indices, steady, Arrival, Controller};
use cloud::{measure_identities, start_identities, IDENTITY_RECHECK_SECONDS};
use kro::Kro;
use measure::{
    apiserver_counts, median, peak_rss_mib, per_claim, plane_pids, range, round_ratios, settle,
    summarize, totals, with, Cpu, Meter, Profiler, Spread, SERVICE_ACCOUNTS,
};
use plain::{baseline, plain_owner, Plain};
use report::{arrival, check, num, ratio, repairs, slash, Table};

struct Args {
    claims: usize,
    cache_claims: usize,
    aws_instances: usize,
    /// RDS instances made by hand, each observed by a claim (`spec.existing`).
    aws_observed: usize,
    aws_identities: usize,
    /// Azure managed identities and Google service accounts (each).
    cloud_identities: usize,
    concurrency: usize,
    resync_seconds: u64,
    /// Operator runs of `claims` new claims each, between the plain client's runs; the
    /// ratios are the median over the rounds.
    rounds: usize,
    /// With a value > 0: a CPU profile of the apiserver over the first seconds of each
    /// timed phase, to target/paved-bench/<phase>.apiserver.pprof (`go tool pprof`).
    profile_seconds: u64,
    /// kro instances created at once (0: no kro phase).
    kro_claims: usize,
    /// kro's informer resync period (default: kro's own, 10 h; see BENCHMARKS.md).
    kro_resync_seconds: u64,
    /// Namespaces whose NetworkPolicy is deleted by hand, per controller.
    drift: usize,
    /// Claims a second of each steady arrival (none: no steady arrival).
    steady_rates: Vec<f64>,
    /// How long each steady arrival lasts.
    steady_seconds: f64,
    /// How long after a steady arrival's last create its claims are waited for.
    steady_drain_seconds: u64,
    /// Claims cached at which the operator is restarted and its peak RSS read.
    memory_points: Vec<usize>,
}

/// kro's own default resync period (`--dynamic-controller-default-resync-period`).
const KRO_DEFAULT_RESYNC_SECONDS: u64 = 36_000;

const USAGE: &str = "flags (each takes a value): --claims N, --rounds N, --cache-claims N, \
--concurrency N, --resync-seconds S, --kro-claims N (0: no kro), --kro-resync-seconds S, \
--drift N, --steady-rates R[,R...] (claims/s; empty or 0: none), --steady-seconds S, \
--steady-drain-seconds S, \
--memory-points N[,N...], --aws-instances N, --aws-observed N, --aws-identities N, --cloud-identities N, \
--profile-seconds S";

fn parse_args(argv: &[String]) -> Result<Args> {
    let mut a = Args {
        claims: 1000,
        cache_claims: 10_000,
        aws_instances: 200,
        aws_observed: 50,
        aws_identities: 100,
        cloud_identities: 50,
        concurrency: 16,
        resync_seconds: 30,
        profile_seconds: 0,
        rounds: 3,
        kro_claims: 100,
        kro_resync_seconds: 0,
        drift: 10,
        steady_rates: vec![5.0, 20.0],
        steady_seconds: 30.0,
        steady_drain_seconds: 30,
        memory_points: vec![1000, 10_000, 30_000],
    };
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let v = it
            .next()
            .with_context(|| format!("{flag} needs a value; {USAGE}"))?;
        let list = |v: &str| -> Result<Vec<f64>> {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<f64>()
                        .with_context(|| format!("{flag}: {s} is not a number"))
                })
                .filter(|x| !matches!(x, Ok(x) if *x <= 0.0))
                .collect()
        };
        let n = || -> Result<u64> {
            v.parse()
                .with_context(|| format!("{flag} takes a whole number; {USAGE}"))
        };
        match flag.as_str() {
            "--claims" => a.claims = n()? as usize,
            "--cache-claims" => a.cache_claims = n()? as usize,
            "--aws-instances" => a.aws_instances = n()? as usize,
            "--aws-observed" => a.aws_observed = n()? as usize,
            "--aws-identities" => a.aws_identities = n()? as usize,
            "--cloud-identities" => a.cloud_identities = n()? as usize,
            "--concurrency" => a.concurrency = (n()? as usize).max(1),
            "--resync-seconds" => a.resync_seconds = n()?,
            "--profile-seconds" => a.profile_seconds = n()?,
            "--rounds" => a.rounds = (n()? as usize).max(1),
            "--kro-claims" => a.kro_claims = n()? as usize,
            "--kro-resync-seconds" => a.kro_resync_seconds = n()?,
            "--drift" => a.drift = n()? as usize,
            "--steady-rates" => {
                // Each rate's claims are named by it: one run per rate.
                a.steady_rates = list(v)?;
                a.steady_rates.sort_by(f64::total_cmp);
                a.steady_rates.dedup();
            }
            "--steady-seconds" => a.steady_seconds = v.parse().context("--steady-seconds")?,
            "--steady-drain-seconds" => a.steady_drain_seconds = n()?.max(1),
            "--memory-points" => {
                a.memory_points = list(v)?.into_iter().map(|x| x as usize).collect();
                a.memory_points.sort_unstable();
                a.memory_points.dedup();
            }
            other => bail!("unknown flag {other}; {USAGE}"),
        }
    }
    if a.kro_resync_seconds == 0 {
        a.kro_resync_seconds = KRO_DEFAULT_RESYNC_SECONDS;
    }
    if a.steady_seconds <= 0.0 {
        a.steady_rates.clear();
    }
    Ok(a)
}

/// Pure: where each memory point is measured, given the ServiceClaims of the rounds and
/// the cache the loaded phases run with: below the rounds' claims (at the start, with
/// PostgreSQLInstances deleted afterwards), up to the cache (on the way to it), above it
/// (at the end). The cache itself is always a point.
fn memory_plan(
    points: &[usize],
    rounds_claims: usize,
    cache: usize,
) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let cache = cache.max(rounds_claims);
    let early = points
        .iter()
        .copied()
        .filter(|p| *p > 0 && *p < rounds_claims)
        .collect();
    let mut mid: Vec<usize> = points
        .iter()
        .copied()
        .filter(|p| *p > rounds_claims && *p < cache)
        .collect();
    mid.push(cache);
    let late = points.iter().copied().filter(|p| *p > cache).collect();
    (early, mid, late)
}

/// Wall time of each part of the run, for the estimate of a whole run, and of it the
/// time spent waiting for a quiet plane (`settle`).
struct Clock {
    last: Instant,
    settled: f64,
    laps: Vec<(String, f64, f64)>,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            last: Instant::now(),
            settled: 0.0,
            laps: Vec::new(),
        }
    }
    fn lap(&mut self, what: &str) {
        let s = self.last.elapsed().as_secs_f64();
        let settled = measure::settled_seconds();
        let waited = settled - self.settled;
        eprintln!("bench: [{what}: {s:.0} s, {waited:.0} of them waiting for a quiet plane]");
        self.laps.push((what.to_string(), s, waited));
        self.last = Instant::now();
        self.settled = settled;
    }
}

/// How often External Secrets validates each SecretStore again on the bench's plane: a
/// day, longer than any run. A new store is still validated at once (part of what each
/// run's objects cost, the same for every side), but the 10,000 and more stores a run
/// makes are not validated again under every later phase: ESO's 4 workers cannot go
/// round them in its default 5 minutes (the e2e tests' 10 s kept the apiserver at a
/// quarter of a core between phases).
const ESO_STORE_REQUEUE: &str = "24h";

/// The operator process the run expects to be up, by PID and log (none while it is
/// being restarted).
static EXPECTED: std::sync::Mutex<Option<(u32, std::path::PathBuf)>> = std::sync::Mutex::new(None);
/// The same for kro's controller.
static KRO_EXPECTED: std::sync::Mutex<Option<(u32, std::path::PathBuf)>> =
    std::sync::Mutex::new(None);

/// kro's controller watched (see `watchdog`), or none.
fn expect_kro(k: Option<&Kro>) {
    *KRO_EXPECTED.lock().unwrap() = k.map(|k| (k.pid(), k.log.clone()));
}

/// The operator started, and watched (see `watchdog`).
fn start_op(cp: &ControlPlane, name: &str, flags: &[&str]) -> Result<Operator> {
    let op = Operator::start(cp, name, flags)?;
    *EXPECTED.lock().unwrap() = Some((op.pid(), op.log.clone()));
    Ok(op)
}

/// The flags of an operator that settles a grown cache (every new claim's first
/// reconcile and status): the run's, but a resync period longer than a growth, so
/// re-reconciling every cached claim each `--resync-seconds` (1,000 a second at 30,000
/// claims and 30 s) does not compete with the new claims, and `GROWTH_CONCURRENCY`
/// workers, as each new claim's reconcile waits on its status write. Nothing of a growth
/// is measured; each point restarts with the run's flags.
fn growth_flags<'a>(flags: &[&'a str]) -> Vec<&'a str> {
    let mut grow = flags.to_vec();
    for (flag, value) in [
        ("--resync-seconds", "3600"),
        ("--concurrency", GROWTH_CONCURRENCY),
    ] {
        match grow.iter().position(|f| *f == flag) {
            Some(i) if i + 1 < grow.len() => grow[i + 1] = value,
            _ => grow.extend([flag, value]),
        }
    }
    grow
}

/// Workers of the operator that settles a grown cache, and creates in flight while the
/// cache grows.
const GROWTH_CONCURRENCY: &str = "64";

/// The operator stopped on purpose.
fn stop_op(op: Operator) {
    *EXPECTED.lock().unwrap() = None;
    drop(op);
}

/// Pure: a /proc/PID/stat says the process has exited (a zombie not yet waited for).
fn exited(stat: Option<&str>) -> bool {
    match stat.and_then(|s| s.rsplit_once(')')) {
        Some((_, rest)) => rest.trim_start().starts_with('Z'),
        None => true,
    }
}

/// Ends the run at once when the operator (or kro's controller) it expects to be up has
/// exited (the operator exits when it loses its lease, which an overloaded machine can
/// make it do) rather than wait out every timeout; its log says why.
fn watchdog() {
    tokio::spawn(async {
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            for (who, expected) in [("the operator", &EXPECTED), ("kro", &KRO_EXPECTED)] {
                let expected = expected.lock().unwrap().clone();
                if let Some((pid, log)) = expected {
                    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
                    if exited(stat.as_deref()) {
                        eprintln!(
                            "bench: {who} exited during the run (see {}); giving up",
                            log.display()
                        );
                        std::process::exit(1);
                    }
                }
            }
        }
    });
}

/// Paved's claims in the cluster: ServiceClaims, PostgreSQLInstances.
async fn claim_counts(client: &Client) -> Result<(usize, usize)> {
    let sc = Api::<ServiceClaim>::all(client.clone())
        .list_metadata(&ListParams::default())
        .await?
        .items
        .len();
    let pg = Api::<PostgreSQLInstance>::all(client.clone())
        .list_metadata(&ListParams::default())
        .await?
        .items
        .len();
    Ok((sc, pg))
}

/// Namespaces in the cluster.
async fn namespace_count(client: &Client) -> Result<usize> {
    Ok(
        Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
            .list_metadata(&ListParams::default())
            .await?
            .items
            .len(),
    )
}

/// PostgreSQLInstances of `api` that have a status (read a page at a time).
async fn with_status(api: &Api<PostgreSQLInstance>) -> Result<usize> {
    let mut n = 0;
    let mut lp = ListParams::default().limit(2000);
    loop {
        let page = api.list(&lp).await?;
        n += page
            .items
            .iter()
            .filter(|p| p.status.as_ref().is_some_and(|s| !s.conditions.is_empty()))
            .count();
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => return Ok(n),
        }
    }
}

/// One memory point: the cache (PostgreSQLInstances naming a Composition that does not
/// exist, each reconciled once to Synced=False and cached) grown until Paved's claims
/// number `target`, then a new operator process over every claim (`restart_over_cache`).
/// The new claims are created with `op` stopped, as fast as the apiserver takes them;
/// then an operator with `growth_flags` settles them (each its first reconcile and
/// status), so the measured restart meets only claims that did not change. Returns the
/// measured operator, which runs with the run's `flags`; `op`, the one running before
/// (if any), is stopped.
async fn grow_point(
    cp: &ControlPlane,
    client: &Client,
    op: Option<Operator>,
    flags: &[&str],
    target: usize,
    next: &mut usize,
) -> Result<(Operator, MemoryPoint)> {
    let pg_api: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), "bench-cache");
    let (sc, pg) = claim_counts(client).await?;
    let add = target.saturating_sub(sc + pg);
    let op = if add == 0 {
        op
    } else {
        if let Some(op) = op {
            stop_op(op);
        }
        eprintln!("bench: {add} more claims into the operator's cache (to {target})");
        // Made with the finalizer the operator's first reconcile would add (the cached
        // object is the same): a growth then costs the apiserver each claim's create,
        // status and Event, not a patch and a reconcile more.
        let pgs: Vec<PostgreSQLInstance> = (*next..*next + add)
            .map(|i| {
                let mut c = db::claim(
                    &format!("cache-{i}"),
                    "bench-cache",
                    "bench-absent",
                    Some("Orphan"),
                );
                c["metadata"]["finalizers"] = json!([paved_api::FINALIZER]);
                serde_json::from_value(c).unwrap()
            })
            .collect();
        *next += add;
        let workers: usize = GROWTH_CONCURRENCY.parse()?;
        create_all(&pg_api, pgs, workers).await?;
        let grow = start_op(cp, &format!("bench-grow-{target}"), &growth_flags(flags))?;
        // A new process reconciles every claim there is once: a first sign, then every
        // new claim's status, which is what holds.
        eventually(
            "the cached claims reconciled",
            Duration::from_secs(1800),
            || async {
                Ok(
                    (grow.counter("paved_reconciles", "postgresqlinstance")? >= (pg + add) as f64)
                        .then_some(()),
                )
            },
        )
        .await?;
        let cached = pg_api
            .list_metadata(&ListParams::default())
            .await?
            .items
            .len();
        eventually(
            "every cached claim has a status",
            Duration::from_secs(1800),
            || async {
                let done = with_status(&pg_api).await?;
                if done < cached {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                Ok((done >= cached).then_some(()))
            },
        )
        .await?;
        Some(grow)
    };
    restart_over_cache(cp, client, op, flags, &format!("bench-mem-{target}")).await
}

/// One point of the memory curve: a new operator process over every claim cached.
struct MemoryPoint {
    service_claims: usize,
    databases: usize,
    rss_mib: f64,
    /// Of the resident set then, the binary's pages (RssFile).
    file_mib: f64,
    /// Namespaces in the cluster (the operator caches each one's metadata): the
    /// claims', and the plain client's from the rounds.
    namespaces: usize,
    seconds_to_all: f64,
    writes: f64,
}

impl MemoryPoint {
    fn claims(&self) -> usize {
        self.service_claims + self.databases
    }
    fn json(&self) -> Value {
        json!({ "claims": self.claims(), "serviceClaims": self.service_claims,
                "postgresqlInstances": self.databases, "peakRssMiB": self.rss_mib,
                "fileRssMiB": self.file_mib, "namespaces": self.namespaces,
                "secondsToAllReconciled": self.seconds_to_all, "writes": self.writes })
    }
}

/// The operator (`op`, stopped if it runs) started again (`name`) over the claims there
/// are; once it has reconciled each: its peak RSS, the time it took and its writes.
async fn restart_over_cache(
    cp: &ControlPlane,
    client: &Client,
    op: Option<Operator>,
    flags: &[&str],
    name: &str,
) -> Result<(Operator, MemoryPoint)> {
    let (sc, pg) = claim_counts(client).await?;
    if let Some(op) = op {
        stop_op(op);
    }
    eprintln!(
        "bench: restart over {} claims ({sc} ServiceClaims, {pg} PostgreSQLInstances)",
        sc + pg
    );
    let spawned = Instant::now();
    let op = start_op(cp, name, flags)?;
    let seconds_to_all = eventually(
        "every claim reconciled after a restart",
        Duration::from_secs(1800),
        || async {
            let svc = op
                .counter("paved_reconciles", "serviceclaim")
                .unwrap_or(0.0);
            let pgi = op
                .counter("paved_reconciles", "postgresqlinstance")
                .unwrap_or(0.0);
            Ok((svc >= sc as f64 && pgi >= pg as f64).then(|| spawned.elapsed().as_secs_f64()))
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let point = MemoryPoint {
        service_claims: sc,
        databases: pg,
        rss_mib: peak_rss_mib(op.pid())?,
        file_mib: measure::file_rss_mib(op.pid())?,
        namespaces: namespace_count(client).await?,
        seconds_to_all,
        writes: op.counter("paved_apiserver_writes", "")?,
    };
    eprintln!(
        "bench: {} claims cached: peak RSS {:.1} MiB",
        point.claims(),
        point.rss_mib
    );
    Ok((op, point))
}

/// What a pass over every claim (a periodic resync, or a new process's first) cost a
/// controller.
struct Pass {
    claims: usize,
    reconciles: f64,
    /// Write requests the controller sent (Paved: its writes metric; kro: its PATCH,
    /// PUT, POST and DELETE requests).
    writes: f64,
    /// Of which server-side applies (kro's PATCHes).
    patches: f64,
    /// Objects (the claims' and the claims themselves) that changed, by kind: a claim
    /// whose resourceVersion moved, an object whose metadata moved but for other
    /// controllers' status writes (`kro::fingerprint`).
    changed: BTreeMap<String, usize>,
    objects: usize,
    /// The apiserver's requests over the pass (reads included), per claim: from every
    /// client, and from ServiceAccounts (the controller's own).
    requests_per_claim: f64,
    controller_requests_per_claim: f64,
    seconds: f64,
    cpu: BTreeMap<String, f64>,
}

impl Pass {
    fn changed_total(&self) -> usize {
        self.changed.values().sum()
    }

    /// "n of m", and by kind when any changed.
    fn changed_cell(&self) -> String {
        let by: Vec<String> = self
            .changed
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        if by.is_empty() {
            format!("0 of {}", self.objects)
        } else {
            format!(
                "{} of {} ({})",
                self.changed_total(),
                self.objects,
                by.join(", ")
            )
        }
    }

    fn json(&self) -> Value {
        json!({ "claims": self.claims, "reconciles": self.reconciles, "writes": self.writes,
                "patches": self.patches, "objectsChanged": self.changed_total(),
                "objectsChangedByKind": self.changed, "objects": self.objects,
                "apiserverRequestsPerClaim": self.requests_per_claim,
                "controllerRequestsPerClaim": self.controller_requests_per_claim, "seconds": self.seconds,
                "cpuSeconds": self.cpu })
    }
}

/// Everything kro's phase measured.
struct KroRun {
    /// The plain client's runs it is compared with (apply, create), seconds.
    plain_apply: f64,
    plain_create: f64,
    run: measure::Measured,
    rss_after_claims: f64,
    requests_by_method: BTreeMap<String, f64>,
    reconciles: f64,
    /// A periodic resync, when kro's period is short enough to wait for.
    resync: Option<Pass>,
    /// A new kro process's first pass over every instance.
    restart: Pass,
    drift: Vec<Option<f64>>,
    steady: Vec<Arrival>,
    steady_cpu: Vec<BTreeMap<String, f64>>,
    /// Peak RSS of each kro process (before and after the restart).
    rss_peak: f64,
    cpu_total: f64,
}

/// kro's requests to the apiserver so far, by method.
fn kro_requests(k: &Kro) -> Result<BTreeMap<String, f64>> {
    ["GET", "PATCH", "PUT", "POST", "DELETE"]
        .iter()
        .map(|m| Ok((m.to_string(), k.requests(m)?)))
        .collect()
}

/// The writes among kro's requests since `before` (all of them, and the PATCHes).
fn kro_writes(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> (f64, f64) {
    let sent = |m: &str| after.get(m).unwrap_or(&0.0) - before.get(m).unwrap_or(&0.0);
    (
        sent("PATCH") + sent("PUT") + sent("POST") + sent("DELETE"),
        sent("PATCH"),
    )
}

/// kro's resync periods up to this are waited for in the run; a longer one (its default
/// is 10 h) is not, and its restart pass stands for what a resync pass does.
const KRO_RESYNC_WAIT_LIMIT: u64 = 300;

#[allow(clippy::too_many_arguments)]
async fn kro_phase(
    cp: &'static ControlPlane,
    client: &Client,
    meter: &Meter,
    a: &Args,
    pids: &[(&'static str, u32)],
    kro_dir: &std::path::Path,
    plain_just_before: (f64, f64),
    clock: &mut Clock,
) -> Result<KroRun> {
    let kubeconfig = kro::install(cp, kro_dir)?;
    let start = |name: &str| {
        Kro::start(
            kro_dir,
            &kubeconfig,
            name,
            a.concurrency,
            a.kro_resync_seconds,
        )
    };
    let k = start("bench-kro")?;
    expect_kro(Some(&k));
    kro::apply_rgd(cp)?;
    let kro_pids = with(pids, "kro", k.pid());
    let n = a.kro_claims;
    // The plain client's runs of as many claims' objects just before it (no
    // controller running).
    let (plain_apply, plain_create) = plain_just_before;
    clock.lap("kro: set-up");
    settle(&kro_pids).await;
    let req0 = kro_requests(&k)?;
    let rec0 = k.reconciles()?;
    let run = meter
        .measure(
            &kro_pids,
            "bench-kro-0",
            n,
            burst(client, Controller::Kro, n, a.concurrency, "0"),
        )
        .await?;
    let rss_after_claims = peak_rss_mib(k.pid())?;
    let req1 = kro_requests(&k)?;
    let requests_by_method = req1
        .iter()
        .map(|(m, v)| (m.clone(), (v - req0[m]) / n.max(1) as f64))
        .collect();
    let reconciles = (k.reconciles()? - rec0) / n.max(1) as f64;
    clock.lap("kro: N instances at once");

    let nss: Vec<String> = spread_indices(n, a.drift)
        .into_iter()
        .map(|i| Controller::Kro.claim_name("0", i))
        .collect();
    eprintln!("bench: kro: drift repair in {} namespaces", nss.len());
    let drift = drift_repair(client, &nss, Duration::from_secs(60)).await?;

    let selector = "app.kubernetes.io/managed-by=kro";
    let kro_claims = Controller::Kro.resource();
    let claims_sel = (&kro_claims, "paved.dev/bench=kro");
    // A periodic resync, if its period is one to wait for.
    let resync = if a.kro_resync_seconds <= KRO_RESYNC_WAIT_LIMIT {
        eprintln!(
            "bench: kro: waiting for a full resync ({} s)",
            a.kro_resync_seconds
        );
        // Quiet first: the quota controller and External Secrets write the new
        // objects' status for a while after they are made.
        settle(&kro_pids).await;
        let v0 = kro::versions(client, selector, claims_sel).await?;
        let cpu0 = Cpu::read(&kro_pids);
        let served0 = apiserver_counts(client).await?;
        let (rec0, req0) = (k.reconciles()?, kro_requests(&k)?);
        let t0 = Instant::now();
        eventually(
            "kro's resync of every instance",
            Duration::from_secs(a.kro_resync_seconds * 3 + 600),
            || async {
                // A whole period, as Paved's (see there).
                Ok((t0.elapsed() >= Duration::from_secs(a.kro_resync_seconds)
                    && k.reconciles()? >= rec0 + n as f64
                    && k.queued()? == 0.0)
                    .then_some(()))
            },
        )
        .await?;
        let seconds = t0.elapsed().as_secs_f64();
        let cpu = Cpu::read(&kro_pids).since(&cpu0);
        let served = per_claim(&served0, &apiserver_counts(client).await?, n);
        let (writes, patches) = kro_writes(&req0, &kro_requests(&k)?);
        let v1 = kro::versions(client, selector, claims_sel).await?;
        Some(Pass {
            claims: n,
            reconciles: k.reconciles()? - rec0,
            writes,
            patches,
            changed: kro::changed(&v0, &v1),
            objects: v0.len(),
            requests_per_claim: totals(&served).0,
            controller_requests_per_claim: served.get(SERVICE_ACCOUNTS).copied().unwrap_or(0.0),
            seconds,
            cpu,
        })
    } else {
        None
    };

    // A restart: a new kro process reconciles every instance once, which is what each
    // resync pass does (every object read from the apiserver and applied again).
    let mut rss_peak = peak_rss_mib(k.pid())?;
    let mut cpu_total = measure::cpu_seconds(k.pid())?;
    expect_kro(None);
    drop(k);
    settle(pids).await;
    eprintln!("bench: kro: restart over {n} instances");
    let v0 = kro::versions(client, selector, claims_sel).await?;
    let cpu0 = Cpu::read(pids);
    let served0 = apiserver_counts(client).await?;
    let spawned = Instant::now();
    let k = start("bench-kro-restart")?;
    expect_kro(Some(&k));
    let kro_pids = with(pids, "kro", k.pid());
    let seconds = eventually(
        "every kro instance reconciled after a restart",
        Duration::from_secs(1800),
        || async {
            Ok((k.reconciles()? >= n as f64 && k.queued()? == 0.0)
                .then(|| spawned.elapsed().as_secs_f64()))
        },
    )
    .await?;
    let mut cpu = Cpu::read(pids).since(&cpu0);
    cpu.insert("kro".into(), measure::cpu_seconds(k.pid())?);
    let served = per_claim(&served0, &apiserver_counts(client).await?, n);
    let (writes, patches) = kro_writes(&BTreeMap::new(), &kro_requests(&k)?);
    let v1 = kro::versions(client, selector, claims_sel).await?;
    let restart = Pass {
        claims: n,
        reconciles: k.reconciles()?,
        writes,
        patches,
        changed: kro::changed(&v0, &v1),
        objects: v0.len(),
        requests_per_claim: totals(&served).0,
        controller_requests_per_claim: served.get(SERVICE_ACCOUNTS).copied().unwrap_or(0.0),
        seconds,
        cpu,
    };
    clock.lap("kro: drift repair, resync, restart");

    let mut steady_runs = Vec::new();
    let mut steady_cpu = Vec::new();
    for &rate in &a.steady_rates {
        settle(&kro_pids).await;
        eprintln!(
            "bench: kro: claims arriving at {rate}/s for {} s",
            a.steady_seconds
        );
        let cpu0 = Cpu::read(&kro_pids);
        steady_runs.push(
            steady(
                client,
                Controller::Kro,
                rate,
                a.steady_seconds,
                Duration::from_secs(a.steady_drain_seconds),
            )
            .await?,
        );
        steady_cpu.push(Cpu::read(&kro_pids).since(&cpu0));
    }
    clock.lap("kro: steady arrival");
    rss_peak = rss_peak.max(peak_rss_mib(k.pid())?);
    cpu_total += measure::cpu_seconds(k.pid())?;
    expect_kro(None);
    drop(k);
    Ok(KroRun {
        plain_apply,
        plain_create,
        run,
        rss_after_claims,
        requests_by_method,
        reconciles,
        resync,
        restart,
        drift,
        steady: steady_runs,
        steady_cpu,
        rss_peak,
        cpu_total,
    })
}

/// Paved's steady arrivals and their CPU.
async fn paved_steady(
    client: &Client,
    a: &Args,
    op_pids: &[(&'static str, u32)],
) -> Result<(Vec<Arrival>, Vec<BTreeMap<String, f64>>)> {
    let mut runs = Vec::new();
    let mut cpus = Vec::new();
    for &rate in &a.steady_rates {
        settle(op_pids).await;
        eprintln!(
            "bench: Paved: claims arriving at {rate}/s for {} s",
            a.steady_seconds
        );
        let cpu0 = Cpu::read(op_pids);
        runs.push(
            steady(
                client,
                Controller::Paved,
                rate,
                a.steady_seconds,
                Duration::from_secs(a.steady_drain_seconds),
            )
            .await?,
        );
        cpus.push(Cpu::read(op_pids).since(&cpu0));
    }
    Ok((runs, cpus))
}

/// Pure: Paved's targets for a steady arrival's p99 (seconds): under 1 s up to 5
/// claims a second (the `local`-instant path), under 2 s up to 20.
fn steady_target(rate: f64) -> Option<f64> {
    if rate <= 5.0 {
        Some(1.0)
    } else if rate <= 20.0 {
        Some(2.0)
    } else {
        None
    }
}

/// Pure: the fewest list pages a poll of `made` instances Paved made and `observed`
/// ones it observes can take: DescribeDBInstances pages hold 100 instances (both
/// kinds); the security groups Paved made, one per instance it made, come from one
/// DescribeSecurityGroups of the groups tagged as a claim's, whose pages hold 1000
/// (moto: all at once). An observed instance adds no call of its own (its parameter
/// group is read once an hour per group).
fn min_list_pages(made: usize, observed: usize) -> f64 {
    ((made + observed) as f64 / 100.0).ceil() + (made as f64 / 1000.0).ceil()
}

/// Pure: a steady arrival sent each claim within one interval (1/rate) of its time.
fn kept_schedule(r: &Arrival) -> bool {
    r.max_send_lag < 1.0 / r.rate
}

/// A memory point as (ServiceClaims, PostgreSQLInstances, peak RSS MiB).
type Point = (usize, usize, f64);

/// One step of the memory curve: from one point to a later one that has at least as many
/// claims of each kind; the claims added and MiB per 1,000 of them.
#[derive(Debug, PartialEq)]
struct Slope {
    from: usize,
    to: usize,
    service_claims: usize,
    databases: usize,
    mib_per_1000: f64,
}

/// Pure: the curve's steps. Each point (by number of claims) is compared with the latest
/// earlier point it holds every claim of: a point with fewer claims of one kind (the
/// first points, PostgreSQLInstances that were deleted before the rounds) starts a
/// curve of its own rather than give a slope of two different mixes.
fn slopes(points: &[Point]) -> Vec<Slope> {
    let mut p = points.to_vec();
    p.sort_by_key(|(s, d, _)| s + d);
    let mut out = Vec::new();
    for (i, &(s1, d1, r1)) in p.iter().enumerate() {
        let Some(&(s0, d0, r0)) = p[..i]
            .iter()
            .rev()
            .find(|(s0, d0, _)| *s0 <= s1 && *d0 <= d1 && s0 + d0 < s1 + d1)
        else {
            continue;
        };
        out.push(Slope {
            from: s0 + d0,
            to: s1 + d1,
            service_claims: s1 - s0,
            databases: d1 - d0,
            mib_per_1000: (r1 - r0) / ((s1 + d1) - (s0 + d0)) as f64 * 1000.0,
        });
    }
    out
}

fn steady_json(runs: &[Arrival], cpus: &[BTreeMap<String, f64>]) -> Value {
    Value::Array(
        runs.iter()
            .zip(cpus)
            .map(|(r, c)| {
                json!({ "rate": r.rate, "seconds": r.seconds, "latency": Spread::of(&r.latencies).json(),
                        "notReady": r.not_ready, "drainLimitSeconds": r.drain_limit,
                        "maxSendLagSeconds": r.max_send_lag, "drainSeconds": r.drain,
                        "cpuSeconds": c })
            })
            .collect(),
    )
}

#[tokio::main]
async fn main() -> Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let a = parse_args(&argv)?;
    watchdog();
    let mut clock = Clock::new();
    let run_start = Instant::now();
    // kro first: a failed build should not cost a run.
    let kro_dir = if a.kro_claims > 0 {
        Some(kro::build()?)
    } else {
        None
    };
    let cp = control_plane_with_env(&[("PAVED_ESO_STORE_REQUEUE", ESO_STORE_REQUEUE)]);
    let requeue = cp
        .env
        .get("PAVED_ESO_STORE_REQUEUE_IN_USE")
        .map(String::as_str);
    if requeue != Some(ESO_STORE_REQUEUE) {
        bail!(
            "the control plane in {} validates every SecretStore again every {}, the bench's \
             every {ESO_STORE_REQUEUE}: run `make bench` (its own plane) or stop that one first \
             (`PAVED_CP_DIR={0} e2e/control-plane down`)",
            cp.env.get("PAVED_CP_DIR").map_or("?", String::as_str),
            requeue.unwrap_or("10s")
        );
    }
    let client = cp.client().await?;
    let earlier = Api::<ServiceClaim>::all(client.clone())
        .list(&ListParams::default().labels("paved.dev/bench=true"))
        .await?;
    if !earlier.items.is_empty() {
        bail!(
            "this control plane holds an earlier run's claims: run `make bench` (its own plane, \
             torn down after) or `e2e/control-plane down` first"
        );
    }
    let mut results = serde_json::Map::new();
    let machine = json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memTotal": std::fs::read_to_string("/proc/meminfo").ok()
            .and_then(|m| m.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())),
        "cpuModel": std::fs::read_to_string("/proc/cpuinfo").ok()
            .and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())),
        "operatorBinary": paved_e2e::operator_binary().display().to_string(),
        "kro": kro_dir.as_ref().map(|d| d.display().to_string()),
        "referenceTaskSeconds": measure::reference_task_seconds(),
    });
    results.insert("machine".into(), machine);
    results.insert(
        "parameters".into(),
        json!({ "claims": a.claims, "cacheClaims": a.cache_claims, "awsInstances": a.aws_instances,
                "awsIdentities": a.aws_identities, "cloudIdentities": a.cloud_identities,
                "concurrency": a.concurrency, "resyncSeconds": a.resync_seconds, "rounds": a.rounds,
                "kroClaims": a.kro_claims, "kroResyncSeconds": a.kro_resync_seconds,
                "drift": a.drift, "steadyRates": a.steady_rates, "steadySeconds": a.steady_seconds,
                "steadyDrainSeconds": a.steady_drain_seconds, "awsObserved": a.aws_observed,
                "profileSeconds": a.profile_seconds, "memoryPoints": a.memory_points,
                "esoStoreRequeue": ESO_STORE_REQUEUE }),
    );

    let pids = plane_pids(cp);
    let resync = a.resync_seconds.to_string();
    let conc = a.concurrency.to_string();
    let recheck = IDENTITY_RECHECK_SECONDS.to_string();
    let flags = [
        "--resync-seconds",
        resync.as_str(),
        "--concurrency",
        conc.as_str(),
        "--identity-recheck-seconds",
        recheck.as_str(),
        "--log-format",
        "json",
        // A 60 s lease (40 s to renew it), not the chart's 15 s: on 2 cores shared with
        // moto, the fakes and 10,000 cached claims, one renewal stalled past the 10 s
        // deadline and the operator stepped down, as it must, ending the run.
        "--lease-seconds",
        "60",
    ];
    let mut op = start_op(cp, "bench", &flags)?;
    // The plain client writes as the operator does: with the chart's ServiceAccount,
    // so both meet the same admission, RBAC and API priority-and-fairness level (an
    // admin's requests are exempt from the latter).
    let mut as_operator = cp.clone();
    as_operator.env.insert(
        "KUBECONFIG".into(),
        paved_e2e::chart_rbac_kubeconfig(cp)?.display().to_string(),
    );
    let plain = as_operator.client().await?;
    let meter = Meter {
        admin: client.clone(),
        profiler: Profiler {
            cp,
            seconds: a.profile_seconds,
        },
    };
    let owner = plain_owner(&client).await?;
    let concurrency = a.concurrency;
    // The plain client's two runs of `n` claims' objects, each measured with `pids`:
    // server-side apply (`bench-plain-<tag>-*`), then create (`bench-post-<tag>-*`).
    let plain_runs = |pids: Vec<(&'static str, u32)>, tag: String, n: usize| {
        let (plain, owner, meter) = (plain.clone(), owner.clone(), &meter);
        async move {
            let mut runs = Vec::new();
            for (how, prefix) in [
                (Plain::Apply, format!("bench-plain-{tag}")),
                (Plain::Create, format!("bench-post-{tag}")),
            ] {
                let run = baseline(&plain, n, concurrency, how, &prefix, &owner);
                runs.push(meter.measure(&pids, &prefix, n, run).await?);
            }
            let create = runs.pop().context("the create run")?;
            let apply = runs.pop().context("the apply run")?;
            Ok::<_, anyhow::Error>((apply, create))
        }
    };
    let claims_total = a.claims * a.rounds;
    let (early, mid, late) = memory_plan(&a.memory_points, claims_total, a.cache_claims);
    db::namespace(cp, "bench-cache", "local", "internal")?;
    let pg_api: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), "bench-cache");
    let mut next_pg = 0usize;
    let mut memory: Vec<MemoryPoint> = Vec::new();
    clock.lap("start-up: CRDs, Compositions, the operator");

    // 1. Memory points below the rounds' claims: their claims go again before the
    // rounds, which start on an empty cache as always.
    if !early.is_empty() {
        for &p in &early {
            let (o, point) = grow_point(cp, &client, Some(op), &flags, p, &mut next_pg).await?;
            op = o;
            memory.push(point);
        }
        eprintln!("bench: deleting the early points' claims");
        pg_api
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await?;
        eventually(
            "the early points' claims gone",
            Duration::from_secs(600),
            || async {
                Ok(pg_api
                    .list_metadata(&ListParams::default())
                    .await?
                    .items
                    .is_empty()
                    .then_some(()))
            },
        )
        .await?;
        next_pg = 0;
        stop_op(op);
        op = start_op(cp, "bench", &flags)?;
        clock.lap("memory points below the rounds' claims");
    }
    let mut op_pids = with(&pids, "paved-operator", op.pid());

    // 2. Rounds: the plain client's apply and create runs, then the operator's claims,
    // `rounds` times, and the plain client's runs once more; each round's ratios are
    // over the runs just before and after it (so neither side gains from the cluster
    // growing), and the figures are the median round's. Every phase runs beside the
    // operator: idle in the plain runs (it watches every namespace, theirs too, but has
    // nothing to do for them).
    let writes0 = op.counter("paved_apiserver_writes", "")?;
    let status0 = op.counter("paved_apiserver_writes", "verb=\"status\"")?;
    let mut applies = vec![];
    let mut creates = vec![];
    let mut rounds = vec![];
    let mut rss_round0 = f64::NAN;
    for round in 0..=a.rounds {
        let (apply, create) = plain_runs(op_pids.clone(), round.to_string(), a.claims).await?;
        applies.push(apply);
        creates.push(create);
        if round == a.rounds {
            break;
        }
        rounds.push(
            meter
                .measure(
                    &op_pids,
                    &format!("bench-operator-{round}"),
                    a.claims,
                    burst(
                        &client,
                        Controller::Paved,
                        a.claims,
                        a.concurrency,
                        &round.to_string(),
                    ),
                )
                .await?,
        );
        if round == 0 {
            rss_round0 = peak_rss_mib(op.pid())?;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes_per_claim =
        (op.counter("paved_apiserver_writes", "")? - writes0) / claims_total as f64;
    let status_per_claim =
        (op.counter("paved_apiserver_writes", "verb=\"status\"")? - status0) / claims_total as f64;
    let seconds = |ms: &[measure::Measured]| ms.iter().map(|m| m.seconds).collect::<Vec<_>>();
    let apply_ratios = round_ratios(&seconds(&rounds), &seconds(&applies));
    let create_ratios = round_ratios(&seconds(&rounds), &seconds(&creates));
    let apply_ratio = median(&apply_ratios);
    let create_ratio = median(&create_ratios);
    let plain_s = summarize(&applies);
    let post_s = summarize(&creates);
    let op_s = summarize(&rounds);
    clock.lap("rounds: plain client and operator");

    // 3. A periodic resync that changes nothing, then drift repair.
    eprintln!("bench: waiting for a full resync ({}s)", a.resync_seconds);
    let paved_selector = format!(
        "{}={}",
        paved_api::labels::MANAGED_BY,
        paved_api::labels::MANAGED_BY_VALUE
    );
    let paved_claims = Controller::Paved.resource();
    // Quiet first: the quota controller and External Secrets write the new objects'
    // status for a while after they are made.
    settle(&op_pids).await;
    let v0 = kro::versions(
        &client,
        &paved_selector,
        (&paved_claims, "paved.dev/bench=true"),
    )
    .await?;
    let cpu0 = Cpu::read(&op_pids);
    let served0 = apiserver_counts(&client).await?;
    let rec0 = op.counter("paved_reconciles", "serviceclaim")?;
    let w0 = op.counter("paved_apiserver_writes", "")?;
    let apply0 = op.counter("paved_apiserver_writes", "verb=\"apply\"")?;
    let t0 = Instant::now();
    // A whole period (and its jitter, a tenth of it) as well as as many reconciles as
    // claims: reconciles that events set off (other controllers' status writes) would
    // otherwise close the window before every claim's resync came.
    let period = Duration::from_secs(a.resync_seconds) * 11 / 10;
    eventually(
        "a full resync of every claim",
        Duration::from_secs(a.resync_seconds * 3 + 120),
        || async {
            Ok((t0.elapsed() >= period
                && op.counter("paved_reconciles", "serviceclaim")? >= rec0 + claims_total as f64)
                .then_some(()))
        },
    )
    .await?;
    let paved_resync = {
        let seconds = t0.elapsed().as_secs_f64();
        let cpu = Cpu::read(&op_pids).since(&cpu0);
        let served = per_claim(&served0, &apiserver_counts(&client).await?, claims_total);
        let v1 = kro::versions(
            &client,
            &paved_selector,
            (&paved_claims, "paved.dev/bench=true"),
        )
        .await?;
        Pass {
            claims: claims_total,
            reconciles: op.counter("paved_reconciles", "serviceclaim")? - rec0,
            writes: op.counter("paved_apiserver_writes", "")? - w0,
            patches: op.counter("paved_apiserver_writes", "verb=\"apply\"")? - apply0,
            changed: kro::changed(&v0, &v1),
            objects: v0.len(),
            requests_per_claim: totals(&served).0,
            controller_requests_per_claim: served.get(SERVICE_ACCOUNTS).copied().unwrap_or(0.0),
            seconds,
            cpu,
        }
    };
    let rss_after_claims = peak_rss_mib(op.pid())?;
    let nss: Vec<String> = spread_indices(a.claims, a.drift)
        .into_iter()
        .map(|i| Controller::Paved.claim_name("0", i))
        .collect();
    eprintln!("bench: Paved: drift repair in {} namespaces", nss.len());
    let paved_drift = drift_repair(&client, &nss, Duration::from_secs(60)).await?;
    clock.lap("Paved: idle resync and drift repair");

    // 4. Restart: start-up to the first reconcile and to every claim reconciled.
    stop_op(op);
    settle(&pids).await;
    eprintln!("bench: restart");
    let v0 = kro::versions(
        &client,
        &paved_selector,
        (&paved_claims, "paved.dev/bench=true"),
    )
    .await?;
    let cpu0 = Cpu::read(&pids);
    let served0 = apiserver_counts(&client).await?;
    let spawned = Instant::now();
    let op = start_op(cp, "bench-restart", &flags)?;
    let first = eventually("the first reconcile", Duration::from_secs(120), || async {
        Ok((op.counter("paved_reconciles", "").unwrap_or(0.0) >= 1.0)
            .then(|| spawned.elapsed().as_secs_f64()))
    })
    .await?;
    let all = eventually(
        "every claim reconciled after restart",
        Duration::from_secs(1800),
        || async {
            Ok((op
                .counter("paved_reconciles", "serviceclaim")
                .unwrap_or(0.0)
                >= claims_total as f64)
                .then(|| spawned.elapsed().as_secs_f64()))
        },
    )
    .await?;
    let mut cpu = Cpu::read(&pids).since(&cpu0);
    cpu.insert("paved-operator".into(), measure::cpu_seconds(op.pid())?);
    let served = per_claim(&served0, &apiserver_counts(&client).await?, claims_total);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let restart_writes = op.counter("paved_apiserver_writes", "")?;
    let v1 = kro::versions(
        &client,
        &paved_selector,
        (&paved_claims, "paved.dev/bench=true"),
    )
    .await?;
    let paved_restart = Pass {
        claims: claims_total,
        reconciles: op.counter("paved_reconciles", "serviceclaim")?,
        writes: restart_writes,
        patches: op.counter("paved_apiserver_writes", "verb=\"apply\"")?,
        changed: kro::changed(&v0, &v1),
        objects: v0.len(),
        requests_per_claim: totals(&served).0,
        controller_requests_per_claim: served.get(SERVICE_ACCOUNTS).copied().unwrap_or(0.0),
        seconds: all,
        cpu,
    };
    memory.push(MemoryPoint {
        service_claims: claims_total,
        databases: 0,
        rss_mib: peak_rss_mib(op.pid())?,
        file_mib: measure::file_rss_mib(op.pid())?,
        namespaces: namespace_count(&client).await?,
        seconds_to_all: all,
        writes: restart_writes,
    });
    clock.lap("Paved: restart");

    // 4b. Paved's side-by-side column when kro's N is not the rounds': the plain
    // client's runs and a Paved burst of kro's N.
    let side = if kro_dir.is_some() && a.kro_claims != a.claims {
        let n = a.kro_claims;
        let op_pids = with(&pids, "paved-operator", op.pid());
        let (apply, create) = plain_runs(op_pids.clone(), "side".into(), n).await?;
        let run = meter
            .measure(
                &op_pids,
                "bench-operator-side",
                n,
                burst(&client, Controller::Paved, n, a.concurrency, "side"),
            )
            .await?;
        let rss = peak_rss_mib(op.pid())?;
        clock.lap("Paved: a burst of kro's N, and the plain runs before it");
        Some((apply.seconds, create.seconds, summarize(&[run]), rss))
    } else {
        None
    };
    stop_op(op);

    // 5. kro, with Paved stopped (so neither's CPU or requests mix into the other's),
    // right after Paved's burst of the same N, in a cluster of the same size; first the
    // plain client's runs of its N, its reference. Its instances stay for Paved's later
    // phases (their namespaces are cached by Paved too).
    let kro_run = match &kro_dir {
        Some(dir) => {
            let (apply, create) = plain_runs(pids.clone(), "kro".into(), a.kro_claims).await?;
            clock.lap("kro: the plain client's runs of its N");
            let plain = (apply.seconds, create.seconds);
            Some(kro_phase(cp, &client, &meter, &a, &pids, dir, plain, &mut clock).await?)
        }
        None => None,
    };

    // 6. Paved again, its cache grown to `--cache-claims` (a memory point at each step);
    // then claims arriving at fixed rates with every claim cached.
    let mut op = None;
    for &p in &mid {
        let (o, point) = grow_point(cp, &client, op, &flags, p, &mut next_pg).await?;
        op = Some(o);
        memory.push(point);
    }
    // `mid` ends with the cache itself (memory_plan): its point is the last one.
    let mut op = op.context("the cache's own memory point")?;
    let (cached_claims, all_cached, restart_cached_writes) = memory
        .last()
        .map(|p| (p.claims(), p.seconds_to_all, p.writes))
        .context("the cache's own memory point")?;
    clock.lap("Paved: cache grown, restarts over it");
    op_pids = with(&pids, "paved-operator", op.pid());
    let (paved_steady_runs, paved_steady_cpu) = paved_steady(&client, &a, &op_pids).await?;
    clock.lap("Paved: steady arrival");

    // 7. Cloud calls per poll: RDS instances, IAM roles, Azure's and Google's
    // identities, each measured over its own window of polls by its own counter (the
    // operator's per-provider list metric, or the fake's request log), the waits and
    // windows overlapping.
    let poll = 20u64;
    let cycles = 3u64;
    eprintln!(
        "bench: {} PostgreSQLInstances on moto, {} AWS ServiceClaims with their own IAM role, \
         {} each on Azure and GCP with their own identity",
        a.aws_instances, a.aws_identities, a.cloud_identities
    );
    let seed = db::moto(cp, "seed.py", &[])?;
    db::aws_composition(cp, &seed, "bench-aws", &format!("{poll}s"))?;
    db::namespace(cp, "bench-aws", "aws", "internal")?;
    let oidc = format!(
        "arn:aws:iam::{}:oidc-provider/kubernetes.default.svc.cluster.local",
        paved_e2e::MOTO_ACCOUNT
    );
    paved_e2e::patch_service_composition(
        cp,
        "service-aws",
        json!({ "identity": { "aws": { "oidcProviderArn": oidc, "pollInterval": format!("{poll}s") } } }),
    )?;
    // Created one kind after another (each as many at once as the operator's
    // concurrency); then waited for and measured at once.
    let aws_api: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), "bench-aws");
    let aws_claims: Vec<PostgreSQLInstance> = (0..a.aws_instances)
        .map(|i| {
            serde_json::from_value(db::claim(
                &format!("rds-{i}"),
                "bench-aws",
                "bench-aws",
                Some("Delete"),
            ))
            .unwrap()
        })
        .collect();
    create_all(&aws_api, aws_claims, a.concurrency).await?;
    // Instances made by hand before Paved, each observed by a claim its Team grants:
    // read through the same per-region list as the ones Paved made.
    if a.aws_observed > 0 {
        let made = db::moto(
            cp,
            "query.py",
            &["create-legacy", "bench-legacy", &a.aws_observed.to_string()],
        )?;
        let names: Vec<String> = serde_json::from_value(made)?;
        let grants: Vec<(&str, &str, &str)> = names
            .iter()
            .map(|n| ("bench-aws", n.as_str(), "bench-aws"))
            .collect();
        db::grant_existing(cp, "bench-observed", "team-claims", &grants)?;
        let observed: Vec<PostgreSQLInstance> = names
            .iter()
            .map(|n| {
                serde_json::from_value(json!({
                    "apiVersion": "paved.dev/v1alpha1", "kind": "PostgreSQLInstance",
                    "metadata": { "name": n, "namespace": "bench-aws" },
                    "spec": { "compositionRef": { "name": "bench-aws" },
                              "existing": { "externalName": n } },
                }))
                .expect("an observing claim")
            })
            .collect();
        create_all(&aws_api, observed, a.concurrency).await?;
    }
    let services: Api<ServiceClaim> = Api::all(client.clone());
    let with_roles: Vec<ServiceClaim> = (0..a.aws_identities)
        .map(|i| {
            let mut c = claims::service_claim(&format!("bench-id-{i}"), "identities");
            c.spec.cloud = Some(Cloud::Aws);
            c
        })
        .collect();
    create_all(&services, with_roles, a.concurrency).await?;
    let azure = start_identities(
        cp,
        &client,
        Cloud::Azure,
        a.cloud_identities,
        poll,
        a.concurrency,
    )
    .await?;
    let gcp = start_identities(
        cp,
        &client,
        Cloud::Gcp,
        a.cloud_identities,
        poll,
        a.concurrency,
    )
    .await?;
    let rds = async {
        eventually(
            "the AWS claims Ready",
            Duration::from_secs(1800),
            || async {
                let n = claims::count(&aws_api, |p| {
                    p.status
                        .as_ref()
                        .is_some_and(|s| conditions::is_ready(&s.conditions, p.metadata.generation))
                })
                .await?;
                Ok((n >= a.aws_instances + a.aws_observed).then_some(()))
            },
        )
        .await?;
        let lists0 = op.counter("paved_cloud_list_calls", "provider=\"aws\"")?;
        let pg_rec1 = op.counter("paved_reconciles", "postgresqlinstance")?;
        tokio::time::sleep(Duration::from_secs(poll * cycles)).await;
        Ok::<_, anyhow::Error>((
            op.counter("paved_cloud_list_calls", "provider=\"aws\"")? - lists0,
            op.counter("paved_reconciles", "postgresqlinstance")? - pg_rec1,
        ))
    };
    // Every service's own IAM role, observed for drift every poll.
    let iam = "provider=\"aws-iam\"";
    let roles = async {
        eventually(
            "every service's role made",
            Duration::from_secs(1800),
            || async {
                let n = claims::count(&services, |c| {
                    c.metadata
                        .name
                        .as_deref()
                        .is_some_and(|n| n.starts_with("bench-id-"))
                        && c.status.as_ref().is_some_and(|s| s.identity.is_some())
                })
                .await?;
                Ok((n >= a.aws_identities).then_some(()))
            },
        )
        .await?;
        let iam0 = op.counter("paved_cloud_list_calls", iam)?;
        let svc_rec0 = op.counter("paved_reconciles", "serviceclaim")?;
        tokio::time::sleep(Duration::from_secs(poll * cycles)).await;
        Ok::<_, anyhow::Error>((
            op.counter("paved_cloud_list_calls", iam)? - iam0,
            op.counter("paved_reconciles", "serviceclaim")? - svc_rec0,
        ))
    };
    let ((list_pages, aws_reconciles), (iam_pages, identity_reconciles), azure_ids, gcp_ids) = tokio::try_join!(
        rds,
        roles,
        measure_identities(cp, &client, &op, azure, poll),
        measure_identities(cp, &client, &op, gcp, poll),
    )?;
    let iam_pages_per_poll = iam_pages / cycles as f64;
    // One list serves every claim for the list's time-to-live (the operator's
    // default, 5 s): at most poll ÷ TTL lists per poll, however many roles.
    let iam_max_per_poll = (poll as f64 / 5.0).ceil();
    let rss_final = peak_rss_mib(op.pid())?;
    clock.lap("cloud: RDS, IAM, Azure and Google identities, at once");

    // 8. The memory points above the cache.
    for &p in &late {
        let (o, point) = grow_point(cp, &client, Some(op), &flags, p, &mut next_pg).await?;
        op = o;
        memory.push(point);
    }
    stop_op(op);
    if !late.is_empty() {
        clock.lap("memory points above the cache");
    }

    let total_seconds = run_start.elapsed().as_secs_f64();

    let pages_per_poll = list_pages / cycles as f64;
    let min_pages = min_list_pages(a.aws_instances, a.aws_observed);
    memory.sort_by_key(|m| m.claims());
    let curve: Vec<Point> = memory
        .iter()
        .map(|m| (m.service_claims, m.databases, m.rss_mib))
        .collect();
    // Paved's column of the side-by-side table: its burst of kro's N.
    let paved_side = match &side {
        Some((apply, create, run, rss)) => PavedSide {
            cached: cached_claims,
            burst: run,
            burst_runs: "one run".into(),
            apply_ratio: run.median / apply,
            create_ratio: run.median / create,
            rss: *rss,
            rss_comparable: false,
            rss_note: format!(
                "Paved: its process also holds the rounds' {claims_total} claims, so no ratio"
            ),
            resync: &paved_resync,
            restart: &paved_restart,
            drift: &paved_drift,
            steady: &paved_steady_runs,
        },
        None => PavedSide {
            cached: cached_claims,
            burst: &op_s,
            burst_runs: format!("median of {} rounds", a.rounds),
            apply_ratio,
            create_ratio,
            rss: rss_round0,
            rss_comparable: true,
            rss_note: "Paved: after its first round".into(),
            resync: &paved_resync,
            restart: &paved_restart,
            drift: &paved_drift,
            steady: &paved_steady_runs,
        },
    };
    let kro_json = kro_run.as_ref().map(|k| {
        json!({
            "claims": a.kro_claims, "resyncSeconds": a.kro_resync_seconds,
            "plainApplySeconds": k.plain_apply, "plainCreateSeconds": k.plain_create,
            "seconds": k.run.seconds, "latency": Spread::of(&k.run.latencies).json(),
            "ratioOverPlainApply": k.run.seconds / k.plain_apply,
            "ratioOverPlainCreate": k.run.seconds / k.plain_create,
            "cpuSeconds": k.run.cpu, "apiserverPerClaim": k.run.served,
            "kroRequestsPerClaim": k.requests_by_method, "reconcilesPerClaim": k.reconciles,
            "rssAfterClaimsMiB": k.rss_after_claims, "rssPeakMiB": k.rss_peak,
            "cpuSecondsTotal": k.cpu_total,
            "paved": paved_side.json(),
            "resync": k.resync.as_ref().map(Pass::json), "restart": k.restart.json(),
            "driftRepairSeconds": k.drift,
            "steady": steady_json(&k.steady, &k.steady_cpu),
        })
    });
    results.insert(
        "figures".into(),
        json!({
            "baseline": { "runs": plain_s.runs, "medianSeconds": plain_s.median,
                           "latency": plain_s.latency.json(),
                           "cpuSecondsPerRun": plain_s.cpu, "apiserverPerClaim": plain_s.served },
            "createBaseline": { "runs": post_s.runs, "medianSeconds": post_s.median,
                                "latency": post_s.latency.json(),
                                "cpuSecondsPerRun": post_s.cpu, "apiserverPerClaim": post_s.served },
            "operator": { "runs": op_s.runs, "medianSeconds": op_s.median,
                           "latency": op_s.latency.json(),
                           "createRoundRatios": create_ratios, "createRatio": create_ratio,
                           "roundRatios": apply_ratios, "ratio": apply_ratio,
                           "cpuSecondsPerRun": op_s.cpu, "apiserverPerClaim": op_s.served,
                           "apiserverWritesPerClaim": writes_per_claim, "statusWritesPerClaim": status_per_claim,
                           "rssAfterFirstRoundMiB": rss_round0 },
            "resync": paved_resync.json(),
            "restartPass": paved_restart.json(),
            "driftRepairSeconds": paved_drift,
            "restart": { "secondsToFirstReconcile": first, "secondsToAllReconciled": all,
                          "writes": restart_writes, "claims": claims_total },
            "restartCached": { "claims": cached_claims, "secondsToAllReconciled": all_cached,
                                "writes": restart_cached_writes },
            "steady": steady_json(&paved_steady_runs, &paved_steady_cpu),
            "memory": memory.iter().map(MemoryPoint::json).collect::<Vec<_>>(),
            "memorySlopes": slopes(&curve).iter().map(|s| json!({ "from": s.from, "to": s.to,
                "serviceClaimsAdded": s.service_claims, "postgresqlInstancesAdded": s.databases,
                "mibPer1000": s.mib_per_1000 })).collect::<Vec<_>>(),
            "rssMiB": { "afterClaims": rss_after_claims, "afterFirstRound": rss_round0, "peak": rss_final },
            "aws": { "instances": a.aws_instances, "pollSeconds": poll, "cycles": cycles,
                      "observed": a.aws_observed,
                      "reconciles": aws_reconciles, "listPages": list_pages,
                      "listPagesPerPoll": pages_per_poll, "minimumPagesPerPoll": min_pages },
            "identities": { "roles": a.aws_identities, "pollSeconds": poll, "cycles": cycles,
                             "reconciles": identity_reconciles, "iamListPages": iam_pages,
                             "iamListPagesPerPoll": iam_pages_per_poll,
                             "maximumPagesPerPoll": iam_max_per_poll,
                             "perRoleCallsPerPollBefore": 4 * a.aws_identities },
            "azureIdentities": azure_ids.json(),
            "gcpIdentities": gcp_ids.json(),
            "kro": kro_json,
        }),
    );
    results.insert(
        "phases".into(),
        json!({ "totalSeconds": total_seconds,
                "settleSeconds": measure::settled_seconds(),
                "laps": clock.laps.iter().map(|(k, v, w)| json!({ "phase": k, "seconds": v, "settleSeconds": w })).collect::<Vec<_>>() }),
    );
    let out_dir = repo_root().join("target/paved-bench");
    std::fs::create_dir_all(&out_dir)?;
    let results = Value::Object(results);
    std::fs::write(
        out_dir.join("results.json"),
        serde_json::to_string_pretty(&results)?,
    )?;

    // The main table: the headline first.
    let mut main_t = Table::new(&[("figure", false), ("value", true), ("target", false)]);
    let joined = |v: &[f64]| {
        v.iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    main_t.row([
        "**ratio operator / plain creates (POST), median round** (each over the create runs around it)".to_string(),
        format!("{create_ratio:.2} ({})", joined(&create_ratios)),
        format!("≤ 1.2, {}", check(create_ratio <= 1.2)),
    ]);
    let adds = |events: bool| {
        measure::added(&op_s.served, &post_s.served, events, 6)
            .iter()
            .map(|(k, v)| format!("{k} +{v:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    main_t.row([
        "  what the operator's round adds per claim over the plain creates: requests (lists included); watch events".to_string(),
        format!("{}; {}", adds(false), adds(true)),
        String::new(),
    ]);
    main_t.row([
        "ratio operator / plain server-side apply, median round (each over the apply runs around it)".to_string(),
        format!("{apply_ratio:.2} ({})", joined(&apply_ratios)),
        format!("≤ 1.5, {}", check(apply_ratio <= 1.5)),
    ]);
    main_t.row([
        format!(
            "operator: {} ServiceClaims created at once, all Ready, median of {} rounds (s)",
            a.claims,
            op_s.runs.len()
        ),
        format!("{:.1} ({})", op_s.median, range(&op_s.runs)),
        String::new(),
    ]);
    main_t.row([
        "operator: per claim, creation to Ready, p50 / p99 (s)".to_string(),
        format!("{:.2} / {:.2}", op_s.latency.p50, op_s.latency.p99),
        String::new(),
    ]);
    main_t.row([
        format!(
            "plain client creates (POST) {} claims' objects, median of {} runs (s)",
            a.claims,
            post_s.runs.len()
        ),
        format!("{:.1} ({})", post_s.median, range(&post_s.runs)),
        String::new(),
    ]);
    main_t.row([
        format!(
            "plain client server-side applies them, median of {} runs (s)",
            plain_s.runs.len()
        ),
        format!("{:.1} ({})", plain_s.median, range(&plain_s.runs)),
        String::new(),
    ]);
    main_t.row([
        "plain client, per claim, p50 / p99 (s): creates; applies".to_string(),
        format!(
            "{:.2} / {:.2}; {:.2} / {:.2}",
            post_s.latency.p50, post_s.latency.p99, plain_s.latency.p50, plain_s.latency.p99
        ),
        String::new(),
    ]);
    for (r, _) in paved_steady_runs.iter().zip(&paved_steady_cpu) {
        let s = Spread::of(&r.latencies);
        let target = match steady_target(r.rate) {
            // A schedule not kept (the sender late by a whole interval) did not send at
            // the rate: no verdict.
            Some(_) if !kept_schedule(r) => "schedule not kept: no verdict".to_string(),
            Some(t) => format!("p99 < {t} s, {}", check(s.p99 < t)),
            None => String::new(),
        };
        main_t.row([
            format!(
                "operator, {} claims cached: {} claims arriving at {}/s (each sent at most {:.2} s after its time), creation to Ready, p50 / p99 / max (s)",
                cached_claims, s.n, r.rate, r.max_send_lag
            ),
            arrival(&s, r.not_ready, r.drain_limit),
            target,
        ]);
    }
    let cpu = |m: &BTreeMap<String, f64>, keys: &[&str]| {
        slash(
            &keys
                .iter()
                .map(|k| m.get(*k).copied().unwrap_or(0.0))
                .collect::<Vec<_>>(),
            1,
        )
    };
    let plane = ["kube-apiserver", "etcd", "kube-controller-manager"];
    main_t.row([
        "CPU s per run, plain creates / plain applies: apiserver / etcd / controller-manager"
            .to_string(),
        format!(
            "{}; {}",
            cpu(&post_s.cpu, &plane),
            cpu(&plain_s.cpu, &plane)
        ),
        String::new(),
    ]);
    main_t.row([
        "CPU s per run, operator: apiserver / etcd / controller-manager / operator".to_string(),
        cpu(
            &op_s.cpu,
            &[
                "kube-apiserver",
                "etcd",
                "kube-controller-manager",
                "paved-operator",
            ],
        ),
        String::new(),
    ]);
    // (requests, watch events) per claim of the three kinds of run.
    let served = [
        totals(&post_s.served),
        totals(&plain_s.served),
        totals(&op_s.served),
    ];
    main_t.row([
        "apiserver requests per claim, plain creates / plain applies / operator".to_string(),
        slash(&served.map(|t| t.0), 1),
        String::new(),
    ]);
    main_t.row([
        "apiserver watch events per claim, plain creates / plain applies / operator".to_string(),
        slash(&served.map(|t| t.1), 1),
        String::new(),
    ]);
    main_t.row([
        "apiserver writes per claim (operator metrics)".to_string(),
        format!("{writes_per_claim:.1}"),
        String::new(),
    ]);
    main_t.row([
        "  of which status writes".to_string(),
        format!("{status_per_claim:.1}"),
        String::new(),
    ]);
    main_t.row([
        format!("writes during a periodic resync of every claim, {claims_total} claims"),
        format!("{}", paved_resync.writes),
        format!("0, {}", check(paved_resync.writes == 0.0)),
    ]);
    main_t.row([
        "objects changed by that resync (the claims' objects and the claims)".to_string(),
        paved_resync.changed_cell(),
        format!("0, {}", check(paved_resync.changed_total() == 0)),
    ]);
    main_t.row([
        format!(
            "NetworkPolicy deleted by hand in {} namespaces: back after, median / max (s)",
            paved_drift.len()
        ),
        repairs(&paved_drift),
        String::new(),
    ]);
    main_t.row([
        "start-up to first reconcile (s)".to_string(),
        format!("{first:.2}"),
        String::new(),
    ]);
    main_t.row([
        format!("start-up to every claim reconciled, {claims_total} claims (s)"),
        format!("{all:.1}"),
        String::new(),
    ]);
    main_t.row([
        format!("writes in the first pass after a restart, {claims_total} claims"),
        format!("{restart_writes}"),
        format!("0, {}", check(restart_writes == 0.0)),
    ]);
    main_t.row([
        format!("restart with {cached_claims} claims cached: to every claim reconciled (s)"),
        format!("{all_cached:.1}"),
        format!("< 30, {}", check(all_cached < 30.0)),
    ]);
    main_t.row([
        format!("restart with {cached_claims} claims cached: writes in the first pass"),
        format!("{restart_cached_writes}"),
        format!("0, {}", check(restart_cached_writes == 0.0)),
    ]);
    for m in &memory {
        let target = if m.claims() == 10_000 {
            format!("< 64, {}", check(m.rss_mib < 64.0))
        } else {
            String::new()
        };
        main_t.row([
            format!(
                "peak RSS after a restart over {} claims cached ({} ServiceClaims, {} PostgreSQLInstances; {} namespaces in the cluster) (MiB; of which the binary's pages)",
                m.claims(),
                m.service_claims,
                m.databases,
                m.namespaces
            ),
            format!("{:.1} ({:.1})", m.rss_mib, m.file_mib),
            target,
        ]);
    }
    for sl in slopes(&curve) {
        main_t.row([
            format!(
                "  peak RSS per 1,000 claims added from {} to {} (+{} ServiceClaims, +{} PostgreSQLInstances) (MiB)",
                sl.from, sl.to, sl.service_claims, sl.databases
            ),
            format!("{:.1}", sl.mib_per_1000),
            String::new(),
        ]);
    }
    main_t.row([
        format!(
            "RDS and EC2 list pages per poll, {} instances made with their own security group and {} made by hand, observed",
            a.aws_instances, a.aws_observed
        ),
        format!("{pages_per_poll:.1}"),
        format!(
            "{min_pages} (one list per page), {}",
            check(pages_per_poll <= min_pages)
        ),
    ]);
    main_t.row([
        format!(
            "IAM list pages per poll, {} services' own roles ({:.0} ServiceClaim reconciles per poll, of every claim cached)",
            a.aws_identities,
            identity_reconciles / cycles as f64
        ),
        format!("{iam_pages_per_poll:.1}"),
        format!(
            "≤ {iam_max_per_poll} (poll ÷ list TTL), not per role ({} calls before), {}",
            4 * a.aws_identities,
            check(iam_pages_per_poll <= iam_max_per_poll)
        ),
    ]);
    for ids in [&azure_ids, &gcp_ids] {
        let (f, v, t) = ids.row(iam_max_per_poll);
        main_t.row([f, v, t]);
    }

    // Side by side.
    let kro_t = kro_run.as_ref().map(|k| side_by_side(&a, &paved_side, k));

    println!("{}", main_t.console(100));
    if let Some(t) = &kro_t {
        println!("{}", t.console(90));
    }
    println!("run time: {:.0} s", total_seconds);
    let laps: String = clock
        .laps
        .iter()
        .map(|(k, v, w)| format!("| {k} | {v:.0} | {w:.0} |\n"))
        .collect();
    let m = &results["machine"];
    let binary = m["operatorBinary"].as_str().unwrap_or("?");
    let binary = binary
        .rsplit_once("/target/")
        .map(|(_, p)| format!("target/{p}"))
        .unwrap_or_else(|| binary.to_string());
    let kro_version = kro_dir
        .as_ref()
        .and_then(|d| d.file_name())
        .map(|f| f.to_string_lossy().trim_start_matches("kro-").to_string())
        .unwrap_or_default();
    let md = benchmarks_md(
        &a,
        m,
        &binary,
        &main_t.markdown(),
        kro_t.as_ref().zip(kro_run.as_ref()).map(|(t, run)| KroDoc {
            table: t.markdown(),
            version: &kro_version,
            run,
        }),
        &laps,
        total_seconds,
    );
    std::fs::write(repo_root().join("BENCHMARKS.md"), md)?;
    eprintln!(
        "bench: results in {}",
        out_dir.join("results.json").display()
    );
    Ok(())
}

/// Paved's figures the side-by-side table compares.
struct PavedSide<'a> {
    cached: usize,
    /// Paved's burst of kro's N (its rounds', or one run of its own).
    burst: &'a measure::Summary,
    burst_runs: String,
    apply_ratio: f64,
    create_ratio: f64,
    rss: f64,
    /// Whether `rss` is of a process that holds as many claims as kro's.
    rss_comparable: bool,
    rss_note: String,
    resync: &'a Pass,
    restart: &'a Pass,
    drift: &'a [Option<f64>],
    steady: &'a [Arrival],
}

impl PavedSide<'_> {
    /// The figures of Paved's column, as the table shows them.
    fn json(&self) -> Value {
        json!({ "burst": self.burst_runs, "seconds": self.burst.median,
                "latency": self.burst.latency.json(),
                "ratioOverPlainApply": self.apply_ratio, "ratioOverPlainCreate": self.create_ratio,
                "cpuSeconds": self.burst.cpu, "apiserverPerClaim": self.burst.served,
                "rssMiB": self.rss, "rssComparable": self.rss_comparable,
                "cachedClaimsInSteadyArrival": self.cached })
    }
}

/// The side-by-side table: Paved's column from its rounds (the median round; latencies
/// pooled), kro's from its one run of the same claims.
fn side_by_side(a: &Args, p: &PavedSide, k: &KroRun) -> Table {
    let mut t = Table::new(&[
        ("figure", false),
        ("Paved", true),
        ("kro", true),
        ("kro / Paved", true),
    ]);
    let op_s = p.burst;
    let ks = Spread::of(&k.run.latencies);
    let pairs = |p: &[f64], q: &[f64]| -> String {
        p.iter()
            .zip(q)
            .map(|(x, y)| ratio(*y, *x))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    t.row([
        format!(
            "{} claims created at once, all Ready (s): Paved {}, kro one run",
            a.kro_claims, p.burst_runs
        ),
        num(op_s.median, 1),
        num(k.run.seconds, 1),
        ratio(k.run.seconds, op_s.median),
    ]);
    t.row([
        "per claim, creation to Ready, p50 / p99 (s)".to_string(),
        slash(&[op_s.latency.p50, op_s.latency.p99], 2),
        slash(&[ks.p50, ks.p99], 2),
        pairs(&[op_s.latency.p50, op_s.latency.p99], &[ks.p50, ks.p99]),
    ]);
    let k_create = k.run.seconds / k.plain_create;
    let k_apply = k.run.seconds / k.plain_apply;
    t.row([
        "over a plain client's creates (POST) of the same objects (Paved's rounds: each over the runs around it; else over the last run before it, as kro's)".to_string(),
        num(p.create_ratio, 2),
        num(k_create, 2),
        ratio(k_create, p.create_ratio),
    ]);
    t.row([
        "over a plain client's server-side apply (as above)".to_string(),
        num(p.apply_ratio, 2),
        num(k_apply, 2),
        ratio(k_apply, p.apply_ratio),
    ]);
    let (pr, pe) = totals(&op_s.served);
    let (kr, ke) = totals(&k.run.served);
    t.row([
        "apiserver requests per claim (every client but watches and lists)".to_string(),
        num(pr, 1),
        num(kr, 1),
        ratio(kr, pr),
    ]);
    let (pa, ka) = (
        op_s.served.get(SERVICE_ACCOUNTS).copied().unwrap_or(0.0),
        k.run.served.get(SERVICE_ACCOUNTS).copied().unwrap_or(0.0),
    );
    t.row([
        "the controller's own requests per claim, every verb (lists and watches too: API priority and fairness' count of its ServiceAccount's)".to_string(),
        num(pa, 1),
        num(ka, 1),
        ratio(ka, pa),
    ]);
    t.row([
        "apiserver watch events per claim".to_string(),
        num(pe, 1),
        num(ke, 1),
        ratio(ke, pe),
    ]);
    let get = |m: &BTreeMap<String, f64>, key: &str| m.get(key).copied().unwrap_or(0.0);
    let plane = |m: &BTreeMap<String, f64>| {
        [
            get(m, "kube-apiserver"),
            get(m, "etcd"),
            get(m, "kube-controller-manager"),
        ]
    };
    t.row([
        "CPU s per run: apiserver / etcd / controller-manager".to_string(),
        slash(&plane(&op_s.cpu), 1),
        slash(&plane(&k.run.cpu), 1),
        pairs(&plane(&op_s.cpu), &plane(&k.run.cpu)),
    ]);
    let (pc, kc) = (get(&op_s.cpu, "paved-operator"), get(&k.run.cpu, "kro"));
    t.row([
        "CPU s per run: the controller".to_string(),
        num(pc, 1),
        num(kc, 1),
        ratio(kc, pc),
    ]);
    t.row([
        format!(
            "controller peak RSS after those claims (MiB; {}; kro: a new process, with its metadata watches of every object of the claims' kinds)",
            p.rss_note
        ),
        num(p.rss, 1),
        num(k.rss_after_claims, 1),
        if p.rss_comparable {
            ratio(k.rss_after_claims, p.rss)
        } else {
            String::new()
        },
    ]);
    let back = |v: &[Option<f64>]| median(&v.iter().flatten().copied().collect::<Vec<_>>());
    t.row([
        format!(
            "NetworkPolicy deleted by hand in {} namespaces: back after, median / max (s)",
            a.drift
        ),
        repairs(p.drift),
        repairs(&k.drift),
        ratio(back(&k.drift), back(p.drift)),
    ]);
    let cpu_ms = |r: &Pass, who: &str| {
        [
            get(&r.cpu, "kube-apiserver") / r.claims.max(1) as f64 * 1000.0,
            get(&r.cpu, who) / r.claims.max(1) as f64 * 1000.0,
        ]
    };
    // Passes over every claim: Paved's periodic resync and kro's (when run), and a new
    // process's first pass on both sides.
    let pass_rows = |t: &mut Table, what: &str, pz: &Pass, kz: Option<&Pass>| {
        let dash = || "–".to_string();
        let done = |p: &Pass| format!("{} in {} s", num(p.reconciles, 0), num(p.seconds, 1));
        t.row([
            format!(
                "{what} ({} / {} claims): reconciles in the window (a resync: a whole period, and until as many as claims; a restart: from the spawn until as many as claims)",
                pz.claims,
                kz.map_or_else(dash, |k| k.claims.to_string())
            ),
            done(pz),
            kz.map_or_else(dash, done),
            String::new(),
        ]);
        t.row([
            "  write requests the controller sent (kro: PATCH, PUT, POST, DELETE)".to_string(),
            num(pz.writes, 0),
            kz.map_or_else(dash, |k| {
                format!("{} ({} PATCH)", num(k.writes, 0), num(k.patches, 0))
            }),
            String::new(),
        ]);
        t.row([
            "  objects actually changed, of the claims and their objects (status written by other controllers aside)"
                .to_string(),
            pz.changed_cell(),
            kz.map_or_else(dash, Pass::changed_cell),
            String::new(),
        ]);
        t.row([
            "  requests the controller sent, per claim, every verb (API priority and fairness' count of its ServiceAccount's)".to_string(),
            num(pz.controller_requests_per_claim, 1),
            kz.map_or_else(dash, |k| num(k.controller_requests_per_claim, 1)),
            kz.map_or_else(String::new, |k| {
                ratio(k.controller_requests_per_claim, pz.controller_requests_per_claim)
            }),
        ]);
        t.row([
            "  apiserver requests per claim, every client (the plane's own background included)"
                .to_string(),
            num(pz.requests_per_claim, 1),
            kz.map_or_else(dash, |k| num(k.requests_per_claim, 1)),
            String::new(),
        ]);
        let (pw, kw) = (cpu_ms(pz, "paved-operator"), kz.map(|k| cpu_ms(k, "kro")));
        t.row([
            "  CPU ms per claim: apiserver (all its clients over the window) / controller"
                .to_string(),
            slash(&pw, 1),
            kw.map_or_else(dash, |k| slash(&k, 1)),
            kw.map_or_else(String::new, |k| pairs(&pw, &k)),
        ]);
    };
    pass_rows(
        &mut t,
        &format!(
            "periodic resync, every {} s / {}",
            a.resync_seconds,
            if k.resync.is_some() {
                format!("{} s", a.kro_resync_seconds)
            } else {
                format!("{} s, not in the run", a.kro_resync_seconds)
            }
        ),
        p.resync,
        k.resync.as_ref(),
    );
    pass_rows(
        &mut t,
        "a new process's first pass (restart)",
        p.restart,
        Some(&k.restart),
    );
    for (ps_, q) in p.steady.iter().zip(&k.steady) {
        let (ps, qs) = (Spread::of(&ps_.latencies), Spread::of(&q.latencies));
        t.row([
            format!(
                "{} claims arriving at {}/s (Paved: {} claims cached; kro: {} instances), creation to Ready, p50 / p99 / max (s)",
                ps.n, ps_.rate, p.cached, a.kro_claims
            ),
            arrival(&ps, ps_.not_ready, ps_.drain_limit),
            arrival(&qs, q.not_ready, q.drain_limit),
            pairs(&[ps.p50, ps.p99, ps.max], &[qs.p50, qs.p99, qs.max]),
        ]);
    }
    t.row([
        "kro over its whole phase (both processes): CPU s; peak RSS (MiB)".to_string(),
        String::new(),
        format!("{}; {}", num(k.cpu_total, 1), num(k.rss_peak, 1)),
        String::new(),
    ]);
    t
}

/// What BENCHMARKS.md says of kro's run.
struct KroDoc<'a> {
    table: String,
    version: &'a str,
    run: &'a KroRun,
}

fn benchmarks_md(
    a: &Args,
    m: &Value,
    binary: &str,
    main_table: &str,
    kro: Option<KroDoc>,
    laps: &str,
    total_seconds: f64,
) -> String {
    let kro_section = match &kro {
        Some(k) => {
            let resync = if k.run.resync.is_some() {
                format!(
                    "kro runs with its informers' resync every {} s (`--kro-resync-seconds`), which \
                     the bench waits for; Paved's is every {} s.",
                    a.kro_resync_seconds, a.resync_seconds
                )
            } else {
                format!(
                    "kro runs with its own default resync period ({kr} s), not Paved's {pr} s: each kro \
                     resync reconciles every instance, reading each of its objects from the apiserver \
                     and applying it again, and such a pass over {n} instances took {secs:.0} s in this \
                     run (the restart rows: a new kro process's first pass does per instance what a \
                     resync does). At a period shorter than a pass kro is never idle, and its burst, \
                     drift and steady-arrival figures would measure its own backlog \
                     (`--kro-resync-seconds {pr}` runs it that way). Paved runs its {pr} s resync \
                     throughout, so Paved's column carries a resync load that kro's does not.",
                    kr = a.kro_resync_seconds,
                    pr = a.resync_seconds,
                    n = k.run.restart.claims,
                    secs = k.run.restart.seconds,
                )
            };
            let intro = format!(
                "[kro](https://github.com/kubernetes-sigs/kro) {version} (built by `e2e/build-kro`) \
                 on the same control plane in the same run, with `e2e/kro/serviceclaim-rgd.yaml`: \
                 the same objects from the same five inputs (see \"kro: how it runs, and what \
                 differs\" below), {n} claims of each. Its controller runs with Paved's concurrency \
                 ({conc} instance workers), as a ServiceAccount bound to cluster-admin (as its chart \
                 installs it; the same API priority-and-fairness level as Paved's ServiceAccount). \
                 kro's phase comes right after Paved's burst of the same N, in a cluster of the \
                 same size, with Paved's operator stopped (and kro is not running in Paved's \
                 phases), so neither's CPU or requests mix into the other's column; each \
                 column's ratios are over the plain client's runs of the same N just before it. \
                 kro's instances stay for Paved's later phases: Paved caches their namespaces \
                 (counted at each memory point). {resync}",
                version = k.version,
                n = a.kro_claims,
                conc = a.concurrency,
            );
            format!(
                "## Paved and kro side by side\n\n{}\n\n{}\n",
                report::wrap(&intro, 92),
                k.table
            )
        }
        None => String::new(),
    };
    let rates = a
        .steady_rates
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let points = a
        .memory_points
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let last_run = report::wrap(
        &format!(
            "Machine: {cpus} CPUs ({model}), {mem} kB memory, shared with the control plane (the \
             loopback kube-apiserver, etcd and kube-controller-manager of `e2e/control-plane`); \
             one core's speed: {speed:.2} s for the bench's reference task (JSON round trips, \
             measured at the start: run times scale with it). \
             Operator: `{binary}`. Parameters: {rounds} rounds of {claims} ServiceClaims, {cache} \
             claims cached, {aws} AWS instances made and {observed} observed and {ids} services' IAM roles on moto, {cids} \
             services' identities each on Azure and Google, concurrency {conc}, resync every \
             {resync} s; {kro_claims} kro instances; {arrivals}; memory points {points}; \
             External Secrets validates a SecretStore when it is made and again every \
             {ESO_STORE_REQUEUE} (see `ESO_STORE_REQUEUE`). The whole run took {total:.0} s \
             (phases at the end).",
            cpus = m["cpus"],
            speed = m["referenceTaskSeconds"].as_f64().unwrap_or(f64::NAN),
            model = m["cpuModel"].as_str().unwrap_or("?"),
            mem = m["memTotal"].as_str().unwrap_or("?"),
            rounds = a.rounds,
            claims = a.claims,
            cache = a.cache_claims,
            aws = a.aws_instances,
            observed = a.aws_observed,
            ids = a.aws_identities,
            cids = a.cloud_identities,
            conc = a.concurrency,
            resync = a.resync_seconds,
            kro_claims = a.kro_claims,
            arrivals = if a.steady_rates.is_empty() {
                "no steady arrival".to_string()
            } else {
                format!(
                    "steady arrival at {rates} claims/s for {} s each",
                    a.steady_seconds
                )
            },
            total = total_seconds,
        ),
        92,
    );
    format!(
        "# Benchmarks

Written by `make bench` (e2e/src/bin/paved-bench/) at the end of its last run: every
figure below was measured by that run, none is typed in. Raw figures:
`target/paved-bench/results.json`.

## Last run

{last_run}

{main_table}
{kro_section}
## What is measured

- **The headline: over plain creates.** A plain kube client creating (POST) the objects
  `paved render` gives for the same claims is the least work the apiserver can do for them;
  the operator's round over the mean of the create runs just before and after it is the
  round's ratio, and the figure is the median round's (target ≤ 1.2).
- **Baseline (server-side apply)**: the same objects server-side applied by the plain client
  with the operator's identity (the chart's ServiceAccount) and concurrency (claims at once,
  8 writes at once per claim): what `paved render | kubectl apply --server-side` or Argo CD's
  server-side apply does. They are the operator's objects, labels and owner reference
  included, but for the owner (a stand-in ClusterRole, so the garbage collector tracks the
  same edges) and the managed-by label (not Paved's, so the operator's caches leave them
  alone). The operator creates a new claim's objects with plain creates, and adopts them
  into its apply at their first change.
- **Operator**: claims created at once; per claim, from the create call's return to the watch
  event that shows Ready=True at the claim's generation. It runs with the chart's
  ServiceAccount, RBAC and FlowSchema, and a 60 s lease (the chart's is 15 s: on these 2
  shared cores one renewal stalled past a 15 s lease's 10 s deadline, and the operator
  stepped down, as it must, which ends a run).
- **Rounds and the ratios**: apply run, create run, operator round, ... , apply run, create
  run: each round creates new claims, each plain run writes new objects. A round's ratio is
  its wall time over the mean of the runs of a kind just before and just after it, so
  neither side gains from the cluster growing; the figure is the median round's, which a
  single noisy phase on a shared 2-core machine does not move. Every phase runs beside the
  operator (idle during the plain runs: it watches every namespace, theirs too, with
  nothing to do for them).
- **CPU**: user + system seconds of each control-plane process (and the controller) over
  the phase, from `/proc/PID/stat`, averaged over the runs of a kind. Each phase starts on a
  quiet control plane (under a quarter of a core for a second), so it does not pay for what
  the one before it set off.
- **Requests**: from the apiserver's own /metrics over each phase, per claim: every request
  but watches and lists (`apiserver_request_total`: the claims' creates, the writes, the
  reads, the controller manager's and the Events), and the watch events it sent to every
  watcher (`apiserver_watch_events_total`). results.json breaks both down by verb, resource
  and kind, and kro's own requests by method (`rest_client_requests_total`).
- **Writes and passes over every claim**: `paved_apiserver_writes_total` from the operator's
  /metrics (apply, status, delete); kro's PATCH, PUT, POST and DELETE requests from its own.
  A periodic resync reconciles every claim and must write nothing; so must a new process's
  first pass (a restart, as after a failover). The objects changed are counted too, before
  and after the pass: every object with the controller's managed-by label whose metadata
  moved (labels, annotations, owners, finalizers, and the managedFields entries a spec
  change moves), leaving aside the status other controllers write (the quota controller's,
  External Secrets' on the SecretStores, which it validates when they are made), and every
  claim whose resourceVersion moved. A request that changes nothing (kro's server-side
  applies) changes none of them.
- **Drift repair**: the NetworkPolicy `paved-allow-dns` deleted by hand (as admin) in
  `--drift` namespaces spread over the first round's claims, one at a time: from the watch
  event of its deletion to the one of its re-creation.
- **Steady arrival**: claims created at a fixed rate (each create call sent on its schedule,
  not after the one before returned) for `--steady-seconds`, each timed from its create
  call's return to Ready. Paved runs it with every cached claim (`--cache-claims`) in its
  cache and resynced every {resync} s; kro with the instances of its burst (creating
  {cache} kro instances would take longer than the whole run). A claim not Ready
  {drain} s after the last create is not waited for: it counts as not Ready, shown as
  \"> {drain}\" (a controller that cannot keep up with the rate would otherwise hold the
  run). Targets for Paved: p99 under 1 s at up to 5/s (the `local`-instant path), under 2 s
  at up to 20/s.
- **Restart**: a new operator process for the same claims: spawn to the first reconcile and
  to every claim reconciled, and the writes of that first pass. Each ServiceClaim's status
  records a digest of its last apply; a claim whose objects still match it (checked against
  the watches' first list) is not written again. Then the same with every cached claim
  (ServiceClaims and the cached PostgreSQLInstances).
- **Memory per claim**: the operator's VmHWM after a new process has reconciled every claim
  cached, at each memory point: PostgreSQLInstances naming a Composition that does not exist
  (created with the operator stopped, then each reconciled once to Synced=False by an
  operator with more workers and an hour's resync, which is stopped) added to the ServiceClaims
  there are.
  Points below the rounds' claims are taken first, with PostgreSQLInstances alone, which are
  then deleted; the rounds' ServiceClaims are a point of their own (the restart); points up
  to `--cache-claims` on the way to it, points above it at the very end (with the steady
  arrivals' and the identities' ServiceClaims too). The slopes compare each point with the
  last one before it that it holds every claim of. Target: under 64 MiB at 10,000. The
  resident set counts the binary's pages read so far (RssFile, shown beside it: the code
  the run has executed, about half the binary; more once the cloud providers' code has run)
  and every namespace, which the operator caches (of each, only its owners, its claim-name
  and store-identity labels, its take-over mark and a deletion: operators/operator/src/
  namespaces.rs): the cluster's namespaces are shown too; they include the plain client's
  (N for each of its apply and create runs), which carry Paved's labels.
- **Cloud calls**: `paved_cloud_list_calls_total{{provider=\"aws\"}}` over three poll intervals
  with every claim Ready: DescribeDBInstances, whose pages hold 100 instances, and one
  DescribeSecurityGroups of the groups tagged as a claim's (each database's own). Among the
  instances, `--aws-observed` made by hand (unencrypted, public, as `query.py
  create-legacy` makes them), each observed by a claim its Team grants (`spec.existing`):
  read from the same pages, with no call of their own but their parameter group's, once
  an hour per group.
- **Identity calls**: `paved_cloud_list_calls_total{{provider=\"aws-iam\"}}` over three poll
  intervals once every service's role exists: each ServiceClaim checks its role for drift
  every poll, all from one GetAccountAuthorizationDetails that serves every claim for the
  list's time-to-live (5 s), where reading each role would take four calls (GetRole,
  GetRolePolicy, ListRolePolicies, ListAttachedRolePolicies). Azure's and Google's are
  measured at the same time, each by its own fake's request log and list metric.

## kro: how it runs, and what differs

- **N**: kro's bursts are `--kro-claims` ({kro_claims}) instances. When that is not the
  rounds' N, Paved's column comes from a burst of its own of that N after its restart,
  compared with the plain client's apply and create runs of that N just before it (Paved
  idle beside them); when it is, from the rounds. kro's is compared with the plain
  client's runs of that N just before kro's phase, which follows at once (no controller
  running). A run with kro last (2026-12-07), in the cluster the 30,000 cached claims
  and every phase before had grown, gave kro a burst of 200 in 90 s and 820 MiB: kro
  watches every object of its instances' kinds. kro does every
  instance's work through the apiserver (the table's requests and CPU per claim), so a
  burst of the rounds' 1,000 and its restart pass would take longer than all of a
  default run on 2 cores (`--kro-claims 1000` runs it).
- **Its phase**, after Paved's burst of its N: Paved's operator stopped; kro's CRDs, its ServiceAccount and the RGD
  installed, the controller started (`--dynamic-controller-concurrent-reconciles {conc}
  --dynamic-controller-default-resync-period {kresync} --leader-elect=false
  --zap-log-level info`, loopback metrics and probes). Then {kro_claims} instances at once,
  drift repair, the periodic resync if its period is at most {limit} s, a restart (a new kro
  process and its first pass over every instance), the steady arrivals, and kro stopped.
  Its instances and their objects stay (kro deletes an instance's objects itself, slowly,
  behind a finalizer).
- **Ready** on both sides: the condition `Ready` True with `observedGeneration` equal to the
  claim's generation, seen by a watch. kro's goes True once every object exists (the RGD has
  no `readyWhen`), as Paved's does for these claims.
- **Passes over every instance**: kro's resync period is its informers' resync: every
  instance is reconciled again, and each reconcile GETs every object from the apiserver
  (not a cache), server-side applies each (a PATCH that changes nothing) and writes status.
  A new kro process does the same for every instance once. Paved's resync and restart read
  its caches and write nothing that has not changed. Drift is repaired on events on both
  sides (kro and Paved watch the objects they make); a resync only catches what an event
  missed.
- **Objects**: the same names, namespaces, labels and specs, checked by `e2e/kro/compare`
  (not in this run: its verification run in `e2e/kro/README.md` found 52 of 52 objects
  equal on five claims of every cloud), but for: no ownerReferences (kro tracks
  its objects by label and deletes them itself, so the garbage collector's work differs
  between the columns); `app.kubernetes.io/managed-by: kro`; kro's own labels and
  annotation on every object; `paved.dev/composition-generation` fixed at \"1\" and the
  Compositions' values copied into the RGD (Paved reads the Composition object at reconcile
  time and checks it against its compliance floor); the owner RoleBinding binds the group
  named `spec.owner` (Paved binds the Team's groups).
- **What kro does not do, and the bench does not fake**: tenancy and admission (Paved
  admits a claim against its Team: the Team exists, the cloud and Composition are allowed,
  the team's limits, reserved names, secret name conflicts, with a reason on the claim; kro
  accepts whatever its CRD schema accepts); existing namespaces (Paved never takes over a
  namespace it did not make for the claim unless the platform grants it twice; kro
  server-side applies with force and takes over, and deleting the instance deletes the
  namespace; an instance named `kube-system` is accepted); validation messages (kro says
  \"validation failed\"; Paved's cross-field, per-backend checks are missing); status
  (Paved's reasons, children, composition and identity; kro's state and conditions);
  cloud identities (Paved makes and watches each service's own IAM role, managed identity
  or service account; the RGD only annotates the ServiceAccount). The bench's claims need
  none of these, so both columns make the same objects for them; Paved's column pays for
  its admission checks, kro's has none.

Details and the verification run: `e2e/kro/README.md`.

## Run time

| phase | s | of which waiting for a quiet plane |
|---|---:|---:|
{laps}| whole run | {total:.0} | {settled:.0} |

## Reproduce

```bash
make bench                                                        # the defaults above
make bench BENCH_ARGS=\"--claims 100 --rounds 1 --cache-claims 500 --kro-claims 100 --steady-seconds 10 \\
  --drift 3 --memory-points 50,1000 --aws-instances 20 --aws-observed 5 --aws-identities 10 \\
  --cloud-identities 10\"                                          # quick
make bench BENCH_ARGS=\"--kro-claims 1000 --steady-seconds 180\"    # kro at the rounds' N, longer arrivals
make bench BENCH_ARGS=\"--kro-claims 0\"                            # without kro
make bench BENCH_ARGS=\"--kro-resync-seconds 30\"                   # kro at Paved's resync period
make bench BENCH_ARGS=\"--profile-seconds 10\"   # + the apiserver's CPU profile of each timed phase
```

Flags (each takes a value): `--claims` (per round; {claims}),
`--rounds` ({rounds}), `--cache-claims` ({cache}), `--concurrency` ({conc}),
`--resync-seconds` ({resync}), `--kro-claims` ({kro_claims}; 0: no kro), `--kro-resync-seconds` (kro's own
default, {kro_default} s), `--drift` (namespaces, {drift}), `--steady-rates` (claims/s,
comma-separated; {rates}), `--steady-seconds` ({steady}; 0: no steady arrival),
`--steady-drain-seconds` ({drain}),
`--memory-points` (comma-separated; {points}), `--aws-instances`, `--aws-observed`, `--aws-identities`,
`--cloud-identities`, `--profile-seconds`.

A profile lands in `target/paved-bench/<phase>.apiserver.pprof`: `go tool pprof -top -cum <file>`.
",
        claims = a.claims,
        rounds = a.rounds,
        cache = a.cache_claims,
        conc = a.concurrency,
        resync = a.resync_seconds,
        kresync = a.kro_resync_seconds,
        kro_claims = a.kro_claims,
        kro_default = KRO_DEFAULT_RESYNC_SECONDS,
        limit = KRO_RESYNC_WAIT_LIMIT,
        steady = a.steady_seconds,
        drain = a.steady_drain_seconds,
        drift = a.drift,
        total = total_seconds,
        settled = measure::settled_seconds(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn flags_default_to_the_full_run_and_take_lists() {
        let a = parse_args(&[]).unwrap();
        assert_eq!((a.claims, a.kro_claims, a.rounds), (1000, 100, 3));
        assert_eq!((a.steady_seconds, a.steady_drain_seconds), (30.0, 30));
        assert_eq!(a.memory_points, vec![1000, 10_000, 30_000]);
        assert_eq!(a.kro_resync_seconds, 36_000);
        assert_eq!(a.steady_rates, vec![5.0, 20.0]);
        let a = parse_args(&argv(
            "--claims 100 --steady-rates 2.5,10 --memory-points 30000,500,500 --kro-resync-seconds 600",
        ))
        .unwrap();
        assert_eq!((a.claims, a.kro_claims), (100, 100));
        assert_eq!(a.steady_rates, vec![2.5, 10.0]);
        assert_eq!(a.memory_points, vec![500, 30_000]);
        assert_eq!(a.kro_resync_seconds, 600);
        let a = parse_args(&argv("--kro-claims 0 --steady-seconds 0")).unwrap();
        assert_eq!(a.kro_claims, 0);
        assert!(a.steady_rates.is_empty());
        assert!(parse_args(&argv("--claims")).is_err());
        assert!(parse_args(&argv("--claims x")).is_err());
        assert!(parse_args(&argv("--nope 1")).is_err());
    }

    #[test]
    fn memory_points_fall_before_on_the_way_to_and_after_the_cache() {
        let (early, mid, late) = memory_plan(&[1000, 10_000, 30_000], 3000, 10_000);
        assert_eq!(early, vec![1000]);
        assert_eq!(mid, vec![10_000]);
        assert_eq!(late, vec![30_000]);
        let (early, mid, late) = memory_plan(&[500, 5000, 3000], 3000, 10_000);
        assert_eq!(early, vec![500]);
        assert_eq!(mid, vec![5000, 10_000]); // 3000 is the restart's own point
        assert!(late.is_empty());
        // A cache smaller than the rounds' claims: the restart over them is the cache.
        let (_, mid, _) = memory_plan(&[], 3000, 100);
        assert_eq!(mid, vec![3000]);
    }

    #[test]
    fn a_growth_runs_with_the_runs_flags_but_a_long_resync_and_more_workers() {
        let flags = [
            "--resync-seconds",
            "30",
            "--concurrency",
            "16",
            "--lease-seconds",
            "60",
        ];
        assert_eq!(
            growth_flags(&flags),
            vec![
                "--resync-seconds",
                "3600",
                "--concurrency",
                "64",
                "--lease-seconds",
                "60"
            ]
        );
        // A flag the run leaves to the operator's default is added.
        assert_eq!(
            growth_flags(&["--log-format", "json"]),
            vec![
                "--log-format",
                "json",
                "--resync-seconds",
                "3600",
                "--concurrency",
                "64"
            ]
        );
    }

    #[test]
    fn a_schedule_is_kept_when_no_create_went_out_an_interval_late() {
        let arrival = |rate: f64, lag: f64| Arrival {
            rate,
            seconds: 60.0,
            latencies: vec![],
            not_ready: 0,
            drain_limit: 30.0,
            max_send_lag: lag,
            drain: 0.0,
        };
        assert!(kept_schedule(&arrival(20.0, 0.01)));
        assert!(!kept_schedule(&arrival(20.0, 0.06)));
        assert!(kept_schedule(&arrival(5.0, 0.15)));
    }

    #[test]
    fn observed_instances_share_the_pages_of_the_made_ones() {
        assert_eq!(min_list_pages(500, 0), 6.0);
        assert_eq!(min_list_pages(500, 100), 7.0);
        assert_eq!(min_list_pages(450, 50), 6.0);
        assert_eq!(min_list_pages(0, 100), 1.0);
    }

    #[test]
    fn an_exited_process_is_gone_or_a_zombie() {
        assert!(!exited(Some("42 (paved-operator) S 1 42 42 0 -1")));
        assert!(!exited(Some("42 (a (b) c) R 1")));
        assert!(exited(Some("42 (paved-operator) Z 1 42 42 0 -1")));
        assert!(exited(None));
    }

    #[test]
    fn steady_targets_and_memory_slopes() {
        assert_eq!(steady_target(5.0), Some(1.0));
        assert_eq!(steady_target(20.0), Some(2.0));
        assert_eq!(steady_target(50.0), None);
        // PostgreSQLInstances alone (deleted after), the rounds' ServiceClaims, then
        // PostgreSQLInstances added to them, then some of each.
        let s = slopes(&[
            (0, 1000, 30.0),
            (3000, 0, 50.0),
            (3000, 7000, 64.0),
            (4000, 26_000, 104.0),
        ]);
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].from, s[0].to, s[0].service_claims, s[0].databases),
            (3000, 10_000, 0, 7000)
        );
        assert!((s[0].mib_per_1000 - 2.0).abs() < 1e-9);
        assert_eq!(
            (s[1].from, s[1].to, s[1].service_claims, s[1].databases),
            (10_000, 30_000, 1000, 19_000)
        );
        assert!((s[1].mib_per_1000 - 2.0).abs() < 1e-9);
        assert!(slopes(&[(0, 10, 1.0)]).is_empty());
    }
}
