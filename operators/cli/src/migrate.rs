//! `paved migrate`: from a Crossplane platform (claims and composite resources, v1 and
//! v2, and the provider-aws RDS `Instance`s behind them) to Paved claims that adopt
//! the same databases in place.
//!
//! [`plan`] is pure: the objects (read from a directory or a live cluster) in, the
//! Paved claims, the Team grants they need and a report of everything skipped or not
//! carried out. Nothing is guessed: an object that cannot be tied to exactly one
//! database, one Paved Composition and one namespace is reported and skipped. The
//! cut-over on a live cluster is in [`crate::migrate_live`].

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

/// An object, as the report names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjRef {
    pub fn of(v: &Value) -> ObjRef {
        ObjRef {
            api_version: str_at(v, "/apiVersion").to_string(),
            kind: str_at(v, "/kind").to_string(),
            namespace: v
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(String::from),
            name: str_at(v, "/metadata/name").to_string(),
        }
    }

    /// The API group (empty for the core group).
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }
}

impl std::fmt::Display for ObjRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {} {ns}/{}", self.api_version, self.kind, self.name),
            None => write!(f, "{} {} {}", self.api_version, self.kind, self.name),
        }
    }
}

/// What the caller decides: which Paved Composition stands for which Crossplane one
/// (otherwise the one for the database's cloud and region, when there is exactly one).
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub compositions: BTreeMap<String, String>,
    /// Believe managed databases in tenants' namespaces (Crossplane v2): a team may
    /// write those, so the platform says it checked them.
    pub allow_namespaced: bool,
    /// Propose a ServiceClaim for each namespace whose claims move (`--service-claims`):
    /// it takes the namespace over, so the service gets Paved's floor there too.
    pub service_claims: bool,
}

/// A namespace whose claims move, proposed as the ServiceClaim that takes it over
/// (`--service-claims`).
#[derive(Clone, Debug, PartialEq)]
pub struct Service {
    pub namespace: String,
    /// The Team that lists the namespace, and grants it to the ServiceClaim.
    pub team: String,
    /// The ServiceClaim, named as the namespace.
    pub claim: Value,
    /// What a reviewer must decide before it is applied.
    pub notes: Vec<String>,
}

/// One database moving over.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The Crossplane claim, or the namespaced (v2) composite resource.
    pub source: ObjRef,
    /// The composite resource behind a v1 claim.
    pub composite: Option<ObjRef>,
    /// The managed database (RDS Instance, Azure FlexibleServer, Cloud SQL
    /// DatabaseInstance).
    pub managed: ObjRef,
    /// Whether the managed resources have `spec.deletionPolicy` (cluster-scoped ones do).
    pub managed_has_deletion_policy: bool,
    /// The managed database inside the server (Azure, Cloud SQL), held and removed
    /// with the server's.
    pub inside: Vec<ObjRef>,
    /// Its name in the cloud (`crossplane.io/external-name`).
    pub external_name: String,
    pub namespace: String,
    /// The Team that lists the namespace, where one does.
    pub team: Option<String>,
    /// The Paved Composition that adopts it.
    pub composition: String,
    /// The Paved PostgreSQLInstance.
    pub claim: Value,
    /// What else the composite made (security groups, keys…): left in place by the
    /// cut-over, no longer any composite's.
    pub others: Vec<ObjRef>,
    /// What was not carried over, and why.
    pub notes: Vec<String>,
}

/// Something that could not be migrated, and why.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Skipped {
    pub source: ObjRef,
    pub why: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Migration {
    pub entries: Vec<Entry>,
    pub skipped: Vec<Skipped>,
    pub services: Vec<Service>,
}

/// A managed resource kind that is a database Paved can adopt, per provider family
/// (crossplane-contrib's upjet providers, cluster-scoped and namespaced groups).
struct DbKind {
    provider: &'static str,
    groups: [&'static str; 2],
    kind: &'static str,
    /// Where its spec says the region (location on Azure).
    region_at: &'static str,
    /// What the claim's database inside the server is, as a composed resource of its
    /// own (Azure and Cloud SQL servers hold several); None where Paved reads it.
    inside: Option<&'static str>,
    /// What the provider calls it in messages.
    noun: &'static str,
}

const DB_KINDS: [DbKind; 3] = [
    DbKind {
        provider: "aws",
        groups: ["rds.aws.upbound.io", "rds.aws.m.upbound.io"],
        kind: "Instance",
        region_at: "/spec/forProvider/region",
        inside: None,
        noun: "RDS instance",
    },
    DbKind {
        provider: "azure",
        groups: [
            "dbforpostgresql.azure.upbound.io",
            "dbforpostgresql.azure.m.upbound.io",
        ],
        kind: "FlexibleServer",
        region_at: "/spec/forProvider/location",
        inside: Some("FlexibleServerDatabase"),
        noun: "Azure flexible server",
    },
    DbKind {
        provider: "gcp",
        groups: ["sql.gcp.upbound.io", "sql.gcp.m.upbound.io"],
        kind: "DatabaseInstance",
        region_at: "/spec/forProvider/region",
        inside: Some("Database"),
        noun: "Cloud SQL instance",
    },
];

/// Every (API group, kind) of a managed database or a database inside one that `plan`
/// reads, in each provider's cluster-scoped and namespaced groups.
pub fn managed_kinds() -> impl Iterator<Item = (&'static str, &'static str)> {
    DB_KINDS.iter().flat_map(|k| {
        k.groups.iter().flat_map(move |g| {
            std::iter::once(k.kind)
                .chain(k.inside)
                .map(move |kind| (*g, kind))
        })
    })
}

fn db_kind(api_version: &str, kind: &str) -> Option<&'static DbKind> {
    let g = group_of(api_version);
    DB_KINDS
        .iter()
        .find(|k| k.kind == kind && k.groups.contains(&g))
}

/// Pure: whether its provider reports a managed database as `external` (an external
/// name alone is anyone's to write): RDS by its identifier, Azure by the resource id's
/// last segment, Cloud SQL by its name.
fn seen_as(k: &DbKind, mr: &Value, external: &str) -> (bool, String) {
    // RDS names it by its identifier; Azure (a resource id) and Cloud SQL by the last
    // segment of their id.
    let (at, have) = match k.provider {
        "aws" => (
            "status.atProvider.identifier",
            str_at(mr, "/status/atProvider/identifier"),
        ),
        _ => (
            "status.atProvider.id",
            str_at(mr, "/status/atProvider/id")
                .rsplit('/')
                .next()
                .unwrap_or_default(),
        ),
    };
    let ok = have.eq_ignore_ascii_case(external) && !have.is_empty();
    (
        ok,
        format!(
            "{} ({at})",
            if have.is_empty() { "nothing yet" } else { have }
        ),
    )
}

const XP_GROUP: &str = "apiextensions.crossplane.io";
const EXTERNAL_NAME: &str = "crossplane.io/external-name";

fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// The composite and claim kinds an XRD defines.
struct Definition {
    group: String,
    xr_kind: String,
    claim_kind: Option<String>,
}

fn definitions(objects: &[Value]) -> Vec<Definition> {
    objects
        .iter()
        .filter(|v| {
            group_of(str_at(v, "/apiVersion")) == XP_GROUP
                && str_at(v, "/kind") == "CompositeResourceDefinition"
        })
        .map(|v| Definition {
            group: str_at(v, "/spec/group").to_string(),
            xr_kind: str_at(v, "/spec/names/kind").to_string(),
            claim_kind: v
                .pointer("/spec/claimNames/kind")
                .and_then(Value::as_str)
                .map(String::from),
        })
        .collect()
}

