//! `make bench`: Paved's throughput, cost and footprint on the real local control plane,
//! each figure measured in this run (ratios against a baseline from the same run).
//!
//! 1. baseline: a plain client server-side-applies the objects `paved render` gives for
//!    N ServiceClaims, with the operator's concurrency (claims × objects per claim),
//!    before phase 2 and again after it; for reference also with plain creates;
//! 2. operator: N ServiceClaims created at once; time until all are Ready, p50/p99
//!    creation → Ready, apiserver writes per claim (the operator's own metrics);
//! 3. a periodic resync that changes nothing: its writes (target 0);
//! 4. restart: start-up to the first reconcile, and to every claim reconciled, and the
//!    writes of that first pass (target 0: nothing changed while it was away);
//! 5. footprint: peak RSS with `--cache-claims` claims in the operator's cache, then a
//!    restart with all of them: time to every claim reconciled and writes (target 0,
//!    under 30 s);
//! 6. cloud: `--aws-instances` PostgreSQLInstances on moto, RDS list pages per poll;
//! 7. identities: `--aws-identities` ServiceClaims on AWS, each with its own IAM role
//!    (moto), IAM list pages per poll (one account-wide list, not calls per role);
//!    then `--cloud-identities` each on Azure and GCP (the loopback fakes): calls per
//!    poll counted by the fakes themselves, lists and per-identity reads apart.
//!
//! Prints a table and writes target/paved-bench/results.json.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use futures::{stream, StreamExt, TryStreamExt};
use kube::{
    api::{Patch, PatchParams, PostParams},
    runtime::{watcher, WatchStreamExt},
    Api, Client,
};
use paved_api::{conditions, Cloud, Composition, PostgreSQLInstance, ServiceClaim};
use paved_e2e::{control_plane, db, eventually, repo_root, Operator};
use serde_json::{json, Value};

struct Args {
    claims: usize,
    cache_claims: usize,
    aws_instances: usize,
    aws_identities: usize,
    /// Azure managed identities and Google service accounts (each).
    cloud_identities: usize,
    concurrency: usize,
    resync_seconds: u64,
    /// Operator runs of `claims` new claims each, between baseline runs; the ratio is
    /// the median over the rounds.
    rounds: usize,
    /// With a value > 0: a CPU profile of the apiserver over the first seconds of each
    /// timed phase, to target/paved-bench/<phase>.apiserver.pprof (`go tool pprof`).
    profile_seconds: u64,
}

fn args() -> Result<Args> {
    let mut a = Args {
        claims: 1000,
        cache_claims: 10_000,
        aws_instances: 500,
        aws_identities: 200,
        cloud_identities: 100,
        concurrency: 16,
        resync_seconds: 30,
        profile_seconds: 0,
        rounds: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v: u64 = it
            .next()
            .with_context(|| format!("{flag} needs a value"))?
            .parse()
            .with_context(|| format!("{flag} takes a number"))?;
        match flag.as_str() {
            "--claims" => a.claims = v as usize,
            "--cache-claims" => a.cache_claims = v as usize,
            "--aws-instances" => a.aws_instances = v as usize,
            "--aws-identities" => a.aws_identities = v as usize,
            "--cloud-identities" => a.cloud_identities = v as usize,
            "--concurrency" => a.concurrency = v as usize,
            "--resync-seconds" => a.resync_seconds = v,
            "--profile-seconds" => a.profile_seconds = v,
            "--rounds" => a.rounds = (v as usize).max(1),
            other => bail!("unknown flag {other} (--claims, --cache-claims, --aws-instances, --aws-identities, --cloud-identities, --concurrency, --resync-seconds, --rounds, --profile-seconds)"),
        }
    }
    Ok(a)
}

fn metric(op: &Operator, name: &str, filter: &str) -> Result<f64> {
    op.counter(name, filter)
}

/// What the apiserver served so far, from its own /metrics: requests by verb and
/// resource (`apiserver_request_total`), watch events and their bytes by kind
/// (`apiserver_watch_events_total`, `apiserver_watch_events_sizes_sum`).
async fn apiserver_counts(client: &Client) -> Result<BTreeMap<String, f64>> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(req).await?;
    Ok(parse_apiserver_counts(&text))
}

/// Pure: the counters `apiserver_counts` keeps, keyed "VERB resource[/subresource]",
/// "watch events Kind" and "watch bytes Kind".
fn parse_apiserver_counts(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let Some((name, labels)) = series.split_once('{') else {
            continue;
        };
        let label = |k: &str| {
            labels
                .split("\",")
                .find_map(|kv| kv.strip_prefix(&format!("{k}=\"")))
                .map(|v| v.trim_end_matches(['"', '}']).to_string())
                .unwrap_or_default()
        };
        let key = match name {
            "apiserver_request_total" => {
                let sub = label("subresource");
                let resource = if sub.is_empty() {
                    label("resource")
                } else {
                    format!("{}/{sub}", label("resource"))
                };
                format!("{} {resource}", label("verb"))
            }
            // Labelled by resource (by kind before Kubernetes 1.33).
            "apiserver_watch_events_total" => {
                format!("watch events {}{}", label("resource"), label("kind"))
            }
            "apiserver_watch_events_sizes_sum" => {
                format!("watch bytes {}{}", label("resource"), label("kind"))
            }
            _ => continue,
        };
        *out.entry(key).or_insert(0.0) += value;
    }
    out
}

/// Per claim, what changed between two readings of `apiserver_counts` (only what moved).
fn per_claim(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
    claims: usize,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0.0);
            (d > 0.0).then(|| (k.clone(), d / claims as f64))
        })
        .collect()
}

/// Sums of a `per_claim` map: requests other than watches and lists (which are
/// long-running or the operator's start-up), and watch events.
fn totals(m: &BTreeMap<String, f64>) -> (f64, f64) {
    let requests = m
        .iter()
        .filter(|(k, _)| {
            !k.starts_with("watch ") && !k.starts_with("WATCH ") && !k.starts_with("LIST ")
        })
        .map(|(_, v)| v)
        .sum();
    let events = m
        .iter()
        .filter(|(k, _)| k.starts_with("watch events "))
        .map(|(_, v)| v)
        .sum();
    (requests, events)
}

fn peak_rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .context("VmHWM")?
        .parse()?;
    Ok(kb / 1024.0)
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').context("/proc/PID/stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command.
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}

/// The control plane's processes, by component name, from e2e/control-plane's pid files.
fn plane_pids(cp: &paved_e2e::ControlPlane) -> Vec<(&'static str, u32)> {
    ["kube-apiserver", "etcd", "kube-controller-manager"]
        .into_iter()
        .filter_map(|name| {
            let f = std::path::Path::new(&cp.env["PAVED_CP_DIR"]).join(format!("pids/{name}.pid"));
            Some((name, std::fs::read_to_string(f).ok()?.trim().parse().ok()?))
        })
        .collect()
}

