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
    /// Every namespace's metadata (labels, owners), kept current by a reflector, so a
    /// reconcile reads the namespace's facts without a request.
    pub namespaces: Store<kube::core::PartialObjectMeta<k8s_openapi::api::core::v1::Namespace>>,
    /// How often a Ready claim is re-checked for drift nobody told us about.
    pub resync: Duration,
    /// AWS clients per region, each with its shared instance list.
    pub aws_regions:
        tokio::sync::Mutex<std::collections::HashMap<String, Arc<paved_cloud::aws::AwsProvider>>>,
    /// Azure clients per subscription and resource group.
    pub azure_groups: tokio::sync::Mutex<
        std::collections::HashMap<String, Arc<paved_cloud::azure::AzureProvider>>,
    >,
    /// GCP clients per project.
    pub gcp_projects:
        tokio::sync::Mutex<std::collections::HashMap<String, Arc<paved_cloud::gcp::GcpProvider>>>,
    /// Where the Azure and Google clients send their requests.
    pub azure_endpoints: paved_cloud::azure::AzureEndpoints,
    pub gcp_endpoints: paved_cloud::gcp::GcpEndpoints,
    /// How long one region's instance list serves every claim.
    pub cloud_list_ttl: Duration,
    /// Temporal frontend connections.
    pub connections: crate::temporal::Connections,
    /// What was last applied per ServiceClaim, to skip writes that change nothing.
    pub applied: crate::applied::Applied,
    /// Every claim's objects are applied again at least this often, whatever the
    /// watches reported (they cannot see everything, e.g. a deletion during a relist).
    pub full_apply_every: Duration,
    /// The operator's own namespace (its Lease, the Temporal TLS Secret).
    pub own_namespace: String,
}

impl Context {
    /// The AWS provider for a region, created on first use.
    pub async fn aws(&self, region: &str) -> Arc<paved_cloud::aws::AwsProvider> {
        let mut regions = self.aws_regions.lock().await;
        if let Some(p) = regions.get(region) {
            return p.clone();
        }
        let p = Arc::new(
            paved_cloud::aws::AwsProvider::new(
                region,
                self.cloud_list_ttl,
                self.metrics.list_counter("aws"),
            )
            .await,
        );
        regions.insert(region.to_string(), p.clone());
        p
    }

    /// The Azure provider for a placement, created on first use.
    pub async fn azure(
        &self,
        placement: &paved_api::AzurePlacement,
    ) -> Result<Arc<paved_cloud::azure::AzureProvider>, paved_cloud::ProviderError> {
        let key = format!(
            "{}/{}/{}",
            placement.subscription_id, placement.resource_group, placement.key_vault_url
        );
        let mut groups = self.azure_groups.lock().await;
        if let Some(p) = groups.get(&key) {
            return Ok(p.clone());
        }
        let p = Arc::new(paved_cloud::azure::AzureProvider::new(
            placement.clone(),
            self.azure_endpoints.clone(),
            self.cloud_list_ttl,
            self.metrics.list_counter("azure"),
        )?);
        groups.insert(key, p.clone());
        Ok(p)
    }

    /// The GCP provider for a project, created on first use.
    pub async fn gcp(
        &self,
        placement: &paved_api::GcpPlacement,
    ) -> Result<Arc<paved_cloud::gcp::GcpProvider>, paved_cloud::ProviderError> {
        let mut projects = self.gcp_projects.lock().await;
        if let Some(p) = projects.get(&placement.project) {
            return Ok(p.clone());
        }
        let p = Arc::new(
            paved_cloud::gcp::GcpProvider::new(
                placement,
                &self.gcp_endpoints,
                self.cloud_list_ttl,
                self.metrics.list_counter("gcp"),
            )
            .await?,
        );
        projects.insert(placement.project.clone(), p.clone());
        Ok(p)
    }

    /// A namespace's metadata as the cache has it (a moment behind the apiserver).
    pub fn cached_namespace(
        &self,
        name: &str,
    ) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta> {
        use kube::runtime::reflector::ObjectRef;
        self.namespaces
            .get(&ObjectRef::new(name))
            .map(|ns| ns.metadata.clone())
    }

    /// A namespace's metadata from the cache; a namespace the cache has not seen yet is
    /// read from the apiserver (it may have been created a moment ago). `fresh` always
    /// reads it, for decisions a cache a moment behind must not make.
    pub async fn namespace(
        &self,
        name: &str,
        fresh: bool,
    ) -> Result<Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>, kube::Error>
    {
        if !fresh {
            if let Some(ns) = self.cached_namespace(name) {
                return Ok(Some(ns));
            }
        }
        Ok(
            kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(self.client.clone())
                .get_opt(name)
                .await?
                .map(|n| n.metadata),
        )
    }

    /// What a claim's namespace labels say (owner, service, cloud, classification).
    pub async fn namespace_facts(
        &self,
        ns: &str,
        fresh: bool,
    ) -> Result<paved_compose::postgresql::NamespaceFacts, kube::Error> {
        let labels = self
            .namespace(ns, fresh)
            .await?
            .and_then(|m| m.labels)
            .unwrap_or_default();
        Ok(paved_compose::postgresql::NamespaceFacts::from_labels(
            ns,
            &labels,
            self.default_cloud,
        ))
    }

    /// Publishes an Event; failing to record one never fails a reconcile.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        publish(
            &self.recorder,
            &obj.object_ref(&()),
            type_,
            reason,
            action,
            note,
        )
        .await;
    }
}

/// Publishes an Event about any object; failing to record one is only logged.
pub async fn publish(
    recorder: &Recorder,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
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
    if let Err(e) = recorder.publish(&ev, reference).await {
        tracing::warn!(error = %e, "could not publish event");
    }
}

/// At most `max` bytes, cut at a character boundary (Event notes are limited to 1 KiB).
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

/// The wait until the next multiple of `interval` on the wall clock, plus up to half
/// a second: claims that poll the same cloud at the same interval wake together and
/// their observes share one list call.
pub fn aligned(interval: Duration) -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    until_next_tick(now, interval) + Duration::from_millis(rand::rng().random_range(0..500))
}

/// Pure: from `now` (since the epoch) to the next multiple of `interval`.
pub fn until_next_tick(now: Duration, interval: Duration) -> Duration {
    let i = interval.as_millis().max(1);
    Duration::from_millis((i - now.as_millis() % i) as u64)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_fall_on_multiples_of_the_interval() {
        let i = Duration::from_secs(20);
        assert_eq!(until_next_tick(Duration::from_secs(100), i), i);
        assert_eq!(
            until_next_tick(Duration::from_millis(105_500), i),
            Duration::from_millis(14_500)
        );
        assert_eq!(
            until_next_tick(Duration::from_secs(119), i),
            Duration::from_secs(1)
        );
    }
}
