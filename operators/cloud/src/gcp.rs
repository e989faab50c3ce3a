//! The `gcp` provider: Cloud SQL for PostgreSQL through the Cloud SQL Admin API v1
//! (`google-cloud-sql-v1`), administrator credentials in Secret Manager
//! (`google-cloud-secretmanager-v1`), credentials from Application Default
//! Credentials (on GKE: workload identity through the metadata server). Nothing
//! outside this module names a Google crate.
//!
//! Cloud SQL operations are not awaited inside a reconcile: the operation's name is
//! remembered and, while the instance is not RUNNABLE, later reconciles read it so a
//! failed operation shows its own error. Observation is one paginated list per
//! project, shared by every claim for a short time-to-live.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use async_trait::async_trait;
use google_cloud_secretmanager_v1::client::SecretManagerService;
use google_cloud_sql_v1::{
    client::{SqlDatabasesService, SqlInstancesService, SqlOperationsService, SqlUsersService},
    model::{self, DatabaseInstance, Settings},
};
use paved_api::{Cloud, DeletionPolicy, GcpPlacement, Reason};
use paved_compose::postgresql::{
    cloud_tag_key, cloud_tags, DesiredDatabase, ObservedDatabase, OWNER_TAG,
};
use serde_json::json;
use tokio::sync::Mutex;

use crate::{
    listed::{Listed, Listing},
    DeleteProgress, ExternalClient, Observation, ProviderError, Sensitive,
};

const POSTGRES_PORT: i32 = 5432;
/// Days Cloud SQL keeps the final backup taken for the Snapshot deletion policy.
pub const FINAL_BACKUP_TTL_DAYS: i64 = 365;

/// Where Paved talks to Google. `None` keeps each client's default
/// (`https://sqladmin.googleapis.com`, `https://secretmanager.googleapis.com`);
/// Private Service Connect endpoints (or a test double) set others.
#[derive(Debug, Clone, Default)]
pub struct GcpEndpoints {
    pub sqladmin: Option<String>,
    pub secretmanager: Option<String>,
    /// The IAM API (services' Google service accounts).
    pub iam: Option<String>,
}

/// One project's clients and shared list cache.
pub struct GcpProvider {
    instances: SqlInstancesService,
    operations: SqlOperationsService,
    databases: SqlDatabasesService,
    users: SqlUsersService,
    secrets: SecretManagerService,
    project: String,
    /// The project's instances by name.
    instance_list: Listed<DatabaseInstance>,
    /// The last operation per instance, read while the instance is not RUNNABLE.
    pending: Mutex<HashMap<String, String>>,
    /// Instances whose claim database is known to exist (checked once per process).
    known_databases: Mutex<HashSet<String>>,
}

impl GcpProvider {
    pub async fn new(
        placement: &GcpPlacement,
        endpoints: &GcpEndpoints,
        ttl: Duration,
        on_list: crate::ListCounter,
    ) -> Result<Self, ProviderError> {
        let misconfigured = |e: google_cloud_gax::client_builder::Error| ProviderError::Terminal {
            reason: Reason::ProviderMisconfigured,
            message: format!("cannot build the Cloud SQL client: {e}"),
        };
        macro_rules! build {
            ($client:ty, $endpoint:expr) => {{
                let mut b = <$client>::builder();
                if let Some(e) = $endpoint {
                    b = b.with_endpoint(e.clone());
                }
                b.build().await.map_err(misconfigured)?
            }};
        }
        Ok(GcpProvider {
            instances: build!(SqlInstancesService, &endpoints.sqladmin),
            operations: build!(SqlOperationsService, &endpoints.sqladmin),
            databases: build!(SqlDatabasesService, &endpoints.sqladmin),
            users: build!(SqlUsersService, &endpoints.sqladmin),
            secrets: build!(SecretManagerService, &endpoints.secretmanager),
            project: placement.project.clone(),
            instance_list: Listed::new("Cloud SQL instances", ttl, on_list),
            pending: Mutex::new(HashMap::new()),
            known_databases: Mutex::new(HashSet::new()),
        })
    }