/// Pure: how a managed database's place (as its provider reports it) differs from
/// where a Paved Composition looks: the RDS ARN's region, the Azure id's subscription
/// and resource group, the Cloud SQL project. None when it does not, or is not said.
fn elsewhere(k: &DbKind, mr: &Value, pg: &Value) -> Option<String> {
    let differs = |have: &str, want: &str| {
        !have.is_empty() && !want.is_empty() && !have.eq_ignore_ascii_case(want)
    };
    match k.provider {
        "aws" => {
            let arn = str_at(mr, "/status/atProvider/arn");
            let region = arn.split(':').nth(3).unwrap_or_default();
            differs(region, str_at(pg, "/region")).then(|| format!("is in region {region}"))
        }
        "azure" => {
            let id: Vec<&str> = str_at(mr, "/status/atProvider/id").split('/').collect();
            let at = |key: &str| {
                id.iter()
                    .position(|s| s.eq_ignore_ascii_case(key))
                    .and_then(|i| id.get(i + 1))
                    .copied()
                    .unwrap_or_default()
            };
            let (sub, rg) = (at("subscriptions"), at("resourceGroups"));
            (differs(sub, str_at(pg, "/azure/subscriptionId"))
                || differs(rg, str_at(pg, "/azure/resourceGroup")))
            .then(|| format!("is in subscription {sub}, resource group {rg}"))
        }
        _ => {
            let project = str_at(mr, "/status/atProvider/project");
            differs(project, str_at(pg, "/gcp/project")).then(|| format!("is in project {project}"))
        }
    }
}

fn is_managed_database(v: &Value) -> bool {
    db_kind(str_at(v, "/apiVersion"), str_at(v, "/kind")).is_some()
}

/// A managed database inside a server (Azure, Cloud SQL).
fn is_managed_inside(v: &Value) -> bool {
    let g = group_of(str_at(v, "/apiVersion"));
    DB_KINDS
        .iter()
        .any(|k| k.groups.contains(&g) && k.inside == Some(str_at(v, "/kind")))
}

fn is_paved(v: &Value, kind: &str) -> bool {
    group_of(str_at(v, "/apiVersion")) == "paved.dev" && str_at(v, "/kind") == kind
}

/// Pure: the migration of `objects` (Crossplane's and Paved's, as a cluster or a
/// repository holds them).
pub fn plan(objects: &[Value], opts: &Options) -> Migration {
    let defs = definitions(objects);
    let kind_of = |v: &Value| -> Option<(&'static str, &Definition)> {
        let (g, k) = (group_of(str_at(v, "/apiVersion")), str_at(v, "/kind"));
        defs.iter().find_map(|d| {
            if d.group != g {
                None
            } else if d.claim_kind.as_deref() == Some(k) {
                Some(("claim", d))
            } else if d.xr_kind == k {
                Some(("composite", d))
            } else {
                None
            }
        })
    };
    let composites: Vec<&Value> = objects
        .iter()
        .filter(|v| kind_of(v).is_some_and(|(w, _)| w == "composite"))
        .collect();
    let managed: Vec<&Value> = objects
        .iter()
        .filter(|v| is_managed_database(v) || is_managed_inside(v))
        .collect();
    let paved_compositions: Vec<&Value> = objects
        .iter()
        .filter(|v| is_paved(v, "Composition") && v.pointer("/spec/postgresql").is_some())
        .collect();
    let teams: Vec<&Value> = objects.iter().filter(|v| is_paved(v, "Team")).collect();
    let services: Vec<&Value> = objects
        .iter()
        .filter(|v| is_paved(v, "ServiceClaim"))
        .collect();
    // Paved claims there already, with the source an earlier run made them from (a
    // run that stopped half-way is resumed; any other claim of the name is not touched).
    let paved_claims: BTreeMap<(String, String), String> = objects
        .iter()
        .filter(|v| is_paved(v, "PostgreSQLInstance"))
        .map(|v| {
            (
                (
                    str_at(v, "/metadata/namespace").to_string(),
                    str_at(v, "/metadata/name").to_string(),
                ),
                str_at(v, "/metadata/annotations/paved.dev~1migrated-from").to_string(),
            )
        })
        .collect();

    let mut out = Migration::default();
    for v in objects {
        let Some((what, _)) = kind_of(v) else {
            // A claim-shaped object whose definition is not among the inputs: not
            // guessed at.
            let looks = v.pointer("/spec/compositionRef").is_some()
                || v.pointer("/spec/resourceRef").is_some()
                || v.pointer("/spec/crossplane").is_some();
            if looks && !group_of(str_at(v, "/apiVersion")).ends_with("paved.dev") {
                out.skipped.push(Skipped {
                    source: ObjRef::of(v),
                    why: "looks like a Crossplane claim or composite resource, but no CompositeResourceDefinition among the inputs defines its kind (add the XRDs)".into(),
                });
            }
            continue;
        };
        let namespaced = v
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        // A v1 composite resource is migrated through its claim; one without a claim
        // has no namespace to put a Paved claim in.
        if what == "composite" && !namespaced {
            let claimed = v.pointer("/spec/claimRef/name").is_some();
            if !claimed {
                out.skipped.push(Skipped {
                    source: ObjRef::of(v),
                    why: "a cluster-scoped composite resource with no claim has no namespace for a Paved claim; claim it first (or write the Paved claim by hand)".into(),
                });
            }
            continue;
        }
        match entry(
            v,
            what,
            &composites,
            &managed,
            &paved_compositions,
            &teams,
            &services,
            opts,
        ) {
            Ok(e) => {
                let key = (
                    e.namespace.clone(),
                    str_at(&e.claim, "/metadata/name").to_string(),
                );
                let resumed = paved_claims
                    .get(&key)
                    .is_some_and(|from| *from == e.source.to_string());
                if paved_claims.contains_key(&key) && !resumed {
                    out.skipped.push(Skipped {
                        source: e.source,
                        why: format!(
                            "a Paved PostgreSQLInstance {}/{} exists already (not one migrated from it)",
                            e.namespace,
                            str_at(&e.claim, "/metadata/name")
                        ),
                    });
                } else {
                    out.entries.push(e);
                }
            }
            Err(why) => out.skipped.push(Skipped {
                source: ObjRef::of(v),
                why,
            }),
        }
    }
    // One database, one claim: two sources naming the same instance are both skipped.
    // By its identifier alone: two Paved Compositions may point at one account.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for e in &out.entries {
        *seen.entry(e.external_name.clone()).or_default() += 1;
    }
    let (ok, twice): (Vec<Entry>, Vec<Entry>) = out
        .entries
        .into_iter()
        .partition(|e| seen[&e.external_name] == 1);
    out.entries = ok;
    out.skipped.extend(twice.into_iter().map(|e| Skipped {
        why: format!(
            "database {} is named by more than one claim or composite resource; one Paved claim adopts one database",
            e.external_name
        ),
        source: e.source,
    }));
    out.entries.sort_by(|a, b| a.source.cmp(&b.source));
    if opts.service_claims {
        let namespaces: BTreeSet<&str> = out.entries.iter().map(|e| e.namespace.as_str()).collect();
        // A namespace something was skipped in keeps that under Crossplane: its service
        // waits (default-deny would cut its workloads off from what stays behind).
        let left: BTreeSet<String> = out
            .skipped
            .iter()
            .filter_map(|k| k.source.namespace.clone())
            .collect();
        let mut proposed = vec![];
        for ns in namespaces {
            if left.contains(ns) {
                out.skipped.push(Skipped {
                    source: ObjRef {
                        api_version: "v1".into(),
                        kind: "Namespace".into(),
                        namespace: None,
                        name: ns.to_string(),
                    },
                    why: "something in this namespace is skipped (above) and stays with Crossplane; no ServiceClaim is proposed for it until all of it moves".into(),
                });
                continue;
            }
            match service_for(ns, &teams, &services) {
                Ok(Some(s)) => proposed.push(s),
                Ok(None) => {}
                Err(why) => out.skipped.push(Skipped {
                    source: ObjRef {
                        api_version: "v1".into(),
                        kind: "Namespace".into(),
                        namespace: None,
                        name: ns.to_string(),
                    },
                    why,
                }),
            }
        }
        out.services = proposed;
    }
    out.skipped.sort();
    out
}

