//! PostgreSQLInstance → the desired database, and the plan that gets the cloud
//! there. The compliance floor is applied last, so neither a claim nor a Composition
//! can lower it.

use std::collections::BTreeMap;

use paved_api::{
    labels, render_template, Cloud, Composition, DataClassification, DeletionPolicy,
    PostgreSQLComposition, PostgreSQLInstanceSpec,
};

pub use crate::Drift;
use crate::{check_composition_postgresql, floor, RenderError};

/// What is known of the service a claim's namespace belongs to: from its ServiceClaim
/// or the Team listing it (`tenancy::namespace_facts`). A namespace of neither gets the
/// safe defaults: PHI, the operator's cloud, no team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceFacts {
    pub cloud: Cloud,
    pub classification: DataClassification,
    pub owner: String,
    pub system: String,
    pub service: String,
    pub cost_center: String,
    /// The team whose ServiceClaim made the namespace; None for a namespace Paved did
    /// not make (its facts are then the safe defaults).
    pub team: Option<String>,
}

impl NamespaceFacts {
    /// Where these facts came from, for messages.
    pub fn source(&self) -> String {
        match &self.team {
            Some(_) => format!("from ServiceClaim {}", self.service),
            None => "not a Paved namespace: the operator's default".into(),
        }
    }

    /// Reads the facts from a namespace's labels. Only for offline previews (`paved
    /// render` over files): the operator takes them from the owning ServiceClaim
    /// (`tenancy::namespace_facts`), since labels can be set by whoever edits a namespace.
    pub fn from_labels(
        namespace: &str,
        l: &BTreeMap<String, String>,
        default_cloud: Cloud,
    ) -> NamespaceFacts {
        let get = |k: &str| l.get(k).cloned();
        NamespaceFacts {
            cloud: get(labels::CLOUD)
                .and_then(|c| c.parse().ok())
                .unwrap_or(default_cloud),
            classification: match get(labels::CLASSIFICATION).as_deref() {
                Some("public") => DataClassification::Public,
                Some("internal") => DataClassification::Internal,
                Some("confidential") => DataClassification::Confidential,
                _ => DataClassification::Phi,
            },
            owner: get(labels::OWNER).unwrap_or_else(|| "unknown".into()),
            system: get(labels::SYSTEM).unwrap_or_else(|| "unknown".into()),
            service: get(labels::SERVICE).unwrap_or_else(|| namespace.to_string()),
            cost_center: get(labels::COST_CENTER).unwrap_or_else(|| "unknown".into()),
            team: get(labels::OWNER),
        }
    }
}

/// Chooses the Composition: `compositionRef`, else `compositionSelector`, else the
/// one labelled `paved.dev/default-for: <cloud>`.
pub fn pick_composition<'a>(
    spec: &PostgreSQLInstanceSpec,
    cloud: Cloud,
    all: &'a [std::sync::Arc<Composition>],
) -> Result<&'a std::sync::Arc<Composition>, String> {
    let pg: Vec<_> = all.iter().filter(|c| c.spec.postgresql.is_some()).collect();
    let name = |c: &Composition| c.metadata.name.clone().unwrap_or_default();
    let labels_of = |c: &Composition| c.metadata.labels.clone().unwrap_or_default();
    if let Some(r) = &spec.composition_ref {
        return all
            .iter()
            .find(|c| name(c) == r.name)
            .ok_or_else(|| format!("composition {} not found", r.name))
            .and_then(|c| {
                if c.spec.postgresql.is_some() {
                    Ok(c)
                } else {
                    Err(format!(
                        "composition {} is a {} composition, not a postgresql one",
                        r.name,
                        c.composes()
                    ))
                }
            });
    }
    let matching: Vec<_> = match &spec.composition_selector {
        Some(sel) => pg
            .into_iter()
            .filter(|c| {
                let l = labels_of(c);
                sel.match_labels.iter().all(|(k, v)| l.get(k) == Some(v))
            })
            .collect(),
        None => pg
            .into_iter()
            .filter(|c| {
                labels_of(c).get(labels::DEFAULT_FOR).map(String::as_str) == Some(cloud.as_str())
            })
            .collect(),
    };
    match matching.as_slice() {
        [one] => Ok(one),
        [] => Err(match &spec.composition_selector {
            Some(_) => "no postgresql composition matches spec.compositionSelector".to_string(),
            None => format!(
                "no postgresql composition is labelled {}={cloud}",
                labels::DEFAULT_FOR
            ),
        }),
        many => Err(format!(
            "several postgresql compositions match ({}); name one in spec.compositionRef",
            many.iter().map(|c| name(c)).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// The database a claim should have, after the floor. Serializes to what
/// `paved render` shows; it holds no secret.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredDatabase {
    pub provider: Cloud,
    pub region: String,
    /// The cloud resource's name, derived from the claim UID.
    pub external_name: String,
    /// The claim UID, stamped on the resource as its ownership tag.
    pub owner_uid: String,
    pub instance_class: String,
    #[serde(rename = "storageGB")]
    pub storage_gb: i32,
    pub storage_type: Option<String>,
    pub engine_version: String,
    #[serde(rename = "multiAZ")]
    pub multi_az: bool,
    pub storage_encrypted: bool,
    pub kms_key_id: Option<String>,
    pub encryption_identity: Option<String>,
    /// Azure: key and identity for geo-redundant backups.
    pub geo_backup_key_id: Option<String>,
    pub geo_backup_identity: Option<String>,
    pub publicly_accessible: bool,
    pub tls_required: bool,
    pub backup_retention_days: i32,
    pub backup_window: Option<String>,
    pub geo_redundant_backup: bool,
    pub deletion_protection: bool,
    pub deletion_policy: DeletionPolicy,
    pub network: paved_api::DatabaseNetwork,
    pub credentials: paved_api::CredentialsSpec,
    /// The local provider's admin connection Secret.
    pub local_admin: Option<paved_api::SecretKeySelector>,
    /// Azure subscription, resource group and Key Vault.
    pub azure: Option<paved_api::AzurePlacement>,
    /// GCP project.
    pub gcp: Option<paved_api::GcpPlacement>,
    pub tags: BTreeMap<String, String>,
    /// Name of the connection Secret in the claim's namespace.
    pub connection_secret: String,
    /// Database (schema) name inside the server.
    pub database_name: String,
    pub master_username: String,
    /// e.g. `USD 53.20`.
    pub estimated_monthly_cost: Option<String>,
    #[serde(skip)]
    pub poll_interval: std::time::Duration,
    /// The weekly window disruptive changes wait for (`ddd:hh:mm-ddd:hh:mm`, UTC).
    pub maintenance_window: String,
    /// Disruptive changes go out at once.
    pub apply_immediately: bool,
    /// An existing database the claim observes (`spec.existing`): looked at under
    /// `external_name`, never written, tagged or deleted, judged against this floor.
    pub observe_only: bool,
    /// An existing database the claim adopts (`spec.existing.mode: Adopt`): taken
    /// over under `external_name` when it carries no other claim's mark, then managed.
    pub adopting: bool,
    /// What an adopted database keeps as it runs because the claim does not say
    /// (`instanceClass`, `storageGB`, `multiAZ`, `engineVersion`): adopting never
    /// resizes on a Composition's default. See [`as_running`].
    pub keeps_running: Vec<&'static str>,
    /// The Composition's price table: an observed database's cost is estimated from
    /// what it runs as.
    #[serde(skip)]
    pub prices: Option<paved_api::PriceTable>,
}

impl DesiredDatabase {
    /// How the claim names an existing database, if it does.
    pub fn existing(&self) -> Option<paved_api::ExistingMode> {
        if self.observe_only {
            Some(paved_api::ExistingMode::Observe)
        } else if self.adopting {
            Some(paved_api::ExistingMode::Adopt)
        } else {
            None
        }
    }
}

/// Everything rendering a PostgreSQLInstance depends on.
#[derive(Debug, Clone)]
pub struct PostgresInput<'a> {
    pub claim_name: &'a str,
    pub claim_namespace: &'a str,
    pub claim_uid: &'a str,
    pub spec: &'a PostgreSQLInstanceSpec,
    pub facts: &'a NamespaceFacts,
    pub composition_name: &'a str,
    pub composition: &'a PostgreSQLComposition,
}

/// The cloud name for a claim: `paved-` and the first 20 hex digits of its UID.
/// Deterministic (a retried create finds the first one) and unique per claim, so
/// two namespaces never collide. Valid for RDS, Azure, Cloud SQL and PostgreSQL.
pub fn external_name(uid: &str) -> String {
    let hex: String = uid
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .take(20)
        .collect::<String>()
        .to_lowercase();
    format!("paved-{hex}")
}

/// Parses `5m`, `1h30m`, `45s`, `500ms`.
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let mut total = 0u64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        let ms = match c {
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                n
            }
            'h' => n * 3_600_000,
            'm' => n * 60_000,
            's' => n * 1000,
            _ => return None,
        };
        total += ms;
        any = true;
    }
    (any && num.is_empty()).then(|| std::time::Duration::from_millis(total))
}

