//! How a phase is measured: the apiserver's own /metrics, CPU and peak RSS of processes
//! from /proc, settling, and the statistics of the figures.

use std::{collections::BTreeMap, time::Duration};

use anyhow::{bail, Context, Result};
use kube::Client;
use paved_e2e::repo_root;

/// What the apiserver served so far, from its own /metrics: requests by verb and
/// resource (`apiserver_request_total`), watch events and their bytes by kind
/// (`apiserver_watch_events_total`, `apiserver_watch_events_sizes_sum`).
pub async fn apiserver_counts(client: &Client) -> Result<BTreeMap<String, f64>> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(req).await?;
    Ok(parse_apiserver_counts(&text))
}

/// The prefix of `apiserver_counts`' keys of requests by flow schema.
pub const APF: &str = "by flow schema ";

/// The flow schema of every ServiceAccount's requests but kube-system's: here only the
/// controller under test sends any (the controller manager has credentials of its own,
/// the bench and External Secrets are the plane's admin, which is exempt).
pub const SERVICE_ACCOUNTS: &str = "by flow schema service-accounts";

/// Pure: the counters `apiserver_counts` keeps, keyed "VERB resource[/subresource]",
/// "watch events Kind", "watch bytes Kind" and "by flow schema NAME".
pub fn parse_apiserver_counts(text: &str) -> BTreeMap<String, f64> {
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
            // The same requests again, by API priority and fairness' flow schema: who
            // sent them (see `SERVICE_ACCOUNTS`).
            "apiserver_flowcontrol_dispatched_requests_total" => {
                format!("{APF}{}", label("flow_schema"))
            }
            _ => continue,
        };
        *out.entry(key).or_insert(0.0) += value;
    }
    out
}

pub use paved_e2e::prom_sum;

/// Per claim, what changed between two readings of `apiserver_counts` (only what moved).
pub fn per_claim(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
    claims: usize,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0.0);
            (d > 0.0).then(|| (k.clone(), d / claims.max(1) as f64))
        })
        .collect()
}

