//! The `aws` provider: Amazon RDS for PostgreSQL through aws-sdk-rds, master
//! credentials managed by RDS in Secrets Manager (encrypted with the Composition's
//! key; never seen by Paved), tags and encryption checked through
//! aws-sdk-secretsmanager.
//!
//! Observation is one paginated DescribeDBInstances per region, shared by every
//! claim for a short time-to-live, so steady-state polling costs one list per region
//! and page, not one call per claim. A database's own security group (where the
//! Composition asks for one) is observed the same way; see `security_groups`.

mod security_groups;

use std::{collections::HashMap, time::Duration};

use crate::{
    listed::{Listed, Listing, Recent},
    DeleteProgress, ExternalClient, Observation, ProviderError,
};
use async_trait::async_trait;
use aws_sdk_rds::{error::ProvideErrorMetadata, types::DbInstance, Client as Rds};
use aws_sdk_secretsmanager::Client as SecretsManager;
use paved_api::{DeletionPolicy, Reason};
use paved_compose::postgresql::{key_matches, DesiredDatabase, ObservedDatabase, OWNER_TAG};

/// One region's RDS and Secrets Manager clients and its shared list cache.
pub struct AwsProvider {
    rds: Rds,
    secrets: SecretsManager,
    ec2: aws_sdk_ec2::Client,
    region: String,
    /// The region's instances by identifier.
    instances: Listed<DbInstance>,
    /// The region's security groups tagged as a claim's, by `<vpc>/<name>`.
    groups: Listed<paved_compose::postgresql::ObservedSecurityGroup>,
    /// Master secrets found tagged and encrypted correctly: re-checked hourly, not on
    /// every poll of every claim.
    secrets_checked: Recent<()>,
    /// Whether a parameter group forces TLS, for observed instances: groups change
    /// rarely, and one read per group serves every observed instance in it.
    groups_tls: Recent<Option<bool>>,
}

/// How long a master secret found compliant is trusted before it is checked again.
const SECRET_RECHECK: Duration = Duration::from_secs(3600);

impl AwsProvider {
    /// Clients for `region` from the default credential chain (IRSA / pod identity in
    /// a cluster; `AWS_ENDPOINT_URL` points them at another endpoint).
    pub async fn new(region: &str, ttl: Duration, on_list: crate::ListCounter) -> Self {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .load()
            .await;
        AwsProvider {
            rds: Rds::new(&config),
            secrets: SecretsManager::new(&config),
            ec2: aws_sdk_ec2::Client::new(&config),
            region: region.to_string(),
            instances: Listed::new("RDS instances", ttl, on_list.clone()),
            groups: Listed::new("security groups", ttl, on_list),
            secrets_checked: Recent::new(SECRET_RECHECK),
            groups_tls: Recent::new(SECRET_RECHECK),
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// Every instance in the region, from one paginated list shared by all callers
    /// within the time-to-live.
    async fn instances(&self) -> Result<Listing<DbInstance>, ProviderError> {
        self.instances
            .get("", |page| async move {
                let mut map = HashMap::new();
                let mut marker: Option<String> = None;
                loop {
                    page();
                    let out = self
                        .rds
                        .describe_db_instances()
                        .max_records(100)
                        .set_marker(marker.clone())
                        .send()
                        .await
                        .map_err(classify)?;
                    for db in out.db_instances() {
                        if let Some(id) = db.db_instance_identifier() {
                            map.insert(id.to_string(), db.clone());
                        }
                    }
                    marker = out.marker().map(String::from);
                    if marker.is_none() {
                        return Ok(map);
                    }
                }
            })
            .await
    }

    fn invalidate(&self) {
        self.instances.invalidate();
        self.groups.invalidate();
    }

    /// The parameter group that makes the server refuse unencrypted connections.
    async fn ensure_force_ssl_group(&self, engine_version: &str) -> Result<String, ProviderError> {
        let major = engine_version.split('.').next().unwrap_or(engine_version);
        let name = format!("paved-postgres{major}-force-ssl");
        match self
            .rds
            .create_db_parameter_group()
            .db_parameter_group_name(&name)
            .db_parameter_group_family(format!("postgres{major}"))
            .description("Paved: rds.force_ssl=1 (TLS required, compliance floor)")
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if e.code() == Some("DBParameterGroupAlreadyExists") => {}
            Err(e) => return Err(classify(e)),
        }
        self.set_force_ssl(&name).await?;
        Ok(name)
    }

    /// The parameter group an instance whose own does not force TLS moves to: Paved's
    /// (the engine's defaults and `rds.force_ssl=1`) for one in a default group, and a
    /// copy of its own group with `rds.force_ssl=1` for one in a group of its own, so
    /// that its other settings (`shared_preload_libraries`, replication…) stay.
    async fn force_ssl_group_for(
        &self,
        d: &DesiredDatabase,
        o: &ObservedDatabase,
    ) -> Result<String, ProviderError> {
        let version = o.engine_version.as_deref().unwrap_or(&d.engine_version);
        let all = self.instances().await?;
        let own = all
            .get(&d.external_name)
            .and_then(|db| db.db_parameter_groups().first())
            .and_then(|g| g.db_parameter_group_name())
            .filter(|g| !g.starts_with("default."))
            .map(String::from);
        let Some(own) = own else {
            return self.ensure_force_ssl_group(version).await;
        };
        let copy = format!("paved-{}-force-ssl", d.external_name);
        if own == copy {
            // Its copy already: set the parameter again (someone turned it off).
            self.set_force_ssl(&copy).await?;
            return Ok(copy);
        }
        match self
            .rds
            .copy_db_parameter_group()
            .source_db_parameter_group_identifier(&own)
            .target_db_parameter_group_identifier(&copy)
            .target_db_parameter_group_description(format!(
                "Paved: {own} with rds.force_ssl=1 (TLS required, compliance floor)"
            ))
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if e.code() == Some("DBParameterGroupAlreadyExists") => {}
            Err(e) => return Err(classify(e)),
        }
        self.set_force_ssl(&copy).await?;
        Ok(copy)
    }

