//! Tenancy decisions, pure: which team a claim belongs to, whether it may have what it
//! asks for, which namespaces are off limits, and what a namespace's facts are. The
//! operator calls these before any write or cloud call; admission (the chart's
//! ValidatingAdmissionPolicy and Kubernetes RBAC) decides who may write a claim.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use paved_api::{Cloud, Composition, DataClassification, ServiceClaim, Team};

use crate::postgresql::NamespaceFacts;

/// Condition reasons of the refusals below.
pub mod reasons {
    use paved_api::Reason;
    pub const TEAM_NOT_FOUND: Reason = Reason::TeamNotFound;
    pub const TEAM_DELETING: Reason = Reason::TeamDeleting;
    pub const CLAIM_PREDATES_TEAM: Reason = Reason::ClaimPredatesTeam;
    pub const CLOUD_NOT_ALLOWED: Reason = Reason::CloudNotAllowed;
    pub const NAMESPACE_RESERVED: Reason = Reason::NamespaceReserved;
    pub const TEAM_LIMIT_EXCEEDED: Reason = Reason::TeamLimitExceeded;
    pub const COMPOSITION_NOT_ALLOWED: Reason = Reason::CompositionNotAllowed;
    pub const SECRET_CONFLICT: Reason = Reason::SecretConflict;
    pub const NAMESPACE_CONFLICT: Reason = Reason::NamespaceConflict;
}

/// Why a claim is refused: a condition reason and a message for a human.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: paved_api::Reason,
    pub message: String,
}

fn refuse(reason: paved_api::Reason, message: String) -> Refusal {
    Refusal { reason, message }
}

/// Namespaces no ServiceClaim may create or take, and where no database or Temporal
/// claim is served: the cluster's own, the operator's, Argo CD's, those the platform
/// names, and every namespace a service Composition trusts as a traffic source or
/// destination (a claim owning `ingress` would receive every service's allowance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    names: BTreeSet<String>,
    prefixes: Vec<String>,
}

/// Reserved whatever the platform configures.
pub const ALWAYS_RESERVED: &[&str] = &[
    "default",
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "argocd",
];

impl Reserved {
    /// `extra` entries ending in `*` are prefixes (`platform-*`).
    pub fn new(own_namespace: &str, extra: &[String]) -> Reserved {
        let mut names: BTreeSet<String> = ALWAYS_RESERVED.iter().map(|s| s.to_string()).collect();
        names.insert(own_namespace.to_string());
        let mut prefixes = vec!["kube-".to_string()];
        for e in extra.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            match e.strip_suffix('*') {
                // A bare `*` would reserve every namespace: ignored.
                Some("") => {}
                Some(p) => prefixes.push(p.to_string()),
                None => {
                    names.insert(e.to_string());
                }
            }
        }
        Reserved { names, prefixes }
    }

    /// Why `ns` is reserved, or None.
    pub fn why(&self, ns: &str, compositions: &[Arc<Composition>]) -> Option<String> {
        if self.names.contains(ns) {
            return Some(format!(
                "namespace {ns} is reserved for the platform (the operator's --reserved-namespaces and built-in list)"
            ));
        }
        if let Some(p) = self.prefixes.iter().find(|p| ns.starts_with(p.as_str())) {
            return Some(format!(
                "namespace {ns} is reserved for the platform (prefix {p}*)"
            ));
        }
        for c in compositions {
            let Some(s) = &c.spec.service else { continue };
            let trusted = s
                .network
                .ingress_from
                .iter()
                .map(|p| p.namespace.as_str())
                .chain(
                    s.network
                        .egress_to
                        .iter()
                        .filter_map(|p| p.namespace.as_deref()),
                )
                .chain(std::iter::once(s.network.dns.namespace.as_str()));
            if trusted.into_iter().any(|t| t == ns) {
                return Some(format!(
                    "namespace {ns} is reserved: Composition {} trusts it as a traffic source or destination for every service",
                    c.name_any()
                ));
            }
        }
        None
    }
}

fn created(meta: &ObjectMeta) -> Option<k8s_openapi::jiff::Timestamp> {
    meta.creation_timestamp.as_ref().map(|t| t.0)
}

/// Pure: may this ServiceClaim be served? `team` is the Team its `spec.owner` names
/// (None: there is none); `siblings` are all ServiceClaims of that owner, this one
/// included; `reserved` says why its name is off limits, if it is.
pub fn admit_service(
    claim: &ServiceClaim,
    cloud: Cloud,
    team: Option<&Team>,
    siblings: &[Arc<ServiceClaim>],
    reserved: Option<String>,
) -> Result<(), Refusal> {
    let name = claim.name_any();
    let owner = &claim.spec.owner;
    if let Some(why) = reserved {
        return Err(refuse(
            reasons::NAMESPACE_RESERVED,
            format!("{why}; choose another service name"),
        ));
    }
    let Some(team) = team else {
        return Err(refuse(
            reasons::TEAM_NOT_FOUND,
            format!(
                "spec.owner names team {owner}, and there is no Team {owner}: the platform creates a Team (kind Team) \
                 naming the team's groups before its services"
            ),
        ));
    };
    // Offboarding: the claims keep their namespaces and data, and lose their access.
    if team.metadata.deletion_timestamp.is_some() {
        return Err(refuse(
            reasons::TEAM_DELETING,
            format!(
                "Team {owner} is being deleted: ServiceClaim {name} keeps its namespace and data, and nobody is bound \
                 in it; the platform moves it to another team or deletes it"
            ),
        ));
    }
    // Admission checks who writes a claim against its Team. A claim that existed
    // before the Team did was never checked, so it is not served: anyone could have
    // written it to plant a service in a team that was about to exist. Created in the
    // Team's second counts as before it: the apiserver's policy sees a new Team a
    // moment after it exists. The platform vouches for older claims explicitly.
    if let (Some(c), Some(t)) = (created(&claim.metadata), created(&team.metadata)) {
        let vouched = team
            .spec
            .adopt_claims_created_before
            .as_ref()
            .is_some_and(|before| c < before.0);
        if c <= t && !vouched {
            return Err(refuse(
                reasons::CLAIM_PREDATES_TEAM,
                format!(
                    "ServiceClaim {name} was created before Team {owner} existed, so admission never checked who wrote it; \
                     a member of {owner} deletes and re-creates it, or the platform vouches for it \
                     (Team {owner} spec.adoptClaimsCreatedBefore)"
                ),
            ));
        }
    }
    if !team.spec.clouds.contains(&cloud) {
        return Err(refuse(
            reasons::CLOUD_NOT_ALLOWED,
            format!(
                "team {owner} may use {}; this service is on {cloud}",
                list(team.spec.clouds.iter().map(|c| c.as_str()))
            ),
        ));
    }
    let limit = team.spec.limits.services;
    // Ranking is only needed past the cap (and costs a pass over the team's claims).
    if siblings.len() > limit.max(0) as usize {
        return within_limit(team, "services", limit, rank(claim, siblings));
    }
    Ok(())
}

/// Pure: whether the `rank`-th (from 0, oldest first) of a team's `what` is within
/// its `limit`.
fn within_limit(team: &Team, what: &str, limit: i32, rank: usize) -> Result<(), Refusal> {
    let limit = limit.max(0) as usize;
    if rank < limit {
        return Ok(());
    }
    let t = team.name_any();
    Err(refuse(
        reasons::TEAM_LIMIT_EXCEEDED,
        format!(
            "team {t} may have {limit} {what} (Team {t} spec.limits.{what}) and this one is past it; \
             nothing was created for it"
        ),
    ))
}

