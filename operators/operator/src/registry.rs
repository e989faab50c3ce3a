//! The provider registry: one client per cloud placement (AWS region, Azure
//! subscription and resource group, GCP project) and per Temporal frontend, made on
//! first use and shared by every reconcile, so a region's instance list and a
//! frontend's connection serve all claims.

use std::{collections::HashMap, sync::Arc, time::Duration};

use paved_cloud::{
    aws::AwsProvider,
    azure::{AzureEndpoints, AzureProvider},
    gcp::{GcpEndpoints, GcpProvider},
    temporal::{TemporalProvider, TemporalTls},
};
use tokio::sync::Mutex;

use crate::metrics::Metrics;

pub struct Providers {
    aws_regions: Mutex<HashMap<String, Arc<AwsProvider>>>,
    azure_groups: Mutex<HashMap<String, Arc<AzureProvider>>>,
    gcp_projects: Mutex<HashMap<String, Arc<GcpProvider>>>,
    /// Where the Azure and Google clients send their requests.
    azure_endpoints: AzureEndpoints,
    gcp_endpoints: GcpEndpoints,
    /// How long one region's instance list serves every claim.
    cloud_list_ttl: Duration,
    metrics: Arc<Metrics>,
    /// Temporal frontend connections.
    pub temporal: Connections,
    /// IAM (global): the services' roles.
    iam: tokio::sync::OnceCell<Arc<paved_cloud::aws_iam::IamRoles>>,
}

impl Providers {
    pub fn new(
        azure_endpoints: AzureEndpoints,
        gcp_endpoints: GcpEndpoints,
        cloud_list_ttl: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Providers {
            aws_regions: Default::default(),
            azure_groups: Default::default(),
            gcp_projects: Default::default(),
            azure_endpoints,
            gcp_endpoints,
            cloud_list_ttl,
            metrics,
            temporal: Default::default(),
            iam: Default::default(),
        }
    }

    /// The IAM client the services' roles are made with.
    pub async fn iam(&self) -> Arc<paved_cloud::aws_iam::IamRoles> {
        self.iam
            .get_or_init(|| async { Arc::new(paved_cloud::aws_iam::IamRoles::new().await) })
            .await
            .clone()
    }

    /// The AWS provider for a region, created on first use.
    pub async fn aws(&self, region: &str) -> Arc<AwsProvider> {
        let mut regions = self.aws_regions.lock().await;
        if let Some(p) = regions.get(region) {
            return p.clone();
        }
        let p = Arc::new(
            AwsProvider::new(
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
    ) -> Result<Arc<AzureProvider>, paved_cloud::ProviderError> {
        let key = format!(
            "{}/{}/{}",
            placement.subscription_id, placement.resource_group, placement.key_vault_url
        );
        let mut groups = self.azure_groups.lock().await;
        if let Some(p) = groups.get(&key) {
            return Ok(p.clone());
        }
        let p = Arc::new(AzureProvider::new(
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
    ) -> Result<Arc<GcpProvider>, paved_cloud::ProviderError> {
        let mut projects = self.gcp_projects.lock().await;
        if let Some(p) = projects.get(&placement.project) {
            return Ok(p.clone());
        }
        let p = Arc::new(
            GcpProvider::new(
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
}

/// Connections per frontend address, reused across reconciles; dropped on failure
/// so a restarted server is reached afresh.
#[derive(Default)]
pub struct Connections(tokio::sync::Mutex<HashMap<String, TemporalProvider>>);

impl Connections {
    pub async fn get(
        &self,
        address: &str,
        tls: Option<TemporalTls>,
    ) -> Result<TemporalProvider, paved_cloud::ProviderError> {
        let mut map = self.0.lock().await;
        if let Some(p) = map.get(address) {
            return Ok(p.clone());
        }
        let p = TemporalProvider::connect(address, tls, "paved-operator").await?;
        map.insert(address.to_string(), p.clone());
        Ok(p)
    }

    pub async fn forget(&self, address: &str) {
        self.0.lock().await.remove(address);
    }
}