/// Pure: the ServiceClaim that takes over namespace `ns`, from the facts its Team
/// lists for it; None where a ServiceClaim made it already; why not, where its Team
/// does not say enough. Never guessed: the Team's entry is the platform's word.
fn service_for(ns: &str, teams: &[&Value], services: &[&Value]) -> Result<Option<Service>, String> {
    if services.iter().any(|s| str_at(s, "/metadata/name") == ns) {
        return Ok(None);
    }
    let listing: Vec<(&Value, &Value)> = teams
        .iter()
        .flat_map(|t| {
            t.pointer("/spec/namespaces")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|n| str_at(n, "/name") == ns)
                .map(move |n| (*t, n))
        })
        .collect();
    let (team, entry) = match listing.as_slice() {
        [one] => *one,
        [] => return Err("no Team lists this namespace, so no ServiceClaim is proposed for it (its facts are the platform's to state)".into()),
        _ => return Err("more than one Team lists this namespace; no ServiceClaim is proposed for it".into()),
    };
    let team_name = str_at(team, "/metadata/name");
    let (system, cost_center) = (str_at(entry, "/system"), str_at(entry, "/costCenter"));
    if system.is_empty() || cost_center.is_empty() {
        return Err(format!(
            "Team {team_name} lists no system or costCenter for this namespace (spec.namespaces[{ns}]); a ServiceClaim needs both: add them, or write it by hand"
        ));
    }
    let classification = match str_at(entry, "/dataClassification") {
        "" => "phi",
        c => c,
    };
    let claim = json!({
        "apiVersion": "paved.dev/v1alpha1", "kind": "ServiceClaim",
        "metadata": { "name": ns },
        "spec": {
            "owner": team_name, "system": system, "costCenter": cost_center,
            "cloud": str_at(entry, "/cloud"), "dataClassification": classification,
        },
    });
    Ok(Some(Service {
        namespace: ns.to_string(),
        team: team_name.to_string(),
        claim,
        notes: vec![
            "sloTier: not known to Crossplane; silver (the default) unless set".into(),
            format!(
                "default-deny NetworkPolicies: traffic into {ns} stops from anywhere the Composition and spec.network.ingressFrom do not allow; list the callers before applying"
            ),
            "Pod Security labels at the Composition's level: new pods must meet them".into(),
            format!(
                "objects Paved writes (its ServiceAccount {ns}, paved-* NetworkPolicies, quota, limits, RoleBinding, SecretStore) must not exist there already, nor Roles, RoleBindings, NetworkPolicies, SecretStores, ExternalSecrets, exposed Services or ServiceAccounts with a cloud identity; the claim names any that do"
            ),
            format!(
                "the team is bound in {ns} once it is taken over: it reads the Secrets already there (ServiceAccount tokens included) and runs pods as its ServiceAccounts; review them first"
            ),
        ],
    }))
}