pub fn render_postgresql(input: &PostgresInput<'_>) -> Result<DesiredDatabase, RenderError> {
    let comp = input.composition;
    let adopting = input.spec.adopts();
    let inside = input
        .spec
        .existing
        .as_ref()
        .and_then(|e| e.database_name.clone());
    // Only where a server holds several: elsewhere it would name another database
    // than the one the Team granted.
    if inside.is_some() && !matches!(comp.provider, Cloud::Azure | Cloud::Gcp) {
        return Err(RenderError::InvalidSpec(format!(
            "spec.existing.databaseName: only for an Azure flexible server or a Cloud SQL instance; on {} the database is the one spec.existing.externalName names",
            comp.provider
        )));
    }
    if adopting && matches!(comp.provider, Cloud::Azure | Cloud::Gcp) && inside.is_none() {
        return Err(RenderError::NotAdoptable(format!(
            "spec.existing.databaseName: name the database inside the {} server that the connection Secret should \
             name (a server holds several) (composition {})",
            comp.provider, input.composition_name
        )));
    }
    let violations = check_composition_postgresql(comp);
    if !violations.is_empty() {
        return Err(RenderError::CompositionViolatesFloor {
            name: input.composition_name.to_string(),
            violations: floor::join(&violations),
        });
    }
    let p = &input.spec.parameters;
    let facts = input.facts;
    let phi = facts.classification == DataClassification::Phi;
    if phi && comp.provider == Cloud::Local {
        return Err(RenderError::Unsupported(format!(
            "the local provider cannot guarantee customer-managed encryption, so it does not serve PHI; \
             use a cloud composition, or classify the service below phi (composition {})",
            input.composition_name
        )));
    }

    // Instance class: explicit class (must be allowed), else size, else small.
    let size_class = |size: paved_api::DatabaseSize| -> Result<String, RenderError> {
        let s = &comp.sizes;
        match size {
            paved_api::DatabaseSize::Small => Ok(s.small.clone()),
            paved_api::DatabaseSize::Medium => Ok(s.medium.clone()),
            paved_api::DatabaseSize::Large => Ok(s.large.clone()),
            paved_api::DatabaseSize::Xlarge => s.xlarge.clone().ok_or_else(|| {
                RenderError::InvalidSpec(format!(
                    "spec.parameters.size: composition {} offers no xlarge size",
                    input.composition_name
                ))
            }),
        }
    };
    let instance_class = match (&p.instance_class, p.size) {
        (Some(c), _) => {
            let sized = [&comp.sizes.small, &comp.sizes.medium, &comp.sizes.large];
            let allowed = comp.allowed_instance_classes.iter().any(|a| a == c)
                || sized.contains(&c)
                || comp.sizes.xlarge.as_ref() == Some(c);
            if !allowed {
                return Err(RenderError::InvalidSpec(format!(
                    "spec.parameters.instanceClass {c} is not allowed by composition {}; allowed: {}",
                    input.composition_name,
                    comp.allowed_instance_classes.join(", ")
                )));
            }
            c.clone()
        }
        (None, Some(size)) => size_class(size)?,
        (None, None) => size_class(paved_api::DatabaseSize::Small)?,
    };

    let storage_gb = p
        .storage_gb
        .unwrap_or(comp.storage.default_gb.unwrap_or(comp.storage.min_gb));
    if storage_gb < comp.storage.min_gb || storage_gb > comp.storage.max_gb {
        return Err(RenderError::InvalidSpec(format!(
            "spec.parameters.storageGB {storage_gb} is outside composition {}'s bounds {}..{} GB",
            input.composition_name, comp.storage.min_gb, comp.storage.max_gb
        )));
    }
    // Azure sells storage in fixed sizes: the claim gets (and pays for) the next one up.
    let storage_gb = if comp.provider == Cloud::Azure {
        azure_storage_gb(storage_gb)
    } else {
        storage_gb
    };
    let engine_version = p
        .engine_version
        .clone()
        .unwrap_or_else(|| comp.engine_version.clone());

    let vars: BTreeMap<&str, String> = BTreeMap::from([
        ("service", facts.service.clone()),
        ("namespace", input.claim_namespace.to_string()),
        ("name", input.claim_name.to_string()),
        ("owner", facts.owner.clone()),
        ("system", facts.system.clone()),
        ("cloud", facts.cloud.to_string()),
        ("costCenter", facts.cost_center.clone()),
        ("classification", facts.classification.as_str().to_string()),
        ("tier", String::new()),
    ]);
    let mut tags = BTreeMap::new();
    for (k, t) in &comp.tags {
        let v = render_template(t, &vars).map_err(|e| RenderError::Template {
            composition: input.composition_name.to_string(),
            message: format!("tags.{k}: {e}"),
        })?;
        tags.insert(k.clone(), v);
    }

    // Only a claim that says `Delete` itself drops its data without a final snapshot:
    // a Composition's default never does.
    let deletion_policy = input
        .spec
        .deletion_policy
        .unwrap_or(match comp.deletion.policy {
            DeletionPolicy::Delete => DeletionPolicy::Snapshot,
            p => p,
        });
    // An existing database is looked at under its own name. An observed one is never
    // deleted; an adopted one only when the claim itself says so.
    let existing = input.spec.existing.as_ref();
    let external = existing.map_or_else(
        || external_name(input.claim_uid),
        |e| e.external_name.clone(),
    );
    let deletion_policy = match existing {
        None => deletion_policy,
        Some(_) if adopting => input.spec.deletion_policy.unwrap_or(DeletionPolicy::Orphan),
        Some(_) => DeletionPolicy::Orphan,
    };
    // What the claim leaves unsaid of an adopted database's shape stays as it runs.
    let keeps_running: Vec<&'static str> = if adopting {
        [
            (
                "instanceClass",
                p.instance_class.is_none() && p.size.is_none(),
            ),
            ("storageGB", p.storage_gb.is_none()),
            ("multiAZ", p.multi_az.or(p.high_availability).is_none()),
            ("engineVersion", p.engine_version.is_none()),
        ]
        .into_iter()
        .filter_map(|(f, unsaid)| unsaid.then_some(f))
        .collect()
    } else {
        vec![]
    };
    let cost = comp
        .prices
        .as_ref()
        .and_then(|prices| monthly_cost(prices, &instance_class, storage_gb));

    let mut desired = DesiredDatabase {
        provider: comp.provider,
        region: comp.region.clone(),
        external_name: external.clone(),
        owner_uid: input.claim_uid.to_string(),
        instance_class,
        storage_gb,
        storage_type: comp.storage.type_.clone(),
        engine_version,
        multi_az: p.multi_az.or(p.high_availability).unwrap_or(false),
        storage_encrypted: true,
        kms_key_id: comp.encryption.as_ref().map(|e| e.key_id.clone()),
        encryption_identity: comp.encryption.as_ref().and_then(|e| e.identity_id.clone()),
        geo_backup_key_id: comp
            .encryption
            .as_ref()
            .and_then(|e| e.geo_backup_key_id.clone()),
        geo_backup_identity: comp
            .encryption
            .as_ref()
            .and_then(|e| e.geo_backup_identity_id.clone()),
        publicly_accessible: false,
        tls_required: true,
        backup_retention_days: comp.backup.retention_days,
        backup_window: comp.backup.window.clone(),
        geo_redundant_backup: comp.backup.geo_redundant,
        deletion_protection: comp.deletion.protection,
        deletion_policy,
        network: comp.network.clone(),
        credentials: comp.credentials.clone(),
        local_admin: comp.local.as_ref().map(|l| l.admin_secret_ref.clone()),
        azure: comp.azure.clone(),
        gcp: comp.gcp.clone(),
        tags,
        connection_secret: input
            .spec
            .write_connection_secret_to_ref
            .as_ref()
            .map(|r| r.name.clone())
            .unwrap_or_else(|| crate::service::connection_secret(input.claim_name)),
        // An existing (local) database is looked at under its own name; a cloud one's
        // database inside is read from the cloud (see `as_running`).
        database_name: match (existing, inside) {
            (_, Some(inside)) => inside,
            (Some(_), None) => external.clone(),
            (None, None) => external.replace('-', "_"),
        },
        // An adopted local database gets a login role of the claim's own (the name is
        // the claim's, so it never collides with a role the database already has).
        master_username: if adopting {
            external_name(input.claim_uid).replace('-', "_")
        } else {
            external.replace('-', "_")
        },
        estimated_monthly_cost: cost,
        // At least a second: a `0s` in a Composition must not turn polls into a hot loop.
        poll_interval: parse_duration(&comp.poll_interval)
            .unwrap_or(std::time::Duration::from_secs(300))
            .max(std::time::Duration::from_secs(1)),
        maintenance_window: comp
            .maintenance
            .as_ref()
            .and_then(|m| m.window.clone())
            .unwrap_or_else(|| DEFAULT_MAINTENANCE_WINDOW.to_string()),
        apply_immediately: comp
            .maintenance
            .as_ref()
            .is_some_and(|m| m.apply_immediately),
        observe_only: existing.is_some() && !adopting,
        adopting,
        keeps_running,
        prices: comp.prices.clone(),
    };
    apply_floor(&mut desired, facts, input);
    if desired.observe_only {
        // The floor's Snapshot for PHI acts on a database Paved deletes; an observed
        // one it never touches.
        desired.deletion_policy = DeletionPolicy::Orphan;
    }
    Ok(desired)
}

/// The compliance floor, last. Nothing above can lower these.
pub fn apply_floor(d: &mut DesiredDatabase, facts: &NamespaceFacts, input: &PostgresInput<'_>) {
    let phi = facts.classification == DataClassification::Phi;
    d.storage_encrypted = true;
    d.publicly_accessible = false;
    d.tls_required = true;
    d.backup_retention_days = d
        .backup_retention_days
        .max(floor::MIN_BACKUP_RETENTION_DAYS);
    if phi {
        d.deletion_protection = true;
        d.geo_redundant_backup = true;
        // PHI keeps its data: a Delete becomes a final snapshot first.
        if d.deletion_policy == DeletionPolicy::Delete {
            d.deletion_policy = DeletionPolicy::Snapshot;
        }
    }
    // Tags that identify and bill the resource; a claim has no way to override them.
    let env = d
        .tags
        .get("Environment")
        .or_else(|| d.tags.get("environment"))
        .cloned()
        .unwrap_or_else(|| "unknown".into());
    d.tags.insert("Owner".into(), facts.owner.clone());
    d.tags.insert("App".into(), facts.service.clone());
    d.tags.insert("Environment".into(), env);
    d.tags
        .insert("CostCenter".into(), facts.cost_center.clone());
    d.tags.insert(
        "DataClassification".into(),
        facts.classification.as_str().into(),
    );
    d.tags.insert(OWNER_TAG.into(), input.claim_uid.to_string());
    d.tags.insert(
        "paved.dev/claim".into(),
        format!("{}/{}", input.claim_namespace, input.claim_name),
    );
    d.tags.insert(
        "paved.dev/composition".into(),
        input.composition_name.to_string(),
    );
}

/// KMS keys are named by ARN or by id; two names match when they are equal or name
/// the same key id.
pub fn key_matches(want: &str, have: &str) -> bool {
    want == have || want.rsplit('/').next() == have.rsplit('/').next()
}

/// The tag that records which claim owns a cloud resource.
pub const OWNER_TAG: &str = "paved.dev/claim-uid";

/// Tags the floor sets; where a cloud's naming rules fold two keys into one, these win.
const FLOOR_TAGS: &[&str] = &[
    "Owner",
    "App",
    "Environment",
    "CostCenter",
    "DataClassification",
    OWNER_TAG,
    "paved.dev/claim",
    "paved.dev/composition",
];

/// A tag key as the provider must spell it: Azure refuses `<>%&\?/` in tag names;
/// GCP labels are lowercase `[a-z0-9_-]`, start with a letter and hold at most 63
/// characters (keys and values alike).
pub fn cloud_tag_key(provider: Cloud, key: &str) -> String {
    match provider {
        Cloud::Aws | Cloud::Local => key.to_string(),
        Cloud::Azure => key
            .chars()
            .map(|c| if "<>%&\\?/".contains(c) { '_' } else { c })
            .collect(),
        Cloud::Gcp => {
            let k = gcp_label_value(&snake_case(key));
            if k.starts_with(|c: char| c.is_ascii_lowercase()) {
                k
            } else {
                gcp_label_value(&format!("k{k}"))
            }
        }
    }
}

/// The tags to put on the cloud resource, keys and values in the provider's rules.
/// Deterministic; the floor's tags win a key collision.
pub fn cloud_tags(provider: Cloud, tags: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let (floor, rest): (Vec<_>, Vec<_>) = tags
        .iter()
        .partition(|(k, _)| FLOOR_TAGS.contains(&k.as_str()));
    let mut out = BTreeMap::new();
    for (k, v) in rest.into_iter().chain(floor) {
        let v = match provider {
            Cloud::Gcp => gcp_label_value(v),
            Cloud::Azure => v.chars().take(256).collect(),
            _ => v.clone(),
        };
        out.insert(cloud_tag_key(provider, k), v);
    }
    out
}

fn snake_case(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn gcp_label_value(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect()
}

/// Azure flexible servers come in fixed storage sizes (GiB); a claim gets the
/// smallest that holds what it asked for.
pub const AZURE_STORAGE_SIZES: &[i32] =
    &[32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32767];

pub fn azure_storage_gb(gb: i32) -> i32 {
    AZURE_STORAGE_SIZES
        .iter()
        .copied()
        .find(|s| *s >= gb)
        .unwrap_or(32767)
}

/// The Azure pricing tier of a flexible-server SKU name.
pub fn azure_sku_tier(sku: &str) -> &'static str {
    if sku.starts_with("Standard_B") {
        "Burstable"
    } else if sku.starts_with("Standard_E") {
        "MemoryOptimized"
    } else {
        "GeneralPurpose"
    }
}

// ------------------------------------------------------------------ plan