    async fn set_force_ssl(&self, group: &str) -> Result<(), ProviderError> {
        let param = aws_sdk_rds::types::Parameter::builder()
            .parameter_name("rds.force_ssl")
            .parameter_value("1")
            .apply_method(aws_sdk_rds::types::ApplyMethod::Immediate)
            .build();
        self.rds
            .modify_db_parameter_group()
            .db_parameter_group_name(group)
            .parameters(param)
            .send()
            .await
            .map_err(classify)?;
        self.groups_tls.forget(group);
        Ok(())
    }

    /// Whether a parameter group forces TLS (`rds.force_ssl` = 1), as far as RDS says
    /// (`None`: the group does not list it), read once an hour per group. What an
    /// observed instance is judged by; the ones Paved makes are in its own group, which
    /// forces it.
    async fn forces_tls(&self, group: &str) -> Result<Option<bool>, ProviderError> {
        if let Some(known) = self.groups_tls.get(group) {
            return Ok(known);
        }
        let found = self.read_force_ssl(group).await?;
        self.groups_tls.put(group, found);
        Ok(found)
    }

    async fn read_force_ssl(&self, group: &str) -> Result<Option<bool>, ProviderError> {
        let mut marker = None;
        loop {
            let page = self
                .rds
                .describe_db_parameters()
                .db_parameter_group_name(group)
                .set_marker(marker)
                .send()
                .await
                .map_err(classify)?;
            if let Some(p) = page
                .parameters()
                .iter()
                .find(|p| p.parameter_name() == Some("rds.force_ssl"))
            {
                return Ok(p.parameter_value().map(|v| v == "1"));
            }
            marker = page.marker().map(String::from);
            if marker.is_none() {
                return Ok(None);
            }
        }
    }