#[allow(clippy::too_many_arguments)]
fn entry(
    v: &Value,
    what: &str,
    composites: &[&Value],
    managed: &[&Value],
    paved_compositions: &[&Value],
    teams: &[&Value],
    services: &[&Value],
    opts: &Options,
) -> Result<Entry, String> {
    let source = ObjRef::of(v);
    let namespace = source.namespace.clone().unwrap_or_default();
    let label = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    };
    if !label(&namespace) || !paved_compose::is_dns_subdomain(&source.name) {
        return Err("its name or namespace is not a Kubernetes name".into());
    }
    // v1: claim → composite (its resourceRef, or the composite whose claimRef names it).
    let composite: Option<&Value> = if what == "claim" {
        let by_ref = v.pointer("/spec/resourceRef/name").and_then(Value::as_str);
        // Both ways where both are said: a claim (which its team writes) naming a
        // composite is not enough; the composite must name the claim back.
        let found = composites.iter().copied().find(|x| {
            let claimed = str_at(x, "/spec/claimRef/name") == source.name
                && str_at(x, "/spec/claimRef/namespace") == namespace;
            match by_ref {
                Some(n) => str_at(x, "/metadata/name") == n && claimed,
                None => claimed,
            }
        });
        Some(found.ok_or_else(|| {
            "no composite resource found for it (not provisioned yet, or not among the inputs)"
                .to_string()
        })?)
    } else {
        None
    };
    let xr = composite.unwrap_or(v);
    let xr_name = str_at(xr, "/metadata/name");
    let refs: Vec<&Value> = xr
        .pointer("/spec/resourceRefs")
        .or_else(|| xr.pointer("/spec/crossplane/resourceRefs"))
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    // The managed databases it composes: by its references, or by the label
    // Crossplane puts on what a composite makes.
    let composed = |m: &&Value| {
        let same_ns = str_at(m, "/metadata/namespace") == str_at(xr, "/metadata/namespace");
        let referenced = refs.iter().any(|r| {
            str_at(r, "/kind") == str_at(m, "/kind")
                && group_of(str_at(r, "/apiVersion")) == group_of(str_at(m, "/apiVersion"))
                && str_at(r, "/name") == str_at(m, "/metadata/name")
        });
        let labelled = str_at(m, "/metadata/labels/crossplane.io~1composite") == xr_name;
        same_ns && (referenced || labelled)
    };
    let mut instances: Vec<&Value> = managed
        .iter()
        .copied()
        .filter(|m| is_managed_database(m))
        .filter(composed)
        .collect();
    instances.dedup_by(|a, b| ObjRef::of(a) == ObjRef::of(b));
    let mr = match instances.as_slice() {
        [one] => *one,
        [] => return Err(format!("composite resource {xr_name} composes no database Paved adopts (an RDS Instance, Azure FlexibleServer or Cloud SQL DatabaseInstance) among the inputs")),
        many => {
            return Err(format!(
                "composite resource {xr_name} composes {} databases ({}); one Paved claim adopts one database: split it by hand",
                many.len(),
                many.iter().map(|m| str_at(m, "/metadata/name")).collect::<Vec<_>>().join(", ")
            ))
        }
    };
    let kind = db_kind(str_at(mr, "/apiVersion"), str_at(mr, "/kind")).expect("a database kind");
    let managed_ref = ObjRef::of(mr);
    let external = str_at(mr, "/metadata/annotations/crossplane.io~1external-name");
    if external.is_empty() {
        return Err(format!(
            "{managed_ref} has no {EXTERNAL_NAME} annotation (never created?): nothing to adopt"
        ));
    }
    let valid = external.len() <= 63
        && external.starts_with(|c: char| c.is_ascii_alphabetic())
        && external
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !valid {
        return Err(format!(
            "{managed_ref}'s {EXTERNAL_NAME} {external:?} is not a valid {} name",
            kind.noun
        ));
    }
    // Its provider must have seen it as that database: an external name alone is
    // anyone's to write.
    let (seen, as_what) = seen_as(kind, mr, external);
    if !seen {
        return Err(format!(
            "{managed_ref} is not known to be {} {external}: its provider reports it as {as_what}",
            kind.noun
        ));
    }
    // On a server that holds several, the one database inside it the composite made.
    let inside: Vec<&Value> = match kind.inside {
        None => vec![],
        Some(k) => managed
            .iter()
            .copied()
            .filter(|m| {
                str_at(m, "/kind") == k && kind.groups.contains(&group_of(str_at(m, "/apiVersion")))
            })
            .filter(composed)
            .collect(),
    };
    let database_name = match (kind.inside, inside.as_slice()) {
        (None, _) => None,
        (Some(_), [one]) => {
            let n = str_at(one, "/metadata/annotations/crossplane.io~1external-name")
                .rsplit('/')
                .next()
                .unwrap_or_default();
            let ok = !n.is_empty()
                && n.len() <= 63
                && n.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err(format!(
                    "{} has no usable {EXTERNAL_NAME} for the database inside {external}",
                    ObjRef::of(one)
                ));
            }
            Some(n.to_string())
        }
        (Some(k), found) => {
            return Err(format!(
                "composite resource {xr_name} composes {} {k} resources; the Paved claim must name exactly one database inside {external} (spec.existing.databaseName): write it by hand",
                found.len()
            ))
        }
    };
    let region = str_at(mr, kind.region_at);
    let xp_composition = v
        .pointer("/spec/compositionRef/name")
        .or_else(|| xr.pointer("/spec/compositionRef/name"))
        .or_else(|| xr.pointer("/spec/crossplane/compositionRef/name"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if managed_ref.namespace.is_some() && !opts.allow_namespaced {
        return Err(format!(
            "{managed_ref} lives in namespace {namespace}, where the team may write managed resources (and so name any database): \
             confirm {external} is that team's, then run again with --allow-namespaced"
        ));
    }
    let composition = pick_composition(
        xp_composition,
        kind.provider,
        region,
        paved_compositions,
        opts,
    )?;
    // Where its provider says it lives must be where the Paved Composition looks.
    if let Some(c) = paved_compositions
        .iter()
        .find(|c| str_at(c, "/metadata/name") == composition)
    {
        if let Some(why) = elsewhere(kind, mr, &c["spec"]["postgresql"]) {
            return Err(format!(
                "{managed_ref} {why}, not where Composition {composition} looks: write the claim by hand if that is right"
            ));
        }
    }
    let team = teams
        .iter()
        .find(|t| {
            t.pointer("/spec/namespaces")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|n| str_at(n, "/name") == namespace))
        })
        .map(|t| str_at(t, "/metadata/name").to_string())
        .or_else(|| {
            services
                .iter()
                .find(|s| str_at(s, "/metadata/name") == namespace)
                .map(|s| str_at(s, "/spec/owner").to_string())
        });

    let mut notes = vec![];
    let params = carry_parameters(
        v.pointer("/spec/parameters"),
        paved_compositions
            .iter()
            .find(|c| str_at(c, "/metadata/name") == composition),
        &mut notes,
    );
    for (k, _) in v
        .pointer("/spec")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let why = match k.as_str() {
            "parameters" | "resourceRef" | "crossplane" | "writeConnectionSecretToRef" | "claimRef"
            | "resourceRefs" | "compositionRevisionRef" | "compositionUpdatePolicy" => continue,
            "compositionRef" | "compositionSelector" => format!(
                "spec.{k}: replaced by compositionRef {composition} (Paved's Composition for {}{}{})",
                kind.provider,
                if region.is_empty() { "" } else { "/" },
                region
            ),
            "publishConnectionDetailsTo" => "spec.publishConnectionDetailsTo: not carried; Paved delivers the connection Secret through External Secrets".into(),
            other => format!("spec.{other}: not carried (Paved's PostgreSQLInstance has no such field)"),
        };
        notes.push(why);
    }
    let secret = v
        .pointer("/spec/writeConnectionSecretToRef/name")
        .and_then(Value::as_str);
    if let Some(s) = secret {
        notes.push(format!(
            "connection Secret {s}: Crossplane's goes with its claim at the cut-over; from then on Paved's of the same name holds the credentials"
        ));
    }
    if managed_ref.namespace.is_some() {
        notes.push(format!(
            "{managed_ref} lives in namespace {namespace}, where the team may write managed resources: believed because of --allow-namespaced"
        ));
    }
    let others: Vec<ObjRef> = refs
        .iter()
        .filter(|r| {
            let this = |m: &ObjRef| str_at(r, "/name") == m.name && str_at(r, "/kind") == m.kind;
            !this(&managed_ref) && !inside.iter().any(|i| this(&ObjRef::of(i)))
        })
        .map(|r| ObjRef {
            api_version: str_at(r, "/apiVersion").to_string(),
            kind: str_at(r, "/kind").to_string(),
            namespace: managed_ref.namespace.clone(),
            name: str_at(r, "/name").to_string(),
        })
        .collect();
    if !others.is_empty() {
        notes.push(format!(
            "also composed, and left in place by the cut-over (no longer any composite's; still Crossplane's to manage or remove): {}",
            others.iter().map(|o| o.to_string()).collect::<Vec<_>>().join(", ")
        ));
    }
    let mr_policy = str_at(mr, "/spec/deletionPolicy");
    if mr_policy == "Delete" || mr_policy.is_empty() {
        notes.push(format!(
            "{managed_ref} would delete the database with it (deletionPolicy {}); the Paved claim leaves it in place when deleted (Orphan, the default for an adopted database) unless you set spec.deletionPolicy",
            if mr_policy.is_empty() { "Delete, the default" } else { "Delete" }
        ));
    }
    let mut labels = Map::new();
    for (k, val) in v
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if !k.starts_with("crossplane.io/") {
            labels.insert(k.clone(), val.clone());
        }
    }
    let mut spec = json!({
        "compositionRef": { "name": composition },
        "existing": { "externalName": external, "mode": "Adopt" },
    });
    if let Some(db) = &database_name {
        spec["existing"]["databaseName"] = json!(db);
    }
    if !params.is_empty() {
        spec["parameters"] = Value::Object(params);
    }
    if let Some(s) = secret {
        spec["writeConnectionSecretToRef"] = json!({ "name": s });
    }
    let mut metadata = json!({
        "name": source.name,
        "namespace": namespace,
        "annotations": { "paved.dev/migrated-from": source.to_string() },
    });
    if !labels.is_empty() {
        metadata["labels"] = Value::Object(labels);
    }
    let claim = json!({
        "apiVersion": "paved.dev/v1alpha1",
        "kind": "PostgreSQLInstance",
        "metadata": metadata,
        "spec": spec,
    });
    Ok(Entry {
        source,
        composite: composite.map(ObjRef::of),
        // Namespaced (`.m.`) managed resources have no deletionPolicy.
        managed_has_deletion_policy: !group_of(&managed_ref.api_version).contains(".m."),
        managed: managed_ref,
        inside: inside.iter().map(|i| ObjRef::of(i)).collect(),
        external_name: external.to_string(),
        namespace,
        team,
        composition,
        claim,
        others,
        notes,
    })
}

/// The Paved Composition for a database: the caller's choice for its Crossplane
/// Composition, or the only one for AWS in its region (the cloud's default among
/// several); anything else is refused, never guessed.
fn pick_composition(
    xp: &str,
    provider: &str,
    region: &str,
    paved: &[&Value],
    opts: &Options,
) -> Result<String, String> {
    if let Some(p) = opts.compositions.get(xp) {
        return Ok(p.clone());
    }
    // Azure spells a location either way ("East US", "eastus").
    let norm = |r: &str| r.to_lowercase().replace(' ', "");
    let here: Vec<&&Value> = paved
        .iter()
        .filter(|c| {
            str_at(c, "/spec/postgresql/provider") == provider
                && norm(str_at(c, "/spec/postgresql/region")) == norm(region)
        })
        .collect();
    let pick = match here.as_slice() {
        [one] => Some(*one),
        many => {
            let defaults: Vec<_> = many
                .iter()
                .filter(|c| str_at(c, "/metadata/labels/paved.dev~1default-for") == provider)
                .collect();
            match defaults.as_slice() {
                [one] => Some(**one),
                _ => None,
            }
        }
    };
    pick.map(|c| str_at(c, "/metadata/name").to_string())
        .ok_or_else(|| {
            format!(
                "no single Paved PostgreSQL Composition for {provider}/{region} ({}); name one with --composition {xp}=<paved composition>",
                if here.is_empty() {
                    "none among the inputs".to_string()
                } else {
                    here.iter().map(|c| str_at(c, "/metadata/name")).collect::<Vec<_>>().join(", ")
                }
            )
        })
}

