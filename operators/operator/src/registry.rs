//! The provider registry: one client per cloud placement (AWS region, Azure
//! subscription and resource group, GCP project) and per Temporal frontend, made on
//! first use and shared by every reconcile, so a region's instance list and a
//! frontend's connection serve all claims.

use std::{collections::HashMap, sync::Arc, time::Duration};

use paved_api::Cloud;
use paved_cloud::{
    aws::AwsProvider,
    azure::{AzureEndpoints, AzureProvider},
    gcp::{GcpEndpoints, GcpProvider},
    temporal::{TemporalProvider, TemporalTls},
    IdentityClient, ProviderError,
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
    /// How long an identity's one-at-a-time reads (Azure federated credentials, GCP
    /// IAM policies) are trusted.
    identity_recheck: Duration,
    metrics: Arc<Metrics>,
    /// Temporal frontend connections.
    pub temporal: Connections,
    /// The services' identities, one client per cloud (IAM and Entra ID are global to
    /// an account or tenant; the placement is in each identity's ID).
    identities: Mutex<HashMap<Cloud, Arc<dyn IdentityClient>>>,
}

impl Providers {
    pub fn new(
        azure_endpoints: AzureEndpoints,
        gcp_endpoints: GcpEndpoints,
        cloud_list_ttl: Duration,
        identity_recheck: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Providers {
            aws_regions: Default::default(),
            azure_groups: Default::default(),
            gcp_projects: Default::default(),
            azure_endpoints,
            gcp_endpoints,
            cloud_list_ttl,
            identity_recheck,
            metrics,
            temporal: Default::default(),
            identities: Default::default(),
        }
    }

    /// The client of a cloud's service identities, created on first use.
    pub async fn identities(&self, cloud: Cloud) -> Result<Arc<dyn IdentityClient>, ProviderError> {
        let mut clients = self.identities.lock().await;
        if let Some(c) = clients.get(&cloud) {
            return Ok(c.clone());
        }
        let client: Arc<dyn IdentityClient> = match cloud {
            Cloud::Aws => Arc::new(
                paved_cloud::aws_iam::IamRoles::new(
                    self.cloud_list_ttl,
                    self.identity_recheck,
                    self.metrics.list_counter("aws-iam"),
                    self.metrics.list_counter("aws-eks"),
                )
                .await,
            ),
            Cloud::Azure => Arc::new(paved_cloud::azure_identity::AzureIdentities::new(
                paved_cloud::azure::workload_credential()?,
                self.azure_endpoints.resource_manager.clone(),
                self.cloud_list_ttl,
                self.identity_recheck,
                self.metrics.list_counter("azure-identity"),
            )?),
            Cloud::Gcp => Arc::new(
                paved_cloud::gcp_identity::GcpIdentities::new(
                    self.gcp_endpoints.iam.as_deref(),
                    self.gcp_endpoints.secretmanager.as_deref(),
                    self.cloud_list_ttl,
                    self.identity_recheck,
                    self.metrics.list_counter("gcp-identity"),
                )
                .await?,
            ),
            Cloud::Local => {
                return Err(ProviderError::Terminal {
                    reason: paved_api::Reason::ProviderNotConfigured,
                    message: "the local cloud has no identities beyond the ServiceAccount".into(),
                })
            }
        };
        clients.insert(cloud, client.clone());
        Ok(client)
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
