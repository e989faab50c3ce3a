//! The claims both controllers are timed on: Paved's ServiceClaims and kro's
//! `serviceclaims.kro.run` instances of the same five inputs, created at once (a burst)
//! or at a fixed rate (steady arrival), each timed from its create call's return to the
//! watch event that shows Ready=True at its generation; and drift repair.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use futures::{stream, StreamExt, TryStreamExt};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::{
    api::{
        ApiResource, DeleteParams, DynamicObject, ListParams, PostParams, WatchEvent, WatchParams,
    },
    core::GroupVersionKind,
    runtime::{watcher, WatchStreamExt},
    Api, Client, ResourceExt,
};
use paved_api::ServiceClaim;
use paved_e2e::eventually;
use serde_json::{json, Value};

/// Whose claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    Paved,
    Kro,
}

impl Controller {
    pub fn name(self) -> &'static str {
        match self {
            Controller::Paved => "Paved",
            Controller::Kro => "kro",
        }
    }

    /// The kind its claims are: cluster-scoped on both sides.
    pub fn resource(self) -> ApiResource {
        match self {
            Controller::Paved => ApiResource::erase::<ServiceClaim>(&()),
            Controller::Kro => ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("kro.run", "v1alpha1", "ServiceClaim"),
                "serviceclaims",
            ),
        }
    }

    pub fn api(self, client: &Client) -> Api<DynamicObject> {
        Api::all_with(client.clone(), &self.resource())
    }

    /// The bench's claim named `name` (also its namespace's name), labelled with its
    /// run `round`: the same five inputs on both sides.
    pub fn claim(self, name: &str, round: &str) -> Value {
        let mut c = claim_json(name, round);
        if self == Controller::Kro {
            c["apiVersion"] = json!("kro.run/v1alpha1");
            c["metadata"]["labels"]["paved.dev/bench"] = json!("kro");
        }
        c
    }

    /// The claims' names of one run: `bench-<round>-<i>` (Paved), `bench-kro-<round>-<i>`.
    pub fn claim_name(self, round: &str, i: usize) -> String {
        match self {
            Controller::Paved => format!("bench-{round}-{i}"),
            Controller::Kro => format!("bench-kro-{round}-{i}"),
        }
    }
}

/// A Paved ServiceClaim of the bench's inputs: owner team-bench, system bench, local,
/// internal, bronze, CC-0001.
pub fn service_claim(name: &str, round: &str) -> ServiceClaim {
    serde_json::from_value(claim_json(name, round)).expect("a valid ServiceClaim")
}

fn claim_json(name: &str, round: &str) -> Value {
    json!({
        "apiVersion": "paved.dev/v1alpha1", "kind": "ServiceClaim",
        "metadata": { "name": name, "labels": { "paved.dev/bench": "true",
                                                "paved.dev/bench-round": round } },
        "spec": { "owner": "team-bench", "system": "bench", "cloud": "local",
                  "dataClassification": "internal", "sloTier": "bronze", "costCenter": "CC-0001" },
    })
}

/// Pure: a claim (Paved's or kro's, as JSON) is Ready at its current generation: its
/// condition `Ready` is True and observed that generation. Both controllers write
/// `observedGeneration` on the condition.
pub fn ready_at_generation(o: &Value) -> bool {
    let generation = o["metadata"]["generation"].as_i64();
    o["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .is_some_and(|c| {
            c["status"] == "True"
                && (generation.is_none() || c["observedGeneration"].as_i64() == generation)
        })
}