/// What the provider observed about the database.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObservedDatabase {
    /// Provider status, normalised: `available`, `creating`, `modifying`,
    /// `backing-up`, `deleting`, `stopped`, `failed`, ...
    pub state: String,
    pub endpoint: Option<String>,
    pub port: Option<i32>,
    pub engine_version: Option<String>,
    pub instance_class: Option<String>,
    pub storage_gb: Option<i32>,
    pub multi_az: Option<bool>,
    pub backup_retention_days: Option<i32>,
    pub deletion_protection: Option<bool>,
    pub storage_encrypted: Option<bool>,
    pub kms_key_id: Option<String>,
    pub publicly_accessible: Option<bool>,
    /// The cloud secret holding the master credentials (AWS: RDS-managed in Secrets
    /// Manager), read by the connection ExternalSecret.
    pub master_secret_ref: Option<String>,
    /// The ownership tag's value: the UID of the claim that created it.
    pub owner_uid: Option<String>,
    /// Whether the server refuses unencrypted connections (where it is observable).
    pub tls_required: Option<bool>,
    /// Whether the claim's database exists inside the server (Azure / GCP create it
    /// after the server is up).
    pub database_present: Option<bool>,
    /// AWS: the instance's immutable resource ID, which IAM database authentication
    /// names.
    pub resource_id: Option<String>,
    /// AWS: whether IAM database authentication is on (the service's role may then
    /// `rds-db:connect`); Paved turns it on.
    pub iam_authentication: Option<bool>,
    /// AWS: the security groups the instance is in (sorted).
    pub security_groups: Option<Vec<String>>,
    /// AWS: the database's own security group, where the Composition asks for one and
    /// it exists.
    pub own_security_group: Option<ObservedSecurityGroup>,
    /// Its tags (labels on Cloud SQL), where the provider has them.
    pub tags: Option<BTreeMap<String, String>>,
    /// The database inside the server that clients connect to, where the cloud names
    /// one (RDS: `DBName`); an adopted database is delivered with it.
    pub database_name: Option<String>,
    /// The administrator's login, where the cloud says it (RDS, Azure): the user an
    /// adopted database's credentials are kept for.
    pub master_username: Option<String>,
}

/// A database's own security group as the cloud has it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObservedSecurityGroup {
    pub id: String,
    /// Its ownership tag: the UID of the claim whose database it serves.
    pub owner_uid: Option<String>,
    /// Its rules, each `in tcp <from>-<to> <cidr>` or `out <protocol> <from>-<to>
    /// <cidr>`, sorted; a rule naming another group instead of a range shows that
    /// group's ID.
    pub rules: Vec<String>,
}

/// The port PostgreSQL listens on in every cloud database Paved makes.
pub const POSTGRES_PORT: i32 = 5432;

/// Pure: the name of a database's own security group (unique in its VPC).
pub fn own_security_group_name(d: &DesiredDatabase) -> String {
    format!("paved-{}", d.external_name)
}

/// Pure: the rule that lets `cidr` connect, as [`ObservedSecurityGroup::rules`] says it.
pub fn client_rule(cidr: &str) -> String {
    format!("in tcp {POSTGRES_PORT}-{POSTGRES_PORT} {cidr}")
}

/// Pure: the rules a database's own security group has: PostgreSQL in from each
/// client range, nothing out (a database starts no connections).
pub fn own_security_group_rules(d: &DesiredDatabase) -> Vec<String> {
    let mut rules: Vec<String> = d
        .network
        .own_security_group
        .iter()
        .flat_map(|g| g.client_cidrs.iter())
        .map(|c| client_rule(c))
        .collect();
    rules.sort();
    rules.dedup();
    rules
}

/// Pure: the security groups the instance belongs in: the Composition's, and its
/// own once it exists. An adopted instance also stays in the groups it is in
/// (`running`): taking it over must not cut off the clients it serves.
pub fn instance_security_groups(
    d: &DesiredDatabase,
    own: Option<&str>,
    running: Option<&[String]>,
) -> Vec<String> {
    let kept = running.filter(|_| d.adopting).unwrap_or_default();
    let mut groups: Vec<String> = d
        .network
        .security_group_ids
        .iter()
        .cloned()
        .chain(own.map(String::from))
        .chain(kept.iter().cloned())
        .collect();
    groups.sort();
    groups.dedup();
    groups
}

pub use crate::Plan;

/// Pure: the estimated monthly cost of a database of `class` with `storage_gb` from
/// a Composition's price table, e.g. `USD 53.20`; `None` for a class it does not price.
pub fn monthly_cost(
    prices: &paved_api::PriceTable,
    class: &str,
    storage_gb: i32,
) -> Option<String> {
    prices.instances.get(class).map(|monthly| {
        let total = monthly + prices.storage_per_gb * storage_gb as f64;
        format!("{} {:.2}", prices.currency, total)
    })
}

/// How an observed database compares with the compliance floor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Judgement {
    /// Every way it falls short, one line each (`field: found; the floor wants …`).
    pub violations: Vec<String>,
    /// What the provider cannot show, so is not judged (`tls`, `deletionProtection`…).
    pub unseen: Vec<&'static str>,
}

/// Pure: an observed database against the compliance floor `d` was rendered with (the
/// Composition's key, private networking, TLS, backups, deletion protection where the
/// floor or the Composition asks for it, cost and ownership tags). What the provider
/// does not report is listed as unseen, never taken as met.
pub fn judge(d: &DesiredDatabase, o: &ObservedDatabase) -> Judgement {
    let mut j = Judgement::default();
    let v = &mut j.violations;
    match (o.storage_encrypted, &d.kms_key_id, &o.kms_key_id) {
        (None, ..) => j.unseen.push("encryption"),
        (Some(false), want, _) => v.push(format!(
            "encryption: storage is not encrypted; the floor encrypts it{}",
            want.as_ref()
                .map(|k| format!(" with {k}"))
                .unwrap_or_default()
        )),
        (_, Some(want), Some(have)) if !key_matches(want, have) => v.push(format!(
            "encryption: encrypted with {have}; the Composition's key is {want}"
        )),
        (_, Some(_), None) => j.unseen.push("encryption key"),
        _ => {}
    }
    match o.publicly_accessible {
        None => j.unseen.push("network"),
        Some(true) => {
            v.push("network: publicly accessible; the floor keeps databases private".into())
        }
        Some(false) => {}
    }
    match o.tls_required {
        None => j.unseen.push("tls"),
        Some(false) => {
            v.push("tls: unencrypted connections are accepted; the floor requires TLS".into())
        }
        Some(true) => {}
    }
    match o.backup_retention_days {
        None => j.unseen.push("backups"),
        Some(days) if days < d.backup_retention_days => v.push(format!(
            "backups: kept {days} days; the floor keeps them {} days",
            d.backup_retention_days
        )),
        Some(_) => {}
    }
    if d.deletion_protection {
        match o.deletion_protection {
            None => j.unseen.push("deletionProtection"),
            Some(false) => v.push(
                "deletionProtection: off; the floor (PHI) or the Composition turns it on".into(),
            ),
            Some(true) => {}
        }
    }
    match &o.tags {
        None => j.unseen.push("tags"),
        Some(tags) => {
            // The Composition's and the floor's tags, as the cloud spells them; Paved's
            // own (`paved.dev/…`) mark what it made, not what it observes.
            let wanted: BTreeMap<String, String> = d
                .tags
                .iter()
                .filter(|(k, _)| !k.starts_with("paved.dev/"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (k, want) in &cloud_tags(d.provider, &wanted) {
                match tags.get(k) {
                    None => v.push(format!("tag {k}: missing; the Composition sets {want:?}")),
                    Some(have) if have != want => {
                        v.push(format!("tag {k}: {have:?}; the Composition sets {want:?}"))
                    }
                    Some(_) => {}
                }
            }
        }
    }
    j
}

/// Pure: compares desired with observed. Storage only grows; encryption is never
/// weakened and a database found unencrypted or public is terminal.
pub fn plan(desired: &DesiredDatabase, observed: Option<&ObservedDatabase>) -> Plan {
    let Some(o) = observed else {
        return Plan::Create;
    };
    match o.state.as_str() {
        "available" | "storage-optimization" => {}
        "failed"
        | "incompatible-parameters"
        | "incompatible-network"
        | "storage-full"
        | "inaccessible-encryption-credentials" => {
            return Plan::Terminal {
                reason: paved_api::Reason::DatabaseFailed,
                message: format!("the cloud reports the database as {}", o.state),
            }
        }
        // A create that stopped half-way (the local provider's marker): finish it.
        "incomplete" => {
            return Plan::Update(vec![Drift {
                field: "create",
                observed: "incomplete".into(),
                desired: "complete".into(),
            }])
        }
        s => return Plan::Wait(format!("the database is {s}")),
    }
    if o.storage_encrypted == Some(false) {
        return Plan::Terminal {
            reason: paved_api::Reason::EncryptionMismatch,
            message: format!(
                "the database is not encrypted at rest; Paved will not run it that way and cannot encrypt it in place{}",
                reencrypt_howto(desired)
            ),
        };
    }
    if let (Some(want), Some(have)) = (&desired.kms_key_id, &o.kms_key_id) {
        if !key_matches(want, have) {
            return Plan::Terminal {
                reason: paved_api::Reason::EncryptionMismatch,
                message: format!(
                    "the database is encrypted with {have}, not the composition's key {want}{}",
                    reencrypt_howto(desired)
                ),
            };
        }
    }
    let mut drift = vec![];
    let mut check = |field: &'static str, observed: Option<String>, desired: String| {
        if let Some(o) = observed {
            if o != desired {
                drift.push(Drift {
                    field,
                    observed: o,
                    desired,
                });
            }
        }
    };
    check(
        "instanceClass",
        o.instance_class.clone(),
        desired.instance_class.clone(),
    );
    if o.storage_gb.is_some_and(|s| s < desired.storage_gb) {
        check(
            "storageGB",
            o.storage_gb.map(|s| s.to_string()),
            desired.storage_gb.to_string(),
        );
    }
    check(
        "multiAZ",
        o.multi_az.map(|b| b.to_string()),
        desired.multi_az.to_string(),
    );
    check(
        "backupRetentionDays",
        o.backup_retention_days.map(|r| r.to_string()),
        desired.backup_retention_days.to_string(),
    );
    check(
        "deletionProtection",
        o.deletion_protection.map(|b| b.to_string()),
        desired.deletion_protection.to_string(),
    );
    check(
        "publiclyAccessible",
        o.publicly_accessible.map(|b| b.to_string()),
        desired.publicly_accessible.to_string(),
    );
    check(
        "tlsRequired",
        o.tls_required.map(|b| b.to_string()),
        desired.tls_required.to_string(),
    );
    check(
        "iamAuthentication",
        o.iam_authentication.map(|b| b.to_string()),
        "true".into(),
    );
    check(
        "database",
        o.database_present
            .map(|p| if p { "present" } else { "missing" }.to_string()),
        "present".into(),
    );
    if desired.adopting {
        // Taking it over: the claim's mark and the Composition's tags go on first.
        if let Some(have) = &o.tags {
            let wrong = tags_wanted(desired, have);
            if !wrong.is_empty() {
                drift.push(Drift {
                    field: "tags",
                    observed: format!("{} missing or different", wrong.join(", ")),
                    desired: "the Composition's and Paved's tags".into(),
                });
            }
        }
        // A database named inside the server must be there: Paved never makes an
        // empty one in place of a typo.
        if o.database_present == Some(false) {
            return Plan::Terminal {
                reason: paved_api::Reason::NotAdoptable,
                message: format!(
                    "{} has no database {}; name the one the connection Secret should name in spec.existing.databaseName",
                    desired.external_name, desired.database_name
                ),
            };
        }
        // The cloud keeps the master password only where asked (RDS) or where Paved
        // put it (Key Vault, Secret Manager); the Composition says whether adopting may
        // replace one nobody keeps.
        if desired.provider != Cloud::Local
            && o.master_secret_ref.is_none()
            && desired.credentials.existing_password == paved_api::ExistingPassword::Rotate
        {
            drift.push(Drift {
                field: "masterPassword",
                observed: "not managed by RDS".into(),
                desired: "kept by the cloud (rotated)".into(),
            });
        }
    }
    // The database's own security group (observed only where the cloud has them).
    if desired.network.own_security_group.is_some() && o.security_groups.is_some() {
        match &o.own_security_group {
            None => drift.push(Drift {
                field: "securityGroup",
                observed: "missing".into(),
                desired: own_security_group_name(desired),
            }),
            Some(g) if g.owner_uid.as_deref() != Some(desired.owner_uid.as_str()) => {
                return Plan::Terminal {
                    reason: paved_api::Reason::OwnedByOther,
                    message: format!(
                        "security group {} ({}) is not this claim's (its {OWNER_TAG} tag says {}); Paved will not take it over",
                        own_security_group_name(desired),
                        g.id,
                        g.owner_uid.as_deref().unwrap_or("nothing")
                    ),
                };
            }
            Some(g) => {
                let rules = own_security_group_rules(desired);
                if g.rules != rules {
                    drift.push(Drift {
                        field: "securityGroupRules",
                        observed: g.rules.join(", "),
                        desired: rules.join(", "),
                    });
                }
                let groups =
                    instance_security_groups(desired, Some(&g.id), o.security_groups.as_deref());
                if o.security_groups.as_ref() != Some(&groups) {
                    drift.push(Drift {
                        field: "securityGroups",
                        observed: o.security_groups.clone().unwrap_or_default().join(", "),
                        desired: groups.join(", "),
                    });
                }
            }
        }
    }
    if drift.is_empty() {
        Plan::UpToDate
    } else {
        Plan::Update(drift)
    }
}

/// Pure: how to bring a database that cannot be re-encrypted in place under the
/// Composition's key (a copy, restored as a new database, then adopted).
fn reencrypt_howto(d: &DesiredDatabase) -> String {
    if !d.adopting {
        return String::new();
    }
    let key = d.kms_key_id.as_deref().unwrap_or("the Composition's key");
    let how = match d.provider {
        Cloud::Aws => format!(
            "snapshot it, copy the snapshot with --kms-key-id {key} (aws rds copy-db-snapshot), \
             restore the copy as a new instance (aws rds restore-db-instance-from-db-snapshot)"
        ),
        Cloud::Azure => format!(
            "restore it (point in time) into a new flexible server encrypted with {key}, or dump and restore"
        ),
        Cloud::Gcp => format!(
            "export it (gcloud sql export) and import it into a new instance encrypted with {key}"
        ),
        Cloud::Local => "dump and restore it onto an encrypted server".to_string(),
    };
    format!(
        ". To bring it under Paved: {how}, grant that one to this namespace and adopt it; \
         then retire {}",
        d.external_name
    )
}

/// The mark on an adopted Azure server or Cloud SQL instance whose administrator
/// password Paved replaced with the one it keeps; its value is the claim's UID, so a
/// later claim of the same server sets a password of its own.
pub const ADMIN_PASSWORD_TAG: &str = "paved.dev/admin-password";

/// Pure: the admin-password mark of claim `uid`, as `provider` spells tags.
pub fn admin_password_mark(provider: Cloud, uid: &str) -> (String, String) {
    cloud_tags(
        provider,
        &BTreeMap::from([(ADMIN_PASSWORD_TAG.to_string(), uid.to_string())]),
    )
    .into_iter()
    .next()
    .unwrap_or_default()
}

/// Pure: the tags (as the cloud spells them) a managed database should carry and does
/// not, or carries with another value; Paved's ownership mark among them.
pub fn tags_wanted(d: &DesiredDatabase, have: &BTreeMap<String, String>) -> Vec<String> {
    cloud_tags(d.provider, &d.tags)
        .into_iter()
        .filter(|(k, v)| have.get(k) != Some(v))
        .map(|(k, _)| k)
        .collect()
}

/// Pure: an adopted database as it will be managed: what the claim leaves unsaid of
/// its shape (`keeps_running`) as it runs, the database inside it as the cloud names
/// it, and the cost of that. Anything else is `d` itself.
pub fn as_running(d: &DesiredDatabase, o: &ObservedDatabase) -> DesiredDatabase {
    let mut d = d.clone();
    if !d.adopting {
        return d;
    }
    // Storage never shrinks, whatever the claim says.
    if let Some(gb) = o.storage_gb {
        d.storage_gb = d.storage_gb.max(gb);
    }
    for field in d.keeps_running.clone() {
        match field {
            "instanceClass" => {
                if let Some(c) = &o.instance_class {
                    d.instance_class = c.clone();
                }
            }
            "multiAZ" => {
                if let Some(m) = o.multi_az {
                    d.multi_az = m;
                }
            }
            "engineVersion" => {
                if let Some(v) = &o.engine_version {
                    d.engine_version = v.clone();
                }
            }
            _ => {}
        }
    }
    if d.provider == Cloud::Aws {
        // An instance made without a DBName has only the server's own database.
        d.database_name = o.database_name.clone().unwrap_or_else(|| "postgres".into());
    }
    if d.provider != Cloud::Local {
        if let Some(login) = &o.master_username {
            d.master_username = login.clone();
        }
    }
    if let Some(prices) = &d.prices {
        d.estimated_monthly_cost = monthly_cost(prices, &d.instance_class, d.storage_gb);
    }
    d
}

/// The maintenance window of a Composition that names none.
pub const DEFAULT_MAINTENANCE_WINDOW: &str = "sun:03:00-sun:05:00";

/// Fields whose change restarts or fails over the database.
const DISRUPTIVE: &[&str] = &["instanceClass", "multiAZ"];

/// Pure: `ddd:hh:mm` as minutes since Monday 00:00.
fn minute_of_week(s: &str) -> Option<u32> {
    let (day, hm) = s.split_once(':')?;
    let (h, m) = hm.split_once(':')?;
    let d = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .position(|x| *x == day)? as u32;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(d * 1440 + h * 60 + m)
}

/// Pure: whether `now` (minutes since Monday 00:00 UTC) is inside `window`
/// (`ddd:hh:mm-ddd:hh:mm`, which may wrap past Sunday). A window that does not parse
/// is never open: nothing disruptive goes out on a typo.
pub fn in_window(window: &str, now: u32) -> bool {
    let Some((start, end)) = window
        .split_once('-')
        .and_then(|(a, b)| Some((minute_of_week(a)?, minute_of_week(b)?)))
    else {
        return false;
    };
    if start <= end {
        (start..end).contains(&now)
    } else {
        now >= start || now < end
    }
}

/// Pure: the current minute of the week, UTC, from a Unix time in seconds.
pub fn minute_of_week_at(unix_seconds: i64) -> u32 {
    // 1970-01-01 was a Thursday: three days after a Monday.
    let minutes = unix_seconds.div_euclid(60) + 3 * 1440;
    minutes.rem_euclid(7 * 1440) as u32
}

/// What a reconcile corrects now, and what waits for the maintenance window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// Corrected now.
    pub now: Vec<Drift>,
    /// Waiting for the window.
    pub later: Vec<Drift>,
}