/// CPU seconds per process between two readings.
struct Cpu(Vec<(&'static str, u32, f64)>);

impl Cpu {
    fn read(pids: &[(&'static str, u32)]) -> Cpu {
        Cpu(pids
            .iter()
            .map(|&(n, p)| (n, p, cpu_seconds(p).unwrap_or(0.0)))
            .collect())
    }
    fn since(&self, earlier: &Cpu) -> BTreeMap<String, f64> {
        self.0
            .iter()
            .filter_map(|(n, p, t)| {
                let (_, _, t0) = earlier.0.iter().find(|(_, q, _)| q == p)?;
                Some((n.to_string(), t - t0))
            })
            .collect()
    }
}

/// Waits until the control plane is quiet (under a quarter of a core for a second), so
/// a phase does not pay for the work the one before it set off (the controller manager
/// filling every new namespace, quota status).
async fn settle(pids: &[(&'static str, u32)]) {
    for _ in 0..60 {
        let before = Cpu::read(pids);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let used: f64 = Cpu::read(pids).since(&before).values().sum();
        if used < 0.25 {
            return;
        }
    }
    eprintln!("bench: the control plane did not settle within 60 s");
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn service_claim(name: &str, round: usize) -> ServiceClaim {
    serde_json::from_value(json!({
        "apiVersion": "paved.dev/v1alpha1", "kind": "ServiceClaim",
        "metadata": { "name": name, "labels": { "paved.dev/bench": "true",
                                                "paved.dev/bench-round": round.to_string() } },
        "spec": { "owner": "team-bench", "system": "bench", "cloud": "local",
                  "dataClassification": "internal", "sloTier": "bronze", "costCenter": "CC-0001" },
    }))
    .expect("a valid ServiceClaim")
}

/// The operator's default: how long an identity's one-at-a-time reads are trusted.
const IDENTITY_RECHECK_SECONDS: u64 = 1800;

/// Phase 7b: what polling `n` services' own identities on Azure or GCP costs.
struct IdentityCalls {
    cloud: Cloud,
    identities: usize,
    cycles: u64,
    /// List pages the operator sent (its `paved_cloud_list_calls` metric).
    list_pages: f64,
    /// Requests the fake served in the window, all of them.
    requests: f64,
    /// Of those, reads of one identity's credential or policy.
    per_identity_reads: f64,
    recheck_seconds: u64,
    poll_seconds: u64,
}

impl IdentityCalls {
    /// Calls per identity per poll before the shared lists (a GET of the identity,
    /// of its credential or policy, and, on Azure, its role assignments).
    fn before(&self) -> usize {
        match self.cloud {
            Cloud::Azure => 3,
            _ => 2,
        }
    }

    fn json(&self) -> Value {
        json!({ "identities": self.identities, "cycles": self.cycles, "pollSeconds": self.poll_seconds,
                "listPages": self.list_pages, "requests": self.requests,
                "requestsPerPoll": self.requests / self.cycles as f64,
                "perIdentityReads": self.per_identity_reads,
                "recheckSeconds": self.recheck_seconds,
                "callsPerPollBefore": self.before() * self.identities })
    }

    /// Items per list page: what the Azure fake serves (Azure's own pages hold far
    /// more), and what Paved asks Google for.
    fn page_size(&self) -> f64 {
        match self.cloud {
            Cloud::Azure => 2.0,
            _ => 100.0,
        }
    }

    fn row(&self, max_lists: f64) -> (String, String, String) {
        let cycles = self.cycles as f64;
        let pages = self.list_pages / cycles;
        let reads = self.per_identity_reads / cycles;
        // Each kind (identities; on Azure also role assignments, a page here) listed
        // at most poll ÷ TTL times a poll.
        let pages_per_list = (self.identities as f64 / self.page_size()).ceil()
            + if self.cloud == Cloud::Azure { 1.0 } else { 0.0 };
        let max_pages = max_lists * pages_per_list;
        let amortized =
            self.identities as f64 * self.poll_seconds as f64 / self.recheck_seconds as f64;
        (
            format!(
                "{} identity calls per poll, {} services' own {}: list pages + one-at-a-time reads",
                self.cloud,
                self.identities,
                if self.cloud == Cloud::Azure { "managed identities" } else { "service accounts" }
            ),
            format!("{pages:.1} + {reads:.1}"),
            format!(
                "≤ {max_pages} pages ({max_lists} lists of each kind, {} per page) + ≤ {:.1} reads (each re-read every {} s), not per identity ({} calls before), {}",
                self.page_size(),
                amortized.ceil(),
                self.recheck_seconds,
                self.before() * self.identities,
                check(pages <= max_pages && reads <= amortized.ceil())
            ),
        )
    }
}

fn check(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

/// Lines of a fake's request log (`<time> <method> <path> <status>`).
fn fake_requests(cp: &paved_e2e::ControlPlane, fake: &str) -> Result<Vec<String>> {
    let path =
        std::path::Path::new(&cp.env["PAVED_CP_DIR"]).join(format!("logs/{fake}.log.requests"));
    Ok(std::fs::read_to_string(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .lines()
        .map(String::from)
        .collect())
}

async fn cloud_identities(
    cp: &paved_e2e::ControlPlane,
    client: &Client,
    op: &Operator,
    cloud: Cloud,
    n: usize,
    poll: u64,
    concurrency: usize,
) -> Result<IdentityCalls> {
    eprintln!("bench: {n} {cloud} ServiceClaims with their own identity");
    let (composition, identity, fake, label, one_at_a_time): (_, _, _, _, fn(&str) -> bool) =
        match cloud {
            Cloud::Azure => (
                "service-azure",
                json!({ "azure": { "subscriptionId": "00000000-0000-0000-0000-0000000000b1",
                                   "resourceGroup": "paved-bench-ids", "location": "westeurope",
                                   "oidcIssuer": "https://oidc.bench.example/cluster/",
                                   "keyVaultId": "/subscriptions/00000000-0000-0000-0000-0000000000b1/resourceGroups/kv/providers/Microsoft.KeyVault/vaults/paved-kv",
                                   "pollInterval": format!("{poll}s") } }),
                "azure",
                "provider=\"azure-identity\"",
                |l: &str| l.contains(" GET ") && l.contains("/federatedIdentityCredentials/"),
            ),
            _ => (
                "service-gcp",
                json!({ "gcp": { "projectId": "paved-bench-ids", "workloadPool": "paved-prod.svc.id.goog",
                                 "pollInterval": format!("{poll}s") } }),
                "gcp",
                "provider=\"gcp-identity\"",
                |l: &str| l.contains(":getIamPolicy"),
            ),
        };
    paved_e2e::patch_service_composition(cp, composition, json!({ "identity": identity }))?;
    let prefix = format!("bench-{cloud}-id-");
    let services: Api<ServiceClaim> = Api::all(client.clone());
    let claims: Vec<ServiceClaim> = (0..n)
        .map(|i| {
            let mut c = service_claim(&format!("{prefix}{i}"), 0);
            c.spec.cloud = Some(cloud);
            c
        })
        .collect();
    create_all(&services, claims, concurrency).await?;
    eventually(
        "every service's identity made",
        Duration::from_secs(1800),
        || async {
            let got = count(&services, |c| {
                c.metadata
                    .name
                    .as_deref()
                    .is_some_and(|m| m.starts_with(&prefix))
                    && c.status.as_ref().is_some_and(|s| s.identity.is_some())
            })
            .await?;
            Ok((got >= n).then_some(()))
        },
    )
    .await?;
    let cycles = 3u64;
    // One poll first: each identity's first read after Paved's own writes is not the
    // steady state.
    tokio::time::sleep(Duration::from_secs(poll)).await;
    let lists0 = metric(op, "paved_cloud_list_calls", label)?;
    let seen0 = fake_requests(cp, fake)?.len();
    tokio::time::sleep(Duration::from_secs(poll * cycles)).await;
    let window: Vec<String> = fake_requests(cp, fake)?
        .get(seen0..)
        .map(<[String]>::to_vec)
        .unwrap_or_default();
    Ok(IdentityCalls {
        cloud,
        identities: n,
        cycles,
        list_pages: metric(op, "paved_cloud_list_calls", label)? - lists0,
        requests: window.len() as f64,
        per_identity_reads: window.iter().filter(|l| one_at_a_time(l)).count() as f64,
        recheck_seconds: IDENTITY_RECHECK_SECONDS,
        poll_seconds: poll,
    })
}

/// How the plain client writes.
#[derive(Clone, Copy, PartialEq)]
enum Plain {
    /// Server-side apply, as `paved render | kubectl apply --server-side` or Argo CD does:
    /// the baseline of the ratio.
    Apply,
    /// Create (POST): the least work the apiserver can do for these objects.
    Create,
}

/// Phase 1: the objects of N claims, written by a plain client (the namespace first,
/// then the rest 8 at a time; `concurrency` claims at once).
async fn baseline(
    client: &Client,
    n: usize,
    concurrency: usize,
    how: Plain,
    prefix: &str,
    owner: &Value,
) -> Result<(f64, Vec<f64>)> {
    let text = std::fs::read_to_string(repo_root().join("compositions/service-local.yaml"))?;
    let comp: Composition = serde_yaml::from_str(&text)?;
    let sc = comp.spec.service.clone().context("service-local")?;
    let mut claims = Vec::new();
    for i in 0..n {
        let name = format!("{prefix}-{i}");
        let claim = service_claim(&name, 0);
        let input = paved_compose::service::ServiceInput {
            claim_name: &name,
            claim_uid: "00000000-0000-0000-0000-000000000000",
            spec: &claim.spec,
            cloud: Cloud::Local,
            composition_name: "service-local",
            composition_generation: 1,
            composition: &sc,
            team: None,
            secrets_namespace: paved_api::DEFAULT_SECRETS_NAMESPACE,
            databases: &[],
            identity: None,
        };
        let mut objects = paved_compose::service::render_service(&input)?;
        for o in &mut objects {
            // The operator's objects but for two things: their owner is a stand-in (the
            // claim UID is made up, and the garbage collector removes what names an owner
            // that does not exist), and their managed-by label is not Paved's (the
            // operator's label-selected caches would hold them).
            let meta = o.body["metadata"].as_object_mut().unwrap();
            meta.insert("ownerReferences".into(), json!([owner]));
            meta["labels"][paved_api::labels::MANAGED_BY] = json!("paved-bench-plain");
        }
        claims.push(objects);
    }
    let start = Instant::now();
    let latencies: Vec<f64> = stream::iter(claims.into_iter().map(|objects| {
        let client = client.clone();
        async move {
            let t = Instant::now();
            let (first, rest) = objects.split_first().unwrap();
            write(&client, first, how).await?;
            stream::iter(rest.iter().map(|o| write(&client, o, how)))
                .buffer_unordered(8)
                .try_collect::<Vec<_>>()
                .await?;
            Ok::<_, anyhow::Error>(t.elapsed().as_secs_f64())
        }
    }))
    .buffer_unordered(concurrency)
    .try_collect()
    .await?;
    Ok((start.elapsed().as_secs_f64(), latencies))
}

/// The stand-in owner of the plain client's objects, as an owner reference: a
/// cluster-scoped object (namespaces and namespaced objects can both name it) of a kind
/// the operator does not map to claims, so the garbage collector tracks the same owner
/// edges as for the operator's objects.
async fn plain_owner(admin: &Client) -> Result<Value> {
    use k8s_openapi::api::rbac::v1::ClusterRole;
    let api: Api<ClusterRole> = Api::all(admin.clone());
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": { "name": "paved-bench-plain-owner", "labels": { "paved.dev/bench": "plain" } },
    }))?;
    let role = match api.create(&PostParams::default(), &role).await {
        Ok(r) => r,
        Err(kube::Error::Api(e)) if e.code == 409 => api.get("paved-bench-plain-owner").await?,
        Err(e) => return Err(e.into()),
    };
    Ok(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "name": "paved-bench-plain-owner", "uid": role.metadata.uid,
        "controller": true, "blockOwnerDeletion": true,
    }))
}

async fn write(
    client: &Client,
    o: &paved_compose::object::DesiredObject,
    how: Plain,
) -> Result<()> {
    let ar = paved_api::api_resource(&o.api_version, &o.kind, &o.plural);
    let api: Api<kube::api::DynamicObject> = match &o.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    if how == Plain::Create {
        let pp = PostParams {
            field_manager: Some("paved-bench".into()),
            ..Default::default()
        };
        api.create(&pp, &serde_json::from_value(o.body.clone())?)
            .await?;
        return Ok(());
    }
    api.patch(
        &o.name,
        &PatchParams::apply("paved-bench").force(),
        &Patch::Apply(&o.body),
    )
    .await?;
    Ok(())
}

/// CPU profiles of the apiserver over the timed phases (`--profile-seconds`), where its
/// time goes when it is the bottleneck: `go tool pprof -top <file>`.
struct Profiler {
    cp: &'static paved_e2e::ControlPlane,
    seconds: u64,
}

impl Profiler {
    /// Starts profiling the next `seconds` (nothing when profiling is off).
    fn start(&self, phase: &str) -> Result<Option<(std::process::Child, std::path::PathBuf)>> {
        if self.seconds == 0 {
            return Ok(None);
        }
        let dir = repo_root().join("target/paved-bench");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{phase}.apiserver.pprof"));
        let child = self
            .cp
            .kubectl_command(&[
                "get",
                "--raw",
                &format!("/debug/pprof/profile?seconds={}", self.seconds),
            ])
            .stdout(std::fs::File::create(&path)?)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("kubectl for the apiserver's profile")?;
        Ok(Some((child, path)))
    }

    fn finish(started: Option<(std::process::Child, std::path::PathBuf)>) -> Result<()> {
        if let Some((child, path)) = started {
            let out = child.wait_with_output()?;
            if !out.status.success() {
                bail!(
                    "the apiserver's profile: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            eprintln!("bench: apiserver profile in {}", path.display());
        }
        Ok(())
    }
}

/// How a timed phase is measured: the apiserver's /metrics (read as admin), the
/// profiler, and the claims a phase handles (for the per-claim figures).
struct Meter {
    admin: Client,
    profiler: Profiler,
    claims: usize,
}

/// What one timed phase measured.
struct Measured {
    seconds: f64,
    latencies: Vec<f64>,
    cpu: BTreeMap<String, f64>,
    served: BTreeMap<String, f64>,
}

impl Meter {
    /// Once `pids` (the plane, and the operator when it runs) have settled: one timed
    /// phase, with their CPU and the apiserver's requests over it.
    async fn measure(
        &self,
        pids: &[(&'static str, u32)],
        phase: &str,
        run: impl std::future::Future<Output = Result<(f64, Vec<f64>)>>,
    ) -> Result<Measured> {
        settle(pids).await;
        eprintln!("bench: {phase}");
        let cpu0 = Cpu::read(pids);
        let served0 = apiserver_counts(&self.admin).await?;
        let profile = self.profiler.start(phase)?;
        let (seconds, latencies) = run.await?;
        Profiler::finish(profile)?;
        Ok(Measured {
            seconds,
            latencies,
            cpu: Cpu::read(pids).since(&cpu0),
            served: per_claim(&served0, &apiserver_counts(&self.admin).await?, self.claims),
        })
    }
}

/// Several runs of one phase: the median and range of their wall times, latencies
/// pooled, CPU and per-claim requests averaged.
struct Summary {
    runs: Vec<f64>,
    median: f64,
    p50: f64,
    p99: f64,
    cpu: BTreeMap<String, f64>,
    served: BTreeMap<String, f64>,
}

fn summarize(ms: &[Measured]) -> Summary {
    let runs: Vec<f64> = ms.iter().map(|m| m.seconds).collect();
    let (p50, p99) = stats(ms.iter().flat_map(|m| m.latencies.clone()).collect());
    let mean = |maps: Vec<&BTreeMap<String, f64>>| {
        let mut out = BTreeMap::<String, f64>::new();
        for m in &maps {
            for (k, v) in *m {
                *out.entry(k.clone()).or_default() += v / maps.len() as f64;
            }
        }
        out
    };
    Summary {
        median: median(&runs),
        runs,
        p50,
        p99,
        cpu: mean(ms.iter().map(|m| &m.cpu).collect()),
        served: mean(ms.iter().map(|m| &m.served).collect()),
    }
}

/// The lowest and highest of some figures, as "a–b".
fn range(v: &[f64]) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{lo:.1}–{hi:.1}")
}

/// The median of some figures (the mean of the middle two for an even count).
fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Each operator round's wall time over the mean of the baselines just before and
/// just after it (`baselines` holds one more run than `operator`).
fn round_ratios(operator: &[f64], baselines: &[f64]) -> Vec<f64> {
    operator
        .iter()
        .zip(baselines.windows(2))
        .map(|(o, b)| o / ((b[0] + b[1]) / 2.0))
        .collect()
}

fn ready_at_generation(c: &ServiceClaim) -> bool {
    c.status
        .as_ref()
        .is_some_and(|s| conditions::is_ready(&s.conditions, c.metadata.generation))
}

/// Phase 2: N claims created at once; per-claim creation → Ready from a watch.
async fn operator_run(
    client: &Client,
    n: usize,
    concurrency: usize,
    round: usize,
) -> Result<(f64, Vec<f64>)> {
    let api: Api<ServiceClaim> = Api::all(client.clone());
    let created: Arc<std::sync::Mutex<BTreeMap<String, Instant>>> = Default::default();
    let ready: Arc<std::sync::Mutex<BTreeMap<String, Instant>>> = Default::default();
    let watch = {
        let ready = ready.clone();
        // A watch error (a timeout under load, an expired resourceVersion) is retried
        // with backoff; the loop only ends with the stream.
        let stream = watcher(
            api.clone(),
            watcher::Config::default().labels(&format!("paved.dev/bench-round={round}")),
        )
        .default_backoff()
        .applied_objects();
        tokio::spawn(async move {
            futures::pin_mut!(stream);
            while let Some(item) = stream.next().await {
                let Ok(c) = item else { continue };
                if ready_at_generation(&c) {
                    let name = c.metadata.name.clone().unwrap_or_default();
                    ready
                        .lock()
                        .unwrap()
                        .entry(name)
                        .or_insert_with(Instant::now);
                }
            }
        })
    };
    let start = Instant::now();
    stream::iter((0..n).map(|i| {
        let api = api.clone();
        let created = created.clone();
        async move {
            let name = format!("bench-{round}-{i}");
            let t = Instant::now();
            api.create(&PostParams::default(), &service_claim(&name, round))
                .await?;
            created.lock().unwrap().insert(name, t);
            Ok::<_, anyhow::Error>(())
        }
    }))
    .buffer_unordered(concurrency)
    .try_collect::<Vec<_>>()
    .await?;
    eventually(
        &format!("{n} ServiceClaims Ready"),
        Duration::from_secs(1800),
        || async { Ok((ready.lock().unwrap().len() >= n).then_some(())) },
    )
    .await?;
    let total = start.elapsed().as_secs_f64();
    watch.abort();
    let created = created.lock().unwrap();
    let ready = ready.lock().unwrap();
    let latencies = created
        .iter()
        .filter_map(|(k, t)| Some(ready.get(k)?.duration_since(*t).as_secs_f64()))
        .collect();
    Ok((total, latencies))
}

fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (percentile(&v, 0.5), percentile(&v, 0.99))
}

/// How many of the API's objects `f` holds for (one list).
async fn count<K>(api: &Api<K>, f: impl Fn(&K) -> bool) -> Result<usize>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    Ok(api
        .list(&Default::default())
        .await?
        .items
        .iter()
        .filter(|o| f(o))
        .count())
}

async fn create_all<K>(api: &Api<K>, objects: Vec<K>, concurrency: usize) -> Result<()>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    stream::iter(objects.into_iter().map(|o| {
        let api = api.clone();
        async move {
            match api.create(&PostParams::default(), &o).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
                Err(e) => Err(anyhow::Error::from(e)),
            }
        }
    }))
    .buffer_unordered(concurrency)
    .try_collect::<Vec<_>>()
    .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = args()?;
    let cp = control_plane();
    let client = cp.client().await?;
    let earlier = Api::<ServiceClaim>::all(client.clone())
        .list(&kube::api::ListParams::default().labels("paved.dev/bench=true"))
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
    });
    results.insert("machine".into(), machine);
    results.insert(
        "parameters".into(),
        json!({ "claims": a.claims, "cacheClaims": a.cache_claims, "awsInstances": a.aws_instances,
                "concurrency": a.concurrency, "resyncSeconds": a.resync_seconds, "rounds": a.rounds }),
    );

    // 1–2. Rounds: a plain client's baseline, then the operator's claims, `rounds`
    // times, and a last baseline; each round's ratio is over the baselines just before
    // and after it (so neither side gains from the cluster growing), and the figure is
    // the median round's. Every phase runs beside the operator: idle in the baselines
    // (it watches every namespace, theirs too, but has nothing to do for them).
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
    ];
    let mut op = Operator::start(cp, "bench", &flags)?;
    let mut op_pids = pids.clone();
    op_pids.push(("paved-operator", op.pid()));
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
        claims: a.claims,
    };
    let owner = plain_owner(&client).await?;
    let baseline_run = |how: Plain, prefix: String| {
        let plain = plain.clone();
        let owner = owner.clone();
        async move { baseline(&plain, a.claims, a.concurrency, how, &prefix, &owner).await }
    };
    // For reference: the same objects created (POST) rather than applied.
    let post = meter
        .measure(
            &op_pids,
            "bench-post",
            baseline_run(Plain::Create, "bench-post".into()),
        )
        .await?;
    let writes0 = metric(&op, "paved_apiserver_writes", "")?;
    let status0 = metric(&op, "paved_apiserver_writes", "verb=\"status\"")?;
    let mut baselines = vec![];
    let mut rounds = vec![];
    for round in 0..=a.rounds {
        let prefix = format!("bench-plain-{round}");
        baselines.push(
            meter
                .measure(
                    &op_pids,
                    &prefix,
                    baseline_run(Plain::Apply, prefix.clone()),
                )
                .await?,
        );
        if round == a.rounds {
            break;
        }
        rounds.push(
            meter
                .measure(
                    &op_pids,
                    &format!("bench-operator-{round}"),
                    operator_run(&client, a.claims, a.concurrency, round),
                )
                .await?,
        );
    }
    let claims_total = a.claims * a.rounds;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes_per_claim =
        (metric(&op, "paved_apiserver_writes", "")? - writes0) / claims_total as f64;
    let status_per_claim =
        (metric(&op, "paved_apiserver_writes", "verb=\"status\"")? - status0) / claims_total as f64;
    let ratios = round_ratios(
        &rounds.iter().map(|m| m.seconds).collect::<Vec<_>>(),
        &baselines.iter().map(|m| m.seconds).collect::<Vec<_>>(),
    );
    let ratio = median(&ratios);
    let plain_s = summarize(&baselines);
    let op_s = summarize(&rounds);

    // 3. A periodic resync that changes nothing.
    eprintln!("bench: waiting for a full resync ({}s)", a.resync_seconds);
    let rec0 = metric(&op, "paved_reconciles", "serviceclaim")?;
    let w0 = metric(&op, "paved_apiserver_writes", "")?;
    eventually(
        "a full resync of every claim",
        Duration::from_secs(a.resync_seconds * 3 + 120),
        || async {
            Ok(
                (metric(&op, "paved_reconciles", "serviceclaim")? >= rec0 + claims_total as f64)
                    .then_some(()),
            )
        },
    )
    .await?;
    let resync_writes = metric(&op, "paved_apiserver_writes", "")? - w0;
    let resync_reconciles = metric(&op, "paved_reconciles", "serviceclaim")? - rec0;
    let rss_after_claims = peak_rss_mib(op.pid())?;

    // 4. Restart: start-up to the first reconcile and to every claim reconciled.
    op.stop();
    drop(op);
    eprintln!("bench: restart");
    let spawned = Instant::now();
    let op = Operator::start(cp, "bench-restart", &flags)?;
    let first = eventually("the first reconcile", Duration::from_secs(120), || async {
        Ok((metric(&op, "paved_reconciles", "").unwrap_or(0.0) >= 1.0)
            .then(|| spawned.elapsed().as_secs_f64()))
    })
    .await?;
    let all = eventually(
        "every claim reconciled after restart",
        Duration::from_secs(1800),
        || async {
            Ok(
                (metric(&op, "paved_reconciles", "serviceclaim").unwrap_or(0.0)
                    >= claims_total as f64)
                    .then(|| spawned.elapsed().as_secs_f64()),
            )
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let restart_writes = metric(&op, "paved_apiserver_writes", "")?;

    // 5. Footprint with many claims cached: PostgreSQLInstances naming a Composition
    // that does not exist (each is reconciled once to Synced=False and cached).
    let extra = a.cache_claims.saturating_sub(claims_total);
    eprintln!("bench: {extra} more claims into the operator's cache");
    db::namespace(cp, "bench-cache", "local", "internal")?;
    let pg_api: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), "bench-cache");
    let pgs: Vec<PostgreSQLInstance> = (0..extra)
        .map(|i| {
            serde_json::from_value(db::claim(
                &format!("cache-{i}"),
                "bench-cache",
                "bench-absent",
                Some("Orphan"),
            ))
            .unwrap()
        })
        .collect();
    let pg_rec0 = metric(&op, "paved_reconciles", "postgresqlinstance")?;
    create_all(&pg_api, pgs, a.concurrency).await?;
    eventually(
        "the cached claims reconciled",
        Duration::from_secs(1800),
        || async {
            Ok(
                (metric(&op, "paved_reconciles", "postgresqlinstance")? >= pg_rec0 + extra as f64)
                    .then_some(()),
            )
        },
    )
    .await?;
    let rss_cached = peak_rss_mib(op.pid())?;
    // Settled before the restart: every cached claim has its status (a first reconcile
    // only adds the finalizer), so the restart meets only claims that did not change.
    eventually(
        "every cached claim has a status",
        Duration::from_secs(1800),
        || async {
            let done = count(&pg_api, |p| {
                p.status.as_ref().is_some_and(|s| !s.conditions.is_empty())
            })
            .await?;
            Ok((done >= extra).then_some(()))
        },
    )
    .await?;

    // 5b. A restart (a new leader) with every claim cached: nothing changed while it
    // was away, so it writes nothing.
    let mut op = op;
    op.stop();
    drop(op);
    eprintln!("bench: restart with {} claims", claims_total + extra);
    let spawned = Instant::now();
    let op = Operator::start(cp, "bench-restart-cached", &flags)?;
    let all_cached = eventually(
        "every cached claim reconciled after restart",
        Duration::from_secs(1800),
        || async {
            let svc = metric(&op, "paved_reconciles", "serviceclaim").unwrap_or(0.0);
            let pgi = metric(&op, "paved_reconciles", "postgresqlinstance").unwrap_or(0.0);
            Ok((svc >= claims_total as f64 && pgi >= extra as f64)
                .then(|| spawned.elapsed().as_secs_f64()))
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let restart_cached_writes = metric(&op, "paved_apiserver_writes", "")?;

    // 6. Cloud calls per poll with many AWS instances.
    eprintln!("bench: {} PostgreSQLInstances on moto", a.aws_instances);
    let seed = db::moto(cp, "seed.py", &[])?;
    let poll = 20u64;
    db::aws_composition(cp, &seed, "bench-aws", &format!("{poll}s"))?;
    db::namespace(cp, "bench-aws", "aws", "internal")?;
    let aws_api: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), "bench-aws");
    let claims: Vec<PostgreSQLInstance> = (0..a.aws_instances)
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
    create_all(&aws_api, claims, a.concurrency).await?;
    eventually(
        "the AWS claims Ready",
        Duration::from_secs(1800),
        || async {
            let n = count(&aws_api, |p| {
                p.status
                    .as_ref()
                    .is_some_and(|s| conditions::is_ready(&s.conditions, p.metadata.generation))
            })
            .await?;
            Ok((n >= a.aws_instances).then_some(()))
        },
    )
    .await?;
    let lists0 = metric(&op, "paved_cloud_list_calls", "provider=\"aws\"")?;
    let pg_rec1 = metric(&op, "paved_reconciles", "postgresqlinstance")?;
    let cycles = 3u64;
    tokio::time::sleep(Duration::from_secs(poll * cycles)).await;
    let list_pages = metric(&op, "paved_cloud_list_calls", "provider=\"aws\"")? - lists0;
    let aws_reconciles = metric(&op, "paved_reconciles", "postgresqlinstance")? - pg_rec1;

    // 7. Every service's own IAM role, observed for drift every poll.
    eprintln!(
        "bench: {} AWS ServiceClaims with their own IAM role",
        a.aws_identities
    );
    let oidc = format!(
        "arn:aws:iam::{}:oidc-provider/kubernetes.default.svc.cluster.local",
        paved_e2e::MOTO_ACCOUNT
    );
    paved_e2e::patch_service_composition(
        cp,
        "service-aws",
        json!({ "identity": { "aws": { "oidcProviderArn": oidc, "pollInterval": format!("{poll}s") } } }),
    )?;
    let services: Api<ServiceClaim> = Api::all(client.clone());
    let with_roles: Vec<ServiceClaim> = (0..a.aws_identities)
        .map(|i| {
            let mut c = service_claim(&format!("bench-id-{i}"), 0);
            c.spec.cloud = Some(Cloud::Aws);
            c
        })
        .collect();
    create_all(&services, with_roles, a.concurrency).await?;
    eventually(
        "every service's role made",
        Duration::from_secs(1800),
        || async {
            let n = count(&services, |c| {
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
    let iam = "provider=\"aws-iam\"";
    let iam0 = metric(&op, "paved_cloud_list_calls", iam)?;
    let svc_rec0 = metric(&op, "paved_reconciles", "serviceclaim")?;
    tokio::time::sleep(Duration::from_secs(poll * cycles)).await;
    let iam_pages = metric(&op, "paved_cloud_list_calls", iam)? - iam0;
    let identity_reconciles = metric(&op, "paved_reconciles", "serviceclaim")? - svc_rec0;
    let iam_pages_per_poll = iam_pages / cycles as f64;
    // One list serves every claim for the list's time-to-live (the operator's
    // default, 5 s): at most poll ÷ TTL lists per poll, however many roles.
    let iam_max_per_poll = (poll as f64 / 5.0).ceil();
    let azure_ids = cloud_identities(
        cp,
        &client,
        &op,
        Cloud::Azure,
        a.cloud_identities,
        poll,
        a.concurrency,
    )
    .await?;
    let gcp_ids = cloud_identities(
        cp,
        &client,
        &op,
        Cloud::Gcp,
        a.cloud_identities,
        poll,
        a.concurrency,
    )
    .await?;
    let rss_final = peak_rss_mib(op.pid())?;
    drop(op);

    let pages_per_poll = list_pages / cycles as f64;
    // DescribeDBInstances pages hold 100 instances; each instance's own security group
    // comes from one DescribeSecurityGroups, whose pages hold 1000 (moto: all at once).
    let min_pages =
        (a.aws_instances as f64 / 100.0).ceil() + (a.aws_instances as f64 / 1000.0).ceil();
    results.insert(
        "figures".into(),
        json!({
            "baseline": { "runs": plain_s.runs, "medianSeconds": plain_s.median,
                           "p50": plain_s.p50, "p99": plain_s.p99,
                           "cpuSecondsPerRun": plain_s.cpu, "apiserverPerClaim": plain_s.served },
            "createBaseline": { "seconds": post.seconds, "cpuSeconds": post.cpu,
                                "ratio": op_s.median / post.seconds },
            "operator": { "runs": op_s.runs, "medianSeconds": op_s.median,
                           "p50": op_s.p50, "p99": op_s.p99,
                           "roundRatios": ratios, "ratio": ratio,
                           "cpuSecondsPerRun": op_s.cpu, "apiserverPerClaim": op_s.served,
                           "apiserverWritesPerClaim": writes_per_claim, "statusWritesPerClaim": status_per_claim },
            "resync": { "reconciles": resync_reconciles, "writes": resync_writes },
            "restart": { "secondsToFirstReconcile": first, "secondsToAllReconciled": all,
                          "writes": restart_writes, "claims": claims_total },
            "restartCached": { "claims": claims_total + extra, "secondsToAllReconciled": all_cached,
                                "writes": restart_cached_writes },
            "rssMiB": { "afterClaims": rss_after_claims, "cachedClaims": claims_total + extra,
                         "withCachedClaims": rss_cached, "peak": rss_final },
            "aws": { "instances": a.aws_instances, "pollSeconds": poll, "cycles": cycles,
                      "reconciles": aws_reconciles, "listPages": list_pages,
                      "listPagesPerPoll": pages_per_poll, "minimumPagesPerPoll": min_pages },
            "identities": { "roles": a.aws_identities, "pollSeconds": poll, "cycles": cycles,
                             "reconciles": identity_reconciles, "iamListPages": iam_pages,
                             "iamListPagesPerPoll": iam_pages_per_poll,
                             "maximumPagesPerPoll": iam_max_per_poll,
                             "perRoleCallsPerPollBefore": 4 * a.aws_identities },
            "azureIdentities": azure_ids.json(),
            "gcpIdentities": gcp_ids.json(),
        }),
    );
    let out_dir = repo_root().join("target/paved-bench");
    std::fs::create_dir_all(&out_dir)?;
    let results = Value::Object(results);
    std::fs::write(
        out_dir.join("results.json"),
        serde_json::to_string_pretty(&results)?,
    )?;

    let rows: Vec<(String, String, String)> = vec![
        (
            format!(
                "baseline: plain client writes {} claims' objects, median of {} runs (s)",
                a.claims,
                plain_s.runs.len()
            ),
            format!("{:.1} ({})", plain_s.median, range(&plain_s.runs)),
            String::new(),
        ),
        (
            "baseline: per claim, p50 / p99 (s)".into(),
            format!("{:.2} / {:.2}", plain_s.p50, plain_s.p99),
            String::new(),
        ),
        (
            "for reference: a plain client creating (POST) them instead (s)".into(),
            format!("{:.1}", post.seconds),
            format!("operator / this: {:.2}", op_s.median / post.seconds),
        ),
        (
            format!(
                "operator: {} ServiceClaims created at once, all Ready, median of {} rounds (s)",
                a.claims,
                op_s.runs.len()
            ),
            format!("{:.1} ({})", op_s.median, range(&op_s.runs)),
            String::new(),
        ),
        (
            "operator: per claim, creation to Ready, p50 / p99 (s)".into(),
            format!("{:.2} / {:.2}", op_s.p50, op_s.p99),
            String::new(),
        ),
        (
            "ratio operator / plain client, median round (each over the baselines around it)"
                .into(),
            format!(
                "{ratio:.2} ({})",
                ratios
                    .iter()
                    .map(|r| format!("{r:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!("≤ 1.5, {}", check(ratio <= 1.5)),
        ),
        (
            "CPU s per run, baseline: apiserver / etcd / controller-manager".into(),
            format!(
                "{:.1} / {:.1} / {:.1}",
                plain_s.cpu.get("kube-apiserver").unwrap_or(&0.0),
                plain_s.cpu.get("etcd").unwrap_or(&0.0),
                plain_s.cpu.get("kube-controller-manager").unwrap_or(&0.0)
            ),
            String::new(),
        ),
        (
            "CPU s per run, operator: apiserver / etcd / controller-manager / operator".into(),
            format!(
                "{:.1} / {:.1} / {:.1} / {:.1}",
                op_s.cpu.get("kube-apiserver").unwrap_or(&0.0),
                op_s.cpu.get("etcd").unwrap_or(&0.0),
                op_s.cpu.get("kube-controller-manager").unwrap_or(&0.0),
                op_s.cpu.get("paved-operator").unwrap_or(&0.0)
            ),
            String::new(),
        ),
        (
            "apiserver requests per claim, baseline / operator run".into(),
            format!(
                "{:.1} / {:.1}",
                totals(&plain_s.served).0,
                totals(&op_s.served).0
            ),
            String::new(),
        ),
        (
            "apiserver watch events per claim, baseline / operator run".into(),
            format!(
                "{:.1} / {:.1}",
                totals(&plain_s.served).1,
                totals(&op_s.served).1
            ),
            String::new(),
        ),
        (
            "apiserver writes per claim (operator metrics)".into(),
            format!("{writes_per_claim:.1}"),
            String::new(),
        ),
        (
            "  of which status writes".into(),
            format!("{status_per_claim:.1}"),
            String::new(),
        ),
        (
            format!("writes during a periodic resync of every claim, {claims_total} claims"),
            format!("{resync_writes}"),
            format!("0, {}", check(resync_writes == 0.0)),
        ),
        (
            "start-up to first reconcile (s)".into(),
            format!("{first:.2}"),
            String::new(),
        ),
        (
            format!("start-up to every claim reconciled, {claims_total} claims (s)"),
            format!("{all:.1}"),
            String::new(),
        ),
        (
            format!("writes in the first pass after a restart, {claims_total} claims"),
            format!("{restart_writes}"),
            format!("0, {}", check(restart_writes == 0.0)),
        ),
        (
            format!(
                "restart with {} claims cached: to every claim reconciled (s)",
                claims_total + extra
            ),
            format!("{all_cached:.1}"),
            format!("< 30, {}", check(all_cached < 30.0)),
        ),
        (
            format!(
                "restart with {} claims cached: writes in the first pass",
                claims_total + extra
            ),
            format!("{restart_cached_writes}"),
            format!("0, {}", check(restart_cached_writes == 0.0)),
        ),
        (
            format!("peak RSS with {} claims cached (MiB)", claims_total + extra),
            format!("{rss_cached:.1}"),
            format!("< 100, {}", check(rss_cached < 100.0)),
        ),
        (
            format!(
                "RDS and EC2 list pages per poll, {} instances with their own security group",
                a.aws_instances
            ),
            format!("{pages_per_poll:.1}"),
            format!(
                "{min_pages} (one list per page), {}",
                check(pages_per_poll <= min_pages)
            ),
        ),
        (
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
        ),
        azure_ids.row(iam_max_per_poll),
        gcp_ids.row(iam_max_per_poll),
    ];
    let mut table = String::from("| figure | value | target |\n|---|---:|---|\n");
    for (name, value, target) in &rows {
        table.push_str(&format!("| {name} | {value} | {target} |\n"));
        println!("{name:<62} {value:>14}  {target}");
    }
    let m = &results["machine"];
    let binary = m["operatorBinary"].as_str().unwrap_or("?");
    let binary = binary
        .rsplit_once("/target/")
        .map(|(_, p)| format!("target/{p}"))
        .unwrap_or_else(|| binary.to_string());
    let md = format!(
        "# Benchmarks

Written by `make bench` (e2e/src/bin/paved-bench.rs) at the end of its last run: every
figure below was measured by that run, none is typed in. Raw figures:
`target/paved-bench/results.json`.

## Last run

Machine: {cpus} CPUs ({model}), {mem} kB memory, shared with the control plane (the
loopback kube-apiserver, etcd and kube-controller-manager of `e2e/control-plane`).
Operator: `{binary}`. Parameters: {rounds} rounds of {claims} ServiceClaims, {cache} claims
cached, {aws} AWS instances and {ids} services' IAM roles on moto, concurrency {conc}, resync every {resync} s.

{table}
## What is measured

- **Baseline**: the objects `paved render` gives for the same claims, server-side applied by a
  plain kube client with the operator's identity (the chart's ServiceAccount) and concurrency
  (claims at once, 8 writes at once per claim), in the same run: what `paved render | kubectl
  apply --server-side` or Argo CD's server-side apply does. They are the operator's objects,
  labels and owner reference included, but for the owner (a stand-in ClusterRole, so the
  garbage collector tracks the same edges) and the managed-by label (not Paved's, so the
  operator's caches leave them alone). For reference the same objects are also written once with plain creates (POST), the least work the apiserver can do for them
  (the operator creates a new claim's objects that way, and adopts them into its apply at
  their first change).
- **Operator**: claims created at once; per claim, from the create call's return to the watch
  event that shows Ready=True at the claim's generation.
- **Rounds and the ratio**: baseline, operator round, baseline, ... , baseline: each round
  creates new claims, each baseline writes new objects. A round's ratio is its wall time over
  the mean of the baselines just before and just after it, so neither side gains from the
  cluster growing; the figure is the median round's, which a single noisy phase on a shared
  2-core machine does not move. Every phase runs beside the operator (idle during the
  baselines: it watches every namespace, theirs too, with nothing to do for them).
- **CPU**: user + system seconds of each control-plane process (and the operator) over
  the phase, from `/proc/PID/stat`, averaged over the runs of a kind. Each phase starts on a quiet control plane (under a
  quarter of a core for a second), so it does not pay for what the one before it set off.
- **Requests**: from the apiserver's own /metrics over each phase, per claim: every request
  but watches and lists (`apiserver_request_total`: the claims' creates, the writes, the
  controller manager's and the Events), and the watch events it sent to every watcher
  (`apiserver_watch_events_total`). results.json breaks both down by verb, resource and kind.
- **Writes**: `paved_apiserver_writes_total` from the operator's /metrics (apply, status,
  delete). A periodic resync reconciles every claim and must write nothing.
- **Restart**: a new operator process for the same claims (as after a failover): spawn to
  the first reconcile and to every claim reconciled, and the writes of that first pass.
  Each ServiceClaim's status records a digest of its last apply; a claim whose objects
  still match it (checked against the watches' first list) is not written again. Then the
  same with every cached claim (ServiceClaims and the cached PostgreSQLInstances).
- **RSS**: the operator's VmHWM after the cached claims (PostgreSQLInstances naming a
  Composition that does not exist) were reconciled.
- **Cloud calls**: `paved_cloud_list_calls_total{{provider=\"aws\"}}` over three poll intervals
  with every claim Ready: DescribeDBInstances, whose pages hold 100 instances, and one
  DescribeSecurityGroups of the groups tagged as a claim's (each database's own).
- **Identity calls**: `paved_cloud_list_calls_total{{provider=\"aws-iam\"}}` over three poll
  intervals once every service's role exists: each ServiceClaim checks its role for drift
  every poll, all from one GetAccountAuthorizationDetails that serves every claim for the
  list's time-to-live (5 s), where reading each role would take four calls (GetRole,
  GetRolePolicy, ListRolePolicies, ListAttachedRolePolicies).

## Reproduce

```bash
make bench                                                        # the defaults above
make bench BENCH_ARGS=\"--claims 200 --cache-claims 2000 --aws-instances 100\"
make bench BENCH_ARGS=\"--profile-seconds 10\"   # + the apiserver's CPU profile of each timed phase
```

A profile lands in `target/paved-bench/<phase>.apiserver.pprof`: `go tool pprof -top -cum <file>`.
",
        cpus = m["cpus"],
        model = m["cpuModel"].as_str().unwrap_or("?"),
        mem = m["memTotal"].as_str().unwrap_or("?"),
        claims = a.claims,
        rounds = a.rounds,
        cache = a.cache_claims,
        aws = a.aws_instances,
        ids = a.aws_identities,
        conc = a.concurrency,
        resync = a.resync_seconds,
    );
    std::fs::write(repo_root().join("BENCHMARKS.md"), md)?;
    eprintln!(
        "bench: results in {}",
        out_dir.join("results.json").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_round_is_judged_against_the_baselines_around_it() {
        // Baselines 10, 12, 8 s around rounds of 15 and 14 s.
        let r = round_ratios(&[15.0, 14.0], &[10.0, 12.0, 8.0]);
        assert_eq!(r.len(), 2);
        assert!((r[0] - 15.0 / 11.0).abs() < 1e-9);
        assert!((r[1] - 14.0 / 10.0).abs() < 1e-9);
    }

    #[test]
    fn the_median_ignores_one_outlier() {
        assert_eq!(median(&[1.3, 9.0, 1.4]), 1.4);
        assert_eq!(median(&[1.0, 2.0, 4.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(range(&[2.0, 1.04, 3.96]), "1.0–4.0");
    }

    #[test]
    fn runs_of_a_phase_are_summarized_by_median_pooled_latencies_and_mean_costs() {
        let m = |seconds: f64, lat: Vec<f64>, cpu: f64| Measured {
            seconds,
            latencies: lat,
            cpu: BTreeMap::from([("kube-apiserver".to_string(), cpu)]),
            served: BTreeMap::from([("POST namespaces".to_string(), cpu / 10.0)]),
        };
        let s = summarize(&[
            m(10.0, vec![1.0, 2.0], 4.0),
            m(30.0, vec![3.0], 8.0),
            m(20.0, vec![], 6.0),
        ]);
        assert_eq!(s.median, 20.0);
        assert_eq!(s.runs, vec![10.0, 30.0, 20.0]);
        assert_eq!(s.p50, 2.0);
        assert!((s.cpu["kube-apiserver"] - 6.0).abs() < 1e-9);
        assert!((s.served["POST namespaces"] - 0.6).abs() < 1e-9);
    }

    #[test]
    fn apiserver_counters_are_keyed_by_verb_resource_and_kind() {
        let text = r#"# HELP apiserver_request_total Counter of apiserver requests
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="namespaces",scope="resource",subresource="",verb="POST",version="v1"} 3
apiserver_request_total{code="409",component="apiserver",dry_run="",group="",resource="namespaces",scope="resource",subresource="",verb="POST",version="v1"} 1
apiserver_request_total{code="200",component="apiserver",dry_run="",group="paved.dev",resource="serviceclaims",scope="resource",subresource="status",verb="APPLY",version="v1alpha1"} 2
apiserver_watch_events_total{component="apiserver",group="",resource="namespaces",version="v1"} 7
apiserver_watch_events_sizes_sum{component="apiserver",group="",kind="Namespace",version="v1"} 7000
apiserver_watch_events_sizes_count{component="apiserver",group="",kind="Namespace",version="v1"} 7
etcd_request_duration_seconds_sum{operation="get",type="x"} 1
"#;
        let m = parse_apiserver_counts(text);
        assert_eq!(m["POST namespaces"], 4.0);
        assert_eq!(m["APPLY serviceclaims/status"], 2.0);
        assert_eq!(m["watch events namespaces"], 7.0);
        assert_eq!(m["watch bytes Namespace"], 7000.0);
        assert_eq!(m.len(), 4);
        let before = BTreeMap::from([("POST namespaces".to_string(), 2.0)]);
        let d = per_claim(&before, &m, 2);
        assert_eq!(d["POST namespaces"], 1.0);
        assert_eq!(totals(&d), (1.0 + 1.0, 3.5));
    }
}
