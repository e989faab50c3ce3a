//! `paved migrate` against a live cluster: read what a Crossplane platform holds, and
//! carry out the cut-over a [`crate::migrate::Migration`] plans, so that at no point
//! can both systems write a database and at no point can one be deleted:
//!
//! 1. each claim and composite resource is paused (`crossplane.io/paused`), so nothing
//!    re-renders its managed resource;
//! 2. each RDS Instance is set to `managementPolicies: [Observe]` (and, where it has
//!    one, `deletionPolicy: Orphan`), and read back;
//! 3. the Teams grant adoption, and the Paved claims are created; each adopts in place;
//! 4. once a claim has adopted (its create guard says so), the Crossplane objects of
//!    its database go, their finalizers taken off first (Crossplane has nothing left to
//!    do for them: the cloud resource is orphaned);
//! 5. a claim refused before adopting (another claim's database, another key, no grant)
//!    is deleted and its Crossplane objects are put back as they were;
//! 6. with `--service-claims`, each namespace whose databases all moved is granted to
//!    its service (Team and namespace label) and taken over by its ServiceClaim; one
//!    refused (an object in the way) is deleted before it writes anything there, and
//!    the grants taken back.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use kube::{
    api::{
        ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
        PropagationPolicy,
    },
    Api, Client,
};
use serde_json::{json, Value};

use crate::migrate::{Entry, Migration, ObjRef, Service};

const MANAGER: &str = "paved-migrate";
const PAUSED: &str = "crossplane.io/paused";
/// On a managed resource: its policies before the cut-over, for a rollback.
const WAS: &str = "paved.dev/migrate-was";

fn resource(api_version: &str, kind: &str, plural: &str) -> ApiResource {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// Every object of a kind, cluster-wide, with apiVersion and kind set (list items
/// come without them); an API that is not installed lists nothing.
async fn list(client: &Client, ar: &ApiResource) -> Result<Vec<Value>> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), ar);
    match api.list(&Default::default()).await {
        Ok(l) => l
            .items
            .into_iter()
            .map(|o| {
                let mut v = serde_json::to_value(o)?;
                v["apiVersion"] = json!(ar.api_version);
                v["kind"] = json!(ar.kind);
                Ok(v)
            })
            .collect(),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(vec![]),
        Err(e) => Err(e).with_context(|| format!("listing {}", ar.plural)),
    }
}

/// What the cluster holds of Crossplane's (XRDs, their claims and composite
/// resources, Compositions, the managed databases of provider-aws, -azure and -gcp) and of Paved's (Compositions,
/// Teams, ServiceClaims, PostgreSQLInstances).
pub async fn gather(client: &Client) -> Result<Vec<Value>> {
    let mut out = vec![];
    let xrds = list(
        client,
        &resource(
            "apiextensions.crossplane.io/v1",
            "CompositeResourceDefinition",
            "compositeresourcedefinitions",
        ),
    )
    .await?;
    for xrd in &xrds {
        let s = &xrd["spec"];
        let versions = s["versions"].as_array().cloned().unwrap_or_default();
        let Some(version) = versions
            .iter()
            .find(|v| v["referenceable"] == true)
            .or_else(|| versions.iter().find(|v| v["served"] == true))
            .and_then(|v| v["name"].as_str())
        else {
            continue;
        };
        let group = s["group"].as_str().unwrap_or_default();
        let api_version = format!("{group}/{version}");
        for names in [&s["names"], &s["claimNames"]] {
            if let (Some(kind), Some(plural)) = (names["kind"].as_str(), names["plural"].as_str()) {
                out.extend(list(client, &resource(&api_version, kind, plural)).await?);
            }
        }
    }
    out.extend(xrds);
    // Managed databases at their most stable version: providers move them on
    // (v1beta1 → v1beta2 → v1beta3), and references match by group, kind and name.
    for (group, kind) in crate::migrate::managed_kinds() {
        let found = match kube::discovery::group(client, group).await {
            // Not `recommended_kind`: it looks only at the group's preferred version,
            // which another kind of the group may hold alone (sql.gcp's v1beta2 has
            // DatabaseInstance, not Database).
            Ok(g) => g
                .resources_by_stability()
                .into_iter()
                .find(|(ar, _)| ar.kind == kind),
            Err(kube::Error::Discovery(_)) => None,
            Err(e) => return Err(e).with_context(|| format!("discovering API group {group}")),
        };
        if let Some((ar, _)) = found {
            out.extend(list(client, &ar).await?);
        }
    }
    for (api_version, kind, plural) in [
        (
            "apiextensions.crossplane.io/v1",
            "Composition",
            "compositions",
        ),
        ("paved.dev/v1alpha1", "Composition", "compositions"),
        ("paved.dev/v1alpha1", "Team", "teams"),
        ("paved.dev/v1alpha1", "ServiceClaim", "serviceclaims"),
        (
            "paved.dev/v1alpha1",
            "PostgreSQLInstance",
            "postgresqlinstances",
        ),
    ] {
        out.extend(list(client, &resource(api_version, kind, plural)).await?);
    }
    Ok(out)
}