/// Pure: splits drift into what goes out now and what waits for the window. A
/// disruptive field waits when its desired value is a new wish (differs from what the
/// status says the database runs as, `running`), outside the window, unless the
/// Composition applies at once. The repair of a change made by hand (the wish is
/// unchanged) and everything not disruptive go out now.
pub fn hold(
    drift: Vec<Drift>,
    d: &DesiredDatabase,
    running: &paved_api::PostgreSQLInstanceStatus,
    now: u32,
) -> Held {
    let open = d.apply_immediately || in_window(&d.maintenance_window, now);
    let new_wish = |field: &str| match field {
        "instanceClass" => running
            .instance_class
            .as_ref()
            .is_some_and(|c| *c != d.instance_class),
        "multiAZ" => running.multi_az.is_some_and(|m| m != d.multi_az),
        _ => false,
    };
    let (later, now): (Vec<_>, Vec<_>) = drift
        .into_iter()
        .partition(|x| !open && DISRUPTIVE.contains(&x.field) && new_wish(x.field));
    Held { now, later }
}

/// Pure: `d` with the held fields left as the database runs them, so what is applied
/// (and shown in status) leaves them alone until the window.
pub fn without(mut d: DesiredDatabase, later: &[Drift]) -> DesiredDatabase {
    for x in later {
        match x.field {
            "instanceClass" => d.instance_class = x.observed.clone(),
            "multiAZ" => d.multi_az = x.observed == "true",
            _ => {}
        }
    }
    d
}

/// Where a database was created, recorded on its claim (annotation
/// `paved.dev/placement`) before the create call: deletion and every later look act
/// there, whatever the claim's Composition resolves to now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// The Composition the database was created with.
    pub composition: String,
    pub provider: Cloud,
    pub region: String,
    pub external_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<paved_api::AzurePlacement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp: Option<paved_api::GcpPlacement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_admin: Option<paved_api::SecretKeySelector>,
}

impl Placement {
    pub fn of(d: &DesiredDatabase, composition: &str) -> Self {
        Placement {
            composition: composition.to_string(),
            provider: d.provider,
            region: d.region.clone(),
            external_name: d.external_name.clone(),
            azure: d.azure.clone(),
            gcp: d.gcp.clone(),
            local_admin: d.local_admin.clone(),
        }
    }

    /// `provider/region`, the short form older claims recorded.
    pub fn location(&self) -> String {
        format!("{}/{}", self.provider, self.region)
    }

    /// Where the desired database would go differs from here (for a `LocationChanged`
    /// report); `None` when it is the same place.
    pub fn moved(&self, d: &DesiredDatabase) -> Option<String> {
        let now = Placement::of(d, &self.composition);
        // Where the server is; a Key Vault moved in the Composition is not a move.
        let at = |p: &Placement| {
            (
                p.provider,
                p.region.clone(),
                p.external_name.clone(),
                p.azure
                    .as_ref()
                    .map(|a| (a.subscription_id.clone(), a.resource_group.clone())),
                p.gcp.clone(),
                p.local_admin.clone(),
            )
        };
        (at(&now) != at(self)).then(|| describe_placement(&now))
    }
}

/// `aws/us-east-1`, `azure/eastus (subscription s, resource group g)`, ….
pub fn describe_placement(p: &Placement) -> String {
    let mut out = p.location();
    if let Some(a) = &p.azure {
        out.push_str(&format!(
            " (subscription {}, resource group {})",
            a.subscription_id, a.resource_group
        ));
    }
    if let Some(g) = &p.gcp {
        out.push_str(&format!(" (project {})", g.project));
    }
    if let Some(l) = &p.local_admin {
        out.push_str(&format!(" (server of Secret {}/{})", l.namespace, l.name));
    }
    out
}

/// Pure: what deleting a database takes — where it is, whose it is, and the policy —
/// from the placement recorded at create. The claim's spec and Composition need not
/// render any more (an edit after the create never blocks a deletion).
pub fn doomed(placement: &Placement, claim_uid: &str, policy: DeletionPolicy) -> DesiredDatabase {
    let name = placement.external_name.replace('-', "_");
    DesiredDatabase {
        provider: placement.provider,
        region: placement.region.clone(),
        external_name: placement.external_name.clone(),
        owner_uid: claim_uid.to_string(),
        deletion_policy: policy,
        azure: placement.azure.clone(),
        gcp: placement.gcp.clone(),
        local_admin: placement.local_admin.clone(),
        database_name: name.clone(),
        master_username: name,
        poll_interval: std::time::Duration::from_secs(10),
        ..Default::default()
    }
}

/// Pure: [`doomed`] for a claim that adopted an existing database: looked for by its
/// own name (and, on Azure and GCP, the database inside that the claim named), and on
/// `local` the claim's own login role is what goes.
pub fn doomed_adopted(
    placement: &Placement,
    claim_uid: &str,
    policy: DeletionPolicy,
    existing: &paved_api::ExistingDatabase,
) -> DesiredDatabase {
    let mut d = doomed(placement, claim_uid, policy);
    d.adopting = true;
    d.database_name = existing
        .database_name
        .clone()
        .unwrap_or_else(|| placement.external_name.clone());
    d.master_username = external_name(claim_uid).replace('-', "_");
    d
}

/// Pure: the policy a claim's deletion runs before any cascade: the claim's own, else
/// its Composition's default (a `Delete` default is a final snapshot), else — the
/// Composition is gone — a final snapshot. PHI always keeps a snapshot.
pub fn policy_at_deletion(
    spec: Option<DeletionPolicy>,
    composition_default: Option<DeletionPolicy>,
    classification: DataClassification,
) -> DeletionPolicy {
    let p = spec.unwrap_or(match composition_default {
        Some(DeletionPolicy::Delete) | None => DeletionPolicy::Snapshot,
        Some(p) => p,
    });
    if p == DeletionPolicy::Delete && classification == DataClassification::Phi {
        DeletionPolicy::Snapshot
    } else {
        p
    }
}