/// Pure: the place of `claim` among `all` by age (then name): the oldest are served
/// first, so a cap never takes a running service away to serve a new one.
pub fn rank<K: kube::Resource>(claim: &K, all: &[Arc<K>]) -> usize {
    let key = |m: &ObjectMeta| {
        (
            created(m),
            m.namespace.clone().unwrap_or_default(),
            m.name.clone().unwrap_or_default(),
        )
    };
    let mine = key(claim.meta());
    all.iter().filter(|o| key(o.meta()) < mine).count()
}

/// Pure: may a database or Temporal claim (`what`, plural) be served in namespace
/// `ns`? Not where the platform reserves (`reserved` says why), and only with a
/// Composition granted to it ([`admit_composition`]).
pub fn admit_in_namespace(
    what: &str,
    reserved: Option<String>,
    comp: &Composition,
    ns: &str,
    facts: &NamespaceFacts,
) -> Result<(), Refusal> {
    if let Some(why) = reserved {
        return Err(refuse(
            reasons::NAMESPACE_RESERVED,
            format!("{why}; {what} are not served there"),
        ));
    }
    admit_composition(comp, ns, facts)
}

/// Pure: may a database claim in namespace `ns`, whose facts are `facts`, use this
/// PostgreSQL Composition? Its provider must be the namespace's cloud, and the
/// Composition's `access`, when set, must name the namespace's team or the namespace.
pub fn admit_composition(
    comp: &Composition,
    ns: &str,
    facts: &NamespaceFacts,
) -> Result<(), Refusal> {
    let name = comp.name_any();
    if let Some(pg) = &comp.spec.postgresql {
        if pg.provider != facts.cloud {
            return Err(refuse(
                reasons::COMPOSITION_NOT_ALLOWED,
                format!(
                    "Composition {name} builds on {}, but namespace {ns}'s services run on {} ({}); \
                     a database stays on its namespace's cloud: use a {} Composition",
                    pg.provider,
                    facts.cloud,
                    facts.source(),
                    facts.cloud
                ),
            ));
        }
    }
    if let Some(access) = &comp.spec.access {
        let team_ok = facts
            .team
            .as_ref()
            .is_some_and(|t| access.teams.contains(t));
        let ns_ok = access.namespaces.iter().any(|n| n == ns);
        if !team_ok && !ns_ok {
            return Err(refuse(
                reasons::COMPOSITION_NOT_ALLOWED,
                format!(
                    "Composition {name} may be used by teams {} and namespaces {}; namespace {ns} belongs to {}",
                    list(access.teams.iter().map(String::as_str)),
                    list(access.namespaces.iter().map(String::as_str)),
                    facts
                        .team
                        .as_deref()
                        .map(|t| format!("team {t}"))
                        .unwrap_or_else(|| "no team".into())
                ),
            ));
        }
    }
    Ok(())
}

/// Pure: may a database claim in a namespace with these facts be served? The team the
/// namespace belongs to must still exist and allow the namespace's cloud, and the
/// claim (the `rank`-th of the team's databases, oldest first) must be within its cap;
/// `None` for one that takes no slot (an observed database). A namespace of no team is
/// held to the floor's defaults only (PHI).
pub fn admit_database(
    facts: &NamespaceFacts,
    team: Option<&Team>,
    rank: Option<usize>,
) -> Result<(), Refusal> {
    let Some(name) = facts.team.as_deref() else {
        return Ok(());
    };
    let Some(team) = team else {
        return Err(refuse(
            reasons::TEAM_NOT_FOUND,
            format!(
                "namespace {} belongs to team {name}, and there is no Team {name}: its databases are not served",
                facts.service
            ),
        ));
    };
    if team.metadata.deletion_timestamp.is_some() {
        return Err(refuse(
            reasons::TEAM_DELETING,
            format!(
                "Team {name} is being deleted: the databases of namespace {} are kept and no longer served",
                facts.service
            ),
        ));
    }
    if !team.spec.clouds.contains(&facts.cloud) {
        return Err(refuse(
            reasons::CLOUD_NOT_ALLOWED,
            format!(
                "team {name} may use {}; namespace {} is on {}",
                list(team.spec.clouds.iter().map(|c| c.as_str())),
                facts.service,
                facts.cloud
            ),
        ));
    }
    match rank {
        Some(rank) => within_limit(team, "databases", team.spec.limits.databases, rank),
        None => Ok(()),
    }
}