/// A watch of one run's claims (by their round label): when each was first seen Ready
/// at its generation.
pub struct ReadyWatch {
    ready: Arc<Mutex<BTreeMap<String, Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ReadyWatch {
    pub fn start(api: &Api<DynamicObject>, round: &str) -> ReadyWatch {
        let ready: Arc<Mutex<BTreeMap<String, Instant>>> = Default::default();
        // A watch error (a timeout under load, an expired resourceVersion) is retried
        // with backoff; the loop only ends with the stream.
        let stream = watcher(
            api.clone(),
            watcher::Config::default().labels(&format!("paved.dev/bench-round={round}")),
        )
        .default_backoff()
        .applied_objects();
        let seen = ready.clone();
        let task = tokio::spawn(async move {
            futures::pin_mut!(stream);
            while let Some(item) = stream.next().await {
                let Ok(o) = item else { continue };
                let Ok(v) = serde_json::to_value(&o) else {
                    continue;
                };
                if ready_at_generation(&v) {
                    seen.lock()
                        .unwrap()
                        .entry(o.name_any())
                        .or_insert_with(Instant::now);
                }
            }
        });
        ReadyWatch { ready, task }
    }

    pub async fn wait_all(&self, n: usize, what: &str, timeout: Duration) -> Result<()> {
        eventually(what, timeout, || async {
            Ok((self.ready.lock().unwrap().len() >= n).then_some(()))
        })
        .await
    }

    /// Per claim, from its create call's return to Ready (seconds).
    pub fn latencies(&self, created: &BTreeMap<String, Instant>) -> Vec<f64> {
        let ready = self.ready.lock().unwrap();
        created
            .iter()
            .filter_map(|(k, t)| Some(ready.get(k)?.saturating_duration_since(*t).as_secs_f64()))
            .collect()
    }

    pub fn count(&self) -> usize {
        self.ready.lock().unwrap().len()
    }

    pub fn last_ready(&self) -> Option<Instant> {
        self.ready.lock().unwrap().values().max().copied()
    }
}

impl Drop for ReadyWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// N claims created at once (`concurrency` create calls at a time): the time from the
/// first create to every claim Ready, and each claim's create → Ready.
pub async fn burst(
    client: &Client,
    ctl: Controller,
    n: usize,
    concurrency: usize,
    round: &str,
) -> Result<(f64, Vec<f64>)> {
    let api = ctl.api(client);
    let watch = ReadyWatch::start(&api, round);
    let created: Arc<Mutex<BTreeMap<String, Instant>>> = Default::default();
    let start = Instant::now();
    stream::iter((0..n).map(|i| {
        let api = api.clone();
        let created = created.clone();
        let name = ctl.claim_name(round, i);
        let body: DynamicObject = serde_json::from_value(ctl.claim(&name, round)).expect("a claim");
        async move {
            api.create(&PostParams::default(), &body)
                .await
                .with_context(|| format!("creating {name}"))?;
            created.lock().unwrap().insert(name, Instant::now());
            Ok::<_, anyhow::Error>(())
        }
    }))
    .buffer_unordered(concurrency)
    .try_collect::<Vec<_>>()
    .await?;
    watch
        .wait_all(
            n,
            &format!("{n} {} ServiceClaims Ready", ctl.name()),
            Duration::from_secs(1800),
        )
        .await?;
    let total = start.elapsed().as_secs_f64();
    let created = created.lock().unwrap().clone();
    Ok((total, watch.latencies(&created)))
}

/// Pure: when each claim of a steady arrival is created, from the start: `rate` a
/// second for `seconds` (the first at once).
pub fn arrival_offsets(rate: f64, seconds: f64) -> Vec<Duration> {
    if rate <= 0.0 || seconds <= 0.0 {
        return Vec::new();
    }
    let n = (rate * seconds).round() as usize;
    (0..n)
        .map(|i| Duration::from_secs_f64(i as f64 / rate))
        .collect()
}

/// Pure: a rate as it appears in names and labels ("5", "2p5").
pub fn rate_label(rate: f64) -> String {
    let s = format!("{rate}");
    s.replace('.', "p")
}

/// What a steady arrival measured.
pub struct Arrival {
    pub rate: f64,
    pub seconds: f64,
    /// Create → Ready per claim (s); infinite for a claim not Ready `drain_limit` after
    /// the last create.
    pub latencies: Vec<f64>,
    pub not_ready: usize,
    pub drain_limit: f64,
    /// The latest a create call was sent after its time in the schedule (s): the
    /// schedule was kept if this is small against 1/rate.
    pub max_send_lag: f64,
    /// From the last create to the last claim Ready (s).
    pub drain: f64,
}

/// Claims created one at a time at a fixed rate (each create call started on its
/// schedule, not after the one before returned), each timed create → Ready; waits at
/// most `drain_limit` after the last create for the rest (a controller that cannot keep
/// up is not waited for: its stragglers count as not Ready).
pub async fn steady(
    client: &Client,
    ctl: Controller,
    rate: f64,
    seconds: f64,
    drain_limit: Duration,
) -> Result<Arrival> {
    let round = format!("steady-{}", rate_label(rate));
    let api = ctl.api(client);
    let watch = ReadyWatch::start(&api, &round);
    // The watch's first list before the first claim.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let offsets = arrival_offsets(rate, seconds);
    let n = offsets.len();
    let start = tokio::time::Instant::now();
    let mut calls = Vec::with_capacity(n);
    let mut max_lag = 0f64;
    for (i, at) in offsets.iter().enumerate() {
        tokio::time::sleep_until(start + *at).await;
        max_lag = max_lag.max(start.elapsed().saturating_sub(*at).as_secs_f64());
        let name = ctl.claim_name(&round, i);
        let body: DynamicObject = serde_json::from_value(ctl.claim(&name, &round))?;
        let api = api.clone();
        calls.push(tokio::spawn(async move {
            let r = api.create(&PostParams::default(), &body).await;
            (name, Instant::now(), r)
        }));
    }
    let mut created = BTreeMap::new();
    for c in calls {
        let (name, t, r) = c.await?;
        r.with_context(|| format!("creating {name}"))?;
        created.insert(name, t);
    }
    let last_create = created.values().max().copied().unwrap_or_else(Instant::now);
    while watch.count() < n && last_create.elapsed() < drain_limit {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let drain = watch
        .last_ready()
        .map(|t| t.saturating_duration_since(last_create).as_secs_f64())
        .unwrap_or(0.0);
    let mut latencies = watch.latencies(&created);
    let not_ready = n - latencies.len();
    latencies.extend(std::iter::repeat_n(f64::INFINITY, not_ready));
    Ok(Arrival {
        rate,
        seconds,
        latencies,
        not_ready,
        drain_limit: drain_limit.as_secs_f64(),
        max_send_lag: max_lag,
        drain,
    })
}

/// Pure: `k` of `n` claims spread evenly over them (indices).
pub fn spread_indices(n: usize, k: usize) -> Vec<usize> {
    let k = k.min(n);
    (0..k).map(|j| j * n / k).collect()
}

/// The NetworkPolicy deleted by hand in each namespace: `paved-allow-dns`, which both
/// controllers make for every claim.
pub const DRIFT_OBJECT: &str = "paved-allow-dns";

/// Drift repair, one namespace at a time: the NetworkPolicy deleted by hand, and the
/// time from the watch event of its deletion to the one of its re-creation (None: not
/// back within `timeout`).
pub async fn drift_repair(
    admin: &Client,
    namespaces: &[String],
    timeout: Duration,
) -> Result<Vec<Option<f64>>> {
    let mut out = Vec::new();
    for ns in namespaces {
        let api: Api<NetworkPolicy> = Api::namespaced(admin.clone(), ns);
        // Watched from the list's resourceVersion (the object's own may be older than
        // the apiserver's watch cache holds).
        let fields = format!("metadata.name={DRIFT_OBJECT}");
        let list = api.list(&ListParams::default().fields(&fields)).await?;
        if list.items.is_empty() {
            bail!("{ns}/{DRIFT_OBJECT} does not exist");
        }
        let rv = list.metadata.resource_version.unwrap_or_default();
        let wp = WatchParams::default()
            .fields(&fields)
            .timeout(timeout.as_secs().clamp(1, 290) as u32);
        let events = api.watch(&wp, &rv).await?;
        futures::pin_mut!(events);
        api.delete(DRIFT_OBJECT, &DeleteParams::default()).await?;
        let mut deleted = None;
        let started = Instant::now();
        let back = loop {
            let left = timeout.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, events.try_next()).await {
                Err(_) | Ok(Ok(None)) => break None,
                Ok(Err(e)) => bail!("watching {ns}/{DRIFT_OBJECT}: {e}"),
                Ok(Ok(Some(WatchEvent::Deleted(_)))) => deleted = Some(Instant::now()),
                Ok(Ok(Some(WatchEvent::Added(_)))) if deleted.is_some() => {
                    break deleted.map(|d| d.elapsed().as_secs_f64());
                }
                Ok(Ok(Some(WatchEvent::Error(e)))) => bail!("watching {ns}/{DRIFT_OBJECT}: {e}"),
                Ok(Ok(Some(_))) => {}
            }
        };
        out.push(back);
    }
    Ok(out)
}

/// How many of the API's objects `f` holds for (one list).
pub async fn count<K>(api: &Api<K>, f: impl Fn(&K) -> bool) -> Result<usize>
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

pub async fn create_all<K>(api: &Api<K>, objects: Vec<K>, concurrency: usize) -> Result<()>
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_means_true_at_the_current_generation_on_both_sides() {
        let claim = |generation: i64, status: &str, observed: i64| {
            json!({ "metadata": { "name": "a", "generation": generation },
                    "status": { "conditions": [
                        { "type": "Synced", "status": "True", "observedGeneration": generation },
                        { "type": "Ready", "status": status, "observedGeneration": observed } ] } })
        };
        assert!(ready_at_generation(&claim(2, "True", 2)));
        assert!(!ready_at_generation(&claim(2, "True", 1)));
        assert!(!ready_at_generation(&claim(1, "False", 1)));
        assert!(!ready_at_generation(
            &json!({ "metadata": { "generation": 1 } })
        ));
        // kro's instance: state and conditions side by side.
        let kro = json!({ "metadata": { "generation": 1 },
                          "status": { "state": "ACTIVE", "conditions": [
                              { "type": "InstanceManaged", "status": "True", "observedGeneration": 1 },
                              { "type": "Ready", "status": "True", "observedGeneration": 1 } ] } });
        assert!(ready_at_generation(&kro));
    }