/// Why the claim is going: decides whether a `Delete` may drop data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionCause {
    /// Someone deleted this claim itself (kubectl, or Git without the claim).
    Direct,
    /// It goes with something else: its namespace is being deleted, or the
    /// ServiceClaim it came from is gone. Nobody asked for this database to go.
    Cascade,
}

/// Pure: why a claim is being deleted. A cascade when its namespace is gone or going,
/// or the ServiceClaim that made it (its owner reference) is gone, going, or another
/// claim of the same name now; `service_claim` is the ServiceClaim of that name.
pub fn deletion_cause(
    claim: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    namespace: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
    service_claim: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
) -> DeletionCause {
    if namespace.is_none_or(|n| n.deletion_timestamp.is_some()) {
        return DeletionCause::Cascade;
    }
    let parent = claim
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == "ServiceClaim");
    match parent {
        None => DeletionCause::Direct,
        Some(p) => match service_claim {
            Some(s)
                if s.uid.as_deref() == Some(p.uid.as_str()) && s.deletion_timestamp.is_none() =>
            {
                DeletionCause::Direct
            }
            _ => DeletionCause::Cascade,
        },
    }
}

/// Pure: the policy a deletion runs. A `Delete` drops data only when the claim was
/// deleted on its own *and* carries the explicit confirmation (`confirmed`: the
/// annotation `paved.dev/confirm-delete` set to its UID); otherwise — a prune, a move
/// between Git directories, a namespace or ServiceClaim going — a final snapshot is
/// taken first.
pub fn deletion_policy(
    policy: DeletionPolicy,
    cause: DeletionCause,
    confirmed: bool,
) -> DeletionPolicy {
    match (policy, cause, confirmed) {
        (DeletionPolicy::Delete, DeletionCause::Direct, true) => DeletionPolicy::Delete,
        (DeletionPolicy::Delete, _, _) => DeletionPolicy::Snapshot,
        (p, _, _) => p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paved_api::{
        BackupSpec, CredentialsSpec, DatabaseSize, DeletionSpec, EncryptionSpec, PriceTable,
        SizeMap, StorageSpec,
    };

    fn comp() -> PostgreSQLComposition {
        PostgreSQLComposition {
            provider: Cloud::Aws,
            region: "us-east-1".into(),
            engine_version: "16".into(),
            sizes: SizeMap {
                small: "db.t4g.medium".into(),
                medium: "db.r6g.large".into(),
                large: "db.r6g.2xlarge".into(),
                xlarge: None,
            },
            allowed_instance_classes: vec!["db.t3.medium".into()],
            storage: StorageSpec {
                min_gb: 20,
                max_gb: 100,
                default_gb: Some(50),
                type_: Some("gp3".into()),
            },
            encryption: Some(EncryptionSpec {
                key_id: "arn:aws:kms:us-east-1:1:key/k".into(),
                identity_id: None,
                ..Default::default()
            }),
            network: paved_api::DatabaseNetwork {
                subnet_group_name: Some("private".into()),
                security_group_ids: vec!["sg-1".into()],
                database_cidr: Some("10.20.0.0/16".into()),
                ..Default::default()
            },
            backup: BackupSpec {
                retention_days: 7,
                window: Some("03:00-04:00".into()),
                geo_redundant: false,
            },
            deletion: DeletionSpec {
                policy: DeletionPolicy::Delete,
                protection: false,
            },
            credentials: CredentialsSpec {
                refresh_interval: "1h".into(),
                ..Default::default()
            },
            tags: BTreeMap::from([
                ("Owner".into(), "platform".into()),
                ("Environment".into(), "prod".into()),
                ("Team".into(), "{owner}".into()),
            ]),
            poll_interval: "5m".into(),
            prices: Some(PriceTable {
                currency: "USD".into(),
                instances: BTreeMap::from([("db.t4g.medium".into(), 47.45)]),
                storage_per_gb: 0.115,
            }),
            ..Default::default()
        }
    }

    fn facts(c: DataClassification) -> NamespaceFacts {
        NamespaceFacts {
            cloud: Cloud::Aws,
            classification: c,
            owner: "team-a".into(),
            system: "sys".into(),
            service: "svc".into(),
            cost_center: "CC-1".into(),
            team: Some("team-claims".into()),
        }
    }

    fn render(
        spec: &PostgreSQLInstanceSpec,
        c: &PostgreSQLComposition,
        class: DataClassification,
    ) -> Result<DesiredDatabase, RenderError> {
        render_postgresql(&PostgresInput {
            claim_name: "db",
            claim_namespace: "svc",
            claim_uid: "0a1b2c3d-4e5f-6789-abcd-ef0123456789",
            spec,
            facts: &facts(class),
            composition_name: "pg",
            composition: c,
        })
    }

    fn ok(class: DataClassification) -> DesiredDatabase {
        render(&Default::default(), &comp(), class).unwrap()
    }

    #[test]
    fn names_derive_from_the_uid() {
        let d = ok(DataClassification::Internal);
        assert_eq!(d.external_name, "paved-0a1b2c3d4e5f6789abcd");
        assert_eq!(d.database_name, "paved_0a1b2c3d4e5f6789abcd");
        assert_eq!(
            external_name("0A1B2C3D-4E5F-6789-ABCD-EF0123456789"),
            d.external_name
        );
        assert_eq!(d.connection_secret, "db-connection");
    }

    #[test]
    fn defaults_come_from_the_composition() {
        let d = ok(DataClassification::Internal);
        assert_eq!(
            (
                d.instance_class.as_str(),
                d.storage_gb,
                d.engine_version.as_str()
            ),
            ("db.t4g.medium", 50, "16")
        );
        assert_eq!(d.estimated_monthly_cost.as_deref(), Some("USD 53.20"));
        assert_eq!(d.poll_interval, std::time::Duration::from_secs(300));
        // The composition says Delete; as a default that is a final snapshot.
        assert_eq!(d.deletion_policy, DeletionPolicy::Snapshot);
    }

    #[test]
    fn a_claim_going_with_its_namespace_or_service_is_a_cascade() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
        let alive = ObjectMeta::default();
        let going = ObjectMeta {
            deletion_timestamp: Some(Time(k8s_openapi::jiff::Timestamp::now())),
            ..Default::default()
        };
        let service = |uid: &str| ObjectMeta {
            uid: Some(uid.into()),
            ..Default::default()
        };
        let child = ObjectMeta {
            owner_references: Some(vec![OwnerReference {
                kind: "ServiceClaim".into(),
                name: "svc".into(),
                uid: "u1".into(),
                ..Default::default()
            }]),
            ..Default::default()
        };
        use DeletionCause::*;
        assert_eq!(deletion_cause(&alive, Some(&alive), None), Direct);
        assert_eq!(deletion_cause(&alive, Some(&going), None), Cascade);
        assert_eq!(deletion_cause(&alive, None, None), Cascade);
        assert_eq!(
            deletion_cause(&child, Some(&alive), Some(&service("u1"))),
            Direct
        );
        assert_eq!(deletion_cause(&child, Some(&alive), None), Cascade);
        // Pruned and created again (a move between Git directories): another claim.
        assert_eq!(
            deletion_cause(&child, Some(&alive), Some(&service("u2"))),
            Cascade
        );
        let mut deleting = service("u1");
        deleting.deletion_timestamp = going.deletion_timestamp.clone();
        assert_eq!(
            deletion_cause(&child, Some(&alive), Some(&deleting)),
            Cascade
        );
    }

    #[test]
    fn maintenance_windows_are_weekly_and_may_wrap() {
        let at = |s: &str| minute_of_week(s).unwrap();
        assert!(in_window("sun:03:00-sun:05:00", at("sun:04:59")));
        assert!(!in_window("sun:03:00-sun:05:00", at("sun:05:00")));
        assert!(!in_window("sun:03:00-sun:05:00", at("mon:04:00")));
        // Saturday night into Monday morning.
        assert!(in_window("sat:22:00-mon:02:00", at("sun:12:00")));
        assert!(in_window("sat:22:00-mon:02:00", at("mon:01:00")));
        assert!(!in_window("sat:22:00-mon:02:00", at("mon:03:00")));
        assert!(!in_window("nonsense", 0), "a bad window never opens");
        // 2026-12-06 is a Sunday; 04:00 UTC.
        assert_eq!(minute_of_week_at(1_796_529_600), at("sun:04:00"));
        assert_eq!(minute_of_week_at(0), at("thu:00:00"));
    }

    #[test]
    fn a_new_size_waits_for_the_window_and_a_hand_change_is_repaired_now() {
        let mut d = ok(DataClassification::Internal);
        d.instance_class = "db.r6g.large".into();
        let drift = |observed: &str| {
            vec![
                Drift {
                    field: "instanceClass",
                    observed: observed.into(),
                    desired: "db.r6g.large".into(),
                },
                Drift {
                    field: "deletionProtection",
                    observed: "false".into(),
                    desired: "true".into(),
                },
            ]
        };
        let running = |class: &str| paved_api::PostgreSQLInstanceStatus {
            instance_class: Some(class.into()),
            ..Default::default()
        };
        let outside = minute_of_week("wed:12:00").unwrap();
        let inside = minute_of_week("sun:04:00").unwrap();
        // A new wish (the status says it runs db.t4g.medium): held outside the window,
        // the security fix goes now.
        let h = hold(
            drift("db.t4g.medium"),
            &d,
            &running("db.t4g.medium"),
            outside,
        );
        assert_eq!(
            h.later.iter().map(|x| x.field).collect::<Vec<_>>(),
            ["instanceClass"]
        );
        assert_eq!(
            h.now.iter().map(|x| x.field).collect::<Vec<_>>(),
            ["deletionProtection"]
        );
        assert_eq!(without(d.clone(), &h.later).instance_class, "db.t4g.medium");
        // In the window, or when the Composition says at once: all now.
        assert!(hold(
            drift("db.t4g.medium"),
            &d,
            &running("db.t4g.medium"),
            inside
        )
        .later
        .is_empty());
        let mut now_d = d.clone();
        now_d.apply_immediately = true;
        assert!(hold(
            drift("db.t4g.medium"),
            &now_d,
            &running("db.t4g.medium"),
            outside
        )
        .later
        .is_empty());
        // Resized by hand (the wish did not change): repaired now.
        assert!(
            hold(drift("db.t3.small"), &d, &running("db.r6g.large"), outside)
                .later
                .is_empty()
        );
    }

    #[test]
    fn a_cascade_never_drops_data() {
        use DeletionCause::*;
        use DeletionPolicy::*;
        assert_eq!(deletion_policy(Delete, Direct, true), Delete);
        // Not confirmed (a prune, a rename in Git): a snapshot first.
        assert_eq!(deletion_policy(Delete, Direct, false), Snapshot);
        assert_eq!(deletion_policy(Delete, Cascade, true), Snapshot);
        assert_eq!(deletion_policy(Snapshot, Cascade, true), Snapshot);
        assert_eq!(deletion_policy(Orphan, Cascade, false), Orphan);
    }

    #[test]
    fn only_the_claim_itself_can_ask_for_delete() {
        let comp = comp();
        assert_eq!(comp.deletion.policy, DeletionPolicy::Delete);
        let class = DataClassification::Internal;
        let mut spec = PostgreSQLInstanceSpec::default();
        let policy =
            |spec: &PostgreSQLInstanceSpec| render(spec, &comp, class).unwrap().deletion_policy;
        assert_eq!(policy(&spec), DeletionPolicy::Snapshot);
        spec.deletion_policy = Some(DeletionPolicy::Delete);
        assert_eq!(policy(&spec), DeletionPolicy::Delete);
    }

    #[test]
    fn deletion_needs_no_composition_and_defaults_to_a_snapshot() {
        use DataClassification::*;
        use DeletionPolicy::*;
        assert_eq!(policy_at_deletion(None, None, Internal), Snapshot);
        assert_eq!(policy_at_deletion(None, Some(Delete), Internal), Snapshot);
        assert_eq!(policy_at_deletion(None, Some(Orphan), Internal), Orphan);
        assert_eq!(
            policy_at_deletion(Some(Delete), Some(Orphan), Internal),
            Delete
        );
        assert_eq!(policy_at_deletion(Some(Delete), None, Phi), Snapshot);
        let d = ok(Internal);
        let gone = doomed(&Placement::of(&d, "pg"), &d.owner_uid, Delete);
        assert_eq!(
            (
                &gone.external_name,
                &gone.database_name,
                &gone.master_username,
                &gone.region
            ),
            (
                &d.external_name,
                &d.database_name,
                &d.master_username,
                &d.region
            )
        );
    }

    #[test]
    fn a_placement_says_when_the_composition_moved_away() {
        let d = ok(DataClassification::Internal);
        let p = Placement::of(&d, "pg");
        let mut moved = d.clone();
        moved.region = "eu-west-1".into();
        moved.external_name = "paved-other".into();
        assert_eq!(p.moved(&d), None);
        assert!(p.moved(&moved).unwrap().contains("eu-west-1"));
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Placement>(&json).unwrap(), p);
    }

    #[test]
    fn floor_encryption_private_tls_always() {
        for class in [DataClassification::Public, DataClassification::Phi] {
            let d = ok(class);
            assert!(d.storage_encrypted && !d.publicly_accessible && d.tls_required);
            assert_eq!(
                d.kms_key_id.as_deref(),
                Some("arn:aws:kms:us-east-1:1:key/k")
            );
        }
    }

    #[test]
    fn floor_phi_gets_deletion_protection_geo_backups_and_keeps_a_snapshot() {
        let d = ok(DataClassification::Phi);
        assert!(d.deletion_protection && d.geo_redundant_backup);
        assert_eq!(
            d.deletion_policy,
            DeletionPolicy::Snapshot,
            "Delete becomes Snapshot for PHI"
        );
        let spec = PostgreSQLInstanceSpec {
            deletion_policy: Some(DeletionPolicy::Orphan),
            ..Default::default()
        };
        assert_eq!(
            render(&spec, &comp(), DataClassification::Phi)
                .unwrap()
                .deletion_policy,
            DeletionPolicy::Orphan
        );
        let d = ok(DataClassification::Internal);
        assert!(!d.deletion_protection && !d.geo_redundant_backup);
    }

    #[test]
    fn floor_backup_retention_is_at_least_seven_days() {
        // A composition that slipped past admission (e.g. an old one) is refused outright.
        let mut c = comp();
        c.backup.retention_days = 3;
        assert_eq!(
            render(&Default::default(), &c, DataClassification::Internal)
                .unwrap_err()
                .reason(),
            paved_api::Reason::CompositionViolatesFloor
        );
        // And the floor itself never lowers what a composition asks for.
        let mut c = comp();
        c.backup.retention_days = 14;
        assert_eq!(
            render(&Default::default(), &c, DataClassification::Internal)
                .unwrap()
                .backup_retention_days,
            14
        );
    }

    #[test]
    fn floor_compliance_tags_cannot_be_overridden() {
        let d = ok(DataClassification::Phi);
        assert_eq!(
            d.tags["Owner"], "team-a",
            "the composition's Owner is replaced by the real owner"
        );
        assert_eq!(d.tags["App"], "svc");
        assert_eq!(d.tags["CostCenter"], "CC-1");
        assert_eq!(d.tags["Environment"], "prod");
        assert_eq!(d.tags["Team"], "team-a");
        assert_eq!(d.tags[OWNER_TAG], "0a1b2c3d-4e5f-6789-abcd-ef0123456789");
        assert_eq!(d.tags["paved.dev/claim"], "svc/db");
    }

    #[test]
    fn the_local_provider_refuses_phi_with_a_reason() {
        let mut c = comp();
        c.provider = Cloud::Local;
        c.encryption = None;
        c.local = Some(paved_api::LocalProviderSpec {
            admin_secret_ref: Default::default(),
        });
        let err = render(&Default::default(), &c, DataClassification::Phi).unwrap_err();
        assert_eq!(err.reason().as_str(), "ClassificationNotSupported");
        assert!(
            err.to_string().contains("customer-managed encryption"),
            "{err}"
        );
        assert!(render(&Default::default(), &c, DataClassification::Confidential).is_ok());
    }

    #[test]
    fn sizes_classes_and_storage_are_bounded_by_the_composition() {
        let p = |f: fn(&mut paved_api::PostgreSQLParameters)| {
            let mut spec = PostgreSQLInstanceSpec::default();
            f(&mut spec.parameters);
            render(&spec, &comp(), DataClassification::Internal)
        };
        assert_eq!(
            p(|x| x.size = Some(DatabaseSize::Medium))
                .unwrap()
                .instance_class,
            "db.r6g.large"
        );
        assert!(p(|x| x.size = Some(DatabaseSize::Xlarge))
            .unwrap_err()
            .to_string()
            .contains("no xlarge"));
        assert_eq!(
            p(|x| x.instance_class = Some("db.t3.medium".into()))
                .unwrap()
                .instance_class,
            "db.t3.medium"
        );
        let e = p(|x| x.instance_class = Some("db.x2.huge".into())).unwrap_err();
        assert!(e.to_string().contains("db.x2.huge is not allowed"), "{e}");
        assert!(p(|x| x.storage_gb = Some(500))
            .unwrap_err()
            .to_string()
            .contains("outside"));
        assert!(p(|x| x.storage_gb = Some(10)).is_err());
        assert!(p(|x| x.multi_az = Some(true)).unwrap().multi_az);
        assert!(p(|x| x.high_availability = Some(true)).unwrap().multi_az);
    }

    #[test]
    fn durations_parse() {
        assert_eq!(
            parse_duration("5m"),
            Some(std::time::Duration::from_secs(300))
        );
        assert_eq!(
            parse_duration("1h30m"),
            Some(std::time::Duration::from_secs(5400))
        );
        assert_eq!(
            parse_duration("250ms"),
            Some(std::time::Duration::from_millis(250))
        );
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("x"), None);
    }

    fn available(d: &DesiredDatabase) -> ObservedDatabase {
        ObservedDatabase {
            state: "available".into(),
            instance_class: Some(d.instance_class.clone()),
            storage_gb: Some(d.storage_gb),
            multi_az: Some(d.multi_az),
            backup_retention_days: Some(d.backup_retention_days),
            deletion_protection: Some(d.deletion_protection),
            storage_encrypted: Some(true),
            kms_key_id: d.kms_key_id.clone(),
            publicly_accessible: Some(false),
            ..Default::default()
        }
    }

    #[test]
    fn an_existing_database_is_named_by_the_claim_and_never_deleted() {
        let spec = PostgreSQLInstanceSpec {
            existing: Some(paved_api::ExistingDatabase {
                external_name: "legacy-orders".into(),
                ..Default::default()
            }),
            deletion_policy: Some(DeletionPolicy::Delete),
            ..Default::default()
        };
        for class in [DataClassification::Internal, DataClassification::Phi] {
            let d = render(&spec, &comp(), class).unwrap();
            assert!(d.observe_only);
            assert_eq!(d.external_name, "legacy-orders");
            assert_eq!(d.database_name, "legacy-orders");
            assert_eq!(d.deletion_policy, DeletionPolicy::Orphan, "{class:?}");
            // Still judged against the floor.
            assert!(d.backup_retention_days >= floor::MIN_BACKUP_RETENTION_DAYS);
        }
    }

    #[test]
    fn an_adopted_database_keeps_its_shape_where_the_claim_is_silent() {
        let adopt = |parameters: paved_api::PostgreSQLParameters, policy| PostgreSQLInstanceSpec {
            existing: Some(paved_api::ExistingDatabase {
                external_name: "legacy-orders".into(),
                mode: paved_api::ExistingMode::Adopt,
                ..Default::default()
            }),
            parameters,
            deletion_policy: policy,
            ..Default::default()
        };
        let d = render(
            &adopt(Default::default(), None),
            &comp(),
            DataClassification::Internal,
        )
        .unwrap();
        assert!(d.adopting && !d.observe_only);
        assert_eq!(d.existing(), Some(paved_api::ExistingMode::Adopt));
        // Left in place unless the claim says otherwise; its login role is the claim's.
        assert_eq!(d.deletion_policy, DeletionPolicy::Orphan);
        assert_eq!(d.master_username, "paved_0a1b2c3d4e5f6789abcd");
        assert_eq!(
            d.keeps_running,
            ["instanceClass", "storageGB", "multiAZ", "engineVersion"]
        );
        let mut o = available(&d);
        o.instance_class = Some("db.r6g.xlarge".into());
        o.storage_gb = Some(900);
        o.multi_az = Some(true);
        o.engine_version = Some("14.9".into());
        o.database_name = Some("orders".into());
        let r = as_running(&d, &o);
        assert_eq!(
            (
                r.instance_class.as_str(),
                r.storage_gb,
                r.multi_az,
                r.engine_version.as_str()
            ),
            ("db.r6g.xlarge", 900, true, "14.9")
        );
        assert_eq!(r.database_name, "orders");
        // What the claim says is what it gets; PHI keeps a snapshot of an explicit Delete.
        let said = paved_api::PostgreSQLParameters {
            size: Some(paved_api::DatabaseSize::Medium),
            storage_gb: Some(80),
            ..Default::default()
        };
        let d = render(
            &adopt(said, Some(DeletionPolicy::Delete)),
            &comp(),
            DataClassification::Phi,
        )
        .unwrap();
        assert_eq!(d.keeps_running, ["multiAZ", "engineVersion"]);
        // Storage only grows: 80 asked of a database at 900 stays 900.
        assert_eq!(d.deletion_policy, DeletionPolicy::Snapshot);
        let r = as_running(&d, &o);
        assert_eq!(
            (r.storage_gb, r.instance_class.as_str()),
            (900, comp().sizes.medium.as_str())
        );
        // A database Paved makes is never reshaped by what it finds.
        let made = ok(DataClassification::Internal);
        assert_eq!(as_running(&made, &o), made);
    }

    #[test]
    fn adopting_marks_and_brings_up_to_the_floor_what_changes_in_place() {
        let mut d = ok(DataClassification::Phi);
        d.adopting = true;
        d.credentials.existing_password = paved_api::ExistingPassword::Rotate;
        let mut o = available(&d);
        o.publicly_accessible = Some(true);
        o.backup_retention_days = Some(1);
        o.deletion_protection = Some(false);
        o.tls_required = Some(false);
        o.tags = Some([("Team".to_string(), "x".to_string())].into());
        let Plan::Update(drift) = plan(&d, Some(&o)) else {
            panic!("expected an update")
        };
        let fields: Vec<_> = drift.iter().map(|x| x.field).collect();
        for f in [
            "backupRetentionDays",
            "deletionProtection",
            "publiclyAccessible",
            "tlsRequired",
            "tags",
            "masterPassword",
        ] {
            assert!(fields.contains(&f), "{f} in {fields:?}");
        }
        // Marked and tagged, with its password kept by RDS: nothing left to do there.
        o = available(&d);
        o.tls_required = Some(true);
        o.master_secret_ref = Some("arn:secret".into());
        o.tags = Some(cloud_tags(d.provider, &d.tags));
        assert_eq!(plan(&d, Some(&o)), Plan::UpToDate);
        // Keep: a password nobody manages is left alone.
        d.credentials.existing_password = paved_api::ExistingPassword::Keep;
        o.master_secret_ref = None;
        assert_eq!(plan(&d, Some(&o)), Plan::UpToDate);
        // Another key: refused, saying how to bring it over.
        o.kms_key_id = Some("arn:aws:kms:us-east-1:1:key/other".into());
        assert!(matches!(
            plan(&d, Some(&o)),
            Plan::Terminal { reason: paved_api::Reason::EncryptionMismatch, message }
                if message.contains("copy-db-snapshot") && message.contains("adopt")
        ));
        // It stays in the security groups it is in, and joins the Composition's.
        d.network.security_group_ids = vec!["sg-platform".into()];
        let kept = vec!["sg-legacy".to_string()];
        assert_eq!(
            instance_security_groups(&d, Some("sg-own"), Some(&kept)),
            ["sg-legacy", "sg-own", "sg-platform"]
        );
        d.adopting = false;
        assert_eq!(
            instance_security_groups(&d, Some("sg-own"), Some(&kept)),
            ["sg-own", "sg-platform"]
        );
    }

    #[test]
    fn adopting_a_server_that_holds_several_databases_names_the_one_to_deliver() {
        let spec = |inside: Option<&str>| PostgreSQLInstanceSpec {
            existing: Some(paved_api::ExistingDatabase {
                external_name: "legacy".into(),
                mode: paved_api::ExistingMode::Adopt,
                database_name: inside.map(String::from),
            }),
            ..Default::default()
        };
        for cloud in [Cloud::Azure, Cloud::Gcp] {
            let mut c = comp();
            c.provider = cloud;
            let e = render(&spec(None), &c, DataClassification::Internal).unwrap_err();
            assert_eq!(e.reason(), paved_api::Reason::NotAdoptable);
            assert!(e.to_string().contains("spec.existing.databaseName"), "{e}");
        }
        // Only where a server holds several: on AWS (or local) it would name another.
        let e = render(&spec(Some("orders")), &comp(), DataClassification::Internal).unwrap_err();
        assert!(e.to_string().contains("only for an Azure"), "{e}");
        // Named on a server that holds several: delivered with it. (Rendered past the
        // Composition check, which is not the point here.)
        let mut d = render(&spec(None), &comp(), DataClassification::Internal).unwrap();
        d.database_name = "orders".into();
        // And it must be there: a typo never becomes an empty database.
        let mut o = available(&d);
        o.database_present = Some(false);
        assert!(matches!(
            plan(&d, Some(&o)),
            Plan::Terminal { reason: paved_api::Reason::NotAdoptable, message } if message.contains("orders")
        ));
    }

    #[test]
    fn an_observed_database_is_judged_against_the_floor_line_by_line() {
        let d = ok(DataClassification::Phi);
        let mut o = available(&d);
        o.tags = Some(
            cloud_tags(d.provider, &d.tags)
                .into_iter()
                .filter(|(k, _)| !k.starts_with("paved.dev/"))
                .collect(),
        );
        o.tls_required = Some(true);
        assert_eq!(
            judge(&d, &o),
            Judgement::default(),
            "compliant, all of it seen"
        );
        // What a hand-made database typically is.
        o.kms_key_id = Some("arn:aws:kms:us-east-1:1:key/someone-elses".into());
        o.publicly_accessible = Some(true);
        o.tls_required = Some(false);
        o.backup_retention_days = Some(1);
        o.deletion_protection = Some(false);
        o.tags.as_mut().unwrap().remove("CostCenter");
        o.tags
            .as_mut()
            .unwrap()
            .insert("Owner".into(), "nobody".into());
        let v = judge(&d, &o).violations;
        let fields: Vec<&str> = v.iter().map(|l| l.split(':').next().unwrap()).collect();
        assert_eq!(
            fields,
            [
                "encryption",
                "network",
                "tls",
                "backups",
                "deletionProtection",
                "tag CostCenter",
                "tag Owner"
            ],
            "{v:#?}"
        );
        assert!(v[0].contains("someone-elses") && v[0].contains(d.kms_key_id.as_deref().unwrap()));
        // Not encrypted at all says so; what a provider cannot see is unseen, not met.
        let mut bare = available(&d);
        bare.storage_encrypted = Some(false);
        bare.kms_key_id = None;
        bare.deletion_protection = None;
        let j = judge(&d, &bare);
        assert_eq!(j.violations.len(), 1, "{j:?}");
        assert!(j.violations[0].starts_with("encryption: storage is not encrypted"));
        assert_eq!(j.unseen, ["tls", "deletionProtection", "tags"]);
    }

    #[test]
    fn a_databases_own_security_group_is_made_kept_to_its_rules_and_never_taken() {
        let mut d = ok(DataClassification::Internal);
        d.network.own_security_group = Some(paved_api::OwnSecurityGroup {
            vpc_id: "vpc-1".into(),
            client_cidrs: vec!["10.1.0.0/16".into(), "10.0.0.0/16".into()],
        });
        assert_eq!(
            own_security_group_name(&d),
            format!("paved-{}", d.external_name)
        );
        let rules = own_security_group_rules(&d);
        assert_eq!(
            rules,
            vec![
                "in tcp 5432-5432 10.0.0.0/16",
                "in tcp 5432-5432 10.1.0.0/16"
            ]
        );
        // Another cloud's observation (no security groups at all): nothing to say.
        assert_eq!(plan(&d, Some(&available(&d))), Plan::UpToDate);
        // AWS without IAM database authentication (made before Paved turned it on).
        let Plan::Update(drift) = plan(
            &d,
            Some(&ObservedDatabase {
                iam_authentication: Some(false),
                ..available(&d)
            }),
        ) else {
            panic!("expected an update")
        };
        assert_eq!(drift[0].field, "iamAuthentication");
        // AWS, the group missing: made.
        let aws = ObservedDatabase {
            security_groups: Some(vec!["sg-1".into()]),
            ..available(&d)
        };
        let Plan::Update(drift) = plan(&d, Some(&aws)) else {
            panic!("expected an update")
        };
        assert_eq!(drift[0].field, "securityGroup");
        // Ours, as desired, the instance in it: up to date.
        let mine = ObservedSecurityGroup {
            id: "sg-own".into(),
            owner_uid: Some(d.owner_uid.clone()),
            rules: rules.clone(),
        };
        let good = ObservedDatabase {
            security_groups: Some(instance_security_groups(&d, Some("sg-own"), None)),
            own_security_group: Some(mine.clone()),
            ..available(&d)
        };
        assert_eq!(
            good.security_groups,
            Some(vec!["sg-1".into(), "sg-own".into()])
        );
        assert_eq!(plan(&d, Some(&good)), Plan::UpToDate);
        // A rule added by hand (and the default egress), and the instance taken out.
        let widened = ObservedDatabase {
            security_groups: Some(vec!["sg-1".into()]),
            own_security_group: Some(ObservedSecurityGroup {
                rules: vec![
                    "in tcp 0-65535 0.0.0.0/0".into(),
                    "out -1 0-0 0.0.0.0/0".into(),
                ],
                ..mine.clone()
            }),
            ..available(&d)
        };
        let Plan::Update(drift) = plan(&d, Some(&widened)) else {
            panic!("expected an update")
        };
        let fields: Vec<&str> = drift.iter().map(|x| x.field).collect();
        assert_eq!(fields, vec!["securityGroupRules", "securityGroups"]);
        // Someone else's group of that name: never taken over.
        let theirs = ObservedDatabase {
            own_security_group: Some(ObservedSecurityGroup {
                owner_uid: None,
                ..mine
            }),
            ..good
        };
        assert!(matches!(
            plan(&d, Some(&theirs)),
            Plan::Terminal {
                reason: paved_api::Reason::OwnedByOther,
                ..
            }
        ));
    }

    #[test]
    fn plan_requires_tls_and_the_database_inside_the_server() {
        let d = ok(DataClassification::Internal);
        let o = ObservedDatabase {
            tls_required: Some(false),
            database_present: Some(false),
            ..available(&d)
        };
        let Plan::Update(drift) = plan(&d, Some(&o)) else {
            panic!("expected update")
        };
        let fields: Vec<_> = drift.iter().map(|x| x.field).collect();
        assert_eq!(fields, vec!["tlsRequired", "database"]);
        let o = ObservedDatabase {
            tls_required: Some(true),
            database_present: Some(true),
            ..available(&d)
        };
        assert_eq!(plan(&d, Some(&o)), Plan::UpToDate);
    }

    #[test]
    fn tags_follow_each_clouds_naming_rules_and_the_floor_wins() {
        let tags = BTreeMap::from([
            ("environment".to_string(), "prod".to_string()),
            ("Environment".to_string(), "Staging".to_string()),
            ("Owner".to_string(), "Team-A@Example.com".to_string()),
            (OWNER_TAG.to_string(), "0a1b-2c".to_string()),
            ("9lives".to_string(), "x".repeat(80)),
        ]);
        let gcp = cloud_tags(Cloud::Gcp, &tags);
        assert_eq!(
            gcp["environment"], "staging",
            "the floor's Environment wins"
        );
        assert_eq!(gcp["owner"], "team-a_example_com");
        assert_eq!(gcp["paved_dev_claim-uid"], "0a1b-2c");
        assert_eq!(gcp["k9lives"].len(), 63);
        for (k, v) in &gcp {
            assert!(
                k.len() <= 63 && k.starts_with(|c: char| c.is_ascii_lowercase()),
                "{k}"
            );
            assert!(k
                .chars()
                .chain(v.chars())
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'));
        }
        let azure = cloud_tags(Cloud::Azure, &tags);
        assert_eq!(azure["paved.dev_claim-uid"], "0a1b-2c");
        assert_eq!(azure["Owner"], "Team-A@Example.com");
        assert!(azure.keys().all(|k| !k.contains('/')));
        assert_eq!(cloud_tags(Cloud::Aws, &tags), tags);
        assert_eq!(cloud_tag_key(Cloud::Gcp, OWNER_TAG), "paved_dev_claim-uid");
    }

    #[test]
    fn azure_storage_rounds_up_to_a_size_azure_sells() {
        assert_eq!(azure_storage_gb(20), 32);
        assert_eq!(azure_storage_gb(32), 32);
        assert_eq!(azure_storage_gb(50), 64);
        assert_eq!(azure_storage_gb(5000), 8192);
        assert_eq!(azure_storage_gb(40000), 32767);
        assert_eq!(azure_sku_tier("Standard_B2s"), "Burstable");
        assert_eq!(azure_sku_tier("Standard_D4ds_v5"), "GeneralPurpose");
        assert_eq!(azure_sku_tier("Standard_E4ds_v5"), "MemoryOptimized");
    }

    #[test]
    fn plan_creates_waits_and_settles() {
        let d = ok(DataClassification::Internal);
        assert_eq!(plan(&d, None), Plan::Create);
        for s in ["creating", "modifying", "backing-up", "rebooting"] {
            let o = ObservedDatabase {
                state: s.into(),
                ..available(&d)
            };
            assert!(matches!(plan(&d, Some(&o)), Plan::Wait(m) if m.contains(s)));
        }
        assert_eq!(plan(&d, Some(&available(&d))), Plan::UpToDate);
        let o = ObservedDatabase {
            state: "failed".into(),
            ..available(&d)
        };
        assert!(matches!(plan(&d, Some(&o)), Plan::Terminal { .. }));
    }

    #[test]
    fn plan_corrects_mutable_drift_and_grows_but_never_shrinks_storage() {
        let d = ok(DataClassification::Internal);
        let o = ObservedDatabase {
            instance_class: Some("db.t3.medium".into()),
            multi_az: Some(true),
            backup_retention_days: Some(1),
            deletion_protection: Some(true),
            ..available(&d)
        };
        let Plan::Update(drift) = plan(&d, Some(&o)) else {
            panic!("expected update")
        };
        let fields: Vec<_> = drift.iter().map(|x| x.field).collect();
        assert_eq!(
            fields,
            vec![
                "instanceClass",
                "multiAZ",
                "backupRetentionDays",
                "deletionProtection"
            ]
        );
        let o = ObservedDatabase {
            storage_gb: Some(20),
            ..available(&d)
        };
        assert!(matches!(plan(&d, Some(&o)), Plan::Update(x) if x[0].field == "storageGB"));
        let o = ObservedDatabase {
            storage_gb: Some(80),
            ..available(&d)
        };
        assert_eq!(
            plan(&d, Some(&o)),
            Plan::UpToDate,
            "a larger disk is left alone"
        );
        let o = ObservedDatabase {
            publicly_accessible: Some(true),
            ..available(&d)
        };
        assert!(
            matches!(plan(&d, Some(&o)), Plan::Update(x) if x[0].field == "publiclyAccessible")
        );
    }

    #[test]
    fn plan_never_accepts_weakened_encryption() {
        let d = ok(DataClassification::Internal);
        let o = ObservedDatabase {
            storage_encrypted: Some(false),
            ..available(&d)
        };
        assert!(
            matches!(plan(&d, Some(&o)), Plan::Terminal { reason, .. } if reason == paved_api::Reason::EncryptionMismatch)
        );
        let o = ObservedDatabase {
            kms_key_id: Some("arn:aws:kms:us-east-1:1:key/other".into()),
            ..available(&d)
        };
        assert!(
            matches!(plan(&d, Some(&o)), Plan::Terminal { reason, .. } if reason == paved_api::Reason::EncryptionMismatch)
        );
    }

    #[test]
    fn namespace_facts_default_to_phi() {
        let f = NamespaceFacts::from_labels("ns", &BTreeMap::new(), Cloud::Gcp);
        assert_eq!(
            (f.classification, f.cloud, f.service.as_str()),
            (DataClassification::Phi, Cloud::Gcp, "ns")
        );
        let l = BTreeMap::from([
            (labels::CLOUD.to_string(), "local".to_string()),
            (labels::CLASSIFICATION.to_string(), "internal".to_string()),
        ]);
        let f = NamespaceFacts::from_labels("ns", &l, Cloud::Gcp);
        assert_eq!(
            (f.classification, f.cloud),
            (DataClassification::Internal, Cloud::Local)
        );
    }

    #[test]
    fn composition_choice() {
        use paved_api::{CompositionReference, CompositionSelector, CompositionSpec};
        use std::sync::Arc;
        let mk = |name: &str, default_for: &str| {
            let mut c = Composition::new(
                name,
                CompositionSpec {
                    postgresql: Some(comp()),
                    ..Default::default()
                },
            );
            c.metadata.labels = Some(BTreeMap::from([
                (labels::DEFAULT_FOR.to_string(), default_for.to_string()),
                ("tier".to_string(), name.to_string()),
            ]));
            Arc::new(c)
        };
        let all = vec![mk("a", "aws"), mk("g", "gcp")];
        let spec = PostgreSQLInstanceSpec::default();
        assert_eq!(
            pick_composition(&spec, Cloud::Gcp, &all)
                .unwrap()
                .metadata
                .name
                .as_deref(),
            Some("g")
        );
        assert!(pick_composition(&spec, Cloud::Azure, &all)
            .unwrap_err()
            .contains("no postgresql composition"));
        let spec = PostgreSQLInstanceSpec {
            composition_ref: Some(CompositionReference { name: "a".into() }),
            ..Default::default()
        };
        assert_eq!(
            pick_composition(&spec, Cloud::Gcp, &all)
                .unwrap()
                .metadata
                .name
                .as_deref(),
            Some("a")
        );
        let spec = PostgreSQLInstanceSpec {
            composition_ref: Some(CompositionReference { name: "zz".into() }),
            ..Default::default()
        };
        assert!(pick_composition(&spec, Cloud::Gcp, &all)
            .unwrap_err()
            .contains("zz not found"));
        let spec = PostgreSQLInstanceSpec {
            composition_selector: Some(CompositionSelector {
                match_labels: BTreeMap::from([("tier".into(), "a".into())]),
            }),
            ..Default::default()
        };
        assert_eq!(
            pick_composition(&spec, Cloud::Gcp, &all)
                .unwrap()
                .metadata
                .name
                .as_deref(),
            Some("a")
        );
    }
}

