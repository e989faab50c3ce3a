//! A desired Kubernetes object, independent of any client.

use serde_json::Value;

/// One object a claim implies. `body` is the full apply configuration
/// (apiVersion, kind, metadata, spec); the apply layer sends it as a server-side
/// apply patch.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredObject {
    pub api_version: String,
    pub kind: String,
    /// Lower-case plural resource name, e.g. `networkpolicies`.
    pub plural: String,
    pub namespace: Option<String>,
    pub name: String,
    pub body: Value,
}

impl DesiredObject {
    /// `kind/namespace/name`, for messages and the orphan set.
    pub fn key(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{}/{}", self.kind, ns, self.name),
            None => format!("{}/{}", self.kind, self.name),
        }
    }

    /// The API group ("" for core).
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
    }

    /// The API version without the group.
    pub fn version(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map(|(_, v)| v)
            .unwrap_or(&self.api_version)
    }
}