/// Sums of a `per_claim` map: requests other than watches and lists (which are
/// long-running or a controller's start-up), and watch events.
pub fn totals(m: &BTreeMap<String, f64>) -> (f64, f64) {
    let requests = m
        .iter()
        .filter(|(k, _)| {
            !k.starts_with("watch ")
                && !k.starts_with("WATCH ")
                && !k.starts_with("LIST ")
                && !k.starts_with(APF)
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

/// Pure: what a run's per-claim counts add over a reference's (both from `per_claim`),
/// largest first, at most `k`: its requests (lists included, watches not) or, with
/// `events`, its watch events by resource. Differences under 0.05 a claim are left out.
pub fn added(
    run: &BTreeMap<String, f64>,
    reference: &BTreeMap<String, f64>,
    events: bool,
    k: usize,
) -> Vec<(String, f64)> {
    let wanted = |key: &str| {
        if events {
            key.starts_with("watch events ")
        } else {
            !key.starts_with("watch ") && !key.starts_with("WATCH ") && !key.starts_with(APF)
        }
    };
    let mut out: Vec<(String, f64)> = run
        .iter()
        .filter(|(key, _)| wanted(key))
        .map(|(key, v)| {
            let name = key.strip_prefix("watch events ").unwrap_or(key);
            (
                name.to_string(),
                v - reference.get(key).copied().unwrap_or(0.0),
            )
        })
        .filter(|(_, d)| *d >= 0.05)
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out.truncate(k);
    out
}

/// A process's peak resident set (VmHWM), MiB.
pub fn peak_rss_mib(pid: u32) -> Result<f64> {
    status_mib(pid, "VmHWM")
}

/// Of a process's resident set now, the pages of mapped files (RssFile: its binary's
/// code and data as far as they were read), MiB.
pub fn file_rss_mib(pid: u32) -> Result<f64> {
    status_mib(pid, "RssFile")
}

fn status_mib(pid: u32, field: &str) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status_kib(&status, field)
        .map(|kb| kb / 1024.0)
        .with_context(|| format!("{field} in /proc/{pid}/status"))
}

/// Pure: a `kB` field of /proc/PID/status.
pub fn status_kib(status: &str, field: &str) -> Option<f64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// CPU seconds (user + system) a process has used so far.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').context("/proc/PID/stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command.
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}

/// The control plane's processes, by component name, from e2e/control-plane's pid files.
pub fn plane_pids(cp: &paved_e2e::ControlPlane) -> Vec<(&'static str, u32)> {
    ["kube-apiserver", "etcd", "kube-controller-manager"]
        .into_iter()
        .filter_map(|name| {
            let f = std::path::Path::new(&cp.env["PAVED_CP_DIR"]).join(format!("pids/{name}.pid"));
            Some((name, std::fs::read_to_string(f).ok()?.trim().parse().ok()?))
        })
        .collect()
}

/// The plane's processes and one controller's.
pub fn with(
    pids: &[(&'static str, u32)],
    name: &'static str,
    pid: u32,
) -> Vec<(&'static str, u32)> {
    let mut v = pids.to_vec();
    v.push((name, pid));
    v
}

/// CPU seconds per process between two readings.
pub struct Cpu(Vec<(&'static str, u32, f64)>);

impl Cpu {
    pub fn read(pids: &[(&'static str, u32)]) -> Cpu {
        Cpu(pids
            .iter()
            .map(|&(n, p)| (n, p, cpu_seconds(p).unwrap_or(0.0)))
            .collect())
    }
    pub fn since(&self, earlier: &Cpu) -> BTreeMap<String, f64> {
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
pub async fn settle(pids: &[(&'static str, u32)]) {
    let start = std::time::Instant::now();
    let mut last = BTreeMap::new();
    let mut quiet = false;
    for _ in 0..60 {
        let before = Cpu::read(pids);
        tokio::time::sleep(Duration::from_secs(1)).await;
        last = Cpu::read(pids).since(&before);
        if last.values().sum::<f64>() < 0.25 {
            quiet = true;
            break;
        }
    }
    SETTLED_MS.fetch_add(
        start.elapsed().as_millis() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    if !quiet {
        eprintln!(
            "bench: the control plane did not settle within 60 s (last second's CPU: {last:.2?})"
        );
    }
}

/// Milliseconds the run spent in `settle`, waiting for a quiet plane.
pub static SETTLED_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Seconds the run has spent waiting for a quiet plane so far.
pub fn settled_seconds() -> f64 {
    SETTLED_MS.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1000.0
}

/// One core's speed, as the seconds a fixed task takes: 100,000 JSON round trips
/// (serialize, then parse) of a ServiceClaim-sized object, the kind of work the
/// apiserver and the controllers spend their CPU on; the best of three, as the run
/// starts. It runs in the bench's own build (serde_json at the dev profile's opt-level
/// 1), so it compares machines, or one machine's days, at the same build settings: a
/// shared machine's speed moved by 2x between sessions, and run times with it.
pub fn reference_task_seconds() -> f64 {
    let claim = serde_json::json!({
        "apiVersion": "paved.dev/v1alpha1", "kind": "ServiceClaim",
        "metadata": { "name": "payments-api", "uid": "0b7c6f2e-0d5e-4b8e-9a55-3f1f2a0c9d11",
                      "resourceVersion": "123456", "generation": 1,
                      "labels": { "paved.dev/team": "payments", "app.kubernetes.io/managed-by": "paved" } },
        "spec": { "team": "payments", "cloud": "aws", "dataClassification": "phi", "sloTier": "gold",
                  "compositionRef": { "name": "service-aws" } },
        "status": { "conditions": (0..4).map(|i| serde_json::json!({
            "type": format!("Condition{i}"), "status": "True", "reason": "ReconcileSuccess",
            "message": "9 objects applied from composition service-aws",
            "lastTransitionTime": "2026-12-07T17:00:00Z", "observedGeneration": 1 }))
            .collect::<Vec<_>>() },
    });
    (0..3)
        .map(|_| {
            let start = std::time::Instant::now();
            let mut bytes = 0usize;
            for _ in 0..100_000 {
                let text = serde_json::to_string(std::hint::black_box(&claim)).unwrap();
                let back: serde_json::Value = serde_json::from_str(&text).unwrap();
                bytes += std::hint::black_box(back)
                    .as_object()
                    .map_or(0, |o| o.len());
            }
            std::hint::black_box(bytes);
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// The value at fraction `p` of sorted figures (nearest rank).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Latencies in short: how many, p50, p99 and the largest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(v: &[f64]) -> Spread {
        let mut v = v.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        Spread {
            n: v.len(),
            p50: percentile(&v, 0.5),
            p99: percentile(&v, 0.99),
            max: v.last().copied().unwrap_or(f64::NAN),
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({ "n": self.n, "p50": self.p50, "p99": self.p99, "max": self.max })
    }
}

/// The lowest and highest of some figures, as "a–b".
pub fn range(v: &[f64]) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{lo:.1}–{hi:.1}")
}

/// The median of some figures (the mean of the middle two for an even count).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Each round's wall time over the mean of the reference runs just before and just
/// after it (`around` holds one more run than `rounds`).
pub fn round_ratios(rounds: &[f64], around: &[f64]) -> Vec<f64> {
    rounds
        .iter()
        .zip(around.windows(2))
        .map(|(o, b)| o / ((b[0] + b[1]) / 2.0))
        .collect()
}

/// CPU profiles of the apiserver over the timed phases (`--profile-seconds`), where its
/// time goes when it is the bottleneck: `go tool pprof -top <file>`.
pub struct Profiler {
    pub cp: &'static paved_e2e::ControlPlane,
    pub seconds: u64,
}

type Profiling = Option<(std::process::Child, std::path::PathBuf)>;

impl Profiler {
    /// Starts profiling the next `seconds` (nothing when profiling is off).
    fn start(&self, phase: &str) -> Result<Profiling> {
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

    fn finish(started: Profiling) -> Result<()> {
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

/// How a timed phase is measured: the apiserver's /metrics (read as admin) and the
/// profiler.
pub struct Meter {
    pub admin: Client,
    pub profiler: Profiler,
}

/// What one timed phase measured.
pub struct Measured {
    pub seconds: f64,
    pub latencies: Vec<f64>,
    pub cpu: BTreeMap<String, f64>,
    /// The apiserver's requests and watch events over the phase, per claim.
    pub served: BTreeMap<String, f64>,
}

impl Meter {
    /// Once `pids` (the plane, and a controller when one runs) have settled: one timed
    /// phase of `claims` claims, with their CPU and the apiserver's requests over it.
    pub async fn measure(
        &self,
        pids: &[(&'static str, u32)],
        phase: &str,
        claims: usize,
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
            served: per_claim(&served0, &apiserver_counts(&self.admin).await?, claims),
        })
    }
}

/// Several runs of one phase: the median and range of their wall times, latencies
/// pooled, CPU and per-claim requests averaged.
pub struct Summary {
    pub runs: Vec<f64>,
    pub median: f64,
    pub latency: Spread,
    pub cpu: BTreeMap<String, f64>,
    pub served: BTreeMap<String, f64>,
}

pub fn summarize(ms: &[Measured]) -> Summary {
    let runs: Vec<f64> = ms.iter().map(|m| m.seconds).collect();
    let latency = Spread::of(
        &ms.iter()
            .flat_map(|m| m.latencies.clone())
            .collect::<Vec<_>>(),
    );
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
        latency,
        cpu: mean(ms.iter().map(|m| &m.cpu).collect()),
        served: mean(ms.iter().map(|m| &m.served).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_run_adds_is_its_largest_differences() {
        let m = |v: &[(&str, f64)]| -> BTreeMap<String, f64> {
            v.iter().map(|(k, x)| (k.to_string(), *x)).collect()
        };
        let run = m(&[
            ("POST networkpolicies", 3.0),
            ("POST serviceclaims", 1.0),
            ("APPLY serviceclaims/status", 1.0),
            ("LIST roles", 1.0),
            ("POST events", 1.2),
            ("WATCH namespaces", 0.1),
            ("watch events serviceclaims", 6.0),
            ("watch events networkpolicies", 6.0),
            ("watch bytes networkpolicies", 900.0),
            ("by flow schema service-accounts", 13.0),
        ]);
        let plain = m(&[
            ("POST networkpolicies", 3.0),
            ("POST events", 0.1),
            ("watch events networkpolicies", 3.0),
        ]);
        let reqs = added(&run, &plain, false, 3);
        let names: Vec<&str> = reqs.iter().map(|(k, _)| k.as_str()).collect();
        // Equal differences in name order; a request both sent as often is no addition.
        assert_eq!(
            names,
            ["POST events", "APPLY serviceclaims/status", "LIST roles"]
        );
        assert!((reqs[0].1 - 1.1).abs() < 1e-9 && reqs[1].1 == 1.0);
        let events = added(&run, &plain, true, 5);
        assert_eq!(
            events,
            vec![
                ("serviceclaims".to_string(), 6.0),
                ("networkpolicies".to_string(), 3.0)
            ]
        );
        assert!(added(&plain, &run, false, 5).is_empty());
    }

    #[test]
    fn status_fields_are_read_by_their_exact_name() {
        let st = "VmPeak:\t  200 kB\nVmHWM:\t   98304 kB\nRssAnon:\t   65536 kB\nRssFile:\t   32768 kB\n";
        assert_eq!(status_kib(st, "VmHWM"), Some(98304.0));
        assert_eq!(status_kib(st, "RssFile"), Some(32768.0));
        assert_eq!(status_kib(st, "Rss"), None);
        assert_eq!(status_kib(st, "VmRSS"), None);
    }

    #[test]
    fn each_round_is_judged_against_the_runs_around_it() {
        // References 10, 12, 8 s around rounds of 15 and 14 s.
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
    fn percentiles_take_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 51.0); // rank round(99 × 0.5) = 50 (0-based)
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
        let s = Spread::of(&[0.3, 0.1, 0.2, 5.0]);
        assert_eq!((s.n, s.p50, s.p99, s.max), (4, 0.3, 5.0, 5.0));
        assert!(Spread::of(&[]).max.is_nan());
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
        assert_eq!(s.latency.p50, 2.0);
        assert_eq!(s.latency.n, 3);
        assert!((s.cpu["kube-apiserver"] - 6.0).abs() < 1e-9);
        assert!((s.served["POST namespaces"] - 0.6).abs() < 1e-9);
    }

    #[test]
    fn prometheus_series_are_summed_by_name_and_label() {
        let text = r#"# HELP rest_client_requests_total Number of HTTP requests
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="GET"} 39
rest_client_requests_total{code="201",host="127.0.0.1:6443",method="PATCH"} 9
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="PATCH"} 14
rest_client_requests_totalx{method="PATCH"} 1000
workqueue_depth{name="dynamic-controller-queue"} 3
"#;
        assert_eq!(
            prom_sum(text, "rest_client_requests", "method=\"PATCH\""),
            23.0
        );
        assert_eq!(prom_sum(text, "rest_client_requests_total", ""), 62.0);
        assert_eq!(prom_sum(text, "workqueue_depth", "dynamic-controller"), 3.0);
        assert_eq!(prom_sum(text, "absent", "").to_string(), "0");
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
apiserver_flowcontrol_dispatched_requests_total{flow_schema="service-accounts",priority_level="workload-low"} 5
apiserver_flowcontrol_dispatched_requests_total{flow_schema="exempt",priority_level="exempt"} 9
etcd_request_duration_seconds_sum{operation="get",type="x"} 1
"#;
        let m = parse_apiserver_counts(text);
        assert_eq!(m["POST namespaces"], 4.0);
        assert_eq!(m["APPLY serviceclaims/status"], 2.0);
        assert_eq!(m["watch events namespaces"], 7.0);
        assert_eq!(m["watch bytes Namespace"], 7000.0);
        assert_eq!(m[SERVICE_ACCOUNTS], 5.0);
        assert_eq!(m["by flow schema exempt"], 9.0);
        assert_eq!(m.len(), 6);
        let before = BTreeMap::from([("POST namespaces".to_string(), 2.0)]);
        let d = per_claim(&before, &m, 2);
        assert_eq!(d["POST namespaces"], 1.0);
        assert_eq!(totals(&d), (1.0 + 1.0, 3.5));
    }
}