// ------------------------------------------------------------------ delivery

/// Who owns the objects a database claim delivers into its namespace.
#[derive(Debug, Clone)]
pub struct ClaimRef<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub uid: &'a str,
}

/// Objects that deliver a database to its namespace: an ExternalSecret that writes the
/// connection Secret from the master credentials (the cloud-managed master secret, or
/// the `local` provider's Secret in the platform's secrets namespace), read through the
/// namespace's own SecretStore `paved` as the service's identity, and an egress
/// NetworkPolicy to the database range.
pub fn delivery_objects(
    claim: &ClaimRef<'_>,
    d: &DesiredDatabase,
    endpoint: &str,
    port: i32,
    master_secret_ref: &str,
) -> Vec<crate::DesiredObject> {
    use serde_json::json;
    let meta = |name: &str| {
        json!({
            "name": name,
            "namespace": claim.namespace,
            "labels": {
                labels::MANAGED_BY: labels::MANAGED_BY_VALUE,
                labels::CLAIM_KIND: "PostgreSQLInstance",
                labels::CLAIM_NAME: claim.name,
            },
            "ownerReferences": [{
                "apiVersion": format!("{}/{}", paved_api::GROUP, paved_api::VERSION),
                "kind": "PostgreSQLInstance", "name": claim.name, "uid": claim.uid,
                "controller": true, "blockOwnerDeletion": true,
            }],
        })
    };
    // The local server speaks TLS only if its operator set it up; clouds always do.
    let sslmode = if d.provider == Cloud::Local {
        "prefer"
    } else {
        "require"
    };
    let base = format!("{endpoint}:{port}/{}", d.database_name);
    let mut out = vec![crate::DesiredObject {
        api_version: "external-secrets.io/v1".into(),
        kind: "ExternalSecret".into(),
        plural: "externalsecrets".into(),
        namespace: Some(claim.namespace.into()),
        name: d.connection_secret.clone(),
        body: json!({
            "apiVersion": "external-secrets.io/v1",
            "kind": "ExternalSecret",
            "metadata": meta(&d.connection_secret),
            "spec": {
                "refreshInterval": d.credentials.refresh_interval,
                "secretStoreRef": crate::service::store_ref(),
                "target": {
                    "name": d.connection_secret,
                    "creationPolicy": "Owner",
                    "template": {
                        "engineVersion": "v2",
                        // The claim's mark on the Secret External Secrets writes, so
                        // Paved knows it as this claim's (never another's to overwrite).
                        "metadata": { "labels": {
                            labels::MANAGED_BY: labels::MANAGED_BY_VALUE,
                            labels::CLAIM_KIND: "PostgreSQLInstance",
                            labels::CLAIM_NAME: claim.name,
                            labels::CLAIM_UID: claim.uid,
                        } },
                        "data": {
                            "host": endpoint,
                            "port": port.to_string(),
                            "database": d.database_name,
                            "username": "{{ .username }}",
                            "password": "{{ .password }}",
                            "sslmode": sslmode,
                            "uri": format!("postgresql://{{{{ .username | urlquery }}}}:{{{{ .password | urlquery }}}}@{base}?sslmode={sslmode}"),
                        },
                    },
                },
                "dataFrom": [ { "extract": { "key": master_secret_ref } } ],
            },
        }),
    }];
    if let Some(cidr) = egress_range(endpoint, d.network.database_cidr.as_deref()) {
        let name = format!("paved-db-{}", claim.name);
        out.push(crate::DesiredObject {
            api_version: "networking.k8s.io/v1".into(),
            kind: "NetworkPolicy".into(),
            plural: "networkpolicies".into(),
            namespace: Some(claim.namespace.into()),
            name: name.clone(),
            body: json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": meta(&name),
                "spec": {
                    "podSelector": {},
                    "policyTypes": ["Egress"],
                    "egress": [ { "to": [ { "ipBlock": { "cidr": cidr } } ], "ports": [ { "protocol": "TCP", "port": port } ] } ],
                },
            }),
        });
    }
    out
}

