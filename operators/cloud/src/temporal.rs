//! Temporal namespaces through the WorkflowService / OperatorService gRPC APIs
//! (temporalio-client). Calls are not retried inside the client: the reconciler's
//! requeue is the retry, so a Temporal outage shows as a condition, not a stall.

use std::{collections::HashMap, time::Duration};

use async_trait::async_trait;
use paved_api::Reason;
use paved_compose::temporal::{DesiredTemporalNamespace, ObservedTemporalNamespace};
use temporalio_client::{
    grpc::{OperatorService, WorkflowService},
    tonic::{self, Code, IntoRequest},
    ClientTlsOptions, Connection, ConnectionOptions, RetryOptions, TlsOptions, Url,
};
use temporalio_common::protos::temporal::api::{
    enums::v1::{ArchivalState, NamespaceState},
    namespace::v1::{NamespaceConfig, UpdateNamespaceInfo},
    operatorservice::v1::DeleteNamespaceRequest,
    workflowservice::v1::{
        DescribeNamespaceRequest, RegisterNamespaceRequest, UpdateNamespaceRequest,
    },
};

use crate::{DeleteProgress, ExternalClient, Observation, ProviderError, Sensitive};

/// TLS material for the frontend; mutual TLS when a client certificate is given.
#[derive(Clone, Debug, Default)]
pub struct TemporalTls {
    pub ca_pem: Option<Vec<u8>>,
    pub client_cert_pem: Option<Vec<u8>>,
    pub client_key_pem: Option<Sensitive>,
    pub server_name: Option<String>,
}

/// A connection to one Temporal frontend.
#[derive(Clone)]
pub struct TemporalProvider {
    conn: Connection,
}

impl TemporalProvider {
    /// Connects to `address` (`host:port`): plaintext, or TLS when `tls` is given.
    pub async fn connect(
        address: &str,
        tls: Option<TemporalTls>,
        identity: &str,
    ) -> Result<Self, ProviderError> {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url =
            Url::parse(&format!("{scheme}://{address}")).map_err(|e| ProviderError::Terminal {
                reason: Reason::InvalidComposition,
                message: format!("frontendAddress {address:?} is not host:port: {e}"),
            })?;
        let mut opts = ConnectionOptions::new(url)
            .identity(identity.to_string())
            .connect_timeout(Duration::from_secs(5))
            .retry_options(RetryOptions::no_retries())
            .build();
        if let Some(t) = tls {
            let client = match (t.client_cert_pem, t.client_key_pem) {
                (Some(cert), Some(key)) => Some(
                    ClientTlsOptions::builder()
                        .client_cert(cert)
                        .client_private_key(key.expose().as_bytes().to_vec())
                        .build(),
                ),
                _ => None,
            };
            opts.tls_options = Some(
                TlsOptions::builder()
                    .maybe_server_root_ca_cert(t.ca_pem)
                    .maybe_domain(t.server_name)
                    .maybe_client_tls_options(client)
                    .build(),
            );
        }
        let conn = Connection::connect(opts).await.map_err(|e| {
            ProviderError::Retryable(format!("cannot reach Temporal at {address}: {e}"))
        })?;
        Ok(TemporalProvider { conn })
    }

    async fn describe(
        &self,
        name: &str,
    ) -> Result<Option<ObservedTemporalNamespace>, ProviderError> {
        let mut c = self.conn.clone();
        let req = DescribeNamespaceRequest {
            namespace: name.to_string(),
            ..Default::default()
        };
        let resp = match WorkflowService::describe_namespace(&mut c, req.into_request()).await {
            Ok(r) => r.into_inner(),
            Err(st) if st.code() == Code::NotFound => return Ok(None),
            Err(st) => return Err(classify(st)),
        };
        let info = resp.namespace_info.unwrap_or_default();
        let cfg = resp.config.unwrap_or_default();
        let state = match info.state() {
            NamespaceState::Registered => "Registered",
            NamespaceState::Deprecated => "Deprecated",
            NamespaceState::Deleted => "Deleted",
            NamespaceState::Unspecified => "Unspecified",
        };
        let archival = |on: bool, uri: String| (on && !uri.is_empty()).then_some(uri);
        Ok(Some(ObservedTemporalNamespace {
            id: info.id,
            state: state.into(),
            description: info.description,
            owner_email: info.owner_email,
            retention_seconds: cfg
                .workflow_execution_retention_ttl
                .as_ref()
                .map(|d| d.seconds)
                .unwrap_or(0),
            data: info.data.into_iter().collect(),
            history_archival_uri: archival(
                cfg.history_archival_state() == ArchivalState::Enabled,
                cfg.history_archival_uri.clone(),
            ),
            visibility_archival_uri: archival(
                cfg.visibility_archival_state() == ArchivalState::Enabled,
                cfg.visibility_archival_uri.clone(),
            ),
        }))
    }
}

fn retention(d: &DesiredTemporalNamespace) -> Duration {
    Duration::from_secs(u64::try_from(d.retention_days).unwrap_or(1) * 86_400)
}

fn archival(uri: &Option<String>) -> (i32, String) {
    match uri {
        Some(u) => (ArchivalState::Enabled as i32, u.clone()),
        None => (ArchivalState::Unspecified as i32, String::new()),
    }
}