    /// Puts the compliance tags on the RDS-managed master secret and checks it is
    /// encrypted with the Composition's key. Returns a problem to report, if any.
    pub async fn check_master_secret(
        &self,
        d: &DesiredDatabase,
        arn: &str,
    ) -> Result<Option<String>, ProviderError> {
        if self.secrets_checked.get(arn).is_some() {
            return Ok(None);
        }
        let desc = self
            .secrets
            .describe_secret()
            .secret_id(arn)
            .send()
            .await
            .map_err(classify)?;
        if let (Some(want), Some(have)) = (&d.kms_key_id, desc.kms_key_id()) {
            if !key_matches(want, have) {
                return Ok(Some(format!(
                    "the master secret is encrypted with {have}, not {want}"
                )));
            }
        }
        let have: HashMap<&str, &str> = desc
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?, t.value()?)))
            .collect();
        let missing: Vec<_> = d
            .tags
            .iter()
            .filter(|(k, v)| have.get(k.as_str()) != Some(&v.as_str()))
            .map(|(k, v)| {
                aws_sdk_secretsmanager::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
            })
            .collect();
        if !missing.is_empty() {
            self.secrets
                .tag_resource()
                .secret_id(arn)
                .set_tags(Some(missing))
                .send()
                .await
                .map_err(classify)?;
        }
        self.secrets_checked.put(arn, ());
        Ok(None)
    }
}

fn observed(db: &DbInstance) -> ObservedDatabase {
    ObservedDatabase {
        state: db.db_instance_status().unwrap_or("unknown").to_string(),
        endpoint: db.endpoint().and_then(|e| e.address()).map(String::from),
        port: db.endpoint().and_then(|e| e.port()),
        engine_version: db.engine_version().map(String::from),
        instance_class: db.db_instance_class().map(String::from),
        storage_gb: db.allocated_storage(),
        multi_az: db.multi_az(),
        backup_retention_days: db.backup_retention_period(),
        deletion_protection: db.deletion_protection(),
        storage_encrypted: db.storage_encrypted(),
        kms_key_id: db.kms_key_id().map(String::from),
        publicly_accessible: db.publicly_accessible(),
        master_secret_ref: db
            .master_user_secret()
            .and_then(|s| s.secret_arn())
            .map(String::from),
        owner_uid: db
            .tag_list()
            .iter()
            .find(|t| t.key() == Some(OWNER_TAG))
            .and_then(|t| t.value())
            .map(String::from),
        // Forced by the parameter group Paved creates; RDS creates the database.
        tls_required: None,
        database_present: None,
        resource_id: db.dbi_resource_id().map(String::from),
        security_groups: Some({
            let mut ids: Vec<String> = db
                .vpc_security_groups()
                .iter()
                .filter_map(|g| g.vpc_security_group_id().map(String::from))
                .collect();
            ids.sort();
            ids
        }),
        own_security_group: None,
        iam_authentication: Some(db.iam_database_authentication_enabled().unwrap_or(false)),
        tags: Some(
            db.tag_list()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                .collect(),
        ),
        database_name: db.db_name().map(String::from),
        // The username is in the RDS-managed secret the connection Secret reads.
        master_username: None,
    }
}

#[async_trait]
impl ExternalClient<DesiredDatabase, ObservedDatabase> for AwsProvider {
    async fn observe(
        &self,
        d: &DesiredDatabase,
    ) -> Result<Observation<ObservedDatabase>, ProviderError> {
        let all = self.instances().await?;
        Ok(match all.get(&d.external_name) {
            None => Observation::Absent,
            Some(db) => {
                let mut o = observed(db);
                // One Paved did not make: its parameter group says whether TLS is forced.
                if d.existing().is_some() {
                    if let Some(g) = db
                        .db_parameter_groups()
                        .first()
                        .and_then(|g| g.db_parameter_group_name())
                    {
                        // Unreadable (no rds:DescribeDBParameters, say): not judged,
                        // rather than no observation at all.
                        o.tls_required = self.forces_tls(g).await.ok().flatten();
                    }
                }
                if !d.observe_only {
                    o.own_security_group = self.own_group(d).await?;
                }
                let owner = o.owner_uid.clone();
                crate::ownership(
                    o,
                    owner.as_deref(),
                    &d.owner_uid,
                    "an instance without Paved's ownership tag",
                    d.existing(),
                )
            }
        })
    }