/// The Api of one object (its plural found by discovery).
async fn api_for(client: &Client, r: &ObjRef) -> Result<Api<DynamicObject>> {
    let (group, version) = r
        .api_version
        .rsplit_once('/')
        .unwrap_or(("", &r.api_version));
    let gvk = GroupVersionKind::gvk(group, version, &r.kind);
    let (ar, _) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .with_context(|| format!("finding the API of {r}"))?;
    Ok(match &r.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    })
}

async fn merge(client: &Client, r: &ObjRef, patch: Value) -> Result<Value> {
    let api = api_for(client, r).await?;
    let o = api
        .patch(&r.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("patching {r}"))?;
    Ok(serde_json::to_value(o)?)
}

/// The Crossplane objects of one database, and how its managed resource was before.
struct Held<'a> {
    entry: &'a Entry,
    sources: Vec<ObjRef>,
    /// Each managed resource (the database, and the one inside it) with its policies
    /// before the cut-over.
    managed: Vec<(ObjRef, Value)>,
}

/// Stops Crossplane writing or deleting one managed resource: `managementPolicies:
/// [Observe]` and (where it has one) `deletionPolicy: Orphan`, read back. Returns its
/// policies before, which are also kept on the object (an interrupted run resumed
/// later still knows what to put back).
async fn observe_only(client: &Client, e: &Entry, r: &ObjRef, out: &mut String) -> Result<Value> {
    let mr = serde_json::to_value(api_for(client, r).await?.get(&r.name).await?)?;
    let was: Value = match mr["metadata"]["annotations"][WAS].as_str() {
        Some(w) => serde_json::from_str(w).unwrap_or_default(),
        None => json!({
            "managementPolicies": mr["spec"]["managementPolicies"],
            "deletionPolicy": mr["spec"]["deletionPolicy"],
        }),
    };
    let mut spec = json!({ "managementPolicies": ["Observe"] });
    if e.managed_has_deletion_policy {
        spec["deletionPolicy"] = json!("Orphan");
    }
    let now = merge(
        client,
        r,
        json!({ "metadata": { "annotations": { WAS: was.to_string() } }, "spec": spec }),
    )
    .await?;
    let observing = now["spec"]["managementPolicies"] == json!(["Observe"]);
    let orphaned = !e.managed_has_deletion_policy || now["spec"]["deletionPolicy"] == "Orphan";
    if !(observing && orphaned) {
        bail!(
            "{r} did not keep managementPolicies [Observe] / deletionPolicy Orphan (an admission webhook?); stopping before anything else"
        );
    }
    out.push_str(&format!(
        "{r}: managementPolicies [Observe]{}\n",
        if e.managed_has_deletion_policy {
            ", deletionPolicy Orphan"
        } else {
            ""
        }
    ));
    Ok(was)
}

/// Steps 1 and 2 for one database; what to restore on a rollback.
async fn hold<'a>(client: &Client, e: &'a Entry, out: &mut String) -> Result<Held<'a>> {
    let sources: Vec<ObjRef> = std::iter::once(e.source.clone())
        .chain(e.composite.clone())
        .collect();
    for s in &sources {
        merge(
            client,
            s,
            json!({ "metadata": { "annotations": { PAUSED: "true" } } }),
        )
        .await?;
        out.push_str(&format!("paused {s}\n"));
    }
    let mut managed = vec![];
    for r in std::iter::once(&e.managed).chain(&e.inside) {
        let was = observe_only(client, e, r, out).await?;
        managed.push((r.clone(), was));
    }
    Ok(Held {
        entry: e,
        sources,
        managed,
    })
}

