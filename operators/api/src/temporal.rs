//! TemporalNamespace: a namespace on a Temporal cluster, registered and kept in sync.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{CompositionReference, CompositionRevision, Condition};

/// A namespace on the platform's Temporal cluster, with retention, ownership and
/// archival kept in sync by Paved.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "paved.dev",
    version = "v1alpha1",
    kind = "TemporalNamespace",
    plural = "temporalnamespaces",
    singular = "temporalnamespace",
    shortname = "tns",
    category = "paved",
    namespaced,
    status = "TemporalNamespaceStatus",
    printcolumn = r#"{"name":"READY","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"SYNCED","type":"string","jsonPath":".status.conditions[?(@.type==\"Synced\")].status"}"#,
    printcolumn = r#"{"name":"REASON","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"RETENTION","type":"integer","jsonPath":".status.retentionDays"}"#,
    printcolumn = r#"{"name":"TEMPORAL-NAMESPACE","type":"string","jsonPath":".status.temporalNamespace"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(oldSelf.compositionRef) || (has(self.compositionRef) && self.compositionRef.name == oldSelf.compositionRef.name)",
        "message": "spec.compositionRef is immutable once set"
    }
]))]
pub struct TemporalNamespaceSpec {
    /// The Temporal Composition (cluster address, TLS, retention bounds). Default: the
    /// one labelled `paved.dev/default-for: temporal`. Immutable once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composition_ref: Option<CompositionReference>,

    /// Days Temporal keeps closed workflow histories: 1 up to the Composition's
    /// maximum. Default from the Composition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3650))]
    pub retention_days: Option<i32>,

    /// Description shown in Temporal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,

    /// Contact address of the owning team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 254))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.matches('^[^@\\\\s]+@[^@\\\\s]+\\\\.[^@\\\\s]+$')", "message": "ownerEmail must be an email address such as team@example.com"}
    ]))]
    pub owner_email: Option<String>,

    /// Extra data labels on the Temporal namespace. Paved adds team, service and
    /// classification itself; those keys cannot be overridden.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    #[schemars(extend("additionalProperties" = {"type": "string", "maxLength": 256}))]
    pub data: BTreeMap<String, String>,

    /// Archival of histories and visibility records, when the Composition enables it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archival: Option<TemporalArchival>,

    /// Delete the Temporal namespace when this claim is deleted. Default false: the
    /// claim goes, the namespace and its workflow histories stay.
    #[serde(default)]
    pub allow_deletion: bool,
}

/// Which archivals to turn on (the URIs come from the Composition).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemporalArchival {
    /// Archive workflow histories.
    #[serde(default)]
    pub history: bool,
    /// Archive visibility records.
    #[serde(default)]
    pub visibility: bool,
}

/// Observed state of a TemporalNamespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemporalNamespaceStatus {
    /// `Ready`: the namespace is registered and matches the spec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation of the spec last acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The Composition the namespace was rendered with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composition: Option<CompositionRevision>,
    /// The namespace's name on the Temporal cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporal_namespace: Option<String>,
    /// Temporal's id for the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_id: Option<String>,
    /// Temporal's state for the namespace (`Registered`, `Deprecated`, `Deleted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Retention in effect, in days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<i32>,
    /// The Temporal namespace this claim registered or adopted as its own. Once set,
    /// the claim keeps it whatever the Composition's pattern says later, so a pattern
    /// change never moves a service away from its workflows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_name: Option<String>,
    /// The Temporal frontend it was registered on: deletion acts there, whatever the
    /// Composition says later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontend_address: Option<String>,
}

impl TemporalNamespaceStatus {
    /// The name this claim holds on Temporal, if any: the recorded one, or for a claim
    /// served before names were recorded, the one it was found up to date under (only
    /// then is Temporal's id recorded).
    pub fn held_name(&self) -> Option<&str> {
        self.registered_name.as_deref().or_else(|| {
            self.namespace_id
                .as_ref()
                .and(self.temporal_namespace.as_deref())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_held_name_is_the_recorded_one_or_the_one_found_up_to_date() {
        let mut s = TemporalNamespaceStatus {
            temporal_namespace: Some("svc-wf".into()),
            ..Default::default()
        };
        // Rendered, never found up to date: nothing held.
        assert_eq!(s.held_name(), None);
        s.namespace_id = Some("id-1".into());
        assert_eq!(s.held_name(), Some("svc-wf"));
        s.registered_name = Some("svc.wf".into());
        assert_eq!(s.held_name(), Some("svc.wf"));
    }
}