/// Pure: may a claim in namespace `ns` name the existing database `existing`? Only
/// when the namespace's Team (the platform's word) lists it for that namespace: a
/// claim would otherwise read, by naming it, whatever database it guesses the name of.
pub fn admit_existing(
    facts: &NamespaceFacts,
    team: Option<&Team>,
    teams: &[Arc<Team>],
    ns: &str,
    composition: &str,
    existing: &paved_api::ExistingDatabase,
) -> Result<(), Refusal> {
    use paved_api::ExistingMode;
    // The Composition too: it says where the name is looked up (another region,
    // project or server may hold another database of the same name).
    let same = |g: &paved_api::ExistingDatabaseGrant| {
        g.external_name == existing.external_name && g.composition == composition
    };
    let grant = team.and_then(|t| {
        t.spec
            .existing_databases
            .iter()
            .find(|g| g.namespace == ns && same(g))
    });
    let Some(grant) = grant else {
        return Err(refuse(
            paved_api::Reason::ExistingNotGranted,
            match facts.team.as_deref() {
                Some(t) => format!(
                    "Team {t} does not list database {} of Composition {composition} for namespace {ns} in spec.existingDatabases; the platform grants existing databases",
                    existing.external_name
                ),
                None => format!(
                    "namespace {ns} belongs to no Team, so no existing database is granted to it (the platform lists them in a Team's spec.existingDatabases)"
                ),
            },
        ));
    };
    if existing.mode == ExistingMode::Observe {
        return Ok(());
    }
    if grant.mode != ExistingMode::Adopt {
        return Err(refuse(
            paved_api::Reason::ExistingNotGranted,
            format!(
                "Team {} grants database {} of Composition {composition} to namespace {ns} to observe only; adopting it needs mode: Adopt in that grant",
                team.map(|t| t.name_any()).unwrap_or_default(),
                existing.external_name
            ),
        ));
    }
    // One database, one manager: a second adoption grant (another Team's, another
    // namespace's) is a platform mistake that would let two claims write it. By its
    // name alone: two Compositions may point at one account and region.
    let holders: Vec<String> = teams
        .iter()
        .flat_map(|t| {
            t.spec
                .existing_databases
                .iter()
                .filter(|g| {
                    g.external_name == existing.external_name && g.mode == ExistingMode::Adopt
                })
                .map(move |g| format!("Team {} for namespace {}", t.name_any(), g.namespace))
        })
        .collect();
    if holders.len() > 1 {
        return Err(refuse(
            paved_api::Reason::ExistingNotGranted,
            format!(
                "database {} is granted for adoption more than once ({}); the platform must leave one grant with mode: Adopt",
                existing.external_name,
                holders.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Pure: a namespace's facts. They come from the ServiceClaim that made the namespace
/// (named as the namespace, and its controller by UID) and never from labels, which
/// whoever can edit the namespace could set. A namespace Paved did not make has no
/// team, the operator's default cloud, and is treated as holding PHI.
pub fn namespace_facts(
    ns: &str,
    ns_meta: Option<&ObjectMeta>,
    claim: Option<&ServiceClaim>,
    teams: &[Arc<Team>],
    default_cloud: Cloud,
) -> NamespaceFacts {
    let owning = match (ns_meta, claim) {
        (Some(m), Some(c)) => {
            let uid = c.metadata.uid.as_deref().unwrap_or_default();
            let controlled =
                m.owner_references.iter().flatten().any(|o| {
                    o.kind == "ServiceClaim" && o.uid == uid && o.controller == Some(true)
                });
            (controlled && c.name_any() == ns && !uid.is_empty()).then_some(c)
        }
        _ => None,
    };
    match owning {
        Some(c) => NamespaceFacts {
            cloud: c
                .spec
                .cloud
                .or(c.status.as_ref().and_then(|s| s.cloud))
                .unwrap_or(default_cloud),
            classification: c.spec.data_classification,
            owner: c.spec.owner.clone(),
            system: c.spec.system.clone(),
            service: ns.to_string(),
            cost_center: c.spec.cost_center.clone(),
            team: Some(c.spec.owner.clone()),
        },
        None => listed_facts(ns, ns_meta.is_some(), teams).unwrap_or(NamespaceFacts {
            cloud: default_cloud,
            classification: DataClassification::Phi,
            owner: "unknown".into(),
            system: "unknown".into(),
            service: ns.to_string(),
            cost_center: "unknown".into(),
            team: None,
        }),
    }
}

/// How ServiceClaim `name` (UID `uid`) stands to its existing namespace `ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceHold {
    /// The claim made it: it controls it by owner reference (the garbage collector
    /// deletes it with the claim).
    Made,
    /// The claim took it over: it carries the claim's UID in `paved.dev/adopted-by`
    /// and no owner reference (it outlives the claim).
    Adopted,
    /// Someone else's.
    Not,
}

/// Pure: how ServiceClaim `name` (UID `uid`) holds existing namespace `ns`. Ours only
/// for this very claim (by UID, not just by name): a namespace left behind by an
/// earlier claim of the same name holds another team's data.
pub fn namespace_hold(ns: &ObjectMeta, name: &str, uid: &str) -> NamespaceHold {
    let labelled = ns
        .labels
        .as_ref()
        .and_then(|l| l.get(paved_api::labels::CLAIM_NAME))
        .map(String::as_str)
        == Some(name);
    let owners = ns.owner_references.iter().flatten();
    if uid.is_empty() || !labelled {
        return NamespaceHold::Not;
    }
    if owners.clone().any(|o| o.uid == uid) {
        return NamespaceHold::Made;
    }
    let adopted = ns
        .annotations
        .as_ref()
        .and_then(|a| a.get(paved_api::annotations::ADOPTED_BY))
        .map(String::as_str)
        == Some(uid);
    // Taken over, and still no one's by owner reference (a controller would delete it).
    if adopted && owners.clone().next().is_none() {
        return NamespaceHold::Adopted;
    }
    NamespaceHold::Not
}

/// What ServiceClaim adoption of a namespace is judged on: the namespace as the
/// apiserver has it now (all its labels and annotations: a cache holding only Paved's
/// would hide a conflicting label), and the labels Paved will write on it.
pub struct NamespaceTakeover<'a> {
    pub ns: &'a ObjectMeta,
    pub wants: &'a BTreeMap<String, String>,
    /// This claim holds it already ([`NamespaceHold::Adopted`]): only its grant is
    /// judged again.
    pub held: bool,
}

/// Marks of another tool managing a namespace (label or annotation key, and what):
/// a namespace one of them manages can be changed back or deleted by it.
const OTHER_MANAGERS: &[(&str, &str)] = &[
    ("argocd.argoproj.io/tracking-id", "Argo CD"),
    ("argocd.argoproj.io/instance", "Argo CD"),
    ("meta.helm.sh/release-name", "Helm"),
    ("crossplane.io/composite", "Crossplane"),
    ("crossplane.io/claim-name", "Crossplane"),
    ("kustomize.toolkit.fluxcd.io/name", "Flux"),
    ("helm.toolkit.fluxcd.io/name", "Flux"),
];

/// Pure: may ServiceClaim `claim` (on `cloud`, of `team`; `teams` all Teams) take over
/// (or, `held`, keep) existing namespace `t.ns`, which it did not make? Only where its
/// Team grants the namespace to it (`spec.namespaces[]` with `adoptByServiceClaim`,
/// listed by no other Team, with the claim's cloud and classification: the facts its
/// databases there are built with) — judged again on every pass, so a grant taken back
/// refuses the claim. To take it first, the platform must also have labelled it
/// `paved.dev/adoptable=true` (which the operator's admission policy requires too),
/// nothing else may hold it (a ServiceClaim's owner reference, another claim's mark,
/// another tool), and no label Paved writes may be there with another value (Paved would
/// take it over, and remove it when the claim goes).
pub fn admit_namespace_adoption(
    claim: &ServiceClaim,
    cloud: Cloud,
    team: &Team,
    teams: &[Arc<Team>],
    t: &NamespaceTakeover<'_>,
) -> Result<(), Refusal> {
    let name = claim.name_any();
    let tn = team.name_any();
    let ns = t.ns;
    let conflict = |why: String| {
        Err(refuse(
            reasons::NAMESPACE_CONFLICT,
            if t.held {
                format!(
                    "namespace {name} was taken over by this ServiceClaim and is no longer granted to it: {why}; \
                     nobody of the team is bound in it any more. The platform grants it again, or deletes the claim \
                     (the namespace and what was in it before stay)"
                )
            } else {
                format!("namespace {name} already exists and Paved did not make it for this ServiceClaim: {why}")
            },
        ))
    };
    if !t.held {
        if ns.deletion_timestamp.is_some() {
            return conflict("it is being deleted".into());
        }
        if let Some(o) = ns.owner_references.iter().flatten().next() {
            return conflict(format!(
                "it is controlled by {} {} (owner reference); Paved will not take it over",
                o.kind, o.name
            ));
        }
        let uid = claim.metadata.uid.as_deref().unwrap_or_default();
        if let Some(other) = ns
            .annotations
            .as_ref()
            .and_then(|a| a.get(paved_api::annotations::ADOPTED_BY))
            .filter(|u| u.as_str() != uid)
        {
            return conflict(format!(
                "another ServiceClaim (UID {other}) took it over; if that claim is gone for good, the platform removes the \
                 namespace's {} annotation",
                paved_api::annotations::ADOPTED_BY
            ));
        }
        let marks = ns
            .labels
            .iter()
            .flatten()
            .chain(ns.annotations.iter().flatten());
        for (k, _) in marks {
            if let Some((_, who)) = OTHER_MANAGERS.iter().find(|(m, _)| m == k) {
                return conflict(format!(
                    "{who} manages it ({k}), and would change Paved's labels back or delete it with everything in it; \
                     the platform takes it out of {who} first"
                ));
            }
        }
    }
    let Some(entry) = team.spec.namespaces.iter().find(|n| n.name == name) else {
        return conflict(format!(
            "Team {tn} does not list it (spec.namespaces); the platform grants an existing namespace to its service with \
             spec.namespaces[] {{name: {name}, adoptByServiceClaim: true}}"
        ));
    };
    if !entry.adopt_by_service_claim {
        return conflict(format!(
            "Team {tn} lists it for claims inside it, not for a ServiceClaim to take over (spec.namespaces[{name}].adoptByServiceClaim)"
        ));
    }
    let listers: Vec<String> = teams
        .iter()
        .filter(|o| o.spec.namespaces.iter().any(|n| n.name == name))
        .map(|o| o.name_any())
        .collect();
    if listers.iter().any(|l| *l != tn) {
        return conflict(format!(
            "it is listed by more than one Team ({}); the platform keeps one",
            listers.join(", ")
        ));
    }
    if entry.cloud != cloud {
        return conflict(format!(
            "Team {tn} lists it on cloud {} and spec.cloud is {cloud}",
            entry.cloud
        ));
    }
    if entry.data_classification != claim.spec.data_classification {
        return conflict(format!(
            "Team {tn} lists it as holding {} data and spec.dataClassification is {}",
            entry.data_classification.as_str(),
            claim.spec.data_classification.as_str()
        ));
    }
    if t.held {
        return Ok(());
    }
    let labels = ns.labels.clone().unwrap_or_default();
    let marked = labels
        .get(paved_api::labels::ADOPTABLE)
        .is_some_and(|v| v == "true");
    if !marked {
        return conflict(format!(
            "Team {tn} grants it, and the platform has not labelled it {}=true (kubectl label namespace {name} {}=true): \
             the operator may change no other namespace it did not make",
            paved_api::labels::ADOPTABLE,
            paved_api::labels::ADOPTABLE
        ));
    }
    let clashes: Vec<String> = t
        .wants
        .iter()
        .filter_map(|(k, v)| {
            labels
                .get(k)
                .filter(|have| *have != v)
                .map(|have| format!("{k}={have} (Paved sets {v})"))
        })
        .collect();
    if !clashes.is_empty() {
        return conflict(format!(
            "it has labels Paved would set to other values: {}; Paved would take them over and remove them when the claim \
             goes, so the platform aligns or removes them first",
            clashes.join(", ")
        ));
    }
    Ok(())
}

/// The kinds [`in_the_way`] judges in a namespace about to be taken over: (apiVersion,
/// kind, plural).
pub const TAKEOVER_CHECKED: &[(&str, &str, &str)] = &[
    ("rbac.authorization.k8s.io/v1", "Role", "roles"),
    (
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        "rolebindings",
    ),
    ("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
    ("external-secrets.io/v1", "SecretStore", "secretstores"),
    (
        "external-secrets.io/v1",
        "ExternalSecret",
        "externalsecrets",
    ),
    ("v1", "Service", "services"),
    ("v1", "ServiceAccount", "serviceaccounts"),
];

/// ServiceAccount annotations that give its pods a cloud identity.
const CLOUD_IDENTITY_ANNOTATIONS: &[&str] = &[
    "eks.amazonaws.com/role-arn",
    "azure.workload.identity/client-id",
    "iam.gke.io/gcp-service-account",
];

/// Pure: why `obj` (of `kind`), already in a namespace ServiceClaim `uid` would take
/// over and not that claim's, stands in the way; None where it does not. What would
/// outlive the floor or hand the team more than Paved grants: bindings and roles (other
/// people's access, or more than the owner role), NetworkPolicies (they open what
/// default-deny closes), secret stores and ExternalSecrets (secrets read outside the
/// service's own store), Services exposed past the cluster, ServiceAccounts carrying a
/// cloud identity. (Secrets are not listed: the operator may not list them. The team
/// can read what is there once it is bound: the platform reviews them first, as the
/// migrate report says.)
///
/// `paved` are the UIDs whose objects are Paved's here: the claim's and those of the
/// Paved claims in the namespace (an adopting database's NetworkPolicy and
/// ExternalSecret).
pub fn in_the_way(kind: &str, obj: &serde_json::Value, paved: &[&str]) -> Option<&'static str> {
    let ours = obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|o| {
            o.iter()
                .any(|r| paved.iter().any(|u| !u.is_empty() && r["uid"] == *u))
        });
    if ours {
        return None;
    }
    match kind {
        "Role" | "RoleBinding" => Some("grants access that Paved does not decide"),
        "NetworkPolicy" => Some("would open what Paved's default-deny closes"),
        "SecretStore" | "ExternalSecret" => Some("reads secrets outside the service's own store"),
        "Service" => {
            let spec = &obj["spec"];
            let exposed = spec["externalIPs"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
                || spec["type"] == "NodePort"
                || spec["type"] == "LoadBalancer";
            exposed
                .then_some("is exposed outside the cluster (externalIPs, NodePort, LoadBalancer)")
        }
        "ServiceAccount" => {
            let a = obj["metadata"]["annotations"].as_object();
            a.is_some_and(|a| {
                CLOUD_IDENTITY_ANNOTATIONS
                    .iter()
                    .any(|k| a.contains_key(*k))
            })
            .then_some("carries a cloud identity that is not the service's")
        }
        _ => None,
    }
}

/// Pure: the facts a claim being deleted is cleaned up with. Its namespace's
/// ServiceClaim may be gone already (deleting a service deletes its claims with it);
/// then the labels Paved wrote on the namespace from that claim are what is left of
/// its facts, and are read only on a namespace a ServiceClaim controls (which tenants
/// cannot edit). Deletion must act as creation did: a database created as internal
/// must not be kept forever as a PHI one the provider refuses to touch.
pub fn facts_for_cleanup(
    ns: &str,
    ns_meta: Option<&ObjectMeta>,
    claim: Option<&ServiceClaim>,
    teams: &[Arc<Team>],
    default_cloud: Cloud,
) -> NamespaceFacts {
    let live = namespace_facts(ns, ns_meta, claim, teams, default_cloud);
    let owners = || {
        ns_meta
            .and_then(|m| m.owner_references.as_ref())
            .into_iter()
            .flatten()
    };
    let claim_gone =
        claim.is_none_or(|c| !owners().any(|o| Some(&o.uid) == c.metadata.uid.as_ref()));
    let paved_made =
        owners().any(|o| o.kind == "ServiceClaim" && o.name == ns && o.controller == Some(true));
    match (
        claim_gone && paved_made,
        ns_meta.and_then(|m| m.labels.as_ref()),
    ) {
        // What Paved wrote on its own namespace, over any Team's listing of it.
        (true, Some(labels)) => NamespaceFacts::from_labels(ns, labels, default_cloud),
        _ => live,
    }
}

/// The facts of a namespace Paved did not make, from the one Team that lists it.
/// Listed by two Teams: no one's (safe defaults).
fn listed_facts(ns: &str, exists: bool, teams: &[Arc<Team>]) -> Option<NamespaceFacts> {
    if !exists {
        return None;
    }
    let mut listing = teams.iter().filter_map(|t| {
        t.spec
            .namespaces
            .iter()
            .find(|n| n.name == ns)
            .map(|n| (t, n))
    });
    let (team, n) = listing.next()?;
    if listing.next().is_some() {
        return None;
    }
    Some(NamespaceFacts {
        cloud: n.cloud,
        classification: n.data_classification,
        owner: team.name_any(),
        system: n.system.clone().unwrap_or_else(|| "unknown".into()),
        service: ns.to_string(),
        cost_center: n.cost_center.clone().unwrap_or_else(|| "unknown".into()),
        team: Some(team.name_any()),
    })
}

/// Pure: whether an existing Secret named as a claim's connection Secret is that
/// claim's: written by Paved for it (owned by the claim), or by External Secrets for
/// the ExternalSecret Paved made for it (owned by an ExternalSecret of that name, and
/// carrying the claim's UID, which Paved puts in the ExternalSecret's template). Any
/// other Secret is never overwritten.
pub fn connection_secret_is_ours(secret: &ObjectMeta, claim_uid: &str) -> bool {
    let owners = secret.owner_references.iter().flatten();
    let by_claim = owners.clone().any(|o| o.uid == claim_uid);
    let by_eso = owners
        .into_iter()
        .any(|o| o.kind == "ExternalSecret" && Some(&o.name) == secret.name.as_ref())
        && secret
            .labels
            .as_ref()
            .and_then(|l| l.get(paved_api::labels::CLAIM_UID))
            .map(String::as_str)
            == Some(claim_uid);
    by_claim || by_eso
}

fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = items.collect();
    if v.is_empty() {
        "[none]".into()
    } else {
        format!("[{}]", v.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
    use paved_api::{
        CompositionAccess, CompositionSpec, PostgreSQLComposition, ServiceClaimSpec,
        ServiceComposition, TeamLimits, TeamSpec,
    };

    fn at(secs: i64) -> Option<Time> {
        Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(1_800_000_000 + secs).unwrap(),
        ))
    }

    fn claim(name: &str, owner: &str, created: i64) -> ServiceClaim {
        let mut c = ServiceClaim::new(
            name,
            ServiceClaimSpec {
                owner: owner.into(),
                system: "s".into(),
                cost_center: "CC-1".into(),
                ..Default::default()
            },
        );
        c.metadata.uid = Some(format!("uid-{name}"));
        c.metadata.creation_timestamp = at(created);
        c
    }

    fn team(name: &str, created: i64, clouds: &[Cloud], services: i32) -> Team {
        let mut t = Team::new(
            name,
            TeamSpec {
                groups: vec![name.into()],
                clouds: clouds.to_vec(),
                limits: TeamLimits {
                    services,
                    databases: 2,
                },
                ..Default::default()
            },
        );
        t.metadata.creation_timestamp = at(created);
        t
    }

    fn reasons_of(r: Result<(), Refusal>) -> &'static str {
        r.err().map(|r| r.reason.as_str()).unwrap_or("admitted")
    }

    #[test]
    fn a_claim_is_served_only_for_an_existing_team_that_predates_it() {
        let c = claim("svc", "team-a", 10);
        let all = [Arc::new(c.clone())];
        assert_eq!(
            reasons_of(admit_service(&c, Cloud::Local, None, &all, None)),
            reasons::TEAM_NOT_FOUND.as_str()
        );
        let late = team("team-a", 20, &[Cloud::Local], 5);
        let r = admit_service(&c, Cloud::Local, Some(&late), &all, None).unwrap_err();
        assert_eq!(r.reason, reasons::CLAIM_PREDATES_TEAM);
        assert!(r.message.contains("team-a"), "{}", r.message);
        let early = team("team-a", 5, &[Cloud::Local], 5);
        assert_eq!(
            reasons_of(admit_service(&c, Cloud::Local, Some(&early), &all, None)),
            "admitted"
        );
        // Created in the Team's second: the apiserver may not have seen the Team yet.
        let same = team("team-a", 10, &[Cloud::Local], 5);
        assert_eq!(
            reasons_of(admit_service(&c, Cloud::Local, Some(&same), &all, None)),
            reasons::CLAIM_PREDATES_TEAM.as_str()
        );
        // The platform vouches for claims made before an upgrade brought Teams.
        let mut upgraded = team("team-a", 20, &[Cloud::Local], 5);
        upgraded.spec.adopt_claims_created_before = at(11);
        assert_eq!(
            reasons_of(admit_service(&c, Cloud::Local, Some(&upgraded), &all, None)),
            "admitted"
        );
        upgraded.spec.adopt_claims_created_before = at(10);
        assert_eq!(
            reasons_of(admit_service(&c, Cloud::Local, Some(&upgraded), &all, None)),
            reasons::CLAIM_PREDATES_TEAM.as_str()
        );
    }

    #[test]
    fn a_team_being_deleted_serves_no_claim() {
        let c = claim("svc", "team-a", 10);
        let mut t = team("team-a", 5, &[Cloud::Local], 5);
        t.metadata.deletion_timestamp = at(20);
        assert_eq!(
            reasons_of(admit_service(
                &c,
                Cloud::Local,
                Some(&t),
                &[Arc::new(c.clone())],
                None
            )),
            reasons::TEAM_DELETING.as_str()
        );
    }

    #[test]
    fn a_claim_on_a_cloud_its_team_may_not_use_is_refused_naming_both() {
        let c = claim("svc", "team-a", 10);
        let t = team("team-a", 5, &[Cloud::Aws, Cloud::Local], 5);
        let r = admit_service(&c, Cloud::Gcp, Some(&t), &[Arc::new(c.clone())], None).unwrap_err();
        assert_eq!(r.reason, reasons::CLOUD_NOT_ALLOWED);
        assert!(r.message.contains("[aws, local]") && r.message.contains("gcp"));
    }

    #[test]
    fn reserved_names_are_refused_before_anything_else() {
        let c = claim("argocd", "team-a", 10);
        let t = team("team-a", 5, &[Cloud::Local], 5);
        let why = Reserved::new("paved-system", &[]).why("argocd", &[]);
        assert_eq!(
            reasons_of(admit_service(&c, Cloud::Local, Some(&t), &[], why)),
            reasons::NAMESPACE_RESERVED.as_str()
        );
    }

    #[test]
    fn a_reserved_namespace_serves_no_claim_before_its_composition_is_judged() {
        let facts = namespace_facts("paved-system", None, None, &[], Cloud::Local);
        let why = Reserved::new("paved-system", &[]).why("paved-system", &[]);
        let r = admit_in_namespace(
            "databases",
            why,
            &pg(Cloud::Aws, None),
            "paved-system",
            &facts,
        )
        .unwrap_err();
        assert_eq!(r.reason, reasons::NAMESPACE_RESERVED);
        assert!(
            r.message.contains("databases are not served there"),
            "{}",
            r.message
        );
        // Elsewhere the Composition is judged.
        let r = admit_in_namespace("databases", None, &pg(Cloud::Aws, None), "svc", &facts)
            .unwrap_err();
        assert_eq!(r.reason, reasons::COMPOSITION_NOT_ALLOWED);
    }

    #[test]
    fn the_oldest_claims_are_served_within_the_team_cap() {
        let t = team("team-a", 0, &[Cloud::Local], 2);
        let a = claim("a", "team-a", 10);
        let b = claim("b", "team-a", 11);
        let c = claim("c", "team-a", 11);
        let all: Vec<_> = [&c, &a, &b]
            .iter()
            .map(|c| Arc::new((*c).clone()))
            .collect();
        assert_eq!(rank(&a, &all), 0);
        assert_eq!(rank(&b, &all), 1);
        assert_eq!(rank(&c, &all), 2);
        for (claim, want) in [
            (&a, "admitted"),
            (&b, "admitted"),
            (&c, reasons::TEAM_LIMIT_EXCEEDED.as_str()),
        ] {
            assert_eq!(
                reasons_of(admit_service(claim, Cloud::Local, Some(&t), &all, None)),
                want,
                "{}",
                claim.name_any()
            );
        }
    }

    #[test]
    fn reserved_namespaces_cover_the_platform_and_what_compositions_trust() {
        let r = Reserved::new("paved-system", &["monitoring".into(), "platform-*".into()]);
        for ns in [
            "default",
            "kube-system",
            "kube-anything",
            "argocd",
            "paved-system",
            "monitoring",
            "platform-logging",
        ] {
            assert!(r.why(ns, &[]).is_some(), "{ns} should be reserved");
        }
        assert!(r.why("claims-svc", &[]).is_none());
        let mut svc = ServiceComposition::default();
        svc.network.ingress_from.push(paved_api::IngressPeer {
            namespace: "ingress".into(),
            ..Default::default()
        });
        let comp = Composition::new(
            "service-local",
            CompositionSpec {
                service: Some(svc),
                ..Default::default()
            },
        );
        let why = r.why("ingress", &[Arc::new(comp)]).unwrap();
        assert!(why.contains("service-local"), "{why}");
    }

    fn pg(provider: Cloud, access: Option<CompositionAccess>) -> Composition {
        Composition::new(
            "pg",
            CompositionSpec {
                postgresql: Some(PostgreSQLComposition {
                    provider,
                    ..Default::default()
                }),
                access,
                ..Default::default()
            },
        )
    }

    fn owned_ns(c: &ServiceClaim) -> ObjectMeta {
        ObjectMeta {
            name: Some(c.name_any()),
            owner_references: Some(vec![OwnerReference {
                kind: "ServiceClaim".into(),
                name: c.name_any(),
                uid: c.metadata.uid.clone().unwrap(),
                controller: Some(true),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn facts_come_from_the_owning_claim_and_never_from_labels() {
        let mut c = claim("svc", "team-a", 0);
        c.spec.data_classification = DataClassification::Public;
        c.spec.cloud = Some(Cloud::Aws);
        let mut ns = owned_ns(&c);
        // Labels claiming otherwise are ignored.
        ns.labels = Some(
            [(paved_api::labels::CLOUD.to_string(), "gcp".to_string())]
                .into_iter()
                .collect(),
        );
        let f = namespace_facts("svc", Some(&ns), Some(&c), &[], Cloud::Local);
        assert_eq!(
            (f.cloud, f.classification, f.team.as_deref()),
            (Cloud::Aws, DataClassification::Public, Some("team-a"))
        );
        // A namespace not controlled by that very claim (by UID) is unknown: PHI.
        let mut other = owned_ns(&c);
        other.owner_references.as_mut().unwrap()[0].uid = "someone-else".into();
        let f = namespace_facts("svc", Some(&other), Some(&c), &[], Cloud::Local);
        assert_eq!(
            (f.cloud, f.classification, f.team),
            (Cloud::Local, DataClassification::Phi, None)
        );
        // A claim of another name cannot lend its facts to this namespace.
        let f = namespace_facts("elsewhere", Some(&ns), Some(&c), &[], Cloud::Local);
        assert_eq!(f.classification, DataClassification::Phi);
        let f = namespace_facts("svc", Some(&ns), None, &[], Cloud::Local);
        assert_eq!(f.classification, DataClassification::Phi);
    }

    #[test]
    fn a_claim_being_deleted_after_its_service_is_cleaned_up_with_the_services_facts() {
        let mut c = claim("svc", "team-a", 0);
        c.spec.data_classification = DataClassification::Internal;
        let mut ns = owned_ns(&c);
        ns.labels = Some(
            [
                (
                    paved_api::labels::CLASSIFICATION.to_string(),
                    "internal".to_string(),
                ),
                (paved_api::labels::OWNER.to_string(), "team-a".to_string()),
            ]
            .into_iter()
            .collect(),
        );
        // The ServiceClaim is gone: live facts are the safe defaults...
        let live = namespace_facts("svc", Some(&ns), None, &[], Cloud::Local);
        assert_eq!(live.classification, DataClassification::Phi);
        // ...and cleanup reads what Paved wrote on its own namespace, even when a Team
        // lists a namespace of that name.
        let mut lister = team("team-z", 0, &[Cloud::Local], 5);
        lister.spec.namespaces.push(paved_api::TeamNamespace {
            name: "svc".into(),
            cloud: Cloud::Local,
            data_classification: DataClassification::Public,
            ..Default::default()
        });
        let f = facts_for_cleanup("svc", Some(&ns), None, &[Arc::new(lister)], Cloud::Local);
        assert_eq!(
            (f.classification, f.team.as_deref()),
            (DataClassification::Internal, Some("team-a"))
        );
        // While the claim is there, its own facts.
        let f = facts_for_cleanup("svc", Some(&ns), Some(&c), &[], Cloud::Local);
        assert_eq!(f.classification, DataClassification::Internal);
        // Labels on a namespace no ServiceClaim controls are never read.
        ns.owner_references = None;
        let f = facts_for_cleanup("svc", Some(&ns), None, &[], Cloud::Local);
        assert_eq!(f.classification, DataClassification::Phi);
    }

    #[test]
    fn an_existing_namespace_has_the_facts_of_the_one_team_listing_it() {
        let listed = |team_name: &str| {
            let mut t = team(team_name, 0, &[Cloud::Local], 5);
            t.spec.namespaces.push(paved_api::TeamNamespace {
                name: "reporting".into(),
                cloud: Cloud::Local,
                data_classification: DataClassification::Internal,
                cost_center: Some("CC-9".into()),
                ..Default::default()
            });
            Arc::new(t)
        };
        let ns = ObjectMeta {
            name: Some("reporting".into()),
            ..Default::default()
        };
        let a = listed("team-a");
        let f = namespace_facts(
            "reporting",
            Some(&ns),
            None,
            std::slice::from_ref(&a),
            Cloud::Aws,
        );
        assert_eq!(
            (
                f.cloud,
                f.classification,
                f.team.as_deref(),
                f.cost_center.as_str()
            ),
            (
                Cloud::Local,
                DataClassification::Internal,
                Some("team-a"),
                "CC-9"
            )
        );
        // Two Teams claiming one namespace: nobody's, PHI.
        let f = namespace_facts(
            "reporting",
            Some(&ns),
            None,
            &[a.clone(), listed("team-b")],
            Cloud::Aws,
        );
        assert_eq!((f.classification, f.team), (DataClassification::Phi, None));
        // A namespace a ServiceClaim made keeps its claim's facts over any listing.
        let c = claim("reporting", "team-c", 0);
        let f = namespace_facts("reporting", Some(&owned_ns(&c)), Some(&c), &[a], Cloud::Aws);
        assert_eq!(f.team.as_deref(), Some("team-c"));
    }

    #[test]
    fn a_composition_of_another_cloud_or_not_granted_is_refused_naming_both() {
        let c = claim("svc", "team-a", 0);
        let facts = namespace_facts("svc", Some(&owned_ns(&c)), Some(&c), &[], Cloud::Local);
        let r = admit_composition(&pg(Cloud::Aws, None), "svc", &facts).unwrap_err();
        assert_eq!(r.reason, reasons::COMPOSITION_NOT_ALLOWED);
        assert!(
            r.message.contains("aws") && r.message.contains("local"),
            "{}",
            r.message
        );
        assert!(admit_composition(&pg(Cloud::Local, None), "svc", &facts).is_ok());
        let for_b = CompositionAccess {
            teams: vec!["team-b".into()],
            namespaces: vec![],
        };
        let r =
            admit_composition(&pg(Cloud::Local, Some(for_b.clone())), "svc", &facts).unwrap_err();
        assert!(
            r.message.contains("team-b") && r.message.contains("team team-a"),
            "{}",
            r.message
        );
        let for_a = CompositionAccess {
            teams: vec!["team-a".into()],
            namespaces: vec![],
        };
        assert!(admit_composition(&pg(Cloud::Local, Some(for_a)), "svc", &facts).is_ok());
        let by_ns = CompositionAccess {
            teams: vec![],
            namespaces: vec!["svc".into()],
        };
        assert!(admit_composition(&pg(Cloud::Local, Some(by_ns)), "svc", &facts).is_ok());
        // A namespace with no team gets no team-restricted Composition.
        let unknown = namespace_facts("x", None, None, &[], Cloud::Local);
        assert!(admit_composition(&pg(Cloud::Local, Some(for_b)), "x", &unknown).is_err());
    }

    #[test]
    fn a_database_is_served_only_for_a_team_that_exists_allows_its_cloud_and_has_room() {
        let t = team("team-a", 0, &[Cloud::Local], 5);
        let c = claim("svc", "team-a", 0);
        let facts = namespace_facts("svc", Some(&owned_ns(&c)), Some(&c), &[], Cloud::Local);
        assert!(admit_database(&facts, Some(&t), Some(1)).is_ok());
        assert_eq!(
            reasons_of(admit_database(&facts, Some(&t), Some(2))),
            reasons::TEAM_LIMIT_EXCEEDED.as_str()
        );
        assert_eq!(
            reasons_of(admit_database(&facts, None, Some(0))),
            reasons::TEAM_NOT_FOUND.as_str()
        );
        let aws_only = team("team-a", 0, &[Cloud::Aws], 5);
        assert_eq!(
            reasons_of(admit_database(&facts, Some(&aws_only), Some(0))),
            reasons::CLOUD_NOT_ALLOWED.as_str()
        );
        // A namespace of no team: only the floor's defaults apply.
        let unknown = namespace_facts("x", None, None, &[], Cloud::Local);
        assert!(admit_database(&unknown, None, Some(99)).is_ok());
        // An observed database takes no slot, even of a team with none to give.
        let mut none = team("team-a", 0, &[Cloud::Local], 5);
        none.spec.limits.databases = 0;
        assert!(admit_database(&facts, Some(&none), None).is_ok());
        assert!(admit_database(&facts, Some(&none), Some(0)).is_err());
    }

    #[test]
    fn only_the_claims_own_secrets_are_ours() {
        let owned_by = |kind: &str, name: &str, uid: &str| OwnerReference {
            kind: kind.into(),
            name: name.into(),
            uid: uid.into(),
            ..Default::default()
        };
        let mut s = ObjectMeta {
            name: Some("db-connection".into()),
            ..Default::default()
        };
        assert!(!connection_secret_is_ours(&s, "u1"), "a foreign Secret");
        s.owner_references = Some(vec![owned_by("PostgreSQLInstance", "db", "u1")]);
        assert!(connection_secret_is_ours(&s, "u1"));
        assert!(!connection_secret_is_ours(&s, "u2"));
        s.owner_references = Some(vec![owned_by("ExternalSecret", "db-connection", "es")]);
        assert!(
            !connection_secret_is_ours(&s, "u1"),
            "another ExternalSecret's Secret without the claim's mark"
        );
        s.labels = Some(
            [(paved_api::labels::CLAIM_UID.to_string(), "u1".to_string())]
                .into_iter()
                .collect(),
        );
        assert!(connection_secret_is_ours(&s, "u1"));
    }

    #[test]
    fn an_existing_database_is_named_only_where_the_team_grants_it() {
        let mut t = team("team-a", 0, &[Cloud::Aws], 5);
        t.spec.existing_databases = vec![paved_api::ExistingDatabaseGrant {
            namespace: "orders".into(),
            external_name: "legacy-orders".into(),
            composition: "pg-us-east-1".into(),
            ..Default::default()
        }];
        let facts = |team: Option<&str>| NamespaceFacts {
            team: team.map(String::from),
            ..namespace_facts("orders", None, None, &[], Cloud::Aws)
        };
        let named = |n: &str| paved_api::ExistingDatabase {
            external_name: n.into(),
            ..Default::default()
        };
        let a = facts(Some("team-a"));
        let east = "pg-us-east-1";
        assert_eq!(
            reasons_of(admit_existing(
                &a,
                Some(&t),
                &[],
                "orders",
                east,
                &named("legacy-orders")
            )),
            "admitted"
        );
        // Another database, the same one from another namespace of the team, or the
        // same name where another Composition looks (another region's database).
        for (ns, comp, db) in [
            ("orders", east, "legacy-billing"),
            ("billing", east, "legacy-orders"),
            ("orders", "pg-eu-west-1", "legacy-orders"),
        ] {
            let r = admit_existing(&a, Some(&t), &[], ns, comp, &named(db));
            assert_eq!(reasons_of(r.clone()), "ExistingNotGranted");
            assert!(r.unwrap_err().message.contains(db));
        }
        // A namespace of no team is granted nothing.
        let none = facts(None);
        let r = admit_existing(&none, None, &[], "orders", east, &named("legacy-orders"));
        assert!(r.unwrap_err().message.contains("belongs to no Team"));
    }

    #[test]
    fn an_existing_namespace_is_taken_over_only_where_the_team_grants_it_and_the_platform_marks_it()
    {
        let mut c = claim("orders", "team-a", 10);
        c.spec.data_classification = DataClassification::Internal;
        let entry = |adopt: bool| paved_api::TeamNamespace {
            name: "orders".into(),
            cloud: Cloud::Aws,
            data_classification: DataClassification::Internal,
            adopt_by_service_claim: adopt,
            ..Default::default()
        };
        let mut a = team("team-a", 5, &[Cloud::Aws], 5);
        a.spec.namespaces = vec![entry(true)];
        let mut ns = ObjectMeta {
            name: Some("orders".into()),
            labels: Some([(paved_api::labels::ADOPTABLE.to_string(), "true".to_string())].into()),
            ..Default::default()
        };
        let teams = [Arc::new(a.clone())];
        let wants: BTreeMap<String, String> = [
            (
                "pod-security.kubernetes.io/enforce".to_string(),
                "restricted".to_string(),
            ),
            (
                paved_api::labels::CLAIM_NAME.to_string(),
                "orders".to_string(),
            ),
        ]
        .into();
        let judge =
            |c: &ServiceClaim, a: &Team, teams: &[Arc<Team>], ns: &ObjectMeta, cloud, held| {
                let t = NamespaceTakeover {
                    ns,
                    wants: &wants,
                    held,
                };
                admit_namespace_adoption(c, cloud, a, teams, &t).map_err(|r| r.message)
            };
        let verdict = |c: &ServiceClaim, a: &Team, teams: &[Arc<Team>], ns: &ObjectMeta| {
            judge(c, a, teams, ns, Cloud::Aws, false)
        };
        assert_eq!(verdict(&c, &a, &teams, &ns), Ok(()));
        // Each missing grant or mark refuses, saying which.
        let why = |r: Result<(), String>| r.unwrap_err();
        let mut listed_only = a.clone();
        listed_only.spec.namespaces = vec![entry(false)];
        assert!(why(verdict(&c, &listed_only, &teams, &ns)).contains("adoptByServiceClaim"));
        let mut unlisted = a.clone();
        unlisted.spec.namespaces.clear();
        assert!(why(verdict(&c, &unlisted, &teams, &ns)).contains("does not list it"));
        let mut phi = c.clone();
        phi.spec.data_classification = DataClassification::Phi;
        assert!(why(verdict(&phi, &a, &teams, &ns)).contains("spec.dataClassification"));
        assert!(why(judge(&c, &a, &teams, &ns, Cloud::Gcp, false)).contains("spec.cloud"));
        // Labels Paved would set to another value, or another tool managing it: refused.
        let mut clashing = ns.clone();
        clashing.labels.as_mut().unwrap().insert(
            "pod-security.kubernetes.io/enforce".into(),
            "baseline".into(),
        );
        assert!(why(verdict(&c, &a, &teams, &clashing))
            .contains("pod-security.kubernetes.io/enforce=baseline (Paved sets restricted)"));
        clashing.labels.as_mut().unwrap().insert(
            "pod-security.kubernetes.io/enforce".into(),
            "restricted".into(),
        );
        assert_eq!(
            verdict(&c, &a, &teams, &clashing),
            Ok(()),
            "the same value is shared"
        );
        let mut argo = ns.clone();
        argo.annotations = Some(
            [(
                "argocd.argoproj.io/tracking-id".to_string(),
                "app:/Namespace:orders".to_string(),
            )]
            .into(),
        );
        assert!(why(verdict(&c, &a, &teams, &argo)).contains("Argo CD manages it"));
        // Once held, only the grant is judged again: taken back, the claim is refused.
        let unlabelled = ObjectMeta {
            labels: None,
            ..ns.clone()
        };
        assert_eq!(judge(&c, &a, &teams, &unlabelled, Cloud::Aws, true), Ok(()));
        let m = why(judge(
            &c,
            &listed_only,
            &teams,
            &unlabelled,
            Cloud::Aws,
            true,
        ));
        assert!(
            m.contains("no longer granted") && m.contains("adoptByServiceClaim"),
            "{m}"
        );
        let unmarked = ObjectMeta {
            labels: None,
            ..ns.clone()
        };
        assert!(why(verdict(&c, &a, &teams, &unmarked)).contains("paved.dev/adoptable=true"));
        // Another team listing it too: nobody takes it.
        let mut b = team("team-b", 5, &[Cloud::Aws], 5);
        b.spec.namespaces = vec![entry(false)];
        let both = [Arc::new(a.clone()), Arc::new(b)];
        assert!(why(verdict(&c, &a, &both, &ns)).contains("more than one Team"));
        // Held by something else: a controller, or another claim's mark.
        let mut controlled = ns.clone();
        controlled.owner_references = Some(vec![OwnerReference {
            kind: "ServiceClaim".into(),
            name: "orders".into(),
            uid: "uid-earlier".into(),
            controller: Some(true),
            ..Default::default()
        }]);
        assert!(why(verdict(&c, &a, &teams, &controlled)).contains("controlled by ServiceClaim"));
        let mut marked = ns.clone();
        marked.annotations = Some(
            [(
                paved_api::annotations::ADOPTED_BY.to_string(),
                "uid-earlier".to_string(),
            )]
            .into(),
        );
        assert!(why(verdict(&c, &a, &teams, &marked)).contains("uid-earlier"));

        // Held: made (owner reference) or adopted (mark, no owner), by this UID only.
        assert_eq!(
            namespace_hold(&ns, "orders", "uid-orders"),
            NamespaceHold::Not
        );
        let mut adopted = ns.clone();
        adopted
            .labels
            .as_mut()
            .unwrap()
            .insert(paved_api::labels::CLAIM_NAME.into(), "orders".into());
        adopted.annotations = Some(
            [(
                paved_api::annotations::ADOPTED_BY.to_string(),
                "uid-orders".to_string(),
            )]
            .into(),
        );
        assert_eq!(
            namespace_hold(&adopted, "orders", "uid-orders"),
            NamespaceHold::Adopted
        );
        assert_eq!(
            namespace_hold(&adopted, "orders", "uid-other"),
            NamespaceHold::Not
        );
        assert_eq!(namespace_hold(&adopted, "orders", ""), NamespaceHold::Not);
        let mut made = adopted.clone();
        made.annotations = None;
        made.owner_references = Some(vec![OwnerReference {
            uid: "uid-orders".into(),
            ..Default::default()
        }]);
        assert_eq!(
            namespace_hold(&made, "orders", "uid-orders"),
            NamespaceHold::Made
        );
        // A mark under someone else's owner reference is not a take-over.
        let mut both_marks = adopted.clone();
        both_marks.owner_references = made.owner_references.clone();
        both_marks.owner_references.as_mut().unwrap()[0].uid = "uid-other".into();
        assert_eq!(
            namespace_hold(&both_marks, "orders", "uid-orders"),
            NamespaceHold::Not
        );
        ns.labels = None;
        assert_eq!(
            namespace_hold(&ns, "orders", "uid-orders"),
            NamespaceHold::Not
        );
    }

    #[test]
    fn what_a_namespace_holds_that_would_outlive_the_floor_stands_in_the_way() {
        use serde_json::json;
        let way = |kind: &str, obj: serde_json::Value| in_the_way(kind, &obj, &["uid-1", "uid-db"]);
        for kind in [
            "Role",
            "RoleBinding",
            "NetworkPolicy",
            "SecretStore",
            "ExternalSecret",
        ] {
            assert!(
                way(kind, json!({ "metadata": { "name": "x" } })).is_some(),
                "{kind}"
            );
        }
        // The claim's own: never in its way.
        let ours = json!({ "metadata": { "ownerReferences": [ { "uid": "uid-1" } ] } });
        assert_eq!(way("RoleBinding", ours), None);
        // A Paved database's in the namespace: Paved's too.
        let db = json!({ "metadata": { "ownerReferences": [ { "uid": "uid-db" } ] } });
        assert_eq!(way("ExternalSecret", db), None);
        assert!(way("Service", json!({ "spec": { "type": "LoadBalancer" } })).is_some());
        assert!(way(
            "Service",
            json!({ "spec": { "externalIPs": ["10.0.0.1"] } })
        )
        .is_some());
        assert_eq!(
            way("Service", json!({ "spec": { "type": "ClusterIP" } })),
            None
        );
        assert!(way(
            "ServiceAccount",
            json!({ "metadata": { "annotations": { "eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x" } } })
        )
        .is_some());
        assert_eq!(
            way("ServiceAccount", json!({ "metadata": { "name": "app" } })),
            None
        );
        assert_eq!(way("ConfigMap", json!({})), None);
    }

    #[test]
    fn an_existing_database_is_adopted_only_under_one_adoption_grant() {
        use paved_api::{ExistingDatabase, ExistingDatabaseGrant, ExistingMode};
        let grant = |ns: &str, mode| ExistingDatabaseGrant {
            namespace: ns.into(),
            external_name: "legacy-orders".into(),
            composition: "pg-us-east-1".into(),
            mode,
        };
        let mut a = team("team-a", 0, &[Cloud::Aws], 5);
        a.spec.existing_databases = vec![grant("orders", ExistingMode::Observe)];
        let facts = NamespaceFacts {
            team: Some("team-a".into()),
            ..namespace_facts("orders", None, None, &[], Cloud::Aws)
        };
        let adopt = ExistingDatabase {
            external_name: "legacy-orders".into(),
            mode: ExistingMode::Adopt,
            ..Default::default()
        };
        let admit = |t: &Team, all: &[Arc<Team>]| {
            admit_existing(&facts, Some(t), all, "orders", "pg-us-east-1", &adopt)
        };
        // Granted to observe: adopting is refused, naming the grant's mode.
        let r = admit(&a, &[Arc::new(a.clone())]);
        assert!(r.unwrap_err().message.contains("observe only"));
        a.spec.existing_databases = vec![grant("orders", ExistingMode::Adopt)];
        assert_eq!(reasons_of(admit(&a, &[Arc::new(a.clone())])), "admitted");
        // A second adoption grant anywhere (another Team's namespace) stops both.
        let mut b = team("team-b", 0, &[Cloud::Aws], 5);
        b.spec.existing_databases = vec![grant("billing", ExistingMode::Adopt)];
        let all = [Arc::new(a.clone()), Arc::new(b.clone())];
        let r = admit(&a, &all);
        assert!(
            r.as_ref()
                .unwrap_err()
                .message
                .contains("Team team-b for namespace billing"),
            "{r:?}"
        );
        // ...but a second grant to observe does not.
        b.spec.existing_databases = vec![grant("billing", ExistingMode::Observe)];
        assert_eq!(
            reasons_of(admit(&a, &[Arc::new(a.clone()), Arc::new(b)])),
            "admitted"
        );
    }
}