/// Undoes `hold` (the claim was refused before it adopted anything).
async fn release(client: &Client, h: &Held<'_>, out: &mut String) -> Result<()> {
    for (r, was) in &h.managed {
        let mut spec = json!({ "managementPolicies": was["managementPolicies"] });
        if h.entry.managed_has_deletion_policy {
            spec["deletionPolicy"] = was["deletionPolicy"].clone();
        }
        merge(
            client,
            r,
            json!({ "metadata": { "annotations": { WAS: null } }, "spec": spec }),
        )
        .await?;
    }
    for s in &h.sources {
        merge(
            client,
            s,
            json!({ "metadata": { "annotations": { PAUSED: null } } }),
        )
        .await?;
    }
    out.push_str(&format!(
        "rolled back: {} and its Crossplane objects are as they were\n",
        h.entry.source
    ));
    Ok(())
}

/// Removes one Crossplane object: Crossplane's finalizers first (only once its
/// database is orphaned and adopted), then the object, leaving what it owns (the
/// other resources a composite made are not the migration's to delete). Returns its
/// UID, if it was there.
async fn remove(client: &Client, r: &ObjRef, out: &mut String) -> Result<Option<String>> {
    let api = api_for(client, r).await?;
    let Some(o) = api.get_opt(&r.name).await? else {
        return Ok(None);
    };
    let kept: Vec<String> = o
        .metadata
        .finalizers
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|f| !f.contains("crossplane.io"))
        .collect();
    if kept.len() != o.metadata.finalizers.as_ref().map_or(0, Vec::len) {
        api.patch(
            &r.name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": {
                "finalizers": kept,
                "resourceVersion": o.metadata.resource_version,
            } })),
        )
        .await
        .with_context(|| format!("taking Crossplane's finalizers off {r}"))?;
    }
    let orphaning = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..Default::default()
    };
    match api.delete(&r.name, &orphaning).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(e).with_context(|| format!("deleting {r}")),
    }
    out.push_str(&format!("removed {r}\n"));
    Ok(o.metadata.uid)
}

/// Deletes the connection Secret Crossplane wrote for a claim (controlled by it, by
/// UID), so Paved's of the same name can be written; any other Secret is left.
async fn remove_secret(client: &Client, e: &Entry, owner: &str, out: &mut String) -> Result<()> {
    let Some(name) = e.claim["spec"]["writeConnectionSecretToRef"]["name"].as_str() else {
        return Ok(());
    };
    let api: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), &e.namespace);
    let Some(secret) = api.get_opt(name).await? else {
        return Ok(());
    };
    let crossplanes = secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == owner && o.controller == Some(true));
    if crossplanes {
        api.delete(name, &DeleteParams::default()).await?;
        out.push_str(&format!(
            "removed Secret {}/{name} (Crossplane's; Paved's of that name follows)\n",
            e.namespace
        ));
    }
    Ok(())
}

/// A Paved claim's state during the cut-over.
#[derive(Debug, PartialEq)]
enum Progress {
    /// Adopted, and able to deliver its credentials once Crossplane's Secret goes.
    Adopted,
    /// Adopted, but nothing to deliver yet: Crossplane's objects (and Secret) stay.
    Undeliverable(String),
    /// Refused before adopting, for a reason that will not pass by waiting.
    Refused(String),
    Waiting(String),
}

/// What cannot become an adoption by waiting (a grant or a Composition that is not
/// yet in the operator's cache can).
const REFUSALS: [&str; 4] = [
    "OwnedByOther",
    "EncryptionMismatch",
    "NotAdoptable",
    "ExternalResourceMissing",
];

fn progress(claim: &Value) -> Progress {
    let synced = claim["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Synced")
        .filter(|c| c["status"] == "False");
    let said = |c: &Value| {
        format!(
            "{}: {}",
            c["reason"].as_str().unwrap_or_default(),
            c["message"].as_str().unwrap_or_default()
        )
    };
    let adopted = claim["metadata"]["annotations"]
        .get(paved_api::annotations::CREATE_SUCCEEDED)
        .is_some();
    match synced {
        Some(c) if adopted && c["reason"] == "CredentialsNotManaged" => {
            Progress::Undeliverable(said(c))
        }
        // Adopted, and its credentials found (delivery waits only for the name to be
        // free): Crossplane's objects may go.
        _ if adopted && claim["status"]["credentialsSecret"].is_string() => Progress::Adopted,
        _ if adopted => Progress::Waiting("adopted; its credentials not found yet".into()),
        Some(c) if REFUSALS.contains(&c["reason"].as_str().unwrap_or_default()) => {
            Progress::Refused(said(c))
        }
        Some(c) => Progress::Waiting(said(c)),
        None => Progress::Waiting("not adopted yet".into()),
    }
}

