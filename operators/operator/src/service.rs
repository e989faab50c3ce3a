//! ServiceClaim controller: read → render → apply → clean up → status.

use std::{collections::HashSet, sync::Arc, time::Duration};

use k8s_openapi::{api::core::v1::Namespace, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use kube::{
    api::{DynamicObject, Patch, PatchParams, PostParams},
    runtime::{controller::Action, events::EventType, reflector::Store},
    Api, ResourceExt,
};
use paved_api::{
    conditions, labels, Cloud, Composition, CompositionRevision, Condition,
    PostgreSQLInstanceStatus, Reason, ServiceClaim, ServiceClaimStatus, Status,
};
use paved_compose::{
    render_service, service,
    service::{pick_service_composition, NoComposition, Revoke},
    status::{service_ready, ObservedChild},
    tenancy::NamespaceHold,
    DesiredObject, ServiceInput,
};

use crate::{
    apply::{apply_all, delete_orphans, Mode, OrphanScope, Orphans, OwnedKind},
    context::{jitter, now, Context},
    Error,
};

pub const CONTROLLER: &str = "serviceclaim";

const ROLE: OwnedKind = OwnedKind {
    api_version: "rbac.authorization.k8s.io/v1",
    kind: "Role",
    plural: "roles",
    keep_when_removed: false,
};
const ROLE_BINDING: OwnedKind = OwnedKind {
    api_version: "rbac.authorization.k8s.io/v1",
    kind: "RoleBinding",
    plural: "rolebindings",
    keep_when_removed: false,
};

/// Every kind a ServiceClaim can produce: inside its namespace, and (the grant of the
/// `kubernetes` secret backend, [`SECRETS_NAMESPACE_KINDS`]) in the platform's secrets
/// namespace.
pub const OWNED_KINDS: &[OwnedKind] = &[
    ROLE,
    OwnedKind {
        api_version: "external-secrets.io/v1",
        kind: "SecretStore",
        plural: "secretstores",
        keep_when_removed: false,
    },
    OwnedKind {
        api_version: "networking.k8s.io/v1",
        kind: "NetworkPolicy",
        plural: "networkpolicies",
        keep_when_removed: false,
    },
    OwnedKind {
        api_version: "v1",
        kind: "ResourceQuota",
        plural: "resourcequotas",
        keep_when_removed: false,
    },
    OwnedKind {
        api_version: "v1",
        kind: "LimitRange",
        plural: "limitranges",
        keep_when_removed: false,
    },
    OwnedKind {
        api_version: "v1",
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        keep_when_removed: false,
    },
    ROLE_BINDING,
    OwnedKind {
        api_version: "external-secrets.io/v1",
        kind: "ExternalSecret",
        plural: "externalsecrets",
        keep_when_removed: false,
    },
    OwnedKind {
        api_version: "paved.dev/v1alpha1",
        kind: "PostgreSQLInstance",
        plural: "postgresqlinstances",
        keep_when_removed: true,
    },
    OwnedKind {
        api_version: "paved.dev/v1alpha1",
        kind: "TemporalNamespace",
        plural: "temporalnamespaces",
        keep_when_removed: false,
    },
];

/// What a ServiceClaim makes in the platform's secrets namespace: the Role that lets
/// its ServiceAccount read its own Secrets there, and its binding.
const SECRETS_NAMESPACE_KINDS: &[OwnedKind] = &[ROLE, ROLE_BINDING];

/// The kinds of [`SECRETS_NAMESPACE_KINDS`], for the grants index.
const GRANT_KINDS: [&str; 2] = [ROLE.kind, ROLE_BINDING.kind];

/// Whether `kind` is one of the grants Paved makes in the secrets namespace.
pub(crate) fn is_grant_kind(kind: &str) -> bool {
    GRANT_KINDS.contains(&kind)
}

/// Whether an object of `kind` in `namespace` is one the grants index tracks: a grant
/// in the secrets namespace.
pub(crate) fn is_grant(ctx: &Context, kind: &str, namespace: Option<&str>) -> bool {
    is_grant_kind(kind) && namespace == Some(ctx.secrets_namespace.as_str())
}

/// Deletes the owner RoleBinding in the claim's namespace, if the namespace is this
/// claim's (by UID) and the binding is there.
async fn revoke_owner_access(
    ctx: &Context,
    claim: &ServiceClaim,
    name: &str,
    uid: &str,
) -> Result<(), Error> {
    // Made by it, or taken over by it (judged fresh: a refusal must not miss one).
    let ours = ctx.namespace(name, true).await?.is_some_and(|ns| {
        paved_compose::tenancy::namespace_hold(&ns, name, uid) != NamespaceHold::Not
            || ns.owner_references.iter().flatten().any(|o| o.uid == uid)
    });
    if !ours {
        return Ok(());
    }
    // Nor does its ServiceAccount keep reading its secrets: not its grant, not its
    // cloud role (made again if the claim is served again).
    remove_grants(ctx, name, None).await?;
    if crate::claim::has_finalizer(claim) {
        if let Some((reason, message, _)) = drop_identity(claim, ctx).await? {
            tracing::warn!(claim = name, %reason, "deleting the IAM role of a refused claim: {message}");
        }
    }
    let api: Api<k8s_openapi::api::rbac::v1::RoleBinding> =
        Api::namespaced(ctx.client.clone(), name);
    match api
        .delete(service::names::OWNER_BINDING, &Default::default())
        .await
    {
        Ok(_) => {
            ctx.metrics.write(CONTROLLER, "delete");
            ctx.applied.forget(uid, name);
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes the grants in the secrets namespace made for service `name` (by their
/// labels: only the platform and the operator write there) except those of the claim
/// `keep` (by UID). A RoleBinding binds the ServiceAccount `<name>/<name>` by name, so
/// a grant left by an earlier claim of that name (deleted with `--cascade=orphan`, or
/// of another team) would hand a new service of the same name the old one's secrets:
/// it goes before anything of the new claim is written.
///
/// The index of the owned-object watches (grants.rs) says whether there is anything to
/// remove; only then, or before both kinds' watches have listed, is the namespace
/// listed.
async fn remove_grants(ctx: &Context, name: &str, keep: Option<&str>) -> Result<(), Error> {
    if ctx.grants.complete(&GRANT_KINDS) && !ctx.grants.others(name, keep) {
        return Ok(());
    }
    let began = ctx.grants.position();
    let selector = service::selector(name);
    let mut remaining = vec![];
    for kind in SECRETS_NAMESPACE_KINDS {
        let api = crate::apply::dynamic_api(
            ctx.client.clone(),
            &kind.api_resource(),
            Some(&ctx.secrets_namespace),
        );
        let list = match api
            .list_metadata(&kube::api::ListParams::default().labels(&selector))
            .await
        {
            Ok(l) => l,
            Err(kube::Error::Api(e)) if e.code == 404 => continue,
            Err(e) => return Err(e.into()),
        };
        for item in list.items {
            let current = keep.is_some_and(|uid| {
                item.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.uid == uid)
            });
            if current || item.metadata.deletion_timestamp.is_some() {
                remaining.push((kind.kind, item.metadata));
                continue;
            }
            match api.delete(&item.name_any(), &Default::default()).await {
                Ok(_) => ctx.metrics.write(CONTROLLER, "delete"),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    ctx.grants.listed(
        name,
        began,
        remaining.iter().map(|(kind, meta)| (*kind, meta)),
    );
    Ok(())
}

/// Pure: the identity the Composition asks Paved to make for the service, from the
/// service's secrets and its own databases' credentials (None: it asks for none).
fn desired_identity(
    claim: &ServiceClaim,
    svc: &paved_api::ServiceComposition,
    input: &ServiceInput<'_>,
    databases: &[Arc<paved_api::PostgreSQLInstance>],
) -> Option<Result<paved_compose::identity::DesiredIdentity, String>> {
    use paved_compose::identity::IdentityInput;
    let spec = svc.identity.as_ref()?;
    let name = claim.name_any();
    let uid = claim.uid().unwrap_or_default();
    let Some(cloud) = spec.cloud() else {
        return Some(Err(
            "identity names no cloud: name exactly one of aws, azure, gcp".into(),
        ));
    };
    let secrets = match &svc.secrets {
        Some(cfg) => {
            let path = paved_api::render_template(&cfg.path, &service::template_vars(input));
            let keys = service::own_secret_keys(input, cfg);
            match (path, keys) {
                (Ok(p), Ok(k)) => Some((
                    cfg,
                    p,
                    k.into_iter().map(|(_, key)| key).collect::<Vec<_>>(),
                )),
                (Err(e), _) => return Some(Err(e.to_string())),
                (_, Err(e)) => return Some(Err(e.to_string())),
            }
        }
        None => None,
    };
    // Where the master credentials of the service's own databases are kept (names,
    // never values), on the identity's cloud.
    let databases: Vec<&PostgreSQLInstanceStatus> = databases
        .iter()
        .filter_map(|d| d.status.as_ref())
        .filter(|s| s.provider.as_deref() == Some(cloud.as_str()) && s.credentials_secret.is_some())
        .collect();
    let database_secrets: Vec<String> = databases
        .iter()
        .filter_map(|s| s.credentials_secret.clone())
        .collect();
    let database_keys: Vec<String> = databases
        .iter()
        .filter_map(|s| s.encryption_key_id.clone())
        .collect();
    let database_resources: Vec<(String, String)> = databases
        .iter()
        .filter_map(|s| Some((s.credentials_secret.clone()?, s.resource_id.clone()?)))
        .collect();
    let no_keys: Vec<String> = vec![];
    Some(paved_compose::identity::desired_identity(
        spec,
        &IdentityInput {
            claim_uid: &uid,
            claim_name: &name,
            owner: &claim.spec.owner,
            namespace: &name,
            service_account: &name,
            secrets: secrets.as_ref().map(|(c, p, _)| (*c, p.as_str())),
            secret_keys: secrets.as_ref().map(|(_, _, k)| k).unwrap_or(&no_keys),
            database_secrets: &database_secrets,
            database_keys: &database_keys,
            database_resources: &database_resources,
        },
    ))
}

/// Deletes the identities an earlier ServiceClaim of this name left where this one's
/// will be made: they trust the same ServiceAccount name, which the new service gets.
async fn remove_stale_identities(
    claim: &ServiceClaim,
    ctx: &Context,
    desired: &paved_compose::identity::DesiredIdentity,
) -> Result<Option<Failure>, Error> {
    let name = claim.name_any();
    let removed = match ctx.providers.identities(desired.cloud()).await {
        Ok(client) => client.remove_stale(desired, &name).await,
        Err(e) => Err(e),
    };
    match removed {
        Ok(removed) if !removed.is_empty() => {
            ctx.event(
                claim,
                EventType::Normal,
                "Deleted",
                "Identity",
                format!(
                    "deleted the {}s an earlier ServiceClaim {name} left: {}",
                    desired.kind(),
                    removed.join(", ")
                ),
            )
            .await;
            Ok(None)
        }
        Ok(_) => Ok(None),
        Err(e) => Ok(Some(provider_failure(&e))),
    }
}

/// The service's cloud identity (IAM role, managed identity, Google service
/// account): made, kept as desired, never taken from another claim. The claim's
/// finalizer is set before it is made, so it is deleted with the claim.
async fn drive_identity(
    claim: &ServiceClaim,
    ctx: &Context,
    desired: &paved_compose::identity::DesiredIdentity,
    status: &mut ServiceClaimStatus,
    poll: Duration,
) -> Result<Option<Failure>, Error> {
    use paved_compose::identity::{plan_identity, IdentityPlan};
    let name = claim.name_any();
    let uid = claim.uid().unwrap_or_default();
    let cloud = desired.cloud();
    let what = format!("{} {}", desired.kind(), desired.name());
    if crate::claim::ensure_finalizer(&Api::all(ctx.client.clone()), claim).await? {
        return Ok(Some((
            Reason::Creating,
            format!("making {what}"),
            Duration::from_secs(1),
        )));
    }
    // The Composition now makes it elsewhere (another account, subscription,
    // project or cloud): the one made before goes first, so the service is never two.
    if let Some(old) = status
        .identity_id
        .clone()
        .filter(|id| *id != desired.id() && identity_cloud(id).is_some())
    {
        // Pods started before hold the old identity until they restart: said as a
        // Warning, so whoever changed the Composition rolls them out.
        let why = ": the Composition makes the service's identity elsewhere or under another name now; pods started before keep the old one until they restart";
        if let Some(failure) = delete_identity_at(ctx, claim, &old, why, EventType::Warning).await {
            return Ok(Some(failure));
        }
        status.identity = None;
        status.identity_id = None;
    }
    let client = match ctx.providers.identities(cloud).await {
        Ok(c) => c,
        Err(e) => return Ok(Some(provider_failure(&e))),
    };
    let seen = match client.observe(desired).await {
        Ok(s) => s,
        Err(e) => return Ok(Some(provider_failure(&e))),
    };
    let mut reference = seen.as_ref().map(|o| o.reference.clone());
    // Did what Paved wants change since it last looked (a new database, another
    // secret), or did the cloud?
    let wants = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        serde_json::to_string(&desired.parts())
            .unwrap_or_default()
            .hash(&mut h);
        h.finish()
    };
    let wants_changed = ctx
        .identity_wants
        .lock()
        .expect("not poisoned")
        .insert(uid.clone(), wants)
        != Some(wants);
    let acted = match plan_identity(desired, seen.as_ref()) {
        IdentityPlan::UpToDate => Ok(None),
        // Looked at again every poll, like any identity: the holder may let it go.
        IdentityPlan::OwnedByOther(who) => {
            return Ok(Some((
                Reason::OwnedByOther,
                format!("{what} exists and belongs to {who}; Paved will not adopt it"),
                jitter(poll),
            )))
        }
        IdentityPlan::Create => {
            // Made before and gone now: deleted outside Paved, so made again.
            let made_before = status.identity.is_some();
            // Recorded before it exists, so a claim deleted while the create is half
            // done still deletes whatever part was made.
            status.identity_id = Some(desired.id());
            client.create(desired).await.map(|made| {
                reference = Some(made);
                Some(if made_before {
                    (
                        "DriftCorrected",
                        format!("{what} was deleted outside Paved; made it again"),
                    )
                } else {
                    (
                        "Created",
                        format!("made {what}, usable only by ServiceAccount {name}/{name}"),
                    )
                })
            })
        }
        IdentityPlan::Update(drift) => client.update(desired, &drift).await.map(|_| {
            Some(if wants_changed {
                ("Updated", format!("{what}: updated {}", drift.join(", ")))
            } else {
                (
                    "DriftCorrected",
                    format!("{what}: put back {}", drift.join(", ")),
                )
            })
        }),
    };
    match acted {
        // Something of the identity another holds (an EKS Pod Identity association for
        // the service's ServiceAccount, say): looked at again every poll, as the identity
        // itself is above, since the holder may let it go; not on the slow terminal clock.
        Err(e) if e.reason() == Reason::OwnedByOther => {
            let (reason, message, _) = provider_failure(&e);
            return Ok(Some((reason, message, jitter(poll))));
        }
        Err(e) => return Ok(Some(provider_failure(&e))),
        Ok(Some((reason, message))) => {
            ctx.event(claim, EventType::Normal, reason, "Identity", message)
                .await
        }
        Ok(None) => {}
    }
    status.identity = reference.filter(|r| !r.is_empty());
    status.identity_id = Some(desired.id());
    Ok(None)
}

fn provider_failure(e: &paved_cloud::ProviderError) -> Failure {
    let v = crate::claim::provider_verdict(e);
    (v.synced.1, v.synced.2, v.requeue)
}

/// Pure: the status says already that the claim's deletion waits on its cloud identity
/// for this reason.
fn deletion_shown(status: Option<&ServiceClaimStatus>, reason: Reason) -> bool {
    status.is_some_and(|s| {
        let has = |t: &str, r: &str| {
            conditions::find(&s.conditions, t).is_some_and(|c| c.status == "False" && c.reason == r)
        };
        has(conditions::READY, conditions::reasons::DELETING)
            && has(conditions::SYNCED, reason.as_str())
    })
}

/// The claim is going: its cloud identity (if it is still this claim's) is deleted,
/// then the finalizer, and the garbage collector takes the rest.
async fn release_identity(claim: &ServiceClaim, ctx: &Context) -> Result<Action, Error> {
    match drop_identity(claim, ctx).await? {
        None => Ok(Action::await_change()),
        Some((reason, message, requeue)) => {
            tracing::warn!(claim = %claim.name_any(), %reason, "deleting the cloud identity: {message}");
            let message = format!(
                "the claim's cloud identity is not deleted yet, so the claim stays: {message}"
            );
            // Where people look: `kubectl get` (Ready=False, Deleting; Synced=False with
            // the cloud's reason), written once per reason (a message that changes each
            // attempt, a retry-after say, would otherwise write the status, and so wake
            // this reconcile, every attempt), and a Warning Event every attempt.
            if !deletion_shown(claim.status.as_ref(), reason) {
                let (t, gen) = (now(), claim.metadata.generation);
                let not = |type_, why| Condition::new(type_, Status::False, why, &message, gen, &t);
                let (synced, ready) = (
                    not(conditions::SYNCED, reason),
                    not(conditions::READY, Reason::Deleting),
                );
                let (computed, _) = crate::claim::compute_status(
                    claim.status.as_ref(),
                    claim.status.clone().unwrap_or_default(),
                    ready,
                    synced,
                    gen,
                );
                let api: Api<ServiceClaim> = Api::all(ctx.client.clone());
                // The Event below says it: no other from the status' change.
                let written =
                    crate::claim::publish_status(claim, ctx, &api, CONTROLLER, (computed, vec![]))
                        .await;
                if let Err(e) = written {
                    tracing::warn!(error = %e, "could not report the blocked deletion in status");
                }
            }
            ctx.event(
                claim,
                EventType::Warning,
                reason.as_str(),
                "Identity",
                message,
            )
            .await;
            Ok(Action::requeue(requeue))
        }
    }
}

/// Before taking a namespace over: the objects Paved would write there that exist
/// already and are not this claim's, named in a message. Paved never takes over an
/// object it did not make: it would go with the claim (each carries the claim as owner).
async fn objects_in_the_way(
    ctx: &Context,
    ns: &str,
    uid: &str,
    objects: &[DesiredObject],
) -> Result<Option<String>, Error> {
    let mut found = vec![];
    for o in objects
        .iter()
        .filter(|o| o.namespace.as_deref() == Some(ns))
    {
        let ar = paved_api::api_resource(&o.api_version, &o.kind, &o.plural);
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &ar);
        let live = match api.get_opt(&o.name).await {
            Ok(live) => live,
            // A kind the cluster does not serve holds nothing.
            Err(kube::Error::Api(e)) if e.code == 404 => None,
            Err(e) => return Err(e.into()),
        };
        if live.is_some_and(|l| !l.owner_references().iter().any(|r| r.uid == uid)) {
            found.push(format!("{} {}", o.kind, o.name));
        }
    }
    if !found.is_empty() {
        return Ok(Some(format!(
            "namespace {ns} is granted to this ServiceClaim, and it already holds {} that Paved would write and did not make; \
             Paved takes over no object it did not make (it would be deleted with the claim): rename or remove {}",
            found.join(", "),
            if found.len() == 1 { "it" } else { "them" }
        )));
    }
    // What would outlive the floor, or hand the team more than its owner role; what
    // this claim or a Paved database in the namespace owns is Paved's.
    let databases = ctx.databases_in(ns);
    let paved: Vec<&str> = std::iter::once(uid)
        .chain(databases.iter().filter_map(|d| d.metadata.uid.as_deref()))
        .collect();
    let mut beyond = vec![];
    for (api_version, kind, plural) in paved_compose::tenancy::TAKEOVER_CHECKED {
        let ar = paved_api::api_resource(api_version, kind, plural);
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &ar);
        let list = match api.list(&Default::default()).await {
            Ok(l) => l,
            Err(kube::Error::Api(e)) if e.code == 404 => continue,
            Err(e) => return Err(e.into()),
        };
        for o in list.items {
            let name = o.name_any();
            let v = serde_json::to_value(o)?;
            if let Some(why) = paved_compose::tenancy::in_the_way(kind, &v, &paved) {
                beyond.push(format!("{kind} {name} ({why})"));
            }
        }
    }
    Ok((!beyond.is_empty()).then(|| {
        format!(
            "namespace {ns} is granted to this ServiceClaim, and it holds what Paved's floor does not allow there: {}; \
             the platform removes {} (Paved's own take their place), then the claim takes the namespace over",
            beyond.join(", "),
            if beyond.len() == 1 { "it" } else { "them" }
        )
    }))
}

/// The claim is going and took its namespace over: what it wrote on the namespace
/// (labels, its mark) comes off, by applying nothing as the same field manager; the
/// namespace stays, and the garbage collector takes the claim's objects in it (each
/// has the claim as owner). Then the finalizer.
async fn release_namespace(claim: &ServiceClaim, ctx: &Context) -> Result<Action, Error> {
    let name = claim.name_any();
    let uid = claim.uid().unwrap_or_default();
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    if let Some(ns) = api.get_opt(&name).await? {
        if paved_compose::tenancy::namespace_hold(&ns.metadata, &name, &uid)
            == NamespaceHold::Adopted
        {
            let empty = serde_json::json!({
                "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name },
            });
            api.patch(
                &name,
                &PatchParams::apply(paved_api::FIELD_MANAGER).force(),
                &Patch::Apply(&empty),
            )
            .await?;
            ctx.metrics.write(CONTROLLER, "update");
            ctx.event(
                claim,
                EventType::Normal,
                "ReleasedNamespace",
                "Delete",
                format!(
                    "namespace {name} was taken over, not made: it stays, without Paved's labels"
                ),
            )
            .await;
        }
    }
    crate::claim::remove_named_finalizer(
        &Api::all(ctx.client.clone()),
        claim,
        paved_api::NAMESPACE_FINALIZER,
    )
    .await?;
    Ok(Action::await_change())
}

/// The cloud of an identity, from where it lives (`DesiredIdentity::id`).
fn identity_cloud(id: &str) -> Option<Cloud> {
    if id.starts_with("arn:") {
        Some(Cloud::Aws)
    } else if id.starts_with("/subscriptions/") {
        Some(Cloud::Azure)
    } else if id.starts_with("projects/") {
        Some(Cloud::Gcp)
    } else {
        None
    }
}

/// Deletes the claim's cloud identity where it was made (its ID in the status, not
/// where the Composition would make one now), if it is still this claim's, then
/// Paved's finalizer: for a claim that goes, and for one whose Composition no longer
/// makes identities.
async fn drop_identity(claim: &ServiceClaim, ctx: &Context) -> Result<Option<Failure>, Error> {
    let uid = claim.uid().unwrap_or_default();
    let status = claim.status.clone().unwrap_or_default();
    // A claim from before identities were recorded by ID held only an IAM role ARN;
    // one that recorded nothing (a crash before its status was written) is looked
    // for where its Composition makes identities (deletion is owner-checked).
    let id = status
        .identity_id
        .or(status.identity.filter(|i| i.starts_with("arn:")))
        .or_else(|| {
            let cloud = claim.spec.cloud.unwrap_or(ctx.default_cloud);
            let all = compositions(&ctx.compositions);
            let comp = pick_service_composition(&all, cloud).ok()?;
            paved_compose::identity::identity_id(
                comp.spec.service.as_ref()?.identity.as_ref()?,
                &claim.name_any(),
                &uid,
            )
        });
    if let Some(id) = id {
        if let Some(failure) = delete_identity_at(ctx, claim, &id, "", EventType::Normal).await {
            return Ok(Some(failure));
        }
    }
    crate::claim::remove_finalizer(&Api::all(ctx.client.clone()), claim).await?;
    Ok(None)
}

/// Deletes the identity at `id` (if it is the claim's), with an Event `deleted
/// <id><why>` when there was one; the failure when the cloud refused.
async fn delete_identity_at(
    ctx: &Context,
    claim: &ServiceClaim,
    id: &str,
    why: &str,
    kind: EventType,
) -> Option<Failure> {
    let cloud = identity_cloud(id)?;
    let uid = claim.uid().unwrap_or_default();
    let deleted = match ctx.providers.identities(cloud).await {
        Ok(client) => client.delete(id, &uid).await,
        Err(e) => Err(e),
    };
    match deleted {
        Ok(true) => {
            ctx.event(
                claim,
                kind,
                "Deleted",
                "Identity",
                format!("deleted {id}{why}"),
            )
            .await;
            None
        }
        Ok(false) => None,
        Err(e) => Some(provider_failure(&e)),
    }
}

fn compositions(store: &Store<Composition>) -> Vec<Arc<Composition>> {
    store.state()
}

struct Outcome {
    synced: Condition,
    ready: Condition,
    requeue: Duration,
}

pub async fn reconcile(claim: Arc<ServiceClaim>, ctx: Arc<Context>) -> Result<Action, Error> {
    if claim.metadata.deletion_timestamp.is_some() {
        // Owner references hand the namespace, and everything in it, to the garbage
        // collector; child claims run their own deletion policies. The cloud identity
        // Paved made goes first (its finalizer holds the claim until it has).
        ctx.applied
            .remove_claim(&claim.uid().unwrap_or_default(), &claim.name_any());
        // A namespace it took over stays: first nobody of the team is bound there or
        // reads its secrets, then its cloud identity goes, and only then do the marks
        // the tenant admission policies key on come off it.
        if crate::claim::has_named_finalizer(&*claim, paved_api::NAMESPACE_FINALIZER) {
            let name = claim.name_any();
            revoke_owner_access(&ctx, &claim, &name, &claim.uid().unwrap_or_default()).await?;
            if crate::claim::has_finalizer(&*claim) {
                return release_identity(&claim, &ctx).await;
            }
            return release_namespace(&claim, &ctx).await;
        }
        if crate::claim::has_finalizer(&*claim) {
            return release_identity(&claim, &ctx).await;
        }
        return Ok(Action::await_change());
    }
    let name = claim.name_any();
    let uid = claim.uid().unwrap_or_default();
    let gen = claim.metadata.generation;
    let t = now();
    // Once recorded, the cloud of a claim that names none stays put even if the
    // operator's default changes.
    let cloud = claim
        .spec
        .cloud
        .or(claim.status.as_ref().and_then(|s| s.cloud))
        .unwrap_or(ctx.default_cloud);
    let mut status = claim.status.clone().unwrap_or_default();
    status.cloud = Some(cloud);
    status.namespace = Some(name.clone());
    status.observed_generation = gen;

    let converged = converge(&claim, &ctx, &name, &uid, cloud, &mut status).await;
    let outcome = match converged {
        Err(e) => {
            // Best effort: say the reconcile failed (Synced=False) and keep Ready as
            // it was, so nothing shows as synced while it is not.
            let ready = claim
                .status
                .as_ref()
                .and_then(|s| conditions::find(&s.conditions, conditions::READY).cloned())
                .unwrap_or_else(|| {
                    Condition::new(
                        conditions::READY,
                        Status::Unknown,
                        Reason::ReconcileError,
                        "",
                        gen,
                        &t,
                    )
                });
            let synced = Condition::new(
                conditions::SYNCED,
                Status::False,
                Reason::ReconcileError,
                format!("reconcile failed: {e}"),
                gen,
                &t,
            );
            if let Err(pe) = publish_status(&claim, &ctx, status, synced, ready).await {
                tracing::debug!(error = %pe, "could not report the reconcile error in status");
            }
            return Err(e);
        }
        Ok(Ok(o)) => o,
        Ok(Err((reason, message, requeue))) => Outcome {
            synced: Condition::new(
                conditions::SYNCED,
                Status::False,
                reason,
                message.clone(),
                gen,
                &t,
            ),
            ready: Condition::new(conditions::READY, Status::False, reason, message, gen, &t),
            requeue,
        },
    };
    publish_status(&claim, &ctx, status, outcome.synced, outcome.ready).await?;
    Ok(Action::requeue(outcome.requeue))
}

type Failure = (Reason, String, Duration);

/// Does the work; an inner `Err` is a problem a human must fix, reported as a
/// condition and re-checked slowly rather than retried hot.
async fn converge(
    claim: &ServiceClaim,
    ctx: &Context,
    name: &str,
    uid: &str,
    cloud: Cloud,
    status: &mut ServiceClaimStatus,
) -> Result<Result<Outcome, Failure>, Error> {
    let gen = claim.metadata.generation;
    let slow = jitter(Duration::from_secs(300));
    let all = compositions(&ctx.compositions);
    // Tenancy first: nothing is written for a claim its team may not have.
    ctx.claims_listed().await?;
    let team = ctx.team(&claim.spec.owner);
    if let Err(r) = paved_compose::tenancy::admit_service(
        claim,
        cloud,
        team.as_deref(),
        &ctx.team_services(&claim.spec.owner),
        ctx.reserved.why(name, &all),
    ) {
        // A claim refused after it was served (its Team deleted, the cloud or the
        // limits taken away) keeps its namespace and data, but nobody keeps access.
        revoke_owner_access(ctx, claim, name, uid).await?;
        return Ok(Err((r.reason, r.message, slow)));
    }
    let team = team.expect("admitted claims have a team");
    let comp = match pick_service_composition(&all, cloud) {
        Ok(c) => c,
        Err(NoComposition(m)) => return Ok(Err((Reason::CompositionNotFound, m, slow))),
    };
    let comp_name = comp.name_any();
    let comp_gen = comp.metadata.generation.unwrap_or(0);
    status.composition = Some(CompositionRevision {
        name: comp_name.clone(),
        generation: comp_gen,
    });

    let svc = comp
        .spec
        .service
        .as_ref()
        .expect("picked a service composition");
    // An observed database (`spec.existing`) has no credentials Paved keeps: nothing
    // of it is granted to the service.
    let databases: Vec<_> = ctx
        .databases_in(name)
        .into_iter()
        .filter(|d| !d.spec.observes())
        .collect();
    let database_names: Vec<String> = databases.iter().map(|d| d.name_any()).collect();
    let input = ServiceInput {
        claim_name: name,
        claim_uid: uid,
        spec: &claim.spec,
        cloud,
        composition_name: &comp_name,
        composition_generation: comp_gen,
        composition: svc,
        team: Some(&team.spec),
        secrets_namespace: &ctx.secrets_namespace,
        databases: &database_names,
        identity: claim.status.as_ref().and_then(|s| s.identity.as_deref()),
    };
    let objects = match render_service(&input) {
        Ok(o) => o,
        Err(e) => return Ok(Err((e.reason(), e.to_string(), slow))),
    };
    let identity = desired_identity(claim, svc, &input, &databases);

    // Never take over a namespace someone else made. One the cache has not seen is
    // created: a create fails on a namespace that exists, where reading then applying
    // would race whoever made it. An existing one is judged by its owner.
    let mut created = None;
    let existing = match ctx.cached_namespace(name) {
        Some(ns) => Some(ns),
        None => match create_namespace(ctx, &objects[0]).await? {
            Created::Now(written) => {
                created = Some(written);
                None
            }
            Created::Already(ns) => Some(*ns),
            Created::Vanished => {
                return Ok(Err((
                    Reason::NamespaceTerminating,
                    format!(
                        "namespace {name} was being deleted; it will be recreated once it is gone"
                    ),
                    Duration::from_secs(2),
                )))
            }
        },
    };
    // Taken over rather than made (`Team.spec.namespaces[].adoptByServiceClaim`).
    let mut adopted = false;
    // What the live namespace says of its store (also where it was not cached yet).
    let live_store = existing
        .as_ref()
        .and_then(|ns| ns.labels.as_ref()?.get(labels::STORE_IDENTITY).cloned());
    if let Some(ns) = existing {
        if ns.deletion_timestamp.is_some() {
            return Ok(Err((
                Reason::NamespaceTerminating,
                format!(
                    "namespace {name} is still terminating; it will be recreated once it is gone"
                ),
                Duration::from_secs(5),
            )));
        }
        // Ours only if this very claim (by UID, not just by name) made or took it: a
        // namespace left behind by an earlier claim of the same name holds another
        // team's data. Another one is taken over only where the platform granted it.
        let hold = paved_compose::tenancy::namespace_hold(&ns, name, uid);
        if hold != NamespaceHold::Made {
            // Judged on the namespace as it is now, every label of it (the cache keeps
            // only two of Paved's): taken over only where granted, kept only while granted.
            let Some(live) = ctx.namespace(name, true).await? else {
                return Ok(Err((
                    Reason::NamespaceTerminating,
                    format!("namespace {name} is gone; it will be made once the claim is looked at again"),
                    Duration::from_secs(2),
                )));
            };
            let held =
                paved_compose::tenancy::namespace_hold(&live, name, uid) == NamespaceHold::Adopted;
            let wants: std::collections::BTreeMap<String, String> =
                serde_json::from_value(objects[0].body["metadata"]["labels"].clone())
                    .unwrap_or_default();
            let takeover = paved_compose::tenancy::NamespaceTakeover {
                ns: &live,
                wants: &wants,
                held,
            };
            if let Err(r) = paved_compose::tenancy::admit_namespace_adoption(
                claim,
                cloud,
                &team,
                &ctx.teams.state(),
                &takeover,
            ) {
                if held {
                    // Its grant was taken back: nobody keeps access there.
                    revoke_owner_access(ctx, claim, name, uid).await?;
                    return Ok(Err((r.reason, r.message, slow)));
                }
                // What is judged is partly not watched (labels not Paved's): looked at
                // again soon after the platform changes it.
                return Ok(Err((r.reason, r.message, jitter(Duration::from_secs(20)))));
            }
            if !held {
                // Nothing watches what is in the way (it is not Paved's): looked at
                // again soon after someone moves it.
                if let Some(m) = objects_in_the_way(ctx, name, uid, &objects[1..]).await? {
                    return Ok(Err((
                        Reason::NamespaceConflict,
                        m,
                        jitter(Duration::from_secs(20)),
                    )));
                }
                // A grant an earlier service of this name left in the secrets namespace
                // (deleted with --cascade=orphan) would hand this one its secrets.
                remove_grants(ctx, name, Some(uid)).await?;
                if !crate::claim::has_named_finalizer(claim, paved_api::NAMESPACE_FINALIZER) {
                    ctx.event(
                        claim,
                        EventType::Normal,
                        "AdoptingNamespace",
                        "Adopt",
                        format!(
                            "taking over existing namespace {name}, granted by Team {}: Paved's objects are written there; \
                             when the claim goes they go, and the namespace and the rest of it stay",
                            team.name_any()
                        ),
                    )
                    .await;
                }
            }
            adopted = true;
        }
    }
    // The mark comes off the namespace before the claim goes: its finalizer first, so
    // nothing is written that a deletion would leave behind.
    if adopted
        && crate::claim::ensure_named_finalizer(
            &Api::all(ctx.client.clone()),
            claim,
            paved_api::NAMESPACE_FINALIZER,
        )
        .await?
    {
        return Ok(Err((
            Reason::Updating,
            format!("taking over namespace {name}"),
            Duration::from_secs(1),
        )));
    }
    let mut objects = objects;
    if adopted {
        service::as_adopted_namespace(&mut objects[0], uid);
    }

    // The store stops reading as the service alone: the team's ExternalSecrets go
    // first, twice, a few seconds apart (admission sees the `revoking` label late),
    // and only then does the ServiceAccount switch to the shared identity.
    let now_secs = u64::try_from(crate::context::unix_now()).unwrap_or(0);
    let switching = |wait: u64| {
        Ok(Err((
            Reason::Updating,
            format!(
                "namespace {name}'s SecretStore is switching to the Composition's shared identity: ExternalSecrets that are not Paved's are removed first"
            ),
            Duration::from_secs(wait.max(1)),
        )))
    };
    match service::store_revoking(&objects[0], live_store.as_deref(), now_secs) {
        None => {}
        Some(Revoke::Begin) => {
            revoke_store(claim, ctx, name, &objects, Some(now_secs)).await?;
            return switching(service::STORE_REVOKING_SECONDS);
        }
        Some(Revoke::Wait(left)) => return switching(left),
        Some(Revoke::Finish) => revoke_store(claim, ctx, name, &objects, None).await?,
    }

    // Nothing new to write (a periodic resync, the echo of our own writes): skip the
    // writes and the orphan search; the children's readiness is still read below.
    let fingerprint = crate::applied::fingerprint(&objects);
    let keys: Vec<String> = objects.iter().map(|o| o.key()).collect();
    // Not applied by this process yet (a restart, a new leader): what the last apply
    // left, if the objects still show it, needs no write.
    if created.is_none() && !ctx.applied.knows(uid) {
        if let Some(recorded) = claim.status.as_ref().and_then(|s| s.applied.as_deref()) {
            ctx.owned_listed().await;
            // Spread the next full applies over half a period, not all at once.
            let offset = ctx.full_apply_every.mul_f64(rand::random::<f64>() / 2.0);
            if let Err(why) = ctx
                .applied
                .try_resume(uid, fingerprint, &keys, recorded, offset)
            {
                tracing::debug!(claim = name, why, "applied again after a restart");
            }
        }
    }
    let due = ctx
        .applied
        .needs_apply(uid, name, fingerprint, ctx.full_apply_every);
    // Until this claim's identity exists (so on every retry, not only the first pass),
    // what an earlier claim of the name left, trusting the same ServiceAccount, goes
    // before that ServiceAccount is applied.
    if let (Some(Ok(d)), None) = (
        &identity,
        claim.status.as_ref().and_then(|s| s.identity_id.as_ref()),
    ) {
        if let Some(failure) = remove_stale_identities(claim, ctx, d).await? {
            return Ok(Err(failure));
        }
    }
    if due || created.is_some() {
        if !due {
            ctx.applied.begin(name);
        }
        // A service new to this name: no grant or role of an earlier one survives
        // into it (both name its ServiceAccount, which the new one gets).
        if created.is_some() || claim.status.is_none() {
            remove_grants(ctx, name, Some(uid)).await?;
        }
        match apply_and_prune(claim, ctx, name, uid, &objects, created, status).await {
            Ok(None) => {}
            Ok(Some(failure)) => {
                ctx.applied.forget(uid, name);
                return Ok(Err(failure));
            }
            Err(e) => {
                ctx.applied.forget(uid, name);
                return Err(e);
            }
        }
    }

    status.applied = ctx.applied.digest_of(fingerprint, &keys);

    // The service's own cloud identity, where Paved makes it; one the Composition no
    // longer asks for goes (its finalizer says one was made).
    let poll = svc
        .identity
        .as_ref()
        .and_then(|i| paved_compose::postgresql::parse_duration(i.poll_interval()))
        .map(|p| p.max(Duration::from_secs(1)))
        .unwrap_or(ctx.resync);
    match &identity {
        None if crate::claim::has_finalizer(claim) => {
            if let Some(failure) = drop_identity(claim, ctx).await? {
                return Ok(Err(failure));
            }
            status.identity = None;
            status.identity_id = None;
        }
        None => {}
        Some(Err(m)) => return Ok(Err((Reason::InvalidComposition, m.clone(), slow))),
        Some(Ok(d)) => {
            if let Some(failure) = drive_identity(claim, ctx, d, status, poll).await? {
                return Ok(Err(failure));
            }
        }
    }

    // Kept databases someone has since deleted (or that are back in the spec) drop
    // off the list without waiting for the next full apply.
    status.retained_databases.retain(|db| {
        !objects
            .iter()
            .any(|o| o.kind == "PostgreSQLInstance" && o.name == *db)
            && ctx
                .databases
                .get(&kube::runtime::reflector::ObjectRef::new(db).within(name))
                .is_some_and(|p| p.metadata.deletion_timestamp.is_none())
    });
    set_retained_condition(status, gen, &now());

    // Children: read their readiness.
    let mut observed = vec![];
    for o in objects
        .iter()
        .filter(|o| o.api_version.starts_with("paved.dev/"))
    {
        let ar = paved_api::api_resource(&o.api_version, &o.kind, &o.plural);
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), name, &ar);
        let child = api.get_opt(&o.name).await?;
        observed.push(ObservedChild {
            kind: o.kind.clone(),
            name: o.name.clone(),
            observed: child.map(|c| {
                let conds: Vec<Condition> = c
                    .data
                    .get("status")
                    .and_then(|s| s.get("conditions"))
                    .and_then(|c| serde_json::from_value(c.clone()).ok())
                    .unwrap_or_default();
                (conds, c.metadata.generation)
            }),
        });
    }
    let t = now();
    let (children, ready) = service_ready(&observed, gen, &t);
    status.children = children;
    let synced = Condition::new(
        conditions::SYNCED,
        Status::True,
        Reason::ReconcileSuccess,
        format!(
            "{} objects applied from composition {comp_name}",
            objects.len()
        ),
        gen,
        &t,
    );
    // A cloud identity is checked for drift on its own period; the rest is watched.
    // A client ID learnt just now is on the ServiceAccount after one more pass.
    let requeue = if status.identity.as_deref() != input.identity {
        Duration::from_secs(1)
    } else {
        jitter(poll.min(ctx.resync))
    };
    Ok(Ok(Outcome {
        synced,
        ready,
        requeue,
    }))
}

fn retained_message(db: &str, namespace: &str) -> String {
    format!(
        "database {db} is no longer in spec.databases and is kept, running and managed: removing or renaming an entry \
         does not destroy data. Add it back, or delete it for real with: kubectl delete postgresqlinstance {db} -n {namespace}"
    )
}

/// The `DatabasesRetained` condition: present, naming them, while databases removed
/// from the spec are kept.
fn set_retained_condition(status: &mut ServiceClaimStatus, gen: Option<i64>, t: &str) {
    let ns = status.namespace.clone().unwrap_or_default();
    match status.retained_databases.as_slice() {
        [] => conditions::remove(&mut status.conditions, conditions::DATABASES_RETAINED),
        dbs => conditions::upsert(
            &mut status.conditions,
            Condition::new(
                conditions::DATABASES_RETAINED,
                Status::True,
                "RemovedFromSpec",
                dbs.iter()
                    .map(|db| retained_message(db, &ns))
                    .collect::<Vec<_>>()
                    .join("; "),
                gen,
                t,
            ),
        ),
    }
}

/// Writes the status only when it changed, and records transitions as Events (the
/// one rule of `claim::compute_status`).
async fn publish_status(
    claim: &ServiceClaim,
    ctx: &Context,
    status: ServiceClaimStatus,
    synced: Condition,
    ready: Condition,
) -> Result<(), Error> {
    let api: Api<ServiceClaim> = Api::all(ctx.client.clone());
    let computed = crate::claim::compute_status(
        claim.status.as_ref(),
        status,
        ready,
        synced,
        claim.metadata.generation,
    );
    crate::claim::publish_status(claim, ctx, &api, CONTROLLER, computed).await
}

/// Applies the rendered objects and removes what the spec no longer implies; records
/// what was written. `Some` is a problem a human must fix.
async fn apply_and_prune(
    claim: &ServiceClaim,
    ctx: &Context,
    name: &str,
    uid: &str,
    objects: &[DesiredObject],
    created: Option<(String, crate::applied::Written)>,
    status: &mut ServiceClaimStatus,
) -> Result<Option<Failure>, Error> {
    let slow = jitter(Duration::from_secs(300));
    // In a namespace this round created nothing can exist yet: every object is created
    // (cheaper for the apiserver than an apply), all at once. Otherwise each is applied,
    // the namespace before the rest.
    let applied = async {
        Ok::<_, kube::Error>(match created.clone() {
            Some(ns) => {
                let mut written = vec![ns];
                written.extend(
                    apply_all(
                        &ctx.client,
                        &objects[1..],
                        Mode::CreateInNew,
                        &ctx.metrics,
                        CONTROLLER,
                    )
                    .await?,
                );
                written
            }
            None => apply_all(&ctx.client, objects, Mode::Apply, &ctx.metrics, CONTROLLER).await?,
        })
    };
    // Known as this claim's before the watch reports them (see grants.rs).
    for o in objects {
        if is_grant(ctx, &o.kind, o.namespace.as_deref()) {
            ctx.grants.writing(name, &o.kind, &o.name, uid);
        }
    }
    let written = match applied.await {
        Ok(w) => w,
        Err(e) => {
            // A missing CRD (e.g. External Secrets not installed) needs a human.
            if let kube::Error::Api(ae) = &e {
                if crate::apply::missing_api(ae) {
                    return Ok(Some((
                        Reason::MissingAPI,
                        format!("an API this claim needs is not installed: {}", ae.message),
                        slow,
                    )));
                }
                if ae.code == 422 || ae.code == 400 {
                    // The apiserver (a schema, a policy, a webhook) refused what the
                    // claim renders to: a human must change the claim or the policy.
                    return Ok(Some((Reason::ApplyRejected, ae.message.clone(), slow)));
                }
            }
            return Err(e.into());
        }
    };

    // A claim at its first generation that never had a status has never had other
    // objects: nothing can be orphaned, so skip the list per kind.
    let brand_new = claim.status.is_none() && claim.metadata.generation == Some(1);
    if !brand_new {
        let desired: HashSet<String> = objects.iter().map(|o| o.key()).collect();
        let selector = service::selector(name);
        let scope = OrphanScope {
            namespace: name,
            selector: &selector,
            owner_uid: uid,
        };
        let Orphans {
            mut deleted,
            mut kept,
        } = delete_orphans(
            &ctx.client,
            &scope,
            OWNED_KINDS,
            &desired,
            &ctx.metrics,
            CONTROLLER,
        )
        .await?;
        let granted = delete_orphans(
            &ctx.client,
            &OrphanScope {
                namespace: &ctx.secrets_namespace,
                ..scope
            },
            SECRETS_NAMESPACE_KINDS,
            &desired,
            &ctx.metrics,
            CONTROLLER,
        )
        .await?;
        deleted.extend(granted.deleted);
        kept.sort();
        for db in kept
            .iter()
            .filter(|k| !status.retained_databases.contains(k))
        {
            ctx.event(
                claim,
                EventType::Warning,
                "DatabaseRetained",
                "Prune",
                retained_message(db, name),
            )
            .await;
        }
        status.retained_databases = kept;
        if !deleted.is_empty() {
            ctx.event(
                claim,
                EventType::Normal,
                "PrunedResources",
                "Prune",
                format!(
                    "removed what the spec no longer implies: {}",
                    deleted.join(", ")
                ),
            )
            .await;
        }
    }
    ctx.applied
        .record(uid, name, crate::applied::fingerprint(objects), written);
    Ok(None)
}

/// A store that stops reading as the service alone (see `service::store_revoking`):
/// beginning at `begin` (unix seconds), labels the namespace `revoking-<begin>`, so
/// admission refuses the team new ExternalSecrets; then removes every ExternalSecret
/// there that is not Paved's and repairs Paved's own that were edited to read more,
/// each with a Warning Event. What they delivered was a copy: the stores keep every
/// secret.
async fn revoke_store(
    claim: &ServiceClaim,
    ctx: &Context,
    name: &str,
    objects: &[DesiredObject],
    begin: Option<u64>,
) -> Result<(), Error> {
    if let Some(now) = begin {
        let mut namespace = objects[0].clone();
        namespace.body["metadata"]["labels"][labels::STORE_IDENTITY] =
            serde_json::json!(service::store_revoking_label(now));
        apply_all(
            &ctx.client,
            std::slice::from_ref(&namespace),
            Mode::Apply,
            &ctx.metrics,
            CONTROLLER,
        )
        .await?;
    }
    let ar = paved_api::api_resource(
        "external-secrets.io/v1",
        "ExternalSecret",
        "externalsecrets",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), name, &ar);
    let live: Vec<(String, serde_json::Value)> = match api.list(&Default::default()).await {
        Ok(l) => l
            .items
            .into_iter()
            .map(|o| {
                let spec = o.data.get("spec").cloned().unwrap_or_default();
                (o.name_any(), spec)
            })
            .collect(),
        // External Secrets not installed: there are none.
        Err(kube::Error::Api(e)) if crate::apply::missing_api(&e) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    // Read fresh (a database's key may be newer than the cache), and each database's
    // delivery re-applied on its next poll, whatever this pass changes.
    let pgs: Api<paved_api::PostgreSQLInstance> = Api::namespaced(ctx.client.clone(), name);
    let fresh = pgs.list(&Default::default()).await?.items;
    for d in &fresh {
        ctx.applied.refresh_now(&d.uid().unwrap_or_default());
    }
    let databases: Vec<(String, Option<String>)> = fresh
        .iter()
        .map(|d| {
            let conn = d
                .spec
                .write_connection_secret_to_ref
                .as_ref()
                .map(|r| r.name.clone())
                .unwrap_or_else(|| service::connection_secret(&d.name_any()));
            (
                conn,
                d.status.as_ref().and_then(|s| s.credentials_secret.clone()),
            )
        })
        .collect();
    let sweep = service::sweep_external_secrets(objects, &databases, &live);
    for (es, key) in &sweep.repair {
        let patch = kube::api::Patch::Merge(service::repair_patch(key));
        match api.patch(es, &Default::default(), &patch).await {
            Ok(_) => ctx.metrics.write(CONTROLLER, "patch"),
            Err(kube::Error::Api(e)) if e.code == 404 => continue,
            Err(e) => return Err(e.into()),
        }
        ctx.event(
            claim,
            EventType::Warning,
            "ExternalSecretRepaired",
            "RevokeStore",
            format!(
                "put ExternalSecret {name}/{es} back to reading only its own key: it had been edited to read more, which the Composition's shared identity, about to replace this service's own, could"
            ),
        )
        .await;
    }
    for es in sweep.remove {
        match api.delete(es, &Default::default()).await {
            Ok(_) => ctx.metrics.write(CONTROLLER, "delete"),
            Err(kube::Error::Api(e)) if e.code == 404 => continue,
            Err(e) => return Err(e.into()),
        }
        ctx.event(
            claim,
            EventType::Warning,
            "ExternalSecretRemoved",
            "RevokeStore",
            format!(
                "removed ExternalSecret {name}/{es}: the namespace's SecretStore is about to read as the Composition's shared identity (it names no identity of this service's own), through which a team's ExternalSecret could read other services' secrets; the secret itself is untouched in its store"
            ),
        )
        .await;
    }
    Ok(())
}

/// What creating a claim's namespace found.
enum Created {
    /// This reconcile created it, as rendered, and what the create left it at.
    Now((String, crate::applied::Written)),
    /// It exists: its metadata, to be judged.
    Already(Box<ObjectMeta>),
    /// It existed a moment ago and is gone now (it was being deleted).
    Vanished,
}

async fn create_namespace(ctx: &Context, namespace: &DesiredObject) -> Result<Created, Error> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let rendered: Namespace = serde_json::from_value(namespace.body.clone())?;
    let pp = PostParams {
        field_manager: Some(paved_api::FIELD_MANAGER.into()),
        ..Default::default()
    };
    match api.create(&pp, &rendered).await {
        Ok(ns) => {
            ctx.metrics.write(CONTROLLER, "create");
            let written = crate::applied::Written::seen(&ns.metadata, false);
            Ok(Created::Now((namespace.key(), written)))
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            Ok(match api.get_opt(&namespace.name).await? {
                Some(ns) => Created::Already(Box::new(ns.metadata)),
                None => Created::Vanished,
            })
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_deletion_is_written_once_per_reason() {
        let cond = |t: &str, s: Status, r: Reason| Condition::new(t, s, r, "m", Some(1), "t0");
        let status = |c: Vec<Condition>| ServiceClaimStatus {
            conditions: c,
            ..Default::default()
        };
        let unavailable = cond(
            conditions::SYNCED,
            Status::False,
            Reason::ProviderUnavailable,
        );
        let shown = status(vec![
            cond(conditions::READY, Status::False, Reason::Deleting),
            unavailable.clone(),
        ]);
        assert!(deletion_shown(Some(&shown), Reason::ProviderUnavailable));
        // Another reason, a Ready claim, or none written yet: written.
        assert!(!deletion_shown(Some(&shown), Reason::Throttled));
        let ready = status(vec![
            cond(conditions::READY, Status::True, Reason::Available),
            unavailable,
        ]);
        assert!(!deletion_shown(Some(&ready), Reason::ProviderUnavailable));
        assert!(!deletion_shown(None, Reason::ProviderUnavailable));
    }
}
