//! The shipped Compositions load with the Rust types and satisfy the compliance floor,
//! and every ServiceClaim example renders with them.

use std::path::{Path, PathBuf};

use paved_api::{Cloud, Composition, ServiceClaim};
use paved_compose::{check_composition, render_service, ServiceInput};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load_compositions() -> Vec<(String, Composition)> {
    let dir = repo().join("compositions");
    let mut out = vec![];
    for entry in std::fs::read_dir(&dir).expect("compositions/ exists") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let c: Composition = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()));
        out.push((path.file_name().unwrap().to_string_lossy().into_owned(), c));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn every_shipped_composition_satisfies_the_floor() {
    let comps = load_compositions();
    assert!(
        comps.len() >= 9,
        "expected the nine default compositions, found {}",
        comps.len()
    );
    for (file, c) in &comps {
        let violations = check_composition(c);
        assert!(violations.is_empty(), "{file}: {violations:?}");
        let name = c.metadata.name.as_deref().unwrap();
        assert_eq!(
            format!("{name}.yaml"),
            *file,
            "file name matches metadata.name"
        );
    }
}

#[test]
fn the_defaults_users_get_are_all_there() {
    let names: Vec<String> = load_compositions()
        .into_iter()
        .map(|(_, c)| c.metadata.name.unwrap())
        .collect();
    for want in [
        "service-aws",
        "service-azure",
        "service-gcp",
        "service-local",
        "postgresql-aws-standard",
        "postgresql-azure-standard",
        "postgresql-gcp-standard",
        "postgresql-local",
        "temporal-standard",
    ] {
        assert!(names.iter().any(|n| n == want), "missing {want}");
    }
    // One default per cloud and kind, so claims that name none are unambiguous.
    for cloud in Cloud::ALL {
        for kind in ["service", "postgresql"] {
            let n = load_compositions()
                .into_iter()
                .filter(|(_, c)| {
                    c.composes() == kind
                        && c.metadata
                            .labels
                            .as_ref()
                            .and_then(|l| l.get("paved.dev/default-for"))
                            == Some(&cloud.to_string())
                })
                .count();
            assert_eq!(n, 1, "{kind} default for {cloud}");
        }
    }
}

#[test]
fn every_example_service_claim_renders_on_every_cloud() {
    let comps = load_compositions();
    let dir = repo().join("examples");
    let mut rendered = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(doc).unwrap();
            if value.get("kind").and_then(|k| k.as_str()) != Some("ServiceClaim") {
                continue;
            }
            let claim: ServiceClaim = serde_yaml::from_value(value).unwrap();
            for (_, comp) in comps.iter().filter(|(_, c)| c.spec.service.is_some()) {
                let svc = comp.spec.service.as_ref().unwrap();
                let input = ServiceInput {
                    claim_name: claim.metadata.name.as_deref().unwrap(),
                    claim_uid: "uid",
                    spec: &claim.spec,
                    cloud: svc.cloud,
                    composition_name: comp.metadata.name.as_deref().unwrap(),
                    composition_generation: 1,
                    composition: svc,
                    team: None,
                    secrets_namespace: paved_api::DEFAULT_SECRETS_NAMESPACE,
                    databases: &[],
                    identity: None,
                };
                let objects = render_service(&input).expect("renders");
                assert_eq!(objects[0].kind, "Namespace");
                rendered += 1;
            }
        }
    }
    assert!(rendered >= 4, "no ServiceClaim examples rendered");
}

use serde::Deserialize;