    async fn all(&self) -> Result<Listing<DatabaseInstance>, ProviderError> {
        self.instance_list
            .get("", |page| async move {
                let mut map = HashMap::new();
                let mut token = String::new();
                loop {
                    page();
                    let p = self
                        .instances
                        .list()
                        .set_project(&self.project)
                        .set_max_results(500u32)
                        .set_page_token(&token)
                        .send()
                        .await
                        .map_err(classify)?;
                    for i in p.items {
                        map.insert(i.name.clone(), i);
                    }
                    if p.next_page_token.is_empty() {
                        return Ok(map);
                    }
                    token = p.next_page_token;
                }
            })
            .await
    }

    fn invalidate(&self) {
        self.instance_list.invalidate();
    }

    async fn get(&self, name: &str) -> Result<Option<DatabaseInstance>, ProviderError> {
        match self
            .instances
            .get()
            .set_project(&self.project)
            .set_instance(name)
            .send()
            .await
        {
            Ok(i) => Ok(Some(i)),
            Err(e) => match classify(e) {
                ProviderError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn track(&self, instance: &str, op: &model::Operation) {
        self.pending
            .lock()
            .await
            .insert(instance.to_string(), op.name.clone());
    }

    /// The error of the instance's last operation, if it finished with one.
    /// The instance's last operation; reading it forgets it once it is over.
    async fn operation(&self, instance: &str) -> Result<crate::OpState, ProviderError> {
        use crate::OpState;
        let Some(op) = self.pending.lock().await.get(instance).cloned() else {
            return Ok(OpState::None);
        };
        let op = match self
            .operations
            .get()
            .set_project(&self.project)
            .set_operation(op)
            .send()
            .await
            .map_err(classify)
        {
            Ok(op) => op,
            Err(ProviderError::NotFound(_)) => {
                self.pending.lock().await.remove(instance);
                return Ok(OpState::None);
            }
            Err(e) => return Err(e),
        };
        if op.status != model::operation::SqlOperationStatus::Done {
            return Ok(OpState::Running);
        }
        self.pending.lock().await.remove(instance);
        Ok(match op.error.filter(|e| !e.errors.is_empty()) {
            Some(e) => OpState::Failed(
                e.errors
                    .iter()
                    .map(|x| format!("{}: {}", x.code, x.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            None => OpState::None,
        })
    }

    /// PATCHes an instance's settings (only the fields set) and tracks the operation.
    /// Waits (a minute at most) for an operation to finish; its error is the cloud's.
    async fn finished(&self, instance: &str, op: &model::Operation) -> Result<(), ProviderError> {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut op = op.clone();
        while op.status != model::operation::SqlOperationStatus::Done {
            if std::time::Instant::now() > deadline {
                return Err(ProviderError::Retryable(format!(
                    "Cloud SQL is still working on {instance}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            op = self
                .operations
                .get()
                .set_project(&self.project)
                .set_operation(op.name.clone())
                .send()
                .await
                .map_err(classify)?;
        }
        match op.error.filter(|e| !e.errors.is_empty()) {
            Some(e) => Err(ProviderError::Terminal {
                reason: Reason::ProviderRejected,
                message: format!(
                    "Cloud SQL operation on {instance} failed: {}",
                    e.errors
                        .iter()
                        .map(|x| format!("{}: {}", x.code, x.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            }),
            None => Ok(()),
        }
    }

    async fn patch_settings(&self, name: &str, settings: Settings) -> Result<(), ProviderError> {
        let mut body = DatabaseInstance::default();
        body.settings = Some(settings);
        let r = self
            .instances
            .patch()
            .set_project(&self.project)
            .set_instance(name)
            .set_body(body)
            .send()
            .await;
        self.invalidate();
        let op = r.map_err(classify)?;
        self.track(name, &op).await;
        Ok(())
    }

    fn secret_name(&self, d: &DesiredDatabase) -> String {
        format!("projects/{}/secrets/{}", self.project, admin_secret_id(d))
    }

    /// The administrator password kept in Secret Manager, created there first if
    /// absent (the store is the source of truth, written before the instance).
    async fn admin_password(&self, d: &DesiredDatabase) -> Result<Sensitive, ProviderError> {
        let name = self.secret_name(d);
        match self
            .secrets
            .access_secret_version()
            .set_name(format!("{name}/versions/latest"))
            .send()
            .await
        {
            Ok(v) => {
                let data = v.payload.map(|p| p.data).unwrap_or_default();
                let parsed: serde_json::Value =
                    serde_json::from_slice(&data).map_err(|_| ProviderError::Terminal {
                        reason: Reason::SecretConflict,
                        message: format!(
                            "secret {name} exists but is not Paved's credentials JSON"
                        ),
                    })?;
                return parsed
                    .get("password")
                    .and_then(|p| p.as_str())
                    .map(Sensitive::new)
                    .ok_or_else(|| ProviderError::Terminal {
                        reason: Reason::SecretConflict,
                        message: format!("secret {name} has no password"),
                    });
            }
            Err(e) => match classify(e) {
                ProviderError::NotFound(_) => {}
                other => return Err(other),
            },
        }
        let created = self
            .secrets
            .create_secret()
            .set_parent(format!("projects/{}", self.project))
            .set_secret_id(admin_secret_id(d))
            .set_secret(
                google_cloud_secretmanager_v1::model::Secret::new()
                    .set_replication(
                        google_cloud_secretmanager_v1::model::Replication::new().set_automatic(
                            google_cloud_secretmanager_v1::model::replication::Automatic::default(),
                        ),
                    )
                    .set_labels(cloud_tags(Cloud::Gcp, &d.tags)),
            )
            .send()
            .await;
        match created {
            Ok(_) => {}
            // A secret without a version (a crash in between): add the version.
            Err(e) if e.http_status_code() == Some(409) => {}
            Err(e) => return Err(classify(e)),
        }
        let password = Sensitive::generate_password();
        let value = json!({ "username": "postgres", "password": password.expose() });
        self.secrets
            .add_secret_version()
            .set_parent(name)
            .set_payload(
                google_cloud_secretmanager_v1::model::SecretPayload::new()
                    .set_data(bytes::Bytes::from(value.to_string())),
            )
            .send()
            .await
            .map_err(classify)?;
        Ok(password)
    }

    async fn database_present(&self, instance: &str, db: &str) -> Result<bool, ProviderError> {
        if self.known_databases.lock().await.contains(instance) {
            return Ok(true);
        }
        match self
            .databases
            .get()
            .set_project(&self.project)
            .set_instance(instance)
            .set_database(db)
            .send()
            .await
        {
            Ok(_) => {
                self.known_databases
                    .lock()
                    .await
                    .insert(instance.to_string());
                Ok(true)
            }
            Err(e) => match classify(e) {
                ProviderError::NotFound(_) => Ok(false),
                other => Err(other),
            },
        }
    }
}

/// The Secret Manager secret holding an instance's administrator credentials (JSON
/// with `username` and `password`, what the ExternalSecret extracts).
pub fn admin_secret_id(d: &DesiredDatabase) -> String {
    // An adopted instance's name is anyone's: its secret is named by the claim.
    if d.adopting {
        return format!(
            "{}-admin",
            paved_compose::postgresql::external_name(&d.owner_uid)
        );
    }
    format!("{}-admin", d.external_name)
}

/// The built-in administrator of a Cloud SQL for PostgreSQL instance.
const ADMIN_USER: &str = "postgres";

/// Pure: the labels an instance gets: the Composition's and Paved's; an adopted one
/// keeps its own beside them (and the mark of a password Paved set).
pub fn labels(
    d: &DesiredDatabase,
    o: &ObservedDatabase,
    rotated: bool,
) -> std::collections::BTreeMap<String, String> {
    let mut out = if d.adopting {
        o.tags.clone().unwrap_or_default()
    } else {
        Default::default()
    };
    out.extend(cloud_tags(Cloud::Gcp, &d.tags));
    if rotated {
        let (key, value) = paved_compose::postgresql::admin_password_mark(Cloud::Gcp, &d.owner_uid);
        out.insert(key, value);
    }
    out
}

fn major(version: &str) -> &str {
    version.split('.').next().unwrap_or(version)
}

/// The settings Paved manages, with every compliance setting. Pure, so the mapping is
/// unit-tested.
pub fn desired_settings(d: &DesiredDatabase) -> Settings {
    let mut ip = model::IpConfiguration::default();
    ip.ipv4_enabled = Some(false);
    ip.private_network = d.network.private_network.clone().unwrap_or_default();
    ip.ssl_mode = model::ip_configuration::SslMode::from("ENCRYPTED_ONLY");
    let mut retention = model::BackupRetentionSettings::default();
    retention.retention_unit = model::backup_retention_settings::RetentionUnit::from("COUNT");
    retention.retained_backups = Some(d.backup_retention_days);
    let mut backup = model::BackupConfiguration::default();
    backup.enabled = Some(true);
    backup.point_in_time_recovery_enabled = Some(true);
    backup.transaction_log_retention_days = Some(7);
    backup.backup_retention_settings = Some(retention);
    backup.start_time = d
        .backup_window
        .as_deref()
        .and_then(|w| w.split('-').next())
        .unwrap_or_default()
        .to_string();
    let mut s = Settings::default();
    s.tier = d.instance_class.clone();
    s.data_disk_size_gb = Some(d.storage_gb as i64);
    s.data_disk_type = model::SqlDataDiskType::from(d.storage_type.as_deref().unwrap_or("PD_SSD"));
    s.availability_type =
        model::SqlAvailabilityType::from(if d.multi_az { "REGIONAL" } else { "ZONAL" });
    s.ip_configuration = Some(ip);
    s.backup_configuration = Some(backup);
    s.deletion_protection_enabled = Some(d.deletion_protection);
    s.storage_auto_resize = Some(false);
    s.user_labels = cloud_tags(Cloud::Gcp, &d.tags).into_iter().collect();
    s
}

/// The instance to insert.
pub fn desired_instance(
    d: &DesiredDatabase,
    project: &str,
    password: &Sensitive,
) -> DatabaseInstance {
    let mut enc = model::DiskEncryptionConfiguration::default();
    enc.kms_key_name = d.kms_key_id.clone().unwrap_or_default();
    let mut i = DatabaseInstance::default();
    i.name = d.external_name.clone();
    i.project = project.to_string();
    i.region = d.region.clone();
    i.database_version =
        model::SqlDatabaseVersion::from(format!("POSTGRES_{}", major(&d.engine_version)).as_str());
    i.root_password = password.expose().to_string();
    i.settings = Some(desired_settings(d));
    i.disk_encryption_configuration = Some(enc);
    i
}

fn observed(i: &DatabaseInstance, d: &DesiredDatabase) -> ObservedDatabase {
    use model::database_instance::SqlInstanceState as S;
    let s = i.settings.clone().unwrap_or_default();
    let never = s.activation_policy.name() == Some("NEVER");
    let state = match &i.state {
        _ if never => "stopped".to_string(),
        S::Runnable => "available".into(),
        S::PendingCreate => "creating".into(),
        S::Maintenance => "modifying".into(),
        S::PendingDelete => "deleting".into(),
        S::Failed => "failed".into(),
        other => other.name().unwrap_or("unknown").to_lowercase(),
    };
    let ip = s.ip_configuration.clone().unwrap_or_default();
    let ssl = ip.ssl_mode.name().unwrap_or("");
    ObservedDatabase {
        state,
        endpoint: i
            .ip_addresses
            .iter()
            .find(|a| a.r#type.name() == Some("PRIVATE"))
            .map(|a| a.ip_address.clone()),
        port: Some(POSTGRES_PORT),
        engine_version: i
            .database_version
            .name()
            .map(|v| v.trim_start_matches("POSTGRES_").replace('_', ".")),
        instance_class: Some(s.tier.clone()),
        storage_gb: s.data_disk_size_gb.map(|g| g as i32),
        multi_az: Some(s.availability_type.name() == Some("REGIONAL")),
        backup_retention_days: s
            .backup_configuration
            .as_ref()
            .and_then(|b| b.backup_retention_settings.as_ref())
            .and_then(|r| r.retained_backups),
        deletion_protection: Some(s.deletion_protection_enabled.unwrap_or(false)),
        storage_encrypted: Some(true),
        kms_key_id: Some(
            i.disk_encryption_configuration
                .as_ref()
                .map(|e| e.kms_key_name.clone())
                .filter(|k| !k.is_empty())
                .unwrap_or_else(|| "google-managed key".into()),
        ),
        publicly_accessible: Some(ip.ipv4_enabled.unwrap_or(false)),
        // An adopted instance's password is Paved's to deliver only once Paved set it
        // (its mark goes on after the password did).
        master_secret_ref: (!d.adopting || {
            let (key, value) =
                paved_compose::postgresql::admin_password_mark(Cloud::Gcp, &d.owner_uid);
            s.user_labels.get(&key) == Some(&value)
        })
        .then(|| admin_secret_id(d)),
        master_username: d.adopting.then(|| ADMIN_USER.to_string()),
        owner_uid: s
            .user_labels
            .get(&cloud_tag_key(Cloud::Gcp, OWNER_TAG))
            .cloned(),
        tls_required: Some(matches!(
            ssl,
            "ENCRYPTED_ONLY" | "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
        )),
        database_present: None,
        resource_id: None,
        security_groups: None,
        iam_authentication: None,
        own_security_group: None,
        tags: Some(s.user_labels.clone().into_iter().collect()),
        database_name: None,
    }
}

#[async_trait]
impl ExternalClient<DesiredDatabase, ObservedDatabase> for GcpProvider {
    async fn observe(
        &self,
        d: &DesiredDatabase,
    ) -> Result<Observation<ObservedDatabase>, ProviderError> {
        let all = self.all().await?;
        let Some(i) = all.get(&d.external_name) else {
            if d.observe_only {
                return Ok(Observation::Absent);
            }
            return crate::absent_unless(
                self.operation(&d.external_name).await?,
                &d.owner_uid,
                &format!("Cloud SQL failed to create {}", d.external_name),
                |o: ObservedDatabase, state, owner| ObservedDatabase {
                    state,
                    owner_uid: Some(owner),
                    ..o
                },
            );
        };
        let o = observed(i, d);
        let owner = o.owner_uid.clone();
        let mut o = match crate::ownership(
            o,
            owner.as_deref(),
            &d.owner_uid,
            "an instance without Paved's ownership label",
            d.existing(),
        ) {
            Observation::Present(o) => o,
            other => return Ok(other),
        };
        // An observed instance holds no database of Paved's, and its operations are
        // not Paved's to read (or forget).
        if d.observe_only {
            return Ok(Observation::Present(o));
        }
        if o.state == "available" {
            o.database_present = Some(
                self.database_present(&d.external_name, &d.database_name)
                    .await?,
            );
        }
        if let crate::OpState::Failed(m) = self.operation(&d.external_name).await? {
            return Err(ProviderError::Terminal {
                reason: Reason::ProviderRejected,
                message: format!("Cloud SQL operation on {} failed: {m}", d.external_name),
            });
        }
        Ok(Observation::Present(o))
    }

    async fn create(&self, d: &DesiredDatabase) -> Result<(), ProviderError> {
        let password = self.admin_password(d).await?;
        let r = self
            .instances
            .insert()
            .set_project(&self.project)
            .set_body(desired_instance(d, &self.project, &password))
            .send()
            .await;
        self.invalidate();
        match r {
            Ok(op) => {
                self.track(&d.external_name, &op).await;
                Ok(())
            }
            // The deterministic name makes a retried create find the first one.
            Err(e) if e.http_status_code() == Some(409) => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }

    async fn update(&self, d: &DesiredDatabase, o: &ObservedDatabase) -> Result<(), ProviderError> {
        let name = &d.external_name;
        let rotate = d.adopting
            && o.master_secret_ref.is_none()
            && d.credentials.existing_password == paved_api::ExistingPassword::Rotate;
        if rotate {
            // The password kept in Secret Manager first, then set, then marked: a crash
            // in between sets the same one again.
            let password = self.admin_password(d).await?;
            let mut user = model::User::default();
            user.name = ADMIN_USER.into();
            user.password = password.expose().to_string();
            let op = self
                .users
                .update()
                .set_project(&self.project)
                .set_instance(name)
                .set_name(ADMIN_USER)
                .set_body(user)
                .send()
                .await
                .map_err(classify)?;
            self.finished(name, &op).await?;
            // The mark at once, alone: nothing else in the same request can refuse it
            // after the password changed.
            let mut only = Settings::default();
            only.user_labels = labels(d, o, true).into_iter().collect();
            return self.patch_settings(name, only).await;
        }
        let was_marked = d.adopting && o.master_secret_ref.is_some();
        let labels = labels(d, o, rotate || was_marked);
        let labels_drift = d.adopting && o.tags.as_ref() != Some(&labels);
        let settings_drift = labels_drift
            || o.instance_class.as_deref() != Some(d.instance_class.as_str())
            || o.storage_gb.is_some_and(|s| s < d.storage_gb)
            || o.multi_az != Some(d.multi_az)
            || o.backup_retention_days != Some(d.backup_retention_days)
            || o.deletion_protection != Some(d.deletion_protection)
            || o.publicly_accessible != Some(false)
            || o.tls_required == Some(false);
        if settings_drift {
            let mut desired = desired_settings(d);
            desired.user_labels = labels.into_iter().collect();
            // Storage only grows: never send a smaller size than the instance has.
            if let Some(have) = o.storage_gb {
                desired.data_disk_size_gb = Some(have.max(d.storage_gb) as i64);
            }
            return self.patch_settings(name, desired).await;
        }
        if o.database_present == Some(false) {
            let mut db = model::Database::default();
            db.name = d.database_name.clone();
            db.instance = name.clone();
            db.project = self.project.clone();
            let op = self
                .databases
                .insert()
                .set_project(&self.project)
                .set_instance(name)
                .set_body(db)
                .send()
                .await
                .map_err(classify)?;
            self.track(name, &op).await;
        }
        Ok(())
    }

    async fn delete(&self, d: &DesiredDatabase) -> Result<DeleteProgress, ProviderError> {
        let name = &d.external_name;
        if d.deletion_policy == DeletionPolicy::Orphan {
            return Ok(DeleteProgress::Done(format!(
                "instance {name} left in place (Orphan)"
            )));
        }
        let Some(i) = self.get(name).await? else {
            self.invalidate();
            return Ok(DeleteProgress::Done(
                if d.deletion_policy == DeletionPolicy::Snapshot {
                    format!("instance {name} no longer exists; its deletion asked Cloud SQL for a final backup kept {FINAL_BACKUP_TTL_DAYS} days")
                } else {
                    format!("instance {name} no longer exists")
                },
            ));
        };
        let o = observed(&i, d);
        if o.owner_uid.as_deref() != Some(d.owner_uid.as_str()) {
            return Ok(DeleteProgress::Skipped(format!(
                "instance {name} does not carry this claim's ownership label; left untouched"
            )));
        }
        match o.state.as_str() {
            "deleting" => {
                return Ok(DeleteProgress::Waiting(format!(
                    "Cloud SQL is deleting {name}"
                )))
            }
            "available" | "stopped" | "failed" | "suspended" => {}
            st => {
                return Ok(DeleteProgress::Waiting(format!(
                    "{name} is {st}; deleting once it settles"
                )))
            }
        }
        if o.deletion_protection == Some(true) {
            // The claim's deletion is the explicit act protection exists to require.
            let mut s = Settings::default();
            s.deletion_protection_enabled = Some(false);
            self.patch_settings(name, s).await?;
            return Ok(DeleteProgress::Waiting(format!(
                "turning off deletion protection on {name}"
            )));
        }
        let snapshot = d.deletion_policy == DeletionPolicy::Snapshot;
        let mut req = self
            .instances
            .delete()
            .set_project(&self.project)
            .set_instance(name);
        if snapshot {
            req = req
                .set_enable_final_backup(true)
                .set_final_backup_ttl_days(FINAL_BACKUP_TTL_DAYS)
                .set_final_backup_description(format!(
                    "Paved final backup of {name} (claim {})",
                    d.owner_uid
                ));
        }
        let r = req.send().await;
        self.invalidate();
        let op = r.map_err(classify)?;
        self.track(name, &op).await;
        Ok(DeleteProgress::Waiting(if snapshot {
            format!("taking a final backup of {name} (kept {FINAL_BACKUP_TTL_DAYS} days) and deleting it")
        } else {
            format!("deleting {name}")
        }))
    }
}

/// Classifies a Google API error by HTTP status; Retry-After is honoured. Messages
/// carry the service's words, never request bodies.
pub(crate) fn classify(e: google_cloud_sql_v1::Error) -> ProviderError {
    if let Some(code) = e.http_status_code() {
        let retry_after = ProviderError::retry_after(
            e.http_headers()
                .and_then(|h| h.get("retry-after"))
                .and_then(|v| v.to_str().ok()),
        );
        let message = e
            .status()
            .map(|s| format!("{:?}: {}", s.code, s.message))
            .unwrap_or_else(|| format!("HTTP {code}"));
        return ProviderError::from_http(code, retry_after, message);
    }
    if let Some(s) = e.status() {
        let message = format!("{:?}: {}", s.code, s.message);
        return match s.code {
            google_cloud_gax::error::rpc::Code::NotFound => ProviderError::NotFound(message),
            google_cloud_gax::error::rpc::Code::PermissionDenied
            | google_cloud_gax::error::rpc::Code::Unauthenticated => ProviderError::Terminal {
                reason: Reason::ProviderAccessDenied,
                message,
            },
            google_cloud_gax::error::rpc::Code::ResourceExhausted => ProviderError::Throttled {
                retry_after: Duration::from_secs(10),
                message,
            },
            google_cloud_gax::error::rpc::Code::InvalidArgument
            | google_cloud_gax::error::rpc::Code::FailedPrecondition => ProviderError::Terminal {
                reason: Reason::ProviderRejected,
                message,
            },
            _ => ProviderError::Retryable(message),
        };
    }
    if e.is_authentication() {
        return ProviderError::Terminal {
            reason: Reason::ProviderAccessDenied,
            message: format!("Google credentials: {e}"),
        };
    }
    ProviderError::Retryable(format!("cannot reach Google Cloud: {e}"))
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_adopted_instance_keeps_its_labels_and_one_paved_made_gets_only_its_own() {
        let mut d = crate::tests::desired_fixture(Cloud::Gcp);
        let o = ObservedDatabase {
            tags: Some([("team".to_string(), "orders".to_string())].into()),
            ..Default::default()
        };
        let own = labels(&d, &o, false);
        assert!(!own.contains_key("team"));
        assert_eq!(own, cloud_tags(Cloud::Gcp, &d.tags));
        d.adopting = true;
        let adopted = labels(&d, &o, true);
        assert_eq!(adopted["team"], "orders");
        assert_eq!(
            adopted[&cloud_tag_key(Cloud::Gcp, ADMIN_PASSWORD_TAG)],
            "uid-1"
        );
        assert_eq!(
            adopted[&cloud_tag_key(Cloud::Gcp, OWNER_TAG)],
            d.owner_uid.to_lowercase()
        );
    }

    use super::*;
    use paved_compose::postgresql::ADMIN_PASSWORD_TAG;

    #[test]
    fn the_instance_carries_every_compliance_setting() {
        let mut d = crate::tests::desired_fixture(Cloud::Gcp);
        d.kms_key_id = Some("projects/p/locations/l/keyRings/r/cryptoKeys/k".into());
        let i = desired_instance(&d, "p", &Sensitive::new("pw"));
        let v = serde_json::to_value(&i).unwrap();
        let s = &v["settings"];
        assert_eq!(s["ipConfiguration"]["ipv4Enabled"], false);
        assert_eq!(
            s["ipConfiguration"]["privateNetwork"],
            "projects/p/global/networks/n"
        );
        assert_eq!(s["backupConfiguration"]["pointInTimeRecoveryEnabled"], true);
        assert_eq!(s["backupConfiguration"]["startTime"], "03:00");
        assert_eq!(s["deletionProtectionEnabled"], true);
        assert_eq!(
            v["diskEncryptionConfiguration"]["kmsKeyName"],
            "projects/p/locations/l/keyRings/r/cryptoKeys/k"
        );
        assert_eq!(s["userLabels"]["paved_dev_claim-uid"], "uid-1");
        assert_eq!(s["userLabels"]["owner"], "team-a_example_com");
        assert_eq!(
            i.settings.as_ref().unwrap().availability_type.name(),
            Some("REGIONAL")
        );
        assert_eq!(
            i.settings
                .as_ref()
                .unwrap()
                .ip_configuration
                .as_ref()
                .unwrap()
                .ssl_mode
                .name(),
            Some("ENCRYPTED_ONLY")
        );
        assert_eq!(i.database_version.name(), Some("POSTGRES_16"));
    }

    #[test]
    fn an_instance_maps_to_an_observation() {
        let d = crate::tests::desired_fixture(Cloud::Gcp);
        let mut i = desired_instance(&d, "p", &Sensitive::new("pw"));
        i.state = model::database_instance::SqlInstanceState::from("RUNNABLE");
        let o = observed(&i, &d);
        assert_eq!(o.state, "available");
        assert_eq!(o.owner_uid.as_deref(), Some("uid-1"));
        assert_eq!(o.tls_required, Some(true));
        assert_eq!(o.publicly_accessible, Some(false));
        assert_eq!(o.engine_version.as_deref(), Some("16"));
        assert_eq!(o.multi_az, Some(true));
        assert_eq!(
            o.kms_key_id.as_deref(),
            Some("https://kv.vault.azure.net/keys/k/1")
        );
    }
}
