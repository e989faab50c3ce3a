//! The `azure` provider: Azure Database for PostgreSQL flexible servers (ARM API
//! 2024-08-01) through `azure_mgmt_postgresql`, administrator credentials in the
//! Composition's Key Vault through `azure_security_keyvault`, credentials from
//! workload identity. Nothing outside this module names an Azure crate, so a move to
//! the `azure_resourcemanager_*` crates stays here.
//!
//! Long-running operations are not awaited inside a reconcile: a PUT/PATCH/DELETE is
//! sent, its `Azure-AsyncOperation` (or `Location`) URL remembered, and later
//! reconciles read the server's state and, while it is not Ready, that operation's
//! status, so a failed operation shows its own error. The SDK's retry policy honours
//! `Retry-After` on 429 and 503; what is left over is returned as `Throttled`.
//!
//! Observation is one paginated list per resource group, shared by every claim for a
//! short time-to-live (as for AWS).

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;
use azure_core::{auth::TokenCredential, headers, Method, Request, StatusCode, Url};
use azure_mgmt_postgresql::package_flexibleserver_2024_08_01::{self as pg, models};
use azure_security_keyvault::SecretClient;
use futures::StreamExt;
use paved_api::{AzurePlacement, Cloud, DeletionPolicy, Reason};
use paved_compose::postgresql::{
    azure_sku_tier, cloud_tag_key, cloud_tags, DesiredDatabase, ObservedDatabase, OWNER_TAG,
};
use serde_json::json;
use tokio::sync::Mutex;

use crate::{
    listed::{Listed, Listing},
    DeleteProgress, ExternalClient, Observation, ProviderError, Sensitive,
};

const API_VERSION: &str = "2024-08-01";
const POSTGRES_PORT: i32 = 5432;

/// Where Paved talks to Azure. The defaults are Azure's public cloud; a sovereign
/// cloud (or a test double) sets other endpoints.
#[derive(Debug, Clone)]
pub struct AzureEndpoints {
    pub resource_manager: Url,
}

impl Default for AzureEndpoints {
    fn default() -> Self {
        AzureEndpoints {
            resource_manager: Url::parse("https://management.azure.com").expect("static url"),
        }
    }
}

/// One subscription and resource group's clients and shared list cache.
pub struct AzureProvider {
    client: pg::Client,
    credential: Arc<dyn TokenCredential>,
    endpoints: AzureEndpoints,
    placement: AzurePlacement,
    http: Arc<dyn azure_core::HttpClient>,
    /// The resource group's servers by name.
    servers: Listed<models::Server>,
    /// The last operation URL per server, polled while the server is not Ready.
    operations: Mutex<HashMap<String, Url>>,
    /// Servers whose claim database is known to exist (checked once per process).
    databases: Mutex<HashSet<String>>,
}

impl AzureProvider {
    /// Clients for one placement, authenticated by workload identity
    /// (`AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, `AZURE_FEDERATED_TOKEN_FILE`, as the
    /// AKS workload-identity webhook sets them; `AZURE_AUTHORITY_HOST` for other clouds).
    pub fn new(
        placement: AzurePlacement,
        endpoints: AzureEndpoints,
        ttl: Duration,
        on_list: crate::ListCounter,
    ) -> Result<Self, ProviderError> {
        let credential = workload_credential()?;
        let client = pg::ClientBuilder::new(credential.clone())
            .endpoint(endpoints.resource_manager.clone())
            .retry(azure_core::RetryOptions::exponential(
                azure_core::ExponentialRetryOptions::default()
                    .max_retries(3u32)
                    .initial_delay(Duration::from_millis(500))
                    .max_total_elapsed(Duration::from_secs(30)),
            ))
            .build()
            .map_err(|e| terminal(Reason::ProviderMisconfigured, e))?;
        Ok(AzureProvider {
            client,
            credential,
            endpoints,
            placement,
            http: azure_core::new_http_client(),
            servers: Listed::new("PostgreSQL flexible servers", ttl, on_list),
            operations: Mutex::new(HashMap::new()),
            databases: Mutex::new(HashSet::new()),
        })
    }

    fn sub(&self) -> &str {
        &self.placement.subscription_id
    }

    fn rg(&self) -> &str {
        &self.placement.resource_group
    }

