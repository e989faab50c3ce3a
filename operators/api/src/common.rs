//! Types and helpers shared by every kind.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a claim's resources run.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Cloud {
    Aws,
    Azure,
    Gcp,
    #[default]
    Local,
}

impl Cloud {
    pub const ALL: [Cloud; 4] = [Cloud::Aws, Cloud::Azure, Cloud::Gcp, Cloud::Local];

    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Aws => "aws",
            Cloud::Azure => "azure",
            Cloud::Gcp => "gcp",
            Cloud::Local => "local",
        }
    }

    /// The ServiceAccount annotation each cloud's workload identity reads.
    pub fn workload_identity_annotation(self) -> Option<&'static str> {
        match self {
            Cloud::Aws => Some("eks.amazonaws.com/role-arn"),
            Cloud::Azure => Some("azure.workload.identity/client-id"),
            Cloud::Gcp => Some("iam.gke.io/gcp-service-account"),
            Cloud::Local => None,
        }
    }
}

impl std::fmt::Display for Cloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Cloud {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Cloud::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown cloud {s:?}: expected one of aws, azure, gcp, local"))
    }
}

/// How sensitive the data a service handles is. Drives encryption, deletion
/// protection and which providers may serve it.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum DataClassification {
    Public,
    Internal,
    Confidential,
    #[default]
    Phi,
}

impl DataClassification {
    pub fn as_str(self) -> &'static str {
        match self {
            DataClassification::Public => "public",
            DataClassification::Internal => "internal",
            DataClassification::Confidential => "confidential",
            DataClassification::Phi => "phi",
        }
    }
}

/// The service-level tier: picks quotas and sizing defaults from the composition.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum SloTier {
    Bronze,
    #[default]
    Silver,
    Gold,
}

impl SloTier {
    pub fn as_str(self) -> &'static str {
        match self {
            SloTier::Bronze => "bronze",
            SloTier::Silver => "silver",
            SloTier::Gold => "gold",
        }
    }
}

/// What happens to the cloud resource when its claim is deleted: `Delete`, `Orphan`
/// (left running, unmanaged) or `Snapshot` (a final snapshot, then deleted). `Delete`
/// drops the data without a snapshot only for a claim deleted on its own that carries
/// the annotation `paved.dev/confirm-delete: <its UID>`; a prune, a rename in Git or a
/// namespace going keeps a final snapshot first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    Delete,
    Orphan,
    /// The safe default wherever nothing else is known.
    #[default]
    Snapshot,
}

/// A reference to a Composition by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompositionReference {
    /// Name of the Composition (cluster-scoped).
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Selects a Composition by labels (the Crossplane claim field of the same name).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompositionSelector {
    /// Labels the Composition must carry, e.g. `provider: aws`.
    #[schemars(extend("maxProperties" = 16))]
    #[schemars(extend("additionalProperties" = {"type": "string", "maxLength": 63}))]
    pub match_labels: BTreeMap<String, String>,
}

/// The Composition a claim was rendered with: the audit trail from resource to
/// platform-authored defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompositionRevision {
    /// Name of the Composition.
    pub name: String,
    /// The Composition's `metadata.generation` at the time of rendering.
    pub generation: i64,
}

/// A reference to a Secret in the claim's namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalSecretReference {
    /// Name of the Secret.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
}

/// A reference to a Secret in a named namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeySelector {
    /// Name of the Secret.
    pub name: String,
    /// Namespace of the Secret.
    pub namespace: String,
    /// Key within the Secret.
    pub key: String,
}

/// Error from [`render_template`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown placeholder {{{0}}} in {1:?}; known: {2}")]
    UnknownPlaceholder(String, String, String),
    #[error("unclosed '{{' in {0:?}")]
    Unclosed(String),
}

/// Substitutes `{name}` placeholders. Unknown placeholders are an error rather than
/// left in place, so a typo in a composition shows up as a condition, not as a
/// cloud tag that literally reads `{costCentre}`.
pub fn render_template(
    template: &str,
    vars: &BTreeMap<&str, String>,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after
            .find('}')
            .ok_or_else(|| TemplateError::Unclosed(template.to_string()))?;
        let key = &after[..end];
        match vars.get(key) {
            Some(v) => out.push_str(v),
            None => {
                return Err(TemplateError::UnknownPlaceholder(
                    key.to_string(),
                    template.to_string(),
                    vars.keys()
                        .map(|k| format!("{{{k}}}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                ))
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            ("owner", "team-a".to_string()),
            ("service", "svc".to_string()),
        ])
    }

    #[test]
    fn renders_placeholders() {
        assert_eq!(
            render_template("{owner}/{service}/x", &vars()).unwrap(),
            "team-a/svc/x"
        );
        assert_eq!(render_template("plain", &vars()).unwrap(), "plain");
    }

    #[test]
    fn unknown_placeholder_is_an_error_naming_it() {
        let err = render_template("{owne}", &vars()).unwrap_err();
        assert!(err.to_string().contains("{owne}"), "{err}");
        assert!(err.to_string().contains("{owner}"), "{err}");
    }

    #[test]
    fn unclosed_brace_is_an_error() {
        assert!(matches!(
            render_template("{owner", &vars()),
            Err(TemplateError::Unclosed(_))
        ));
    }

    #[test]
    fn cloud_parses_and_names_the_choices() {
        assert_eq!("gcp".parse::<Cloud>().unwrap(), Cloud::Gcp);
        assert!("ibm"
            .parse::<Cloud>()
            .unwrap_err()
            .contains("aws, azure, gcp, local"));
    }
}