/// One Team grant, applied under a field manager of its own so that grants of other
/// runs (and the Team's other fields) stay, and taking it back removes only it.
async fn grant(client: &Client, e: &Entry, keep: bool) -> Result<()> {
    let teams: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource("paved.dev/v1alpha1", "Team", "teams"),
    );
    let team = e.team.as_deref().unwrap_or_default();
    let grants = if keep {
        vec![json!({
            "namespace": e.namespace, "externalName": e.external_name,
            "composition": e.composition, "mode": "Adopt",
        })]
    } else {
        vec![]
    };
    let body = json!({
        "apiVersion": "paved.dev/v1alpha1", "kind": "Team",
        "metadata": { "name": team },
        "spec": { "existingDatabases": grants },
    });
    let manager = format!("{MANAGER}-{}-{}", e.namespace, e.external_name);
    // Field managers are at most 128 characters.
    let manager: String = manager.chars().take(128).collect();
    teams
        .patch(team, &PatchParams::apply(&manager), &Patch::Apply(&body))
        .await
        .with_context(|| format!("granting adoption of {} in Team {team}", e.external_name))?;
    Ok(())
}

/// Carries out the cut-over; returns what it did, line by line.
pub async fn apply(client: &Client, m: &Migration, timeout: Duration) -> Result<String> {
    let mut out = String::new();
    let entries: Vec<&Entry> = m
        .entries
        .iter()
        .filter(|e| {
            if e.team.is_none() {
                out.push_str(&format!(
                    "left out: {} (no Team lists namespace {}; nothing of it touched)\n",
                    e.source, e.namespace
                ));
            }
            e.team.is_some()
        })
        .collect();
    if entries.is_empty() {
        out.push_str("nothing to migrate\n");
        return Ok(out);
    }
    // Steps 1 and 2 for all, before any Paved object exists.
    let mut held = vec![];
    for e in &entries {
        held.push(hold(client, e, &mut out).await?);
    }
    // Step 3: grants, then claims.
    let teams: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource("paved.dev/v1alpha1", "Team", "teams"),
    );
    for e in &entries {
        let team = e.team.as_deref().unwrap_or_default();
        if teams.get_opt(team).await?.is_none() {
            bail!("Team {team} does not exist");
        }
        grant(client, e, true).await?;
        out.push_str(&format!(
            "granted {} to namespace {} in Team {team} (mode Adopt)\n",
            e.external_name, e.namespace
        ));
    }
    let pgi = resource(
        "paved.dev/v1alpha1",
        "PostgreSQLInstance",
        "postgresqlinstances",
    );
    for e in &entries {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &e.namespace, &pgi);
        let name = e.claim["metadata"]["name"].as_str().unwrap_or_default();
        api.patch(name, &PatchParams::apply(MANAGER), &Patch::Apply(&e.claim))
            .await
            .with_context(|| format!("creating PostgreSQLInstance {}/{name}", e.namespace))?;
        out.push_str(&format!(
            "created paved.dev/v1alpha1 PostgreSQLInstance {}/{name} (adopts {})\n",
            e.namespace, e.external_name
        ));
    }
    // Steps 4 and 5, each database as soon as its claim has decided.
    let start = Instant::now();
    // Namespaces with a database not cut over: their services wait for another run.
    let mut unfinished: BTreeSet<String> = BTreeSet::new();
    let mut pending: Vec<Held> = held;
    while !pending.is_empty() {
        let mut still = vec![];
        for h in pending {
            let e = h.entry;
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &e.namespace, &pgi);
            let name = e.claim["metadata"]["name"].as_str().unwrap_or_default();
            let claim = serde_json::to_value(api.get(name).await?)?;
            match progress(&claim) {
                Progress::Adopted => {
                    out.push_str(&format!(
                        "adopted: {} by PostgreSQLInstance {}/{name}\n",
                        e.external_name, e.namespace
                    ));
                    for r in std::iter::once(&e.managed).chain(&e.inside) {
                        remove(client, r, &mut out).await?;
                    }
                    if let Some(xr) = &e.composite {
                        remove(client, xr, &mut out).await?;
                    }
                    // Crossplane's Secret first, while the claim that controls it is
                    // still there to be recognised by.
                    let source = api_for(client, &e.source)
                        .await?
                        .get_opt(&e.source.name)
                        .await?;
                    if let Some(uid) = source.and_then(|o| o.metadata.uid) {
                        remove_secret(client, e, &uid, &mut out).await?;
                    }
                    remove(client, &e.source, &mut out).await?;
                }
                Progress::Undeliverable(why) => {
                    unfinished.insert(e.namespace.clone());
                    out.push_str(&format!(
                        "adopted, not cut over: PostgreSQLInstance {}/{name} cannot deliver credentials ({why}); \
                         Crossplane's objects stay paused and observing, and its connection Secret stays. \
                         Let the Composition rotate the password (or have RDS manage it), then run paved migrate --apply again\n",
                        e.namespace
                    ));
                }
                Progress::Refused(why) => {
                    unfinished.insert(e.namespace.clone());
                    out.push_str(&format!(
                        "refused: PostgreSQLInstance {}/{name}: {why}\n",
                        e.namespace
                    ));
                    api.delete(name, &DeleteParams::default()).await?;
                    grant(client, e, false).await?;
                    release(client, &h, &mut out).await?;
                }
                Progress::Waiting(_) if start.elapsed() > timeout => {
                    unfinished.insert(e.namespace.clone());
                    out.push_str(&format!(
                        "timed out: PostgreSQLInstance {}/{name} has not adopted {} yet; Crossplane's objects stay paused and observing, nothing is removed. \
                         Look at the claim (kubectl describe pgi -n {} {name}), then run paved migrate --apply again, or roll back by deleting the claim, \
                         unpausing and restoring {}'s managementPolicies\n",
                        e.namespace, e.external_name, e.namespace, e.managed
                    ));
                }
                Progress::Waiting(_) => still.push(h),
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    for e in &m.entries {
        if e.team.is_none() {
            unfinished.insert(e.namespace.clone());
        }
    }
    // Step 6: each namespace whose databases all moved, taken over by its service.
    for v in &m.services {
        if unfinished.contains(&v.namespace) {
            out.push_str(&format!(
                "not taken over: namespace {} (a database there is not cut over); run paved migrate --apply --service-claims again once it is\n",
                v.namespace
            ));
            continue;
        }
        take_over(client, v, timeout, &mut out).await?;
    }
    Ok(out)
}

/// The platform's two grants of namespace `v.namespace` to its ServiceClaim (the
/// Team's `adoptByServiceClaim`, the namespace's `paved.dev/adoptable` label), each
/// under a field manager of its own so that taking them back removes only them.
async fn grant_namespace(client: &Client, v: &Service, keep: bool) -> Result<()> {
    let manager: String = format!("{MANAGER}-ns-{}", v.namespace)
        .chars()
        .take(128)
        .collect();
    let teams: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource("paved.dev/v1alpha1", "Team", "teams"),
    );
    let entries = if keep {
        json!([{ "name": v.namespace, "adoptByServiceClaim": true }])
    } else {
        json!([])
    };
    let team = json!({
        "apiVersion": "paved.dev/v1alpha1", "kind": "Team",
        "metadata": { "name": v.team }, "spec": { "namespaces": entries },
    });
    // Forced: the platform engineer running this grants it, over whatever manager said
    // otherwise (a GitOps sync that says false again takes nothing back: a namespace
    // taken over stays its service's until the ServiceClaim is deleted).
    teams
        .patch(
            &v.team,
            &PatchParams::apply(&manager).force(),
            &Patch::Apply(&team),
        )
        .await
        .with_context(|| format!("granting namespace {} in Team {}", v.namespace, v.team))?;
    let labels = if keep {
        json!({ paved_api::labels::ADOPTABLE: "true" })
    } else {
        json!({})
    };
    let ns = json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": { "name": v.namespace, "labels": labels },
    });
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .patch(
            &v.namespace,
            &PatchParams::apply(&manager).force(),
            &Patch::Apply(&ns),
        )
        .await
        .with_context(|| format!("labelling namespace {}", v.namespace))?;
    Ok(())
}