    async fn servers(&self) -> Result<Listing<models::Server>, ProviderError> {
        self.servers
            .get("", |page| async move {
                let mut map = HashMap::new();
                let mut pages = self
                    .client
                    .servers_client()
                    .list_by_resource_group(self.sub(), self.rg())
                    .into_stream();
                while let Some(p) = pages.next().await {
                    page();
                    for s in p.map_err(classify)?.value {
                        if let Some(name) = s.tracked_resource.resource.name.clone() {
                            map.insert(name, s);
                        }
                    }
                }
                Ok(map)
            })
            .await
    }

    fn invalidate(&self) {
        self.servers.invalidate();
    }

    async fn get_server(&self, name: &str) -> Result<Option<models::Server>, ProviderError> {
        match self
            .client
            .servers_client()
            .get(self.sub(), self.rg(), name)
            .await
        {
            Ok(s) => Ok(Some(s)),
            Err(e) => match classify(e) {
                ProviderError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    fn vault(&self) -> Result<SecretClient, ProviderError> {
        SecretClient::new(&self.placement.key_vault_url, self.credential.clone())
            .map_err(|e| terminal(Reason::ProviderMisconfigured, e))
    }

    /// The administrator password kept in Key Vault, created there first if absent:
    /// the vault is the source of truth, written before the server exists, so a crash
    /// between the two leaves a password Paved can still use.
    async fn admin_password(&self, d: &DesiredDatabase) -> Result<Sensitive, ProviderError> {
        let vault = self.vault()?;
        let name = admin_secret_name(d);
        let stored = match vault.get(&name).await {
            Ok(s) => {
                let v: serde_json::Value =
                    serde_json::from_str(&s.value).map_err(|_| ProviderError::Terminal {
                        reason: Reason::SecretConflict,
                        message: format!(
                            "Key Vault secret {name} exists but is not Paved's credentials JSON"
                        ),
                    })?;
                match v.get("password").and_then(|p| p.as_str()) {
                    Some(p) => Some(Sensitive::new(p)),
                    None => {
                        return Err(ProviderError::Terminal {
                            reason: Reason::SecretConflict,
                            message: format!("Key Vault secret {name} has no password"),
                        })
                    }
                }
            }
            Err(e) => match classify(e) {
                ProviderError::NotFound(_) => None,
                other => return Err(other),
            },
        };
        match stored {
            Some(p) if p.is_complex() => Ok(p),
            // None yet, or one Azure refused (made before passwords always had every
            // kind of character), which was never set on a server: a new one.
            _ => {
                let password = Sensitive::generate_password();
                let value = json!({
                    "username": d.master_username,
                    "password": password.expose(),
                });
                vault
                    .set(&name, value.to_string())
                    .await
                    .map_err(classify)?;
                Ok(password)
            }
        }
    }

    /// Sends one ARM request outside the generated client (the create body needs a
    /// user-assigned identity map the generated model cannot express; operation URLs
    /// are absolute). The same credential and endpoint as the SDK client.
    async fn arm(
        &self,
        method: Method,
        url: Url,
        body: Option<serde_json::Value>,
    ) -> Result<(StatusCode, azure_core::headers::Headers, Vec<u8>), ProviderError> {
        let scope = format!(
            "{}/.default",
            self.endpoints
                .resource_manager
                .as_str()
                .trim_end_matches('/')
        );
        let token = self
            .credential
            .get_token(&[scope.as_str()])
            .await
            .map_err(classify)?;
        let mut req = Request::new(url, method);
        req.insert_header(
            headers::AUTHORIZATION,
            format!("Bearer {}", token.token.secret()),
        );
        if let Some(b) = body {
            req.insert_header(headers::CONTENT_TYPE, "application/json");
            req.set_body(b.to_string());
        }
        let rsp = self
            .http
            .execute_request(&req)
            .await
            .map_err(|e| ProviderError::Retryable(format!("cannot reach Azure: {e}")))?;
        let (status, headers, body) = rsp.deconstruct();
        let bytes = body
            .collect()
            .await
            .map_err(|e| ProviderError::Retryable(format!("reading Azure's answer: {e}")))?;
        if !status.is_success() {
            let retry_after = headers
                .get_optional_str(&headers::RETRY_AFTER)
                .and_then(|s| s.parse::<u64>().ok())
                .map(Duration::from_secs);
            return Err(ProviderError::from_http(
                u16::from(status),
                retry_after,
                arm_error_message(&bytes),
            ));
        }
        Ok((status, headers, bytes.to_vec()))
    }

    fn server_url(&self, name: &str) -> Url {
        let mut url = self.endpoints.resource_manager.clone();
        url.set_path(&format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.DBforPostgreSQL/flexibleServers/{name}",
            self.sub(),
            self.rg()
        ));
        url.query_pairs_mut()
            .append_pair("api-version", API_VERSION);
        url
    }

    /// Remembers the operation an ARM answer points at.
    async fn track(&self, name: &str, h: &azure_core::headers::Headers) {
        let url = h
            .get_optional_str(&headers::AZURE_ASYNCOPERATION)
            .or_else(|| h.get_optional_str(&headers::LOCATION))
            .and_then(|u| Url::parse(u).ok());
        if let Some(url) = url {
            self.operations.lock().await.insert(name.to_string(), url);
        }
    }

    /// The failure of the server's last tracked operation, if it failed.
    async fn operation(&self, name: &str) -> Result<crate::OpState, ProviderError> {
        use crate::OpState;
        let Some(url) = self.operations.lock().await.get(name).cloned() else {
            return Ok(OpState::None);
        };
        let (status, _, body) = match self.arm(Method::Get, url, None).await {
            Ok(r) => r,
            // An operation Azure no longer knows: nothing to wait for.
            Err(ProviderError::NotFound(_)) => {
                self.operations.lock().await.remove(name);
                return Ok(OpState::None);
            }
            Err(e) => return Err(e),
        };
        if status == StatusCode::Accepted || body.is_empty() {
            return Ok(OpState::Running);
        }
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        match v.get("status").and_then(|s| s.as_str()) {
            Some("Failed") | Some("Canceled") => {
                self.operations.lock().await.remove(name);
                Ok(OpState::Failed(
                    v.pointer("/error/message")
                        .and_then(|m| m.as_str())
                        .unwrap_or("the operation failed")
                        .to_string(),
                ))
            }
            Some("Succeeded") => {
                self.operations.lock().await.remove(name);
                Ok(OpState::None)
            }
            _ => Ok(OpState::Running),
        }
    }

    async fn require_secure_transport(&self, name: &str) -> Result<bool, ProviderError> {
        let c = self
            .client
            .configurations_client()
            .get(self.sub(), self.rg(), name, "require_secure_transport")
            .await
            .map_err(classify)?;
        Ok(c.properties
            .and_then(|p| p.value)
            .is_some_and(|v| v.eq_ignore_ascii_case("on")))
    }

    async fn database_present(&self, server: &str, db: &str) -> Result<bool, ProviderError> {
        if self.databases.lock().await.contains(server) {
            return Ok(true);
        }
        match self
            .client
            .databases_client()
            .get(self.sub(), self.rg(), server, db)
            .await
        {
            Ok(_) => {
                self.databases.lock().await.insert(server.to_string());
                Ok(true)
            }
            Err(e) => match classify(e) {
                ProviderError::NotFound(_) => Ok(false),
                other => Err(other),
            },
        }
    }

    fn owner_of(s: &models::Server) -> Option<String> {
        s.tracked_resource
            .tags
            .as_ref()
            .and_then(|t| t.get(cloud_tag_key(Cloud::Azure, OWNER_TAG)))
            .and_then(|v| v.as_str())
            .map(String::from)
    }
}

/// The operator's own Azure credential: workload identity (`AZURE_CLIENT_ID`,
/// `AZURE_TENANT_ID`, `AZURE_FEDERATED_TOKEN_FILE`, as the AKS webhook sets them).
pub fn workload_credential() -> Result<Arc<dyn TokenCredential>, ProviderError> {
    Ok(Arc::new(
        azure_identity::WorkloadIdentityCredential::create(
            azure_identity::TokenCredentialOptions::default(),
        )
        .map_err(|e| ProviderError::Terminal {
            reason: Reason::ProviderAccessDenied,
            message: format!("no Azure workload identity: {e}"),
        })?,
    ))
}

/// The Key Vault secret holding a server's administrator credentials (JSON with
/// `username` and `password`, what the ExternalSecret extracts).
pub fn admin_secret_name(d: &DesiredDatabase) -> String {
    // An adopted server's name is anyone's: its secret is named by the claim, so it
    // never lands on a secret of that name someone else keeps in the vault.
    if d.adopting {
        return format!(
            "{}-admin",
            paved_compose::postgresql::external_name(&d.owner_uid)
        );
    }
    format!("{}-admin", d.external_name)
}

/// The ARM body that creates a server with every compliance setting. Pure, so the
/// mapping is unit-tested.
pub fn create_body(d: &DesiredDatabase, password: &Sensitive) -> serde_json::Value {
    let mut identities = serde_json::Map::new();
    for id in [&d.encryption_identity, &d.geo_backup_identity]
        .into_iter()
        .flatten()
    {
        identities.insert(id.clone(), json!({}));
    }
    let geo = d.geo_redundant_backup;
    json!({
        "location": d.region,
        "tags": cloud_tags(Cloud::Azure, &d.tags),
        "sku": { "name": d.instance_class, "tier": azure_sku_tier(&d.instance_class) },
        "identity": { "type": "UserAssigned", "userAssignedIdentities": identities },
        "properties": {
            "createMode": "Create",
            "version": d.engine_version.split('.').next().unwrap_or(&d.engine_version),
            "administratorLogin": d.master_username,
            "administratorLoginPassword": password.expose(),
            "storage": { "storageSizeGB": d.storage_gb, "autoGrow": "Disabled" },
            "dataEncryption": {
                "type": "AzureKeyVault",
                "primaryKeyURI": d.kms_key_id,
                "primaryUserAssignedIdentityId": d.encryption_identity,
                "geoBackupKeyURI": if geo { d.geo_backup_key_id.clone() } else { None },
                "geoBackupUserAssignedIdentityId": if geo { d.geo_backup_identity.clone() } else { None },
            },
            "backup": {
                "backupRetentionDays": d.backup_retention_days,
                "geoRedundantBackup": if d.geo_redundant_backup { "Enabled" } else { "Disabled" },
            },
            "network": {
                "publicNetworkAccess": "Disabled",
                "delegatedSubnetResourceId": d.network.delegated_subnet_id,
                "privateDnsZoneArmResourceId": d.network.private_dns_zone_id,
            },
            "highAvailability": { "mode": if d.multi_az { "ZoneRedundant" } else { "Disabled" } },
        },
    })
}

fn observed(s: &models::Server, d: &DesiredDatabase) -> ObservedDatabase {
    use models::server_properties::State;
    let p = s.properties.clone().unwrap_or_default();
    let state = match &p.state {
        Some(State::Ready) => "available".to_string(),
        Some(State::Updating) => "modifying".to_string(),
        Some(State::Starting) => "starting".to_string(),
        Some(State::Stopping) => "stopping".to_string(),
        Some(State::Stopped) => "stopped".to_string(),
        Some(State::Dropping) => "deleting".to_string(),
        Some(State::Disabled) => "failed".to_string(),
        Some(State::UnknownValue(v)) => v.to_lowercase(),
        None => "creating".to_string(),
    };
    let enc = p.data_encryption.as_ref();
    let customer_key = enc
        .and_then(|e| e.type_.as_ref())
        .is_some_and(|t| format!("{t:?}") == "AzureKeyVault");
    ObservedDatabase {
        state,
        endpoint: p.fully_qualified_domain_name.clone(),
        port: Some(POSTGRES_PORT),
        engine_version: p
            .version
            .as_ref()
            .and_then(|v| serde_json::to_value(v).ok())
            .and_then(|v| v.as_str().map(String::from)),
        instance_class: s.sku.as_ref().map(|k| k.name.clone()),
        storage_gb: p.storage.as_ref().and_then(|x| x.storage_size_gb),
        multi_az: p
            .high_availability
            .as_ref()
            .and_then(|h| h.mode.as_ref())
            .map(|m| format!("{m:?}") != "Disabled"),
        backup_retention_days: p.backup.as_ref().and_then(|b| b.backup_retention_days),
        // Azure has no deletion-protection flag on the server (locks are separate).
        deletion_protection: None,
        // Always encrypted at rest; the key decides whether it is the customer's.
        storage_encrypted: Some(true),
        kms_key_id: Some(if customer_key {
            enc.and_then(|e| e.primary_key_uri.clone())
                .unwrap_or_default()
        } else {
            "service-managed key".to_string()
        }),
        publicly_accessible: p
            .network
            .as_ref()
            .and_then(|n| n.public_network_access.as_ref())
            .map(|a| format!("{a:?}") == "Enabled"),
        // An adopted server's password is Paved's to deliver only once Paved set it.
        master_secret_ref: (!d.adopting || rotated(s, d)).then(|| admin_secret_name(d)),
        master_username: p.administrator_login.clone(),
        owner_uid: AzureProvider::owner_of(s),
        tls_required: None,
        database_present: None,
        resource_id: None,
        security_groups: None,
        iam_authentication: None,
        own_security_group: None,
        tags: Some(
            s.tracked_resource
                .tags
                .as_ref()
                .and_then(|t| t.as_object())
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        database_name: None,
    }
}

/// Whether Paved set an adopted server's administrator password for this claim (the
/// mark, the claim's UID, goes on in the same PATCH as the password).
fn rotated(s: &models::Server, d: &DesiredDatabase) -> bool {
    let (key, value) = paved_compose::postgresql::admin_password_mark(Cloud::Azure, &d.owner_uid);
    s.tracked_resource
        .tags
        .as_ref()
        .and_then(|t| t.get(&key))
        .and_then(|v| v.as_str())
        == Some(value.as_str())
}

/// Pure: the PATCH that takes an adopted server over: its tags kept, the claim's mark
/// and the Composition's tags added, and, to rotate its password, the password with
/// its mark (one request, so the mark never says more than is true). None when there
/// is nothing to take over.
pub fn adoption_patch(
    d: &DesiredDatabase,
    o: &ObservedDatabase,
    password: Option<&Sensitive>,
) -> Option<serde_json::Value> {
    let have = o.tags.clone().unwrap_or_default();
    if paved_compose::postgresql::tags_wanted(d, &have).is_empty() && password.is_none() {
        return None;
    }
    let mut tags = have;
    tags.extend(cloud_tags(Cloud::Azure, &d.tags));
    let mut body = json!({});
    if let Some(p) = password {
        let (key, value) =
            paved_compose::postgresql::admin_password_mark(Cloud::Azure, &d.owner_uid);
        tags.insert(key, value);
        body["properties"] = json!({ "administratorLoginPassword": p.expose() });
    }
    body["tags"] = json!(tags);
    Some(body)
}

#[async_trait]
impl ExternalClient<DesiredDatabase, ObservedDatabase> for AzureProvider {
    async fn observe(
        &self,
        d: &DesiredDatabase,
    ) -> Result<Observation<ObservedDatabase>, ProviderError> {
        let all = self.servers().await?;
        let Some(s) = all.get(&d.external_name) else {
            if d.observe_only {
                return Ok(Observation::Absent);
            }
            return crate::absent_unless(
                self.operation(&d.external_name).await?,
                &d.owner_uid,
                &format!("Azure failed to create {}", d.external_name),
                |o: ObservedDatabase, state, owner| ObservedDatabase {
                    state,
                    owner_uid: Some(owner),
                    ..o
                },
            );
        };
        let o = observed(s, d);
        let owner = o.owner_uid.clone();
        let mut o = match crate::ownership(
            o,
            owner.as_deref(),
            &d.owner_uid,
            "a server without Paved's ownership tag",
            d.existing(),
        ) {
            Observation::Present(o) => o,
            other => return Ok(other),
        };
        if o.state == "available" {
            o.tls_required = Some(self.require_secure_transport(&d.external_name).await?);
        }
        // An observed server holds no database of Paved's, and its operations are not
        // Paved's to read (or forget).
        if d.observe_only {
            return Ok(Observation::Present(o));
        }
        if o.state == "available" {
            o.database_present = Some(
                self.database_present(&d.external_name, &d.database_name)
                    .await?,
            );
        }
        // Reading the last operation also forgets it once it is over.
        if let crate::OpState::Failed(m) = self.operation(&d.external_name).await? {
            return Err(ProviderError::Terminal {
                reason: Reason::ProviderRejected,
                message: format!("Azure operation on {} failed: {m}", d.external_name),
            });
        }
        Ok(Observation::Present(o))
    }

    async fn create(&self, d: &DesiredDatabase) -> Result<(), ProviderError> {
        let password = self.admin_password(d).await?;
        let r = self
            .arm(
                Method::Put,
                self.server_url(&d.external_name),
                Some(create_body(d, &password)),
            )
            .await;
        self.invalidate();
        let (_, h, _) = r?;
        self.track(&d.external_name, &h).await;
        Ok(())
    }

    /// One write per reconcile: Azure refuses a second operation on a busy server, and
    /// the next reconcile sees what is still left.
    async fn update(&self, d: &DesiredDatabase, o: &ObservedDatabase) -> Result<(), ProviderError> {
        let name = &d.external_name;
        if d.adopting {
            // The password (kept in Key Vault first) only when the Composition rotates.
            let rotate = o.master_secret_ref.is_none()
                && d.credentials.existing_password == paved_api::ExistingPassword::Rotate;
            let password = match rotate {
                true => Some(self.admin_password(d).await?),
                false => None,
            };
            if let Some(body) = adoption_patch(d, o, password.as_ref()) {
                let r = self
                    .arm(Method::Patch, self.server_url(name), Some(body))
                    .await;
                self.invalidate();
                let (_, h, _) = r?;
                self.track(name, &h).await;
                return Ok(());
            }
        }
        if let Some(body) = server_update(d, o)? {
            let r = self
                .client
                .servers_client()
                .update(self.sub(), self.rg(), name, body)
                .send()
                .await;
            self.invalidate();
            let r = r.map_err(classify)?;
            self.track(name, r.as_raw_response().headers()).await;
            return Ok(());
        }
        if o.tls_required == Some(false) {
            let mut c = models::ConfigurationForUpdate::new();
            c.properties = Some(models::ConfigurationProperties {
                value: Some("on".into()),
                source: Some("user-override".into()),
                ..Default::default()
            });
            let r = self
                .client
                .configurations_client()
                .update(self.sub(), self.rg(), name, "require_secure_transport", c)
                .send()
                .await
                .map_err(classify)?;
            self.track(name, r.as_raw_response().headers()).await;
            return Ok(());
        }
        if o.database_present == Some(false) {
            let mut db = models::Database::new();
            db.properties = Some(models::DatabaseProperties {
                charset: Some("UTF8".into()),
                collation: Some("en_US.utf8".into()),
            });
            let r = self
                .client
                .databases_client()
                .create(self.sub(), self.rg(), name, &d.database_name, db)
                .send()
                .await
                .map_err(classify)?;
            self.track(name, r.as_raw_response().headers()).await;
        }
        Ok(())
    }

    async fn delete(&self, d: &DesiredDatabase) -> Result<DeleteProgress, ProviderError> {
        let name = &d.external_name;
        if d.deletion_policy == DeletionPolicy::Orphan {
            return Ok(DeleteProgress::Done(format!(
                "server {name} left in place (Orphan)"
            )));
        }
        let Some(s) = self.get_server(name).await? else {
            self.invalidate();
            return Ok(DeleteProgress::Done(format!(
                "server {name} no longer exists"
            )));
        };
        if AzureProvider::owner_of(&s).as_deref() != Some(d.owner_uid.as_str()) {
            return Ok(DeleteProgress::Skipped(format!(
                "server {name} does not carry this claim's ownership tag; left untouched"
            )));
        }
        let o = observed(&s, d);
        match o.state.as_str() {
            "deleting" => return Ok(DeleteProgress::Waiting(format!("Azure is deleting {name}"))),
            "available" | "stopped" | "failed" => {}
            st => {
                return Ok(DeleteProgress::Waiting(format!(
                    "{name} is {st}; deleting once it settles"
                )))
            }
        }
        if d.deletion_policy == DeletionPolicy::Snapshot {
            // Azure deletes a flexible server's backups with the server, so no backup
            // would outlive it: take an on-demand backup and keep the server.
            let backup = final_backup_name(d);
            match self
                .client
                .backups_client()
                .get(self.sub(), self.rg(), name, &backup)
                .await
            {
                Ok(_) => {
                    return Ok(DeleteProgress::Skipped(format!(
                        "Snapshot on Azure: on-demand backup {backup} taken and server {name} kept, because Azure \
                         deletes a flexible server's backups with it; export the data, then delete the server by hand"
                    )))
                }
                Err(e) => match classify(e) {
                    ProviderError::NotFound(_) => {}
                    other => return Err(other),
                },
            }
            let r = self
                .client
                .backups_client()
                .create(self.sub(), self.rg(), name, &backup)
                .send()
                .await
                .map_err(classify)?;
            self.track(name, r.as_raw_response().headers()).await;
            return Ok(DeleteProgress::Waiting(format!(
                "taking on-demand backup {backup} of {name}"
            )));
        }
        let r = self
            .client
            .servers_client()
            .delete(self.sub(), self.rg(), name)
            .send()
            .await;
        self.invalidate();
        let r = r.map_err(classify)?;
        self.track(name, r.as_raw_response().headers()).await;
        Ok(DeleteProgress::Waiting(format!("deleting {name}")))
    }
}

/// The server PATCH that corrects drift in mutable fields, if any. Storage only
/// grows; public access only ever goes off.
fn server_update(
    d: &DesiredDatabase,
    o: &ObservedDatabase,
) -> Result<Option<models::ServerForUpdate>, ProviderError> {
    let mut props = models::ServerPropertiesForUpdate::default();
    let mut body = models::ServerForUpdate::new();
    let mut changed = false;
    if o.instance_class.as_deref() != Some(d.instance_class.as_str()) {
        body.sku = Some(models::Sku {
            name: d.instance_class.clone(),
            tier: serde_json::from_value(json!(azure_sku_tier(&d.instance_class)))
                .map_err(|e| terminal(Reason::InvalidSpec, e))?,
        });
        changed = true;
    }
    if o.storage_gb.is_some_and(|s| s < d.storage_gb) {
        props.storage = Some(models::Storage {
            storage_size_gb: Some(d.storage_gb),
            ..Default::default()
        });
        changed = true;
    }
    if o.backup_retention_days != Some(d.backup_retention_days) {
        props.backup = Some(models::Backup {
            backup_retention_days: Some(d.backup_retention_days),
            ..Default::default()
        });
        changed = true;
    }
    if o.multi_az != Some(d.multi_az) {
        props.high_availability = Some(models::HighAvailability {
            mode: serde_json::from_value(json!(if d.multi_az {
                "ZoneRedundant"
            } else {
                "Disabled"
            }))
            .ok(),
            ..Default::default()
        });
        changed = true;
    }
    if o.publicly_accessible == Some(true) {
        props.network = Some(models::Network {
            public_network_access: serde_json::from_value(json!("Disabled")).ok(),
            ..Default::default()
        });
        changed = true;
    }
    body.properties = Some(props);
    Ok(changed.then_some(body))
}

/// The on-demand backup taken for the Snapshot deletion policy.
pub fn final_backup_name(d: &DesiredDatabase) -> String {
    format!("{}-final", d.external_name)
}

fn terminal(reason: Reason, e: impl std::fmt::Display) -> ProviderError {
    ProviderError::Terminal {
        reason,
        message: e.to_string(),
    }
}

fn arm_error_message(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    match (
        v.pointer("/error/code").and_then(|c| c.as_str()),
        v.pointer("/error/message").and_then(|m| m.as_str()),
    ) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (None, Some(m)) => m.to_string(),
        _ => String::from_utf8_lossy(body).chars().take(300).collect(),
    }
}

/// Classifies an azure_core error by its HTTP status and ARM error code; messages
/// carry Azure's words, never request bodies.
pub(crate) fn classify(e: azure_core::Error) -> ProviderError {
    if let Some(h) = e.as_http_error() {
        let status = u16::from(h.status());
        let message = format!(
            "{}: {}",
            h.error_code().unwrap_or("Error"),
            h.error_message().unwrap_or("")
        );
        // The SDK already waited out Retry-After on its retries.
        return ProviderError::from_http(status, Some(Duration::from_secs(10)), message);
    }
    match e.kind() {
        azure_core::error::ErrorKind::Credential => ProviderError::Terminal {
            reason: Reason::ProviderAccessDenied,
            message: format!("Azure credentials: {e}"),
        },
        _ => ProviderError::Retryable(format!("Azure call failed: {e}")),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn adopting_a_server_keeps_its_tags_and_marks_a_password_only_with_it() {
        let mut d = crate::tests::desired_fixture(Cloud::Azure);
        d.adopting = true;
        d.external_name = "legacy-orders".into();
        let o = ObservedDatabase {
            tags: Some([("Team".to_string(), "orders".to_string())].into()),
            ..Default::default()
        };
        let body = adoption_patch(&d, &o, None).expect("untagged: a patch");
        assert_eq!(body["tags"]["Team"], "orders");
        assert_eq!(
            body["tags"][cloud_tag_key(Cloud::Azure, OWNER_TAG)],
            "uid-1"
        );
        assert!(body.get("properties").is_none());
        assert!(body["tags"]
            .get(cloud_tag_key(Cloud::Azure, ADMIN_PASSWORD_TAG))
            .is_none());
        // With the password, its mark in the same request.
        let pw = Sensitive::new("s3cret");
        let body = adoption_patch(&d, &o, Some(&pw)).unwrap();
        assert_eq!(body["properties"]["administratorLoginPassword"], "s3cret");
        assert_eq!(
            body["tags"][cloud_tag_key(Cloud::Azure, ADMIN_PASSWORD_TAG)],
            "uid-1"
        );
        // Tagged already and nothing to rotate: nothing to send.
        let tagged = ObservedDatabase {
            tags: Some(
                body["tags"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect(),
            ),
            ..Default::default()
        };
        assert_eq!(adoption_patch(&d, &tagged, None), None);
        // Its Key Vault secret is named by the claim, not by the server.
        assert_eq!(
            admin_secret_name(&d),
            format!(
                "{}-admin",
                paved_compose::postgresql::external_name("uid-1")
            )
        );
    }

    use super::*;
    use paved_compose::postgresql::ADMIN_PASSWORD_TAG;

    fn desired() -> DesiredDatabase {
        crate::tests::desired_fixture(Cloud::Azure)
    }

    #[test]
    fn the_create_body_carries_every_compliance_setting() {
        let d = desired();
        let pw = Sensitive::new("pw");
        let b = create_body(&d, &pw);
        let p = &b["properties"];
        assert_eq!(p["network"]["publicNetworkAccess"], "Disabled");
        assert_eq!(p["dataEncryption"]["type"], "AzureKeyVault");
        assert_eq!(
            p["dataEncryption"]["primaryKeyURI"],
            d.kms_key_id.clone().unwrap()
        );
        assert_eq!(p["backup"]["geoRedundantBackup"], "Enabled");
        assert_eq!(p["backup"]["backupRetentionDays"], 14);
        assert_eq!(p["highAvailability"]["mode"], "ZoneRedundant");
        assert_eq!(b["sku"]["tier"], "GeneralPurpose");
        assert!(b["identity"]["userAssignedIdentities"]
            .get(d.encryption_identity.as_deref().unwrap())
            .is_some());
        assert_eq!(b["tags"]["paved.dev_claim-uid"], "uid-1");
    }

    #[test]
    fn a_server_maps_to_an_observation() {
        let d = desired();
        let s: models::Server = serde_json::from_value(json!({
            "location": "eastus",
            "name": "paved-0a1b",
            "tags": { "paved.dev_claim-uid": "uid-1" },
            "sku": { "name": "Standard_D2ds_v5", "tier": "GeneralPurpose" },
            "properties": {
                "state": "Ready", "version": "16",
                "fullyQualifiedDomainName": "paved-0a1b.postgres.database.azure.com",
                "storage": { "storageSizeGB": 64 },
                "backup": { "backupRetentionDays": 14, "geoRedundantBackup": "Enabled" },
                "network": { "publicNetworkAccess": "Disabled" },
                "highAvailability": { "mode": "ZoneRedundant" },
                "dataEncryption": { "type": "SystemManaged" }
            }
        }))
        .unwrap();
        let o = observed(&s, &d);
        assert_eq!(o.state, "available");
        assert_eq!(o.owner_uid.as_deref(), Some("uid-1"));
        assert_eq!(o.engine_version.as_deref(), Some("16"));
        assert_eq!(o.multi_az, Some(true));
        assert_eq!(o.publicly_accessible, Some(false));
        assert_eq!(o.kms_key_id.as_deref(), Some("service-managed key"));
        assert_eq!(o.master_secret_ref.as_deref(), Some("paved-0a1b-admin"));
    }
}