/// The claim's parameters Paved has, checked against the Paved Composition where it
/// is known; everything else is a note.
fn carry_parameters(
    params: Option<&Value>,
    paved: Option<&&Value>,
    notes: &mut Vec<String>,
) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(params) = params.and_then(Value::as_object) else {
        return out;
    };
    let allowed_class = |c: &str| -> bool {
        let Some(p) = paved else { return true };
        let pg = &p["spec"]["postgresql"];
        let sizes = pg["sizes"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, v)| v);
        let listed = pg["allowedInstanceClasses"]
            .as_array()
            .into_iter()
            .flatten();
        sizes.chain(listed).any(|v| v.as_str() == Some(c))
    };
    let bounds = paved.map(|p| {
        let s = &p["spec"]["postgresql"]["storage"];
        (
            s["minGB"].as_i64().unwrap_or(0),
            s["maxGB"].as_i64().unwrap_or(i64::MAX),
        )
    });
    for (k, v) in params {
        let carried = match (k.as_str(), v) {
            ("storageGB", Value::Number(n)) => match (n.as_i64(), bounds) {
                (Some(gb), Some((lo, hi))) if gb < lo || gb > hi => Err(format!(
                    "{gb} is outside the Paved Composition's {lo}..{hi} GB; the database keeps the storage it has"
                )),
                (Some(_), _) => Ok(()),
                (None, _) => Err("not a whole number".into()),
            },
            ("instanceClass", Value::String(c)) if !allowed_class(c) => Err(format!(
                "{c} is not a class the Paved Composition allows; the database keeps the class it runs"
            )),
            ("instanceClass" | "size" | "engineVersion", Value::String(_)) => Ok(()),
            ("multiAZ" | "highAvailability", Value::Bool(_)) => Ok(()),
            ("storageGB" | "instanceClass" | "size" | "engineVersion" | "multiAZ" | "highAvailability", _) => {
                Err(format!("{v} is not of the type Paved takes"))
            }
            _ => Err("Paved has no such parameter".into()),
        };
        match carried {
            Ok(()) => {
                out.insert(k.clone(), v.clone());
            }
            Err(why) => notes.push(format!("spec.parameters.{k}: not carried: {why}")),
        }
    }
    out
}

impl Migration {
    /// The grants each Team needs, as `spec.existingDatabases` entries.
    pub fn grants(&self) -> BTreeMap<String, Vec<Value>> {
        let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for e in &self.entries {
            if let Some(t) = &e.team {
                out.entry(t.clone()).or_default().push(json!({
                    "namespace": e.namespace,
                    "externalName": e.external_name,
                    "composition": e.composition,
                    "mode": "Adopt",
                }));
            }
        }
        out
    }

    /// What a reviewer reads: what moves, what is not carried, what is skipped, and
    /// the cut-over in order.
    pub fn report(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "# paved migrate: {} database(s) to adopt, {} namespace(s) to take over, {} skipped\n",
            self.entries.len(),
            self.services.len(),
            self.skipped.len()
        ));
        for e in &self.entries {
            let noun =
                db_kind(&e.managed.api_version, &e.managed.kind).map_or("database", |k| k.noun);
            s.push_str(&format!(
                "\n{}\n  -> paved.dev/v1alpha1 PostgreSQLInstance {}/{} adopting {noun} {} with Composition {}\n  via {}{}\n",
                e.source,
                e.namespace,
                str_at(&e.claim, "/metadata/name"),
                e.external_name,
                e.composition,
                e.composite
                    .as_ref()
                    .map(|c| format!("{c}, "))
                    .unwrap_or_default(),
                e.managed
            ));
            match &e.team {
                Some(t) => s.push_str(&format!("  grant: Team {t} (mode Adopt)\n")),
                None => s.push_str(&format!(
                    "  grant: NO TEAM lists namespace {}; the platform must list it in a Team before the claim can adopt\n",
                    e.namespace
                )),
            }
            for n in &e.notes {
                s.push_str(&format!("  not carried: {n}\n"));
            }
        }
        for v in &self.services {
            s.push_str(&format!(
                "\nnamespace {ns}\n  -> paved.dev/v1alpha1 ServiceClaim {ns} (owner {t}) taking the namespace over\n  grant: Team {t} spec.namespaces[{ns}].adoptByServiceClaim, and namespace label {}=true\n",
                paved_api::labels::ADOPTABLE,
                ns = v.namespace,
                t = v.team
            ));
            for n in &v.notes {
                s.push_str(&format!("  review: {n}\n"));
            }
        }
        if !self.skipped.is_empty() {
            s.push_str("\nskipped (nothing of these is touched):\n");
            for k in &self.skipped {
                s.push_str(&format!("  {}: {}\n", k.source, k.why));
            }
        }
        s.push_str("\ncut-over (`paved migrate --apply`), in this order:\n");
        s.push_str("  1. pause each claim and composite resource (crossplane.io/paused), so nothing re-renders\n");
        s.push_str("  2. stop Crossplane writing each managed database (and the database inside it): managementPolicies [Observe],\n     deletionPolicy Orphan; read back\n");
        s.push_str("  3. grant the databases to their Teams (mode Adopt), then create the Paved claims, which adopt in place\n");
        s.push_str("  4. once each has adopted, and can deliver its credentials, remove its Instance, composite and claim with their finalizers taken off\n     (nothing in the cloud is deleted; what else the composite made is left in place); the claim's connection Secret goes with it\n");
        s.push_str("  5. a claim refused before adopting is deleted, its grant taken back and its Crossplane objects put back (steps 3, 2 and 1 undone)\n");
        if !self.services.is_empty() {
            s.push_str("  6. once every database of a namespace is cut over: grant the namespace to its service (Team, label), create the ServiceClaim;\n     one refused (an object in the way, other facts) is deleted before it writes anything, and its grant taken back\n");
        }
        s
    }
}

/// Every YAML document under `dir` (recursively, `.yaml` / `.yml`), as JSON values
/// with where each came from.
pub fn read_dir(dir: &std::path::Path) -> anyhow::Result<Vec<(String, Value)>> {
    use anyhow::Context;
    use serde::Deserialize;
    let mut files = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut out = vec![];
    for f in files {
        let text = std::fs::read_to_string(&f)?;
        for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let at = format!("{}#{}", f.display(), i + 1);
            let v = Value::deserialize(doc).with_context(|| format!("{at}: not YAML"))?;
            match v {
                Value::Null => {}
                Value::Object(_) => out.push((at, v)),
                _ => anyhow::bail!("{at}: not an object"),
            }
        }
    }
    // `kubectl get -o yaml` lists.
    Ok(out
        .into_iter()
        .flat_map(|(at, v)| match v.get("items").and_then(Value::as_array) {
            Some(items) if str_at(&v, "/kind").ends_with("List") => items
                .iter()
                .map(|i| (at.clone(), i.clone()))
                .collect::<Vec<_>>(),
            _ => vec![(at, v)],
        })
        .collect())
}