    async fn create(&self, d: &DesiredDatabase) -> Result<(), ProviderError> {
        let group = self.ensure_force_ssl_group(&d.engine_version).await?;
        let own = match &d.network.own_security_group {
            Some(own) => Some(self.ensure_own_group(d, own).await?),
            None => None,
        };
        let tags: Vec<_> = d
            .tags
            .iter()
            .map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(k).value(v).build())
            .collect();
        let result =
            self.rds
                .create_db_instance()
                .db_instance_identifier(&d.external_name)
                .engine("postgres")
                .engine_version(&d.engine_version)
                .db_instance_class(&d.instance_class)
                .allocated_storage(d.storage_gb)
                .set_storage_type(d.storage_type.clone())
                .db_name(&d.database_name)
                .master_username(&d.master_username)
                .manage_master_user_password(true)
                .set_master_user_secret_kms_key_id(d.kms_key_id.clone())
                .storage_encrypted(d.storage_encrypted)
                .set_kms_key_id(d.kms_key_id.clone())
                .publicly_accessible(d.publicly_accessible)
                .set_db_subnet_group_name(d.network.subnet_group_name.clone())
                .set_vpc_security_group_ids(Some(
                    paved_compose::postgresql::instance_security_groups(d, own.as_deref(), None),
                ))
                .backup_retention_period(d.backup_retention_days)
                .set_preferred_backup_window(d.backup_window.clone())
                .multi_az(d.multi_az)
                .deletion_protection(d.deletion_protection)
                // The service's own role may then connect without a password (its policy
                // allows `rds-db:connect` to this instance alone); passwords still work.
                .enable_iam_database_authentication(true)
                .copy_tags_to_snapshot(true)
                .db_parameter_group_name(group)
                .set_tags(Some(tags))
                .send()
                .await;
        self.invalidate();
        match result {
            Ok(_) => Ok(()),
            // The deterministic name makes a retried create find the first one.
            Err(e) if e.code() == Some("DBInstanceAlreadyExists") => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }

    async fn update(&self, d: &DesiredDatabase, o: &ObservedDatabase) -> Result<(), ProviderError> {
        // An adopted instance: the claim's mark and the Composition's tags first, so
        // it is known as the claim's before anything else of it changes.
        if d.adopting {
            if let Some(have) = &o.tags {
                if !paved_compose::postgresql::tags_wanted(d, have).is_empty() {
                    self.tag(d).await?;
                }
            }
        }
        let mut m = self
            .rds
            .modify_db_instance()
            .db_instance_identifier(&d.external_name)
            .apply_immediately(true);
        if o.tls_required == Some(false) {
            m = m.db_parameter_group_name(self.force_ssl_group_for(d, o).await?);
        }
        if d.adopting
            && o.master_secret_ref.is_none()
            && d.credentials.existing_password == paved_api::ExistingPassword::Rotate
        {
            // RDS generates the new password and keeps it in Secrets Manager under
            // the Composition's key; Paved never sees it.
            m = m
                .manage_master_user_password(true)
                .set_master_user_secret_kms_key_id(d.kms_key_id.clone());
        }
        if o.instance_class.as_deref() != Some(d.instance_class.as_str()) {
            m = m.db_instance_class(&d.instance_class);
        }
        if o.storage_gb.is_some_and(|s| s < d.storage_gb) {
            m = m.allocated_storage(d.storage_gb);
        }
        if o.multi_az != Some(d.multi_az) {
            m = m.multi_az(d.multi_az);
        }
        if o.backup_retention_days != Some(d.backup_retention_days) {
            m = m.backup_retention_period(d.backup_retention_days);
        }
        if o.deletion_protection != Some(d.deletion_protection) {
            m = m.deletion_protection(d.deletion_protection);
        }
        if o.publicly_accessible != Some(false) {
            m = m.publicly_accessible(false);
        }
        if o.iam_authentication == Some(false) {
            // No restart: passwords keep working, the service's role may connect too.
            m = m.enable_iam_database_authentication(true);
        }
        if let Some(own) = &d.network.own_security_group {
            // Its own group made or put back to its rules; the instance in it.
            let own = self.ensure_own_group(d, own).await?;
            let groups = paved_compose::postgresql::instance_security_groups(
                d,
                Some(&own),
                o.security_groups.as_deref(),
            );
            if o.security_groups.as_ref() != Some(&groups) {
                m = m.set_vpc_security_group_ids(Some(groups));
            }
        }
        let r = m.send().await;
        self.invalidate();
        r.map(|_| ()).map_err(classify)
    }