    #[test]
    fn both_sides_get_the_same_inputs() {
        let p = Controller::Paved.claim("bench-0-1", "0");
        let k = Controller::Kro.claim("bench-kro-0-1", "0");
        assert_eq!(p["spec"], k["spec"]);
        assert_eq!(p["apiVersion"], "paved.dev/v1alpha1");
        assert_eq!(k["apiVersion"], "kro.run/v1alpha1");
        assert_eq!(k["kind"], "ServiceClaim");
        assert_eq!(k["metadata"]["labels"]["paved.dev/bench-round"], "0");
        assert_eq!(
            p["spec"],
            json!({ "owner": "team-bench", "system": "bench", "cloud": "local",
                    "dataClassification": "internal", "sloTier": "bronze", "costCenter": "CC-0001" })
        );
        assert_eq!(
            Controller::Kro.claim_name("steady-5", 3),
            "bench-kro-steady-5-3"
        );
    }

    #[test]
    fn a_steady_arrival_is_evenly_spaced_at_its_rate() {
        let o = arrival_offsets(5.0, 2.0);
        assert_eq!(o.len(), 10);
        assert_eq!(o[0], Duration::ZERO);
        assert_eq!(o[1], Duration::from_millis(200));
        assert_eq!(o[9], Duration::from_millis(1800));
        assert_eq!(arrival_offsets(20.0, 60.0).len(), 1200);
        assert_eq!(arrival_offsets(2.5, 1.0).len(), 3); // 2.5 rounds to 3
        assert!(arrival_offsets(0.0, 60.0).is_empty());
        assert!(arrival_offsets(5.0, 0.0).is_empty());
        assert_eq!(rate_label(5.0), "5");
        assert_eq!(rate_label(2.5), "2p5");
    }

    #[test]
    fn drift_is_spread_over_the_claims() {
        assert_eq!(spread_indices(1000, 4), vec![0, 250, 500, 750]);
        assert_eq!(spread_indices(3, 10), vec![0, 1, 2]);
        assert!(spread_indices(0, 3).is_empty());
    }
}