/// The narrowest range egress to a database can name: the endpoint itself when it is
/// an address, else the Composition's database range (a cloud endpoint is a name whose
/// address may change), else none.
pub fn egress_range(endpoint: &str, database_cidr: Option<&str>) -> Option<String> {
    match endpoint.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => Some(format!("{ip}/32")),
        Ok(std::net::IpAddr::V6(ip)) => Some(format!("{ip}/128")),
        Err(_) => database_cidr.map(String::from),
    }
}

#[cfg(test)]
mod delivery_tests {
    use super::*;

    #[test]
    fn egress_names_the_one_database_address_when_it_can() {
        assert_eq!(
            egress_range("10.1.2.3", Some("10.0.0.0/8")).as_deref(),
            Some("10.1.2.3/32")
        );
        assert_eq!(
            egress_range("fd00::5", None).as_deref(),
            Some("fd00::5/128")
        );
        assert_eq!(
            egress_range("db.abc.rds.amazonaws.com", Some("10.20.0.0/16")).as_deref(),
            Some("10.20.0.0/16")
        );
        assert_eq!(egress_range("db.example", None), None);
    }

    #[test]
    fn the_connection_secret_is_templated_from_the_cloud_secret_and_egress_is_narrow() {
        let mut d = super::tests_support::desired();
        d.network.database_cidr = Some("10.20.0.0/16".into());
        let claim = ClaimRef {
            name: "db",
            namespace: "svc",
            uid: "u1",
        };
        let objs = delivery_objects(&claim, &d, "db.example", 5432, "arn:secret");
        let es = &objs[0].body;
        assert_eq!(es["spec"]["dataFrom"][0]["extract"]["key"], "arn:secret");
        assert_eq!(es["spec"]["target"]["name"], "db-connection");
        assert_eq!(
            es["spec"]["secretStoreRef"],
            serde_json::json!({ "kind": "SecretStore", "name": "paved" })
        );
        let data = &es["spec"]["target"]["template"]["data"];
        assert_eq!(data["host"], "db.example");
        assert_eq!(data["sslmode"], "require");
        assert_eq!(
            data["uri"],
            format!("postgresql://{{{{ .username | urlquery }}}}:{{{{ .password | urlquery }}}}@db.example:5432/{}?sslmode=require", d.database_name)
        );
        assert_eq!(es["metadata"]["ownerReferences"][0]["uid"], "u1");
        let np = &objs[1].body;
        assert_eq!(
            np["spec"]["egress"][0]["to"][0]["ipBlock"]["cidr"],
            "10.20.0.0/16"
        );
        assert_eq!(np["spec"]["egress"][0]["ports"][0]["port"], 5432);
    }
}