    async fn delete(&self, d: &DesiredDatabase) -> Result<DeleteProgress, ProviderError> {
        if d.deletion_policy == DeletionPolicy::Orphan {
            return Ok(DeleteProgress::Done(format!(
                "instance {} left in place (Orphan)",
                d.external_name
            )));
        }
        // Deletion reads fresh, not from the shared list.
        let found = match self
            .rds
            .describe_db_instances()
            .db_instance_identifier(&d.external_name)
            .send()
            .await
        {
            Ok(out) => out.db_instances().first().cloned(),
            Err(e)
                if e.code() == Some("DBInstanceNotFound")
                    || e.code() == Some("DBInstanceNotFoundFault") =>
            {
                None
            }
            Err(e) => return Err(classify(e)),
        };
        let Some(db) = found else {
            self.invalidate();
            if let Some(waiting) = self.delete_own_groups(d).await? {
                return Ok(DeleteProgress::Waiting(waiting));
            }
            return Ok(DeleteProgress::Done(self.gone(d).await?));
        };
        let o = observed(&db);
        if o.owner_uid.as_deref() != Some(d.owner_uid.as_str()) {
            return Ok(DeleteProgress::Skipped(format!(
                "instance {} does not carry this claim's ownership tag; left untouched",
                d.external_name
            )));
        }
        match o.state.as_str() {
            "deleting" => {
                return Ok(DeleteProgress::Waiting(format!(
                    "RDS is deleting {}",
                    d.external_name
                )))
            }
            "available" | "stopped" | "storage-full" | "failed" | "incompatible-parameters" => {}
            s => {
                return Ok(DeleteProgress::Waiting(format!(
                    "{} is {s}; deleting once it settles",
                    d.external_name
                )))
            }
        }
        if o.deletion_protection == Some(true) {
            // The claim's deletion is the explicit act protection exists to require.
            self.rds
                .modify_db_instance()
                .db_instance_identifier(&d.external_name)
                .deletion_protection(false)
                .apply_immediately(true)
                .send()
                .await
                .map_err(classify)?;
            self.invalidate();
            return Ok(DeleteProgress::Waiting(format!(
                "turning off deletion protection on {}",
                d.external_name
            )));
        }
        let snapshot = d.deletion_policy == DeletionPolicy::Snapshot;
        let req = self
            .rds
            .delete_db_instance()
            .db_instance_identifier(&d.external_name)
            .skip_final_snapshot(!snapshot)
            .set_final_db_snapshot_identifier(snapshot.then(|| final_snapshot_name(d)))
            .delete_automated_backups(!snapshot);
        let r = req.send().await;
        self.invalidate();
        match r {
            Ok(_) => Ok(DeleteProgress::Waiting(if snapshot {
                format!(
                    "taking final snapshot {} and deleting {}",
                    final_snapshot_name(d),
                    d.external_name
                )
            } else {
                format!("deleting {}", d.external_name)
            })),
            Err(e) if e.code() == Some("InvalidDBInstanceState") => Ok(DeleteProgress::Waiting(
                format!("{} is busy", d.external_name),
            )),
            Err(e) => Err(classify(e)),
        }
    }
}

impl AwsProvider {
    /// Puts the desired tags (the claim's ownership mark among them) on an instance,
    /// named by the ARN the region's list gives.
    async fn tag(&self, d: &DesiredDatabase) -> Result<(), ProviderError> {
        let all = self.instances().await?;
        let Some(arn) = all
            .get(&d.external_name)
            .and_then(|db| db.db_instance_arn())
            .map(String::from)
        else {
            return Err(ProviderError::Retryable(format!(
                "instance {} is not listed yet",
                d.external_name
            )));
        };
        let tags: Vec<_> = d
            .tags
            .iter()
            .map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(k).value(v).build())
            .collect();
        let r = self
            .rds
            .add_tags_to_resource()
            .resource_name(arn)
            .set_tags(Some(tags))
            .send()
            .await;
        self.invalidate();
        r.map(|_| ()).map_err(classify)
    }

    /// What a deletion left, said only as far as RDS confirms it: the final snapshot
    /// is named only when it exists.
    async fn gone(&self, d: &DesiredDatabase) -> Result<String, ProviderError> {
        if d.deletion_policy != DeletionPolicy::Snapshot {
            return Ok(format!("instance {} deleted", d.external_name));
        }
        let snap = final_snapshot_name(d);
        let found = match self
            .rds
            .describe_db_snapshots()
            .db_snapshot_identifier(&snap)
            .send()
            .await
        {
            Ok(out) => !out.db_snapshots().is_empty(),
            Err(e)
                if e.code() == Some("DBSnapshotNotFound")
                    || e.code() == Some("DBSnapshotNotFoundFault") =>
            {
                false
            }
            Err(e) => return Err(classify(e)),
        };
        Ok(if found {
            format!(
                "instance {} deleted; final snapshot {snap} kept",
                d.external_name
            )
        } else {
            format!(
                "instance {} no longer exists, and no final snapshot {snap} was found (deleted outside Paved?)",
                d.external_name
            )
        })
    }
}