#[async_trait]
impl ExternalClient<DesiredTemporalNamespace, ObservedTemporalNamespace> for TemporalProvider {
    async fn observe(
        &self,
        d: &DesiredTemporalNamespace,
    ) -> Result<Observation<ObservedTemporalNamespace>, ProviderError> {
        // Temporal has no tags: ownership is the claim's UID in the namespace's data.
        Ok(match self.describe(&d.name).await? {
            None => Observation::Absent,
            Some(o) => match paved_compose::temporal::foreign_owner(d, &o) {
                Some(owner) => Observation::OwnedByOther { owner },
                None => Observation::Present(o),
            },
        })
    }

    async fn create(&self, d: &DesiredTemporalNamespace) -> Result<(), ProviderError> {
        let (history_state, history_uri) = archival(&d.history_archival_uri);
        let (visibility_state, visibility_uri) = archival(&d.visibility_archival_uri);
        let req = RegisterNamespaceRequest {
            namespace: d.name.clone(),
            description: d.description.clone(),
            owner_email: d.owner_email.clone(),
            workflow_execution_retention_period: retention(d).try_into().ok(),
            data: d.data.clone().into_iter().collect::<HashMap<_, _>>(),
            history_archival_state: if history_state == 0 {
                ArchivalState::Disabled as i32
            } else {
                history_state
            },
            history_archival_uri: history_uri,
            visibility_archival_state: if visibility_state == 0 {
                ArchivalState::Disabled as i32
            } else {
                visibility_state
            },
            visibility_archival_uri: visibility_uri,
            ..Default::default()
        };
        let mut c = self.conn.clone();
        match WorkflowService::register_namespace(&mut c, req.into_request()).await {
            Ok(_) => Ok(()),
            // Someone registered it meanwhile (or an earlier attempt of ours whose answer
            // was lost): not recorded as made; the next observe judges whose it is.
            Err(st) if st.code() == Code::AlreadyExists => Err(ProviderError::Retryable(format!(
                "Temporal namespace {} exists already; looking at whose it is",
                d.name
            ))),
            Err(st) => Err(classify(st)),
        }
    }

    async fn update(
        &self,
        d: &DesiredTemporalNamespace,
        _o: &ObservedTemporalNamespace,
    ) -> Result<(), ProviderError> {
        let (history_state, history_uri) = archival(&d.history_archival_uri);
        let (visibility_state, visibility_uri) = archival(&d.visibility_archival_uri);
        let req = UpdateNamespaceRequest {
            namespace: d.name.clone(),
            update_info: Some(UpdateNamespaceInfo {
                description: d.description.clone(),
                owner_email: d.owner_email.clone(),
                data: d.data.clone().into_iter().collect(),
                state: NamespaceState::Unspecified as i32,
            }),
            config: Some(NamespaceConfig {
                workflow_execution_retention_ttl: retention(d).try_into().ok(),
                history_archival_state: history_state,
                history_archival_uri: history_uri,
                visibility_archival_state: visibility_state,
                visibility_archival_uri: visibility_uri,
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut c = self.conn.clone();
        WorkflowService::update_namespace(&mut c, req.into_request())
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn delete(&self, d: &DesiredTemporalNamespace) -> Result<DeleteProgress, ProviderError> {
        if !d.allow_deletion {
            return Ok(DeleteProgress::Skipped(format!(
                "Temporal namespace {} kept: allowDeletion is false",
                d.name
            )));
        }
        match self.describe(&d.name).await? {
            None => {
                return Ok(DeleteProgress::Done(format!(
                    "Temporal namespace {} no longer exists",
                    d.name
                )))
            }
            Some(o) if paved_compose::temporal::foreign_owner(d, &o).is_some() => {
                return Ok(DeleteProgress::Skipped(format!(
                    "Temporal namespace {} is not this claim's; left untouched",
                    d.name
                )))
            }
            Some(_) => {}
        }
        let req = DeleteNamespaceRequest {
            namespace: d.name.clone(),
            ..Default::default()
        };
        let mut c = self.conn.clone();
        match OperatorService::delete_namespace(&mut c, req.into_request()).await {
            // Temporal answers InvalidArgument for a namespace that is already gone.
            Ok(_) => Ok(DeleteProgress::Done(format!(
                "Temporal namespace {} deleted",
                d.name
            ))),
            Err(st) if st.code() == Code::InvalidArgument && st.message().contains("not found") => {
                Ok(DeleteProgress::Done(format!(
                    "Temporal namespace {} deleted",
                    d.name
                )))
            }
            Err(st) => Err(classify(st)),
        }
    }
}

fn classify(st: tonic::Status) -> ProviderError {
    let message = format!("{:?}: {}", st.code(), st.message());
    match st.code() {
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::Internal
        | Code::Unknown
        | Code::Cancelled => ProviderError::Retryable(message),
        Code::ResourceExhausted => ProviderError::Throttled {
            retry_after: Duration::from_secs(5),
            message,
        },
        Code::NotFound => ProviderError::NotFound(message),
        Code::PermissionDenied | Code::Unauthenticated => ProviderError::Terminal {
            reason: Reason::ProviderAccessDenied,
            message,
        },
        _ => ProviderError::Terminal {
            reason: Reason::ProviderRejected,
            message,
        },
    }
}