/// Writes the Paved claims (`<out>/<namespace>/<name>.yaml`), each Team's grants
/// (`<out>/teams/<team>.yaml`, to server-side apply beside the Team's other fields)
/// and, with `--service-claims`, the ServiceClaims (`<out>/services/<namespace>.yaml`)
/// and the commands that label their namespaces (`<out>/label-namespaces.sh`).
pub fn write(m: &Migration, out: &std::path::Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut written = vec![];
    for e in &m.entries {
        let dir = out.join(&e.namespace);
        std::fs::create_dir_all(&dir)?;
        let p = dir.join(format!("{}.yaml", str_at(&e.claim, "/metadata/name")));
        std::fs::write(&p, serde_yaml::to_string(&e.claim)?)?;
        written.push(p);
    }
    let mut specs: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for (team, grants) in m.grants() {
        specs
            .entry(team)
            .or_default()
            .insert("existingDatabases".into(), json!(grants));
    }
    for v in &m.services {
        let spec = specs.entry(v.team.clone()).or_default();
        let list = spec.entry("namespaces").or_insert_with(|| json!([]));
        if let Some(a) = list.as_array_mut() {
            a.push(json!({ "name": v.namespace, "adoptByServiceClaim": true }));
        }
    }
    let mut put = |dir: &str, name: &str, body: &Value| -> anyhow::Result<()> {
        let dir = out.join(dir);
        std::fs::create_dir_all(&dir)?;
        let p = dir.join(format!("{name}.yaml"));
        std::fs::write(&p, serde_yaml::to_string(body)?)?;
        written.push(p);
        Ok(())
    };
    for (team, spec) in specs {
        put(
            "teams",
            &team,
            &json!({
                "apiVersion": "paved.dev/v1alpha1", "kind": "Team",
                "metadata": { "name": team }, "spec": spec,
            }),
        )?;
    }
    for v in &m.services {
        put("services", &v.namespace, &v.claim)?;
    }
    // The platform's label, as a command to run rather than a Namespace manifest: a
    // GitOps tool tracking a manifest would own the namespace, and delete it (with
    // everything in it) when the file goes.
    if !m.services.is_empty() {
        let mut script = String::from(
            "#!/bin/sh\n# The platform's grant, beside each Team's adoptByServiceClaim: these namespaces may be taken over by their ServiceClaims.\nset -e\n",
        );
        for v in &m.services {
            script.push_str(&format!(
                "kubectl label namespace {} {}=true\n",
                v.namespace,
                paved_api::labels::ADOPTABLE
            ));
        }
        let p = out.join("label-namespaces.sh");
        std::fs::create_dir_all(out)?;
        std::fs::write(&p, script)?;
        written.push(p);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Options that believe namespaced managed resources (the tests' v2 composites).
    fn trusting() -> Options {
        Options {
            allow_namespaced: true,
            ..Default::default()
        }
    }

    fn yaml(s: &str) -> Vec<Value> {
        use serde::Deserialize;
        serde_yaml::Deserializer::from_str(s)
            .map(|d| Value::deserialize(d).unwrap())
            .collect()
    }

    /// A small Crossplane platform as a cluster holds it: an XRD (v1 claim), its claim
    /// and composite, the composed RDS Instance; a v2 namespaced composite with its
    /// namespaced Instance; a Paved Composition and a Team.
    const PLATFORM: &str = r#"
apiVersion: apiextensions.crossplane.io/v1
kind: CompositeResourceDefinition
metadata: { name: xpostgresqlinstances.platform.example.com }
spec:
  group: platform.example.com
  names: { kind: XPostgreSQLInstance, plural: xpostgresqlinstances }
  claimNames: { kind: PostgreSQLInstance, plural: postgresqlinstances }
---
apiVersion: apiextensions.crossplane.io/v2
kind: CompositeResourceDefinition
metadata: { name: databases.db.example.org }
spec:
  group: db.example.org
  scope: Namespaced
  names: { kind: Database, plural: databases }
---
apiVersion: platform.example.com/v1alpha1
kind: PostgreSQLInstance
metadata: { name: main, namespace: orders, labels: { app: orders, crossplane.io/claim-name: main } }
spec:
  parameters: { storageGB: 50, instanceClass: db.t4g.medium, multiAZ: true }
  compositionRef: { name: xpostgres-aws }
  writeConnectionSecretToRef: { name: main-conn }
  resourceRef: { apiVersion: platform.example.com/v1alpha1, kind: XPostgreSQLInstance, name: main-x7k2p }
---
apiVersion: platform.example.com/v1alpha1
kind: XPostgreSQLInstance
metadata: { name: main-x7k2p }
spec:
  parameters: { storageGB: 50, instanceClass: db.t4g.medium, multiAZ: true }
  compositionRef: { name: xpostgres-aws }
  claimRef: { apiVersion: platform.example.com/v1alpha1, kind: PostgreSQLInstance, name: main, namespace: orders }
  resourceRefs:
    - { apiVersion: rds.aws.upbound.io/v1beta3, kind: Instance, name: main-x7k2p-db }
    - { apiVersion: ec2.aws.upbound.io/v1beta1, kind: SecurityGroup, name: main-x7k2p-sg }
---
apiVersion: rds.aws.upbound.io/v1beta3
kind: Instance
metadata:
  name: main-x7k2p-db
  annotations: { crossplane.io/external-name: orders-main-db }
  labels: { crossplane.io/composite: main-x7k2p }
spec:
  deletionPolicy: Delete
  forProvider: { region: us-east-1, instanceClass: db.t4g.medium, allocatedStorage: 50 }
status: { atProvider: { identifier: orders-main-db, id: db-ABC } }
---
apiVersion: db.example.org/v1alpha1
kind: Database
metadata: { name: ledger, namespace: billing }
spec:
  parameters: { storageGB: 20, tier: gold }
  crossplane:
    compositionRef: { name: db-aws }
    resourceRefs: [ { apiVersion: rds.aws.m.upbound.io/v1beta1, kind: Instance, name: ledger-db } ]
---
apiVersion: rds.aws.m.upbound.io/v1beta1
kind: Instance
metadata:
  name: ledger-db
  namespace: billing
  annotations: { crossplane.io/external-name: billing-ledger }
spec:
  forProvider: { region: us-east-1 }
status: { atProvider: { identifier: billing-ledger } }
---
apiVersion: paved.dev/v1alpha1
kind: Composition
metadata: { name: postgresql-aws-standard, labels: { paved.dev/default-for: aws } }
spec:
  postgresql:
    provider: aws
    region: us-east-1
    sizes: { small: db.t4g.medium, medium: db.r6g.large, large: db.r6g.2xlarge }
    storage: { minGB: 20, maxGB: 1000 }
---
apiVersion: paved.dev/v1alpha1
kind: Team
metadata: { name: team-orders }
spec:
  namespaces: [ { name: orders, cloud: aws } ]
"#;

    #[test]
    fn a_crossplane_claim_becomes_a_paved_claim_that_adopts_its_instance() {
        let m = plan(&yaml(PLATFORM), &trusting());
        assert_eq!(m.entries.len(), 2, "{m:#?}");
        let main = &m.entries[1];
        assert_eq!(main.source.name, "main");
        assert_eq!(main.external_name, "orders-main-db");
        assert_eq!(main.team.as_deref(), Some("team-orders"));
        assert!(main.managed_has_deletion_policy);
        // The seed's shape moves with no hand edits: parameters, the Secret's name.
        assert_eq!(
            main.claim,
            json!({
                "apiVersion": "paved.dev/v1alpha1", "kind": "PostgreSQLInstance",
                "metadata": {
                    "name": "main", "namespace": "orders", "labels": { "app": "orders" },
                    "annotations": { "paved.dev/migrated-from": "platform.example.com/v1alpha1 PostgreSQLInstance orders/main" },
                },
                "spec": {
                    "compositionRef": { "name": "postgresql-aws-standard" },
                    "existing": { "externalName": "orders-main-db", "mode": "Adopt" },
                    "parameters": { "storageGB": 50, "instanceClass": "db.t4g.medium", "multiAZ": true },
                    "writeConnectionSecretToRef": { "name": "main-conn" },
                },
            })
        );
        assert!(main
            .notes
            .iter()
            .any(|n| n.contains("deletionPolicy Delete")));
        // The claim parses as Paved's type.
        let _: paved_api::PostgreSQLInstance = serde_json::from_value(main.claim.clone()).unwrap();
        // v2: a namespaced composite, its unknown parameter reported, no Team for it.
        let ledger = &m.entries[0];
        assert_eq!(ledger.source.kind, "Database");
        assert_eq!(ledger.external_name, "billing-ledger");
        assert!(!ledger.managed_has_deletion_policy);
        assert_eq!(ledger.team, None);
        assert!(ledger
            .notes
            .iter()
            .any(|n| n.contains("spec.parameters.tier")));
        assert_eq!(
            ledger.claim["spec"]["parameters"],
            json!({ "storageGB": 20 })
        );
        assert_eq!(
            m.grants()["team-orders"],
            [
                json!({ "namespace": "orders", "externalName": "orders-main-db",
                     "composition": "postgresql-aws-standard", "mode": "Adopt" })
            ]
        );
        let report = m.report();
        assert!(
            report.contains("NO TEAM lists namespace billing"),
            "{report}"
        );
        // Without the platform's word, a managed database in a tenant's namespace is
        // not believed.
        let m = plan(&yaml(PLATFORM), &Options::default());
        assert!(m
            .skipped
            .iter()
            .any(|s| s.source.name == "ledger" && s.why.contains("--allow-namespaced")));
    }

    #[test]
    fn a_namespace_whose_claims_move_is_proposed_as_the_service_that_takes_it_over() {
        let opts = Options {
            service_claims: true,
            ..trusting()
        };
        // The Team lists no system or cost center for orders: not guessed.
        let m = plan(&yaml(PLATFORM), &opts);
        assert!(m.services.is_empty(), "{m:#?}");
        let why = |m: &Migration, ns: &str| {
            m.skipped
                .iter()
                .find(|s| s.source.kind == "Namespace" && s.source.name == ns)
                .map(|s| s.why.clone())
                .unwrap_or_default()
        };
        assert!(why(&m, "orders").contains("costCenter"), "{m:#?}");
        assert!(why(&m, "billing").contains("no Team lists"), "{m:#?}");
        let mut objects = yaml(PLATFORM);
        let team = objects.iter_mut().find(|v| is_paved(v, "Team")).unwrap();
        team["spec"]["namespaces"][0]["system"] = json!("orders");
        team["spec"]["namespaces"][0]["costCenter"] = json!("CC-9");
        team["spec"]["namespaces"][0]["dataClassification"] = json!("internal");
        let m = plan(&objects, &opts);
        assert_eq!(m.services.len(), 1, "{m:#?}");
        let v = &m.services[0];
        assert_eq!(
            (v.namespace.as_str(), v.team.as_str()),
            ("orders", "team-orders")
        );
        assert_eq!(
            v.claim,
            json!({
                "apiVersion": "paved.dev/v1alpha1", "kind": "ServiceClaim",
                "metadata": { "name": "orders" },
                "spec": { "owner": "team-orders", "system": "orders", "costCenter": "CC-9",
                          "cloud": "aws", "dataClassification": "internal" },
            })
        );
        let _: paved_api::ServiceClaim = serde_json::from_value(v.claim.clone()).unwrap();
        let report = m.report();
        for want in [
            "ServiceClaim orders (owner team-orders) taking the namespace over",
            "adoptByServiceClaim",
            "default-deny NetworkPolicies",
            "6. once every database of a namespace is cut over",
        ] {
            assert!(report.contains(want), "{want:?} in {report}");
        }
        // Its grants and the platform's label are written beside the claims.
        let dir = std::env::temp_dir().join(format!("paved-migrate-svc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        write(&m, &dir).unwrap();
        let read = |p: &str| -> Value {
            serde_yaml::from_str(&std::fs::read_to_string(dir.join(p)).unwrap()).unwrap()
        };
        let t = read("teams/team-orders.yaml");
        assert_eq!(
            t["spec"]["namespaces"],
            json!([{ "name": "orders", "adoptByServiceClaim": true }])
        );
        assert_eq!(
            t["spec"]["existingDatabases"][0]["externalName"],
            "orders-main-db"
        );
        assert_eq!(read("services/orders.yaml"), v.claim);
        assert!(std::fs::read_to_string(dir.join("label-namespaces.sh"))
            .unwrap()
            .contains("kubectl label namespace orders paved.dev/adoptable=true"));
        let _ = std::fs::remove_dir_all(&dir);
        // A namespace a ServiceClaim made already: nothing proposed.
        objects.push(json!({
            "apiVersion": "paved.dev/v1alpha1", "kind": "ServiceClaim",
            "metadata": { "name": "orders" }, "spec": {},
        }));
        assert!(plan(&objects, &opts).services.is_empty());
        // Not asked for: nothing proposed.
        assert!(plan(&yaml(PLATFORM), &trusting()).services.is_empty());
        // Something in the namespace stays with Crossplane: its service waits.
        objects.pop();
        let mut never_made = objects
            .iter()
            .find(|v| str_at(v, "/metadata/name") == "main")
            .unwrap()
            .clone();
        never_made["metadata"]["name"] = json!("pending");
        objects.push(never_made);
        let m = plan(&objects, &opts);
        assert!(m.services.is_empty(), "{m:#?}");
        assert!(
            why(&m, "orders").contains("stays with Crossplane"),
            "{m:#?}"
        );
    }

    #[test]
    fn what_cannot_be_tied_to_one_database_is_reported_and_skipped() {
        let mut objects = yaml(PLATFORM);
        // The instance's name is unknown: never guessed.
        let mr = objects
            .iter_mut()
            .find(|v| str_at(v, "/metadata/name") == "main-x7k2p-db")
            .unwrap();
        mr["metadata"]["annotations"] = json!({});
        // A second composite composing two instances, and a claim of no known XRD.
        objects.extend(yaml(
            r#"
apiVersion: db.example.org/v1alpha1
kind: Database
metadata: { name: twin, namespace: billing }
spec:
  crossplane:
    compositionRef: { name: db-aws }
    resourceRefs:
      - { apiVersion: rds.aws.m.upbound.io/v1beta1, kind: Instance, name: twin-a }
      - { apiVersion: rds.aws.m.upbound.io/v1beta1, kind: Instance, name: twin-b }
---
apiVersion: rds.aws.m.upbound.io/v1beta1
kind: Instance
metadata: { name: twin-a, namespace: billing, annotations: { crossplane.io/external-name: twin-a } }
spec: { forProvider: { region: us-east-1 } }
---
apiVersion: rds.aws.m.upbound.io/v1beta1
kind: Instance
metadata: { name: twin-b, namespace: billing, annotations: { crossplane.io/external-name: twin-b } }
spec: { forProvider: { region: us-east-1 } }
---
apiVersion: other.example.com/v1
kind: MySQLInstance
metadata: { name: m, namespace: orders }
spec: { compositionRef: { name: mysql } }
---
apiVersion: db.example.org/v1alpha1
kind: Database
metadata: { name: elsewhere, namespace: billing }
spec:
  crossplane:
    compositionRef: { name: db-aws-eu }
    resourceRefs: [ { apiVersion: rds.aws.m.upbound.io/v1beta1, kind: Instance, name: eu-db } ]
---
apiVersion: rds.aws.m.upbound.io/v1beta1
kind: Instance
metadata: { name: eu-db, namespace: billing, annotations: { crossplane.io/external-name: "bad name!" } }
spec: { forProvider: { region: eu-west-1 } }
"#,
        ));
        let m = plan(&objects, &trusting());
        let why = |name: &str| {
            m.skipped
                .iter()
                .find(|s| s.source.name == name)
                .map(|s| s.why.clone())
                .unwrap_or_else(|| panic!("{name} not skipped: {m:#?}"))
        };
        assert!(why("main").contains("no crossplane.io/external-name"));
        assert!(why("twin").contains("composes 2 databases"));
        assert!(why("m").contains("no CompositeResourceDefinition"));
        assert!(why("elsewhere").contains("is not a valid RDS instance name"));
        assert_eq!(m.entries.len(), 1);
        assert_eq!(m.entries[0].source.name, "ledger");
        // A name its provider never saw it as, and a claim naming a composite that does
        // not name it back (both are a team's to write): neither is believed.
        let mut objects = yaml(PLATFORM);
        for v in objects.iter_mut() {
            if str_at(v, "/metadata/name") == "ledger-db" {
                v["status"]["atProvider"]["identifier"] = json!("someone-elses-db");
            }
            if str_at(v, "/metadata/name") == "main-x7k2p" {
                v["spec"]["claimRef"]["name"] = json!("other");
            }
        }
        let m = plan(&objects, &trusting());
        assert!(m.entries.is_empty(), "{m:#?}");
        assert!(m.skipped.iter().any(|s| s
            .why
            .contains("not known to be RDS instance billing-ledger")));
        assert!(m
            .skipped
            .iter()
            .any(|s| s.source.name == "main" && s.why.contains("no composite resource")));
    }

    #[test]
    fn the_paved_composition_is_never_guessed() {
        let mut objects = yaml(PLATFORM);
        // A second Composition for the region, neither the default: ambiguous.
        for v in objects.iter_mut() {
            if is_paved(v, "Composition") {
                v["metadata"]["labels"] = json!({});
            }
        }
        let mut other = objects
            .iter()
            .find(|v| is_paved(v, "Composition"))
            .unwrap()
            .clone();
        other["metadata"]["name"] = json!("postgresql-aws-gold");
        objects.push(other);
        let m = plan(&objects, &trusting());
        assert!(m.entries.is_empty());
        assert!(m.skipped[0].why.contains("--composition"), "{m:#?}");
        // Named by the caller: used.
        let opts = Options {
            compositions: [(
                "xpostgres-aws".to_string(),
                "postgresql-aws-gold".to_string(),
            )]
            .into(),
            ..trusting()
        };
        let m = plan(&objects, &opts);
        assert_eq!(m.entries.len(), 1);
        assert_eq!(m.entries[0].composition, "postgresql-aws-gold");
        // A class the Composition does not allow is left out, saying so.
        let mut objects = yaml(PLATFORM);
        for v in objects.iter_mut() {
            if str_at(v, "/metadata/name") == "main" {
                v["spec"]["parameters"]["instanceClass"] = json!("db.x2g.16xlarge");
            }
        }
        let m = plan(&objects, &trusting());
        let main = m.entries.iter().find(|e| e.source.name == "main").unwrap();
        assert!(main.claim["spec"]["parameters"]
            .get("instanceClass")
            .is_none());
        assert!(main.notes.iter().any(|n| n.contains("db.x2g.16xlarge")));
    }

    #[test]
    fn a_run_that_stopped_half_way_is_resumed_and_another_claim_of_the_name_left_alone() {
        let mut objects = yaml(PLATFORM);
        let made = plan(&objects, &trusting()).entries[1].claim.clone();
        objects.push(made.clone());
        let m = plan(&objects, &trusting());
        assert!(m.entries.iter().any(|e| e.source.name == "main"), "{m:#?}");
        let mut other = made;
        other["metadata"]["annotations"] = json!({});
        let last = objects.len() - 1;
        objects[last] = other;
        let m = plan(&objects, &trusting());
        assert!(m
            .skipped
            .iter()
            .any(|s| s.source.name == "main" && s.why.contains("exists already")));
    }

    #[test]
    fn azure_and_cloud_sql_databases_move_with_the_database_inside_them() {
        let objects = yaml(
            r#"
apiVersion: apiextensions.crossplane.io/v2
kind: CompositeResourceDefinition
metadata: { name: databases.db.example.org }
spec: { group: db.example.org, scope: Namespaced, names: { kind: Database, plural: databases } }
---
apiVersion: db.example.org/v1alpha1
kind: Database
metadata: { name: claims, namespace: billing }
spec:
  crossplane:
    compositionRef: { name: db-azure }
    resourceRefs:
      - { apiVersion: dbforpostgresql.azure.m.upbound.io/v1beta1, kind: FlexibleServer, name: claims-srv }
      - { apiVersion: dbforpostgresql.azure.m.upbound.io/v1beta1, kind: FlexibleServerDatabase, name: claims-db }
---
apiVersion: dbforpostgresql.azure.m.upbound.io/v1beta1
kind: FlexibleServer
metadata: { name: claims-srv, namespace: billing, annotations: { crossplane.io/external-name: billing-claims } }
spec: { forProvider: { location: East US } }
status: { atProvider: { id: /subscriptions/s/resourceGroups/r/providers/Microsoft.DBforPostgreSQL/flexibleServers/billing-claims } }
---
apiVersion: dbforpostgresql.azure.m.upbound.io/v1beta1
kind: FlexibleServerDatabase
metadata: { name: claims-db, namespace: billing, annotations: { crossplane.io/external-name: claims } }
spec: { forProvider: {} }
---
apiVersion: db.example.org/v1alpha1
kind: Database
metadata: { name: ledger, namespace: billing }
spec:
  crossplane:
    compositionRef: { name: db-gcp }
    resourceRefs:
      - { apiVersion: sql.gcp.m.upbound.io/v1beta1, kind: DatabaseInstance, name: ledger-inst }
      - { apiVersion: sql.gcp.m.upbound.io/v1beta1, kind: Database, name: ledger-db }
---
apiVersion: sql.gcp.m.upbound.io/v1beta1
kind: DatabaseInstance
metadata: { name: ledger-inst, namespace: billing, annotations: { crossplane.io/external-name: billing-ledger } }
spec: { forProvider: { region: us-central1 } }
status: { atProvider: { id: billing-ledger } }
---
apiVersion: sql.gcp.m.upbound.io/v1beta1
kind: Database
metadata: { name: ledger-db, namespace: billing, annotations: { crossplane.io/external-name: projects/p/instances/billing-ledger/databases/ledger } }
spec: { forProvider: {} }
---
apiVersion: paved.dev/v1alpha1
kind: Composition
metadata: { name: postgresql-azure-standard }
spec: { postgresql: { provider: azure, region: eastus } }
---
apiVersion: paved.dev/v1alpha1
kind: Composition
metadata: { name: postgresql-gcp-standard }
spec: { postgresql: { provider: gcp, region: us-central1 } }
"#,
        );
        let m = plan(&objects, &trusting());
        assert_eq!(m.entries.len(), 2, "{m:#?}");
        let (azure, gcp) = (&m.entries[0], &m.entries[1]);
        assert_eq!(
            (azure.composition.as_str(), azure.external_name.as_str()),
            ("postgresql-azure-standard", "billing-claims")
        );
        assert_eq!(azure.claim["spec"]["existing"]["databaseName"], "claims");
        assert_eq!(azure.inside[0].name, "claims-db");
        assert!(!azure.managed_has_deletion_policy);
        assert_eq!(gcp.composition, "postgresql-gcp-standard");
        assert_eq!(gcp.claim["spec"]["existing"]["databaseName"], "ledger");
        assert!(m
            .report()
            .contains("adopting Cloud SQL instance billing-ledger"));
        // Two databases inside, or a server its provider knows by another name: skipped.
        let mut twice = objects.clone();
        twice[1]["spec"]["crossplane"]["resourceRefs"]
            .as_array_mut()
            .unwrap()
            .push(
                json!({ "apiVersion": "dbforpostgresql.azure.m.upbound.io/v1beta1",
                          "kind": "FlexibleServerDatabase", "name": "claims-db2" }),
            );
        let mut second = twice[3].clone();
        second["metadata"]["name"] = json!("claims-db2");
        twice.push(second);
        twice[5]["status"]["atProvider"]["id"] = json!("someone-else");
        let m = plan(&twice, &trusting());
        assert!(m.entries.is_empty(), "{m:#?}");
        assert!(m.skipped.iter().any(|s| s.why.contains("write it by hand")));
        assert!(m.skipped.iter().any(|s| s
            .why
            .contains("not known to be Cloud SQL instance billing-ledger")));
    }

    #[test]
    fn the_live_read_lists_every_managed_database_kind_and_the_databases_inside_them() {
        let kinds: Vec<_> = managed_kinds().collect();
        for want in [
            ("rds.aws.upbound.io", "Instance"),
            ("rds.aws.m.upbound.io", "Instance"),
            ("dbforpostgresql.azure.upbound.io", "FlexibleServerDatabase"),
            ("dbforpostgresql.azure.m.upbound.io", "FlexibleServer"),
            ("sql.gcp.upbound.io", "Database"),
            ("sql.gcp.m.upbound.io", "DatabaseInstance"),
        ] {
            assert!(kinds.contains(&want), "{want:?} in {kinds:?}");
        }
        assert_eq!(kinds.len(), 10);
    }

    #[test]
    fn two_sources_of_one_database_are_both_skipped() {
        let mut objects = yaml(PLATFORM);
        for v in objects.iter_mut() {
            if str_at(v, "/metadata/name") == "ledger-db" {
                v["metadata"]["annotations"]["crossplane.io/external-name"] =
                    json!("orders-main-db");
                v["status"]["atProvider"]["identifier"] = json!("orders-main-db");
            }
        }
        let m = plan(&objects, &trusting());
        assert!(m.entries.is_empty(), "{m:#?}");
        assert!(m.skipped.iter().all(|s| s.why.contains("more than one")));
    }
}