/// Refusals of a ServiceClaim that waiting does not lift.
const SERVICE_REFUSALS: [&str; 6] = [
    "NamespaceConflict",
    "NamespaceReserved",
    "CloudNotAllowed",
    "TeamNotFound",
    "TeamLimitExceeded",
    "InvalidSpec",
];

/// Step 6 for one namespace: grants, the ServiceClaim, and its verdict. A refusal
/// comes before the claim writes anything in the namespace: the claim is deleted and
/// the grants taken back.
async fn take_over(
    client: &Client,
    v: &Service,
    timeout: Duration,
    out: &mut String,
) -> Result<()> {
    grant_namespace(client, v, true).await?;
    let api: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource("paved.dev/v1alpha1", "ServiceClaim", "serviceclaims"),
    );
    api.patch(
        &v.namespace,
        &PatchParams::apply(MANAGER),
        &Patch::Apply(&v.claim),
    )
    .await
    .with_context(|| format!("creating ServiceClaim {}", v.namespace))?;
    out.push_str(&format!(
        "created paved.dev/v1alpha1 ServiceClaim {ns} (takes over namespace {ns}, granted in Team {})\n",
        v.team,
        ns = v.namespace
    ));
    let start = Instant::now();
    loop {
        let claim = serde_json::to_value(api.get(&v.namespace).await?)?;
        let generation = claim["metadata"]["generation"].as_i64();
        let condition = |t: &str| {
            claim["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == t)
                .cloned()
        };
        let ready = condition("Ready").is_some_and(|c| {
            c["status"] == "True" && c["observedGeneration"].as_i64() == generation
        });
        if ready {
            out.push_str(&format!(
                "took over: namespace {} by ServiceClaim {}\n",
                v.namespace, v.namespace
            ));
            return Ok(());
        }
        // A verdict at the claim's generation, and not the first seconds' (the
        // operator's Team cache may not hold the grant yet; the Team's change brings
        // the claim back).
        if let Some(c) = condition("Synced").filter(|c| {
            c["status"] == "False"
                && c["observedGeneration"].as_i64() == generation
                && start.elapsed() > Duration::from_secs(15)
                && SERVICE_REFUSALS.contains(&c["reason"].as_str().unwrap_or_default())
        }) {
            out.push_str(&format!(
                "refused: ServiceClaim {}: {}: {}; deleted, its grants taken back, the namespace as it was\n",
                v.namespace,
                c["reason"].as_str().unwrap_or_default(),
                c["message"].as_str().unwrap_or_default()
            ));
            // The grants go only once the claim has: its finalizer takes its marks off
            // the namespace, which the operator may change only while it is granted.
            api.delete(&v.namespace, &DeleteParams::default()).await?;
            let gone = Instant::now();
            while api.get_opt(&v.namespace).await?.is_some() {
                if gone.elapsed() > timeout {
                    out.push_str(&format!(
                        "ServiceClaim {} is still being deleted; its grants stay until it is gone (take them back then)\n",
                        v.namespace
                    ));
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            grant_namespace(client, v, false).await?;
            return Ok(());
        }
        if start.elapsed() > timeout {
            out.push_str(&format!(
                "timed out: ServiceClaim {} is not Ready yet; look at it (kubectl describe serviceclaim {}) — it stays, with its grants\n",
                v.namespace, v.namespace
            ));
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_is_adopted_by_its_guard_and_refused_by_anything_but_a_blip() {
        let claim = |ann: Value, reason: &str| {
            json!({
                "metadata": { "annotations": ann },
                "status": { "conditions": [ { "type": "Synced", "status": "False", "reason": reason, "message": "m" } ] },
            })
        };
        let adopted = json!({ paved_api::annotations::CREATE_SUCCEEDED: "t" });
        let mut found = claim(adopted.clone(), "SecretConflict");
        found["status"]["credentialsSecret"] = json!("arn:secret");
        assert_eq!(progress(&found), Progress::Adopted);
        // Adopted, but not (yet) able to deliver: Crossplane's Secret stays.
        assert!(matches!(
            progress(&claim(adopted.clone(), "ProviderRejected")),
            Progress::Waiting(_)
        ));
        assert!(matches!(
            progress(&claim(adopted, "CredentialsNotManaged")),
            Progress::Undeliverable(_)
        ));
        // A grant the operator's cache has not seen yet is waited for.
        assert!(matches!(
            progress(&claim(json!({}), "ExistingNotGranted")),
            Progress::Waiting(_)
        ));
        assert_eq!(
            progress(&claim(json!({}), "OwnedByOther")),
            Progress::Refused("OwnedByOther: m".into())
        );
        assert!(matches!(
            progress(&claim(json!({}), "Throttled")),
            Progress::Waiting(_)
        ));
        assert!(matches!(progress(&json!({})), Progress::Waiting(_)));
    }
}
