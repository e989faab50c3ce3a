//! TemporalNamespace → the namespace Temporal should have, and the plan that gets
//! it there. Ownership lives in the namespace's data, so a namespace someone else
//! registered is never adopted.

use std::collections::BTreeMap;

use paved_api::{render_template, TemporalComposition, TemporalNamespaceSpec};

use crate::{floor, postgresql::NamespaceFacts, Drift, Plan, RenderError};

/// The data key that records which claim owns a Temporal namespace.
pub const OWNER_KEY: &str = "paved.dev/claim-uid";

/// Everything rendering a TemporalNamespace depends on.
#[derive(Debug, Clone)]
pub struct TemporalInput<'a> {
    pub claim_name: &'a str,
    pub claim_namespace: &'a str,
    pub claim_uid: &'a str,
    pub spec: &'a TemporalNamespaceSpec,
    pub facts: &'a NamespaceFacts,
    pub composition_name: &'a str,
    pub composition: &'a TemporalComposition,
    /// The Temporal namespace the claim already holds (status.registeredName): kept
    /// whatever the pattern renders now.
    pub held_name: Option<&'a str>,
}

/// The namespace Temporal should have.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredTemporalNamespace {
    pub name: String,
    pub owner_uid: String,
    pub description: String,
    pub owner_email: String,
    pub retention_days: i32,
    pub data: BTreeMap<String, String>,
    pub history_archival_uri: Option<String>,
    pub visibility_archival_uri: Option<String>,
    pub allow_deletion: bool,
    #[serde(skip)]
    pub poll_interval: std::time::Duration,
}

pub fn render_temporal(input: &TemporalInput<'_>) -> Result<DesiredTemporalNamespace, RenderError> {
    let comp = input.composition;
    let violations = floor::check_composition_temporal(comp);
    if !violations.is_empty() {
        return Err(RenderError::CompositionViolatesFloor {
            name: input.composition_name.to_string(),
            violations: floor::join(&violations),
        });
    }
    let spec = input.spec;
    let retention_days = spec.retention_days.unwrap_or(comp.default_retention_days);
    if retention_days < 1 || retention_days > comp.max_retention_days {
        return Err(RenderError::InvalidSpec(format!(
            "spec.retentionDays {retention_days} is outside 1..{} (the maximum of composition {})",
            comp.max_retention_days, input.composition_name
        )));
    }
    let archival = spec.archival.clone().unwrap_or_default();
    let uris = comp.archival.clone().unwrap_or_default();
    let uri =
        |wanted: bool, uri: &Option<String>, what: &str| -> Result<Option<String>, RenderError> {
            match (wanted, uri) {
                (false, _) => Ok(None),
                (true, Some(u)) => Ok(Some(u.clone())),
                (true, None) => Err(RenderError::InvalidSpec(format!(
                    "spec.archival.{what} is on, but composition {} enables no {what} archival",
                    input.composition_name
                ))),
            }
        };
    let history_archival_uri = uri(archival.history, &uris.history_uri, "history")?;
    let visibility_archival_uri = uri(archival.visibility, &uris.visibility_uri, "visibility")?;

    let vars: BTreeMap<&str, String> = BTreeMap::from([
        ("namespace", input.claim_namespace.to_string()),
        ("name", input.claim_name.to_string()),
    ]);
    // A claim name with a '.' could forge the separator the pattern relies on
    // ({namespace}.{name}); one registered before keeps what it holds.
    if input.held_name.is_none() && input.claim_name.contains('.') {
        return Err(RenderError::InvalidSpec(format!(
            "metadata.name {} cannot contain '.': on Temporal it separates namespace and name; use '-'",
            input.claim_name
        )));
    }
    let name = match input.held_name {
        Some(held) => held.to_string(),
        None => {
            render_template(&comp.namespace_pattern, &vars).map_err(|e| RenderError::Template {
                composition: input.composition_name.to_string(),
                message: format!("namespacePattern: {e}"),
            })?
        }
    };
    if name.is_empty() || name.len() > 255 {
        return Err(RenderError::InvalidSpec(format!(
            "the Temporal namespace name {name:?} must be 1 to 255 characters"
        )));
    }

    // The claim's data first, then what Paved stamps: identity keys cannot be
    // overridden by the claim.
    let mut data = spec.data.clone();
    let facts = input.facts;
    data.insert("team".into(), facts.owner.clone());
    data.insert("service".into(), facts.service.clone());
    data.insert(
        "classification".into(),
        facts.classification.as_str().into(),
    );
    data.insert(
        "paved.dev/claim".into(),
        format!("{}/{}", input.claim_namespace, input.claim_name),
    );
    data.insert(OWNER_KEY.into(), input.claim_uid.into());

    Ok(DesiredTemporalNamespace {
        name,
        owner_uid: input.claim_uid.to_string(),
        description: spec.description.clone().unwrap_or_default(),
        owner_email: spec.owner_email.clone().unwrap_or_default(),
        retention_days,
        data,
        history_archival_uri,
        visibility_archival_uri,
        allow_deletion: spec.allow_deletion,
        poll_interval: crate::postgresql::parse_duration(&comp.poll_interval)
            .unwrap_or(std::time::Duration::from_secs(60)),
    })
}