#[cfg(test)]
mod tests_support {
    use super::*;

    pub fn desired() -> DesiredDatabase {
        DesiredDatabase {
            provider: Cloud::Aws,
            region: "us-east-1".into(),
            external_name: "paved-x".into(),
            owner_uid: "u1".into(),
            instance_class: "db.t4g.medium".into(),
            storage_gb: 50,
            storage_type: None,
            engine_version: "16".into(),
            multi_az: false,
            storage_encrypted: true,
            kms_key_id: None,
            encryption_identity: None,
            publicly_accessible: false,
            tls_required: true,
            backup_retention_days: 7,
            backup_window: None,
            geo_redundant_backup: false,
            deletion_protection: false,
            deletion_policy: DeletionPolicy::Delete,
            network: Default::default(),
            credentials: Default::default(),
            local_admin: None,
            geo_backup_key_id: None,
            geo_backup_identity: None,
            azure: None,
            gcp: None,
            tags: Default::default(),
            connection_secret: "db-connection".into(),
            database_name: "paved_x".into(),
            master_username: "paved_x".into(),
            estimated_monthly_cost: None,
            poll_interval: std::time::Duration::from_secs(300),
            maintenance_window: DEFAULT_MAINTENANCE_WINDOW.into(),
            apply_immediately: false,
            observe_only: false,
            adopting: false,
            keeps_running: vec![],
            prices: None,
        }
    }
}