/// The final snapshot's identifier.
pub fn final_snapshot_name(d: &DesiredDatabase) -> String {
    format!("{}-final", d.external_name)
}

/// Classifies an SDK error by its service code and HTTP status (after the SDK's own
/// retries, exponential with jitter); a throttled call is retried after the response's
/// `Retry-After`, if any. Messages carry the service's words, never request parameters.
pub(crate) fn classify<E: ProvideErrorMetadata + std::fmt::Debug>(
    e: aws_sdk_rds::error::SdkError<E, aws_sdk_rds::config::http::HttpResponse>,
) -> ProviderError
where
    aws_sdk_rds::error::SdkError<E, aws_sdk_rds::config::http::HttpResponse>: std::error::Error,
{
    use aws_sdk_rds::error::SdkError;
    match &e {
        SdkError::ServiceError(se) => {
            let retry_after = ProviderError::retry_after(se.raw().headers().get("retry-after"));
            let err = se.err();
            let code = err.code().unwrap_or("Unknown").to_string();
            let message = format!("{code}: {}", err.message().unwrap_or(""));
            match code.as_str() {
                "Throttling"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "TooManyRequestsException" => ProviderError::Throttled {
                    retry_after: retry_after.unwrap_or(Duration::from_secs(10)),
                    message,
                },
                "AccessDenied"
                | "AccessDeniedException"
                | "UnrecognizedClientException"
                | "InvalidClientTokenId"
                | "ExpiredToken"
                | "SignatureDoesNotMatch" => ProviderError::Terminal {
                    reason: Reason::ProviderAccessDenied,
                    message,
                },
                "InvalidDBInstanceState"
                | "InternalFailure"
                | "ServiceUnavailable"
                | "InternalError"
                // IAM: transient, or its eventual consistency right after a create.
                | "ServiceFailure"
                | "ConcurrentModification"
                | "EntityAlreadyExists" => ProviderError::Retryable(message),
                _ => ProviderError::Terminal {
                    reason: Reason::ProviderRejected,
                    message,
                },
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ProviderError::Retryable(format!("cannot reach AWS: {e}"))
        }
        _ => ProviderError::Retryable(format!("AWS call failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kms_keys_compare_on_their_id() {
        assert!(key_matches("arn:aws:kms:us-east-1:1:key/abc", "abc"));
        assert!(key_matches(
            "arn:aws:kms:us-east-1:1:key/abc",
            "arn:aws:kms:us-east-1:1:key/abc"
        ));
        assert!(!key_matches(
            "arn:aws:kms:us-east-1:1:key/abc",
            "arn:aws:kms:us-east-1:1:key/def"
        ));
    }

    #[test]
    fn an_instance_maps_to_an_observation_with_its_owner() {
        let db = DbInstance::builder()
            .db_instance_identifier("paved-x")
            .db_instance_status("creating")
            .storage_encrypted(true)
            .kms_key_id("k")
            .tag_list(
                aws_sdk_rds::types::Tag::builder()
                    .key(OWNER_TAG)
                    .value("uid-1")
                    .build(),
            )
            .build();
        let o = observed(&db);
        assert_eq!(o.state, "creating");
        assert_eq!(o.owner_uid.as_deref(), Some("uid-1"));
        assert_eq!(o.storage_encrypted, Some(true));
    }
}
