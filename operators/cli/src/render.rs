//! Offline rendering and validation: the same pure code the operator runs.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use kube::ResourceExt;
use paved_api::{Cloud, Composition, PostgreSQLInstance, ServiceClaim};
use paved_compose::{
    check_composition,
    postgresql::{pick_composition, render_postgresql, NamespaceFacts, PostgresInput},
    render_service, ServiceInput,
};
use serde::Deserialize;

/// Every YAML document in `path`, with its position for messages.
fn documents(path: &Path) -> Result<Vec<(String, serde_yaml::Value)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = vec![];
    for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let v = serde_yaml::Value::deserialize(doc)
            .with_context(|| format!("{}: document {} is not YAML", path.display(), i + 1))?;
        if !v.is_null() {
            out.push((format!("{}#{}", path.display(), i + 1), v));
        }
    }
    Ok(out)
}

fn kind(v: &serde_yaml::Value) -> &str {
    v.get("kind").and_then(|k| k.as_str()).unwrap_or("")
}

fn load_compositions(dir: &Path) -> Result<Vec<Composition>> {
    let mut out = vec![];
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("reading compositions from {}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
    {
        for (at, v) in documents(p)? {
            if kind(&v) == "Composition" {
                out.push(
                    serde_yaml::from_value(v)
                        .with_context(|| format!("{at}: not a valid Composition"))?,
                );
            }
        }
    }
    Ok(out)
}

/// Renders every ServiceClaim in `files` with the Compositions in `dir`, as a
/// multi-document YAML stream.
pub fn render_files(files: &[PathBuf], dir: &Path, default_cloud: Cloud) -> Result<String> {
    let comps = load_compositions(dir)?;
    // Namespaces in the same files tell what the cluster's namespace labels would.
    let mut namespaces: std::collections::BTreeMap<
        String,
        std::collections::BTreeMap<String, String>,
    > = Default::default();
    for f in files {
        for (_, v) in documents(f)? {
            if kind(&v) == "Namespace" {
                let ns: k8s_openapi::api::core::v1::Namespace = serde_yaml::from_value(v)?;
                namespaces.insert(ns.name_any(), ns.labels().clone());
            }
        }
    }
    let mut out = String::new();
    for f in files {
        for (at, v) in documents(f)? {
            match kind(&v) {
                "ServiceClaim" => {
                    let claim: ServiceClaim = serde_yaml::from_value(v).with_context(|| format!("{at}: not a valid ServiceClaim"))?;
                    let name = claim.name_any();
                    let cloud = claim.spec.cloud.unwrap_or(default_cloud);
                    let all: Vec<std::sync::Arc<Composition>> = comps.iter().cloned().map(std::sync::Arc::new).collect();
                    let comp = paved_compose::service::pick_service_composition(&all, cloud)
                        .map_err(|e| anyhow::anyhow!("{at}: {} (in {})", e.0, dir.display()))?;
                    let input = ServiceInput {
                        claim_name: &name,
                        claim_uid: "00000000-0000-0000-0000-000000000000",
                        spec: &claim.spec,
                        cloud,
                        composition_name: &comp.name_any(),
                        composition_generation: comp.metadata.generation.unwrap_or(1),
                        composition: comp.spec.service.as_ref().expect("filtered on service"),
                        team: None,
                        secrets_namespace: paved_api::DEFAULT_SECRETS_NAMESPACE,
                        databases: &[],
                        identity: None,
                    };
                    let objects = render_service(&input).map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
                    out.push_str(&format!("# ServiceClaim {name}: {} objects from composition {}\n", objects.len(), comp.name_any()));
                    let facts = NamespaceFacts {
                        cloud,
                        classification: claim.spec.data_classification,
                        owner: claim.spec.owner.clone(),
                        system: claim.spec.system.clone(),
                        service: name.clone(),
                        cost_center: claim.spec.cost_center.clone(),
                        team: Some(claim.spec.owner.clone()),
                    };
                    for o in objects {
                        out.push_str("---\n");
                        out.push_str(&serde_yaml::to_string(&o.body)?);
                        if o.kind == "PostgreSQLInstance" {
                            let pg: PostgreSQLInstance = serde_json::from_value(o.body.clone())?;
                            out.push_str(&render_database(&pg, &name, &facts, &comps)?);
                        }
                    }
                }
                "PostgreSQLInstance" => {
                    let pg: PostgreSQLInstance = serde_yaml::from_value(v).with_context(|| format!("{at}: not a valid PostgreSQLInstance"))?;
                    let ns = pg.namespace().unwrap_or_else(|| "default".into());
                    // A namespace not given in the files gets the safe defaults (PHI, the
                    // default cloud), as an unlabelled namespace would in a cluster.
                    let labels = namespaces.get(&ns).cloned().unwrap_or_default();
                    let facts = NamespaceFacts::from_labels(&ns, &labels, default_cloud);
                    out.push_str(&format!("# PostgreSQLInstance {ns}/{}: cloud {}, classified {}\n", pg.name_any(), facts.cloud, facts.classification.as_str()));
                    out.push_str(&render_database(&pg, &ns, &facts, &comps)?);
                }
                "Composition" | "Namespace" | "Team" => {}
                other => bail!("{at}: paved render handles ServiceClaims; {other:?} is not rendered offline yet"),
            }
        }
    }
    Ok(out)
}

/// The openAPIV3Schema of a Paved kind, from the same generated CRDs the cluster has.
fn schema_for(kind: &str) -> Option<serde_json::Value> {
    paved_api::crds::all()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .and_then(|c| c.spec.versions.into_iter().next())
        .and_then(|v| v.schema)
        .and_then(|s| s.open_api_v3_schema)
        .and_then(|s| serde_json::to_value(s).ok())
}

/// The cloud database a PostgreSQLInstance implies, as a commented YAML document.
fn render_database(
    pg: &PostgreSQLInstance,
    ns: &str,
    facts: &NamespaceFacts,
    comps: &[Composition],
) -> Result<String> {
    let all: Vec<std::sync::Arc<Composition>> =
        comps.iter().cloned().map(std::sync::Arc::new).collect();
    let comp = pick_composition(&pg.spec, facts.cloud, &all).map_err(anyhow::Error::msg)?;
    let name = pg.name_any();
    let input = PostgresInput {
        claim_name: &name,
        claim_namespace: ns,
        claim_uid: "00000000-0000-0000-0000-000000000000",
        spec: &pg.spec,
        facts,
        composition_name: &comp.name_any(),
        composition: comp
            .spec
            .postgresql
            .as_ref()
            .expect("picked a postgresql composition"),
    };
    match render_postgresql(&input) {
        Ok(d) => Ok(format!(
            "--- # the cloud database for PostgreSQLInstance {ns}/{name} (a provider spec, not a Kubernetes object)\n{}",
            serde_yaml::to_string(&d)?
        )),
        Err(e) => Ok(format!("# PostgreSQLInstance {ns}/{name} would be refused: {} ({e})\n", e.reason())),
    }
}

/// Checks claims and Compositions: they must load with the Rust types, and
/// Compositions must satisfy the compliance floor. Returns `file#doc: field: message`
/// lines.
pub fn validate_files(files: &[PathBuf]) -> Result<Vec<String>> {
    let mut problems = vec![];
    for f in files {
        for (at, v) in documents(f)? {
            let k = kind(&v).to_string();
            let api_version = v.get("apiVersion").and_then(|a| a.as_str()).unwrap_or("");
            if !api_version.starts_with("paved.dev/") && !k.is_empty() {
                // Other kinds in a claims repository are not ours to judge.
                continue;
            }
            // What the apiserver would refuse at admission: schema and CEL rules.
            if v.get("metadata").and_then(|m| m.get("name")).is_none() {
                problems.push(format!("{at}: metadata.name: Required value"));
                continue;
            }
            if let Some(schema) = schema_for(&k) {
                let json: serde_json::Value = serde_json::to_value(&v)?;
                problems.extend(
                    crate::schema::check(&schema, &json)
                        .into_iter()
                        .map(|e| format!("{at}: {e}")),
                );
            }
            let result: Result<(), String> = match k.as_str() {
                "Composition" => match serde_yaml::from_value::<Composition>(v) {
                    Ok(c) => {
                        for violation in check_composition(&c) {
                            problems.push(format!("{at}: {violation}"));
                        }
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
                },
                "ServiceClaim" => serde_yaml::from_value::<ServiceClaim>(v)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                "PostgreSQLInstance" => serde_yaml::from_value::<paved_api::PostgreSQLInstance>(v)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                "TemporalNamespace" => serde_yaml::from_value::<paved_api::TemporalNamespace>(v)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                "Team" => serde_yaml::from_value::<paved_api::Team>(v)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                other => Err(format!("kind {other:?} is not a Paved kind")),
            };
            if let Err(e) = result {
                problems.push(format!("{at}: {e}"));
            }
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    #[test]
    fn renders_the_examples_offline() {
        let out = render_files(
            &[root().join("examples/claims-eligibility-svc.yaml")],
            &root().join("compositions"),
            Cloud::Local,
        )
        .unwrap();
        assert!(out.contains("kind: Namespace"));
        assert!(out.contains("name: paved-default-deny"));
        assert!(out.contains("kind: ExternalSecret"));
        // The database the ServiceClaim asks for, rendered by the local composition.
        assert!(
            out.contains("the cloud database for PostgreSQLInstance claims-eligibility-svc/main"),
            "{out}"
        );
        assert!(out.contains("provider: local"));
    }

    #[test]
    fn renders_a_cloud_database_with_the_floor_visible() {
        let dir = std::env::temp_dir().join(format!("paved-render-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("db.yaml");
        std::fs::write(&f, "apiVersion: paved.dev/v1alpha1\nkind: PostgreSQLInstance\nmetadata: { name: db, namespace: ns }\nspec: { parameters: { size: medium } }\n").unwrap();
        let out = render_files(&[f], &root().join("compositions"), Cloud::Aws).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        for want in [
            "instanceClass: db.r6g.large",
            "storageEncrypted: true",
            "publiclyAccessible: false",
            "deletionProtection: true",
            "deletionPolicy: Snapshot",
            "kmsKeyId: arn:aws:kms",
        ] {
            assert!(out.contains(want), "missing {want}:\n{out}");
        }
    }

    #[test]
    fn validate_reports_file_and_field() {
        let dir = std::env::temp_dir().join(format!("paved-validate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("bad.yaml");
        std::fs::write(
            &f,
            "apiVersion: paved.dev/v1alpha1\nkind: Composition\nmetadata: { name: t }\nspec:\n  temporal: { frontendAddress: x, defaultRetentionDays: 9, maxRetentionDays: 3, namespacePattern: '{name}' }\n---\napiVersion: paved.dev/v1alpha1\nkind: ServiceClaim\nspec: { owner: 3 }\n",
        )
        .unwrap();
        let problems = validate_files(&[f]).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("bad.yaml#1: spec.temporal.defaultRetentionDays")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("bad.yaml#1: spec.temporal.namespacePattern")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("bad.yaml#2")),
            "{problems:?}"
        );
    }

    #[test]
    fn validate_applies_the_schema_and_cel_rules_offline() {
        let dir = std::env::temp_dir().join(format!("paved-validate-cel-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("claims.yaml");
        std::fs::write(
            &f,
            "apiVersion: paved.dev/v1alpha1\nkind: ServiceClaim\nmetadata: { name: kube-bad }\nspec:\n  owner: Team_A\n  system: s\n  costCenter: C\n  sloTier: platinum\n  bogus: 1\n  network: { defaultDeny: false, egressTo: [ { cidr: 0.0.0.0/0, ports: [ { port: 443 } ] } ] }\n  databases: [ { name: a }, { name: a } ]\n",
        )
        .unwrap();
        let problems = validate_files(&[f]).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let all = problems.join("\n");
        for want in [
            "spec.owner: Invalid value",
            "spec.sloTier: Unsupported value: \"platinum\"",
            "spec.bogus: unknown field",
            "spec.databases[1]: Duplicate value",
            "default-deny cannot be turned off",
            "egress to the whole internet is not allowed",
            "metadata.name cannot be a system namespace",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
    }

    #[test]
    fn the_shipped_compositions_and_examples_validate() {
        let mut files: Vec<PathBuf> = vec![];
        for d in ["compositions", "examples"] {
            for e in std::fs::read_dir(root().join(d)).unwrap() {
                let p = e.unwrap().path();
                if p.is_file() {
                    files.push(p);
                }
            }
        }
        assert_eq!(validate_files(&files).unwrap(), Vec::<String>::new());
    }
}
