//! What every reconciler shares.

use std::{sync::Arc, time::Duration};

use kube::{
    runtime::{
        events::{Event, EventType, Recorder},
        reflector::Store,
    },
    Client, Resource,
};
use paved_api::{Cloud, Composition};
use rand::Rng;

use crate::metrics::Metrics;

pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Cloud for ServiceClaims that name none.
    pub default_cloud: Cloud,
    /// All Compositions, kept current by a reflector.
    pub compositions: Store<Composition>,
    /// How often a Ready claim is re-checked for drift nobody told us about.
    pub resync: Duration,
}

impl Context {
    /// Publishes an Event; failing to record one never fails a reconcile.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(truncate(note, 1000)),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, "could not publish event");
        }
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// `base` ± 10%, so thousands of claims do not resync in lockstep.
pub fn jitter(base: Duration) -> Duration {
    let spread = base.as_millis() as u64 / 10;
    let delta = rand::rng().random_range(0..=spread * 2);
    Duration::from_millis(base.as_millis() as u64 - spread + delta)
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
