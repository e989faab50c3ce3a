//! Prometheus metrics: reconciles, errors by category, durations.

use std::sync::Mutex;

use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    pub controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub controller: String,
    /// `retryable`, `throttled`, `terminal` or `invalid`.
    pub category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabel {
    /// `aws`, `azure` or `gcp`.
    pub provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    pub controller: String,
    /// `apply`, `delete`, `status`.
    pub verb: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClaimLabels {
    pub namespace: String,
    pub name: String,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    /// Observed databases: how many ways each falls short of the floor.
    pub database_violations: Family<ClaimLabels, Gauge>,
    pub reconciles: Family<ControllerLabel, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    pub duration: Family<ControllerLabel, Histogram>,
    pub writes: Family<WriteLabels, Counter>,
    pub cloud_lists: Family<ProviderLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("paved");
        let reconciles = Family::<ControllerLabel, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Family::<ControllerLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
        });
        let writes = Family::<WriteLabels, Counter>::default();
        let cloud_lists = Family::<ProviderLabel, Counter>::default();
        let database_violations = Family::<ClaimLabels, Gauge>::default();
        registry.register(
            "database_violations",
            "Observed databases (spec.existing): the number of ways each falls short of its Composition's compliance floor",
            database_violations.clone(),
        );
        registry.register(
            "cloud_list_calls",
            "Pages of the shared per-region (or per-group, per-project) instance list sent to a cloud API",
            cloud_lists.clone(),
        );
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconcile errors by category",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            duration.clone(),
        );
        registry.register(
            "apiserver_writes",
            "Writes sent to the apiserver by verb",
            writes.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            database_violations,
            reconciles,
            errors,
            duration,
            writes,
            cloud_lists,
        }
    }
}

impl Metrics {
    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry.lock().expect("metrics lock"))
            .expect("encoding to a String");
        out
    }

    /// A counter the cloud providers call once per list page they send.
    pub fn list_counter(self: &std::sync::Arc<Self>, provider: &str) -> paved_cloud::ListCounter {
        let counter = self
            .cloud_lists
            .get_or_create(&ProviderLabel {
                provider: provider.into(),
            })
            .clone();
        std::sync::Arc::new(move || {
            counter.inc();
        })
    }

    pub fn write(&self, controller: &str, verb: &str) {
        self.writes
            .get_or_create(&WriteLabels {
                controller: controller.into(),
                verb: verb.into(),
            })
            .inc();
    }

    /// An observed database's shortfalls, as last judged.
    pub fn database_violations(&self, namespace: &str, name: &str, count: usize) {
        self.database_violations
            .get_or_create(&ClaimLabels {
                namespace: namespace.into(),
                name: name.into(),
            })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// A claim gone: its series go with it.
    pub fn forget_claim(&self, namespace: &str, name: &str) {
        self.database_violations.remove(&ClaimLabels {
            namespace: namespace.into(),
            name: name.into(),
        });
    }
}