/// What Temporal reports about a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObservedTemporalNamespace {
    pub id: String,
    /// `Registered`, `Deprecated` or `Deleted`.
    pub state: String,
    pub description: String,
    pub owner_email: String,
    /// Retention in whole seconds.
    pub retention_seconds: i64,
    pub data: BTreeMap<String, String>,
    pub history_archival_uri: Option<String>,
    pub visibility_archival_uri: Option<String>,
}

/// Pure: who a namespace found under the claim's name belongs to, when it is not this
/// claim (Temporal has no tags: the claim's UID is kept in the namespace's data).
pub fn foreign_owner(
    d: &DesiredTemporalNamespace,
    o: &ObservedTemporalNamespace,
) -> Option<String> {
    match o.data.get(OWNER_KEY) {
        Some(uid) if *uid == d.owner_uid => None,
        Some(uid) => Some(format!("claim {uid}")),
        None => Some("someone outside Paved (no paved.dev/claim-uid in its data)".into()),
    }
}

/// Pure: compares a namespace of this claim's (see `foreign_owner`) with what the claim
/// implies.
pub fn plan_temporal(d: &DesiredTemporalNamespace, o: &ObservedTemporalNamespace) -> Plan {
    if o.state != "Registered" {
        return Plan::Terminal {
            reason: paved_api::Reason::NamespaceUnavailable,
            message: format!("namespace {} is {} in Temporal", d.name, o.state),
        };
    }
    let mut drift = vec![];
    let want_seconds = i64::from(d.retention_days) * 86_400;
    if o.retention_seconds != want_seconds {
        drift.push(Drift {
            field: "retention",
            observed: format!("{}s", o.retention_seconds),
            desired: format!("{}d", d.retention_days),
        });
    }
    // Temporal ignores an empty description or email on update, so an empty one in
    // the claim means "no opinion", not drift that could never be corrected.
    if !d.description.is_empty() && o.description != d.description {
        drift.push(Drift {
            field: "description",
            observed: o.description.clone(),
            desired: d.description.clone(),
        });
    }
    if !d.owner_email.is_empty() && o.owner_email != d.owner_email {
        drift.push(Drift {
            field: "ownerEmail",
            observed: o.owner_email.clone(),
            desired: d.owner_email.clone(),
        });
    }
    // Temporal merges data on update; keys we want must be there with our values.
    let missing: Vec<&String> = d
        .data
        .iter()
        .filter(|(k, v)| o.data.get(*k) != Some(v))
        .map(|(k, _)| k)
        .collect();
    if !missing.is_empty() {
        drift.push(Drift {
            field: "data",
            observed: missing
                .iter()
                .map(|k| {
                    format!(
                        "{k}={}",
                        o.data.get(*k).map(String::as_str).unwrap_or("<unset>")
                    )
                })
                .collect::<Vec<_>>()
                .join(","),
            desired: missing
                .iter()
                .map(|k| format!("{k}={}", d.data[*k]))
                .collect::<Vec<_>>()
                .join(","),
        });
    }
    for (field, want, have) in [
        (
            "historyArchival",
            &d.history_archival_uri,
            &o.history_archival_uri,
        ),
        (
            "visibilityArchival",
            &d.visibility_archival_uri,
            &o.visibility_archival_uri,
        ),
    ] {
        if want.is_some() && want != have {
            drift.push(Drift {
                field,
                observed: have.clone().unwrap_or_default(),
                desired: want.clone().unwrap_or_default(),
            });
        }
    }
    if drift.is_empty() {
        Plan::UpToDate
    } else {
        Plan::Update(drift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paved_api::{Cloud, DataClassification, TemporalArchival, TemporalArchivalUris};

    fn comp() -> TemporalComposition {
        TemporalComposition {
            frontend_address: "127.0.0.1:7233".into(),
            default_retention_days: 7,
            max_retention_days: 90,
            namespace_pattern: "{namespace}.{name}".into(),
            poll_interval: "1m".into(),
            ..Default::default()
        }
    }

    fn facts() -> NamespaceFacts {
        NamespaceFacts {
            cloud: Cloud::Local,
            classification: DataClassification::Phi,
            owner: "team-a".into(),
            system: "s".into(),
            service: "svc".into(),
            cost_center: "CC".into(),
            team: None,
        }
    }

    fn render(
        spec: &TemporalNamespaceSpec,
        c: &TemporalComposition,
    ) -> Result<DesiredTemporalNamespace, RenderError> {
        render_temporal(&TemporalInput {
            claim_name: "wf",
            claim_namespace: "svc",
            claim_uid: "uid-1",
            spec,
            facts: &facts(),
            composition_name: "temporal-standard",
            composition: c,
            held_name: None,
        })
    }

    #[test]
    fn a_held_name_is_kept_and_a_dotted_claim_name_is_refused() {
        let c = comp();
        let spec = TemporalNamespaceSpec::default();
        let input = |name: &'static str, held: Option<&'static str>| TemporalInput {
            claim_name: name,
            claim_namespace: "svc",
            claim_uid: "uid-1",
            spec: &spec,
            facts: Box::leak(Box::new(facts())),
            composition_name: "temporal-standard",
            composition: Box::leak(Box::new(c.clone())),
            held_name: held,
        };
        // Registered under an older pattern: kept, whatever the pattern says now.
        assert_eq!(
            render_temporal(&input("wf", Some("svc-wf"))).unwrap().name,
            "svc-wf"
        );
        let err = render_temporal(&input("w.f", None)).unwrap_err();
        assert_eq!(err.reason().as_str(), "InvalidSpec");
        assert!(err.to_string().contains("cannot contain '.'"), "{err}");
        assert_eq!(
            render_temporal(&input("w.f", Some("svc.w.f")))
                .unwrap()
                .name,
            "svc.w.f"
        );
    }

    #[test]
    fn name_retention_and_identity_data() {
        let mut spec = TemporalNamespaceSpec::default();
        spec.data.insert("team".into(), "impostor".into());
        spec.data.insert("tier".into(), "gold".into());
        let d = render(&spec, &comp()).unwrap();
        assert_eq!(d.name, "svc.wf");
        assert_eq!(d.retention_days, 7);
        assert_eq!(
            d.data["team"], "team-a",
            "identity keys cannot be overridden"
        );
        assert_eq!(d.data["tier"], "gold");
        assert_eq!(d.data["classification"], "phi");
        assert_eq!(d.data[OWNER_KEY], "uid-1");
        assert_eq!(d.poll_interval, std::time::Duration::from_secs(60));
    }

    #[test]
    fn retention_above_the_composition_maximum_is_refused() {
        let spec = TemporalNamespaceSpec {
            retention_days: Some(91),
            ..Default::default()
        };
        assert!(render(&spec, &comp())
            .unwrap_err()
            .to_string()
            .contains("outside 1..90"));
    }

    #[test]
    fn archival_needs_the_composition_to_enable_it() {
        let spec = TemporalNamespaceSpec {
            archival: Some(TemporalArchival {
                history: true,
                visibility: false,
            }),
            ..Default::default()
        };
        assert!(render(&spec, &comp())
            .unwrap_err()
            .to_string()
            .contains("enables no history archival"));
        let mut c = comp();
        c.archival = Some(TemporalArchivalUris {
            history_uri: Some("s3://b/h".into()),
            visibility_uri: None,
        });
        assert_eq!(
            render(&spec, &c).unwrap().history_archival_uri.as_deref(),
            Some("s3://b/h")
        );
    }

    fn observed(d: &DesiredTemporalNamespace) -> ObservedTemporalNamespace {
        ObservedTemporalNamespace {
            id: "id".into(),
            state: "Registered".into(),
            description: d.description.clone(),
            owner_email: d.owner_email.clone(),
            retention_seconds: i64::from(d.retention_days) * 86_400,
            data: d.data.clone(),
            ..Default::default()
        }
    }

    #[test]
    fn plan_corrects_what_differs() {
        let d = render(&Default::default(), &comp()).unwrap();
        assert_eq!(plan_temporal(&d, &observed(&d)), Plan::UpToDate);
        let mut o = observed(&d);
        o.retention_seconds = 2 * 86_400;
        o.data.insert("extra".into(), "kept".into());
        let Plan::Update(drift) = plan_temporal(&d, &o) else {
            panic!()
        };
        assert_eq!(drift.len(), 1, "extra data is not drift");
        assert_eq!(drift[0].field, "retention");
        // An empty description or email in the claim is no opinion (Temporal cannot
        // clear them), so it is never drift.
        let mut o = observed(&d);
        o.description = "set by hand".into();
        o.owner_email = "someone@example.com".into();
        assert_eq!(plan_temporal(&d, &o), Plan::UpToDate);
        let mut o = observed(&d);
        o.state = "Deleted".into();
        assert!(matches!(
            plan_temporal(&d, &o),
            Plan::Terminal {
                reason: paved_api::Reason::NamespaceUnavailable,
                ..
            }
        ));
    }

    #[test]
    fn a_namespace_without_this_claims_uid_is_someone_elses() {
        let d = render(&Default::default(), &comp()).unwrap();
        let mut o = observed(&d);
        assert_eq!(foreign_owner(&d, &o), None);
        o.data.remove(OWNER_KEY);
        assert!(foreign_owner(&d, &o).is_some_and(|m| m.contains("outside Paved")));
        o.data.insert(OWNER_KEY.into(), "uid-2".into());
        assert!(foreign_owner(&d, &o).is_some_and(|m| m.contains("uid-2")));
    }
}
