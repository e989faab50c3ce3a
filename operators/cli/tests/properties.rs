//! Property-based tests: arbitrary claims and Compositions — right-shaped, wrong-typed,
//! out of range, half-missing — through `paved validate` and `paved render` (the
//! same schema, CEL, floor and compose code the operator runs). Neither may panic,
//! and every refusal names where it is and why.

use std::path::{Path, PathBuf};

use paved_api::Cloud;
use paved_cli::render::{render_files, validate_files};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A value of any JSON shape, biased toward what the fields expect.
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-5i64..70_000).prop_map(Value::from),
        "[a-zA-Z0-9 ./:@_-]{0,24}".prop_map(Value::from),
        prop::sample::select(vec![
            "small",
            "medium",
            "large",
            "xlarge",
            "phi",
            "internal",
            "public",
            "confidential",
            "aws",
            "azure",
            "gcp",
            "local",
            "Delete",
            "Orphan",
            "Snapshot",
            "bronze",
            "gold",
            "16",
            "15",
            "5m",
            "0s",
            "10.0.0.0/8",
            "0.0.0.0/0",
            "team@example.com",
        ])
        .prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-zA-Z]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object with a random subset of `keys`, each with a random value.
fn object(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(keys), value()), 0..keys.len() + 1).prop_map(
        |pairs| {
            let mut m = Map::new();
            for (k, v) in pairs {
                m.insert(k.to_string(), v);
            }
            Value::Object(m)
        },
    )
}

fn document() -> impl Strategy<Value = Value> {
    let service = object(&[
        "owner",
        "system",
        "cloud",
        "dataClassification",
        "sloTier",
        "costCenter",
        "databases",
        "temporal",
        "network",
        "secrets",
        "quota",
    ])
    .prop_map(|spec| ("ServiceClaim", None, spec));
    let database = (
        object(&[
            "size",
            "instanceClass",
            "storageGB",
            "multiAZ",
            "highAvailability",
            "engineVersion",
        ]),
        object(&[
            "compositionRef",
            "deletionPolicy",
            "writeConnectionSecretToRef",
        ]),
    )
        .prop_map(|(params, mut spec)| {
            spec["parameters"] = params;
            ("PostgreSQLInstance", Some("team-a"), spec)
        });
    let temporal = object(&[
        "retentionDays",
        "description",
        "ownerEmail",
        "labels",
        "archival",
        "allowDeletion",
    ])
    .prop_map(|spec| ("TemporalNamespace", Some("team-a"), spec));
    let composition = object(&[
        "provider",
        "region",
        "engineVersion",
        "sizes",
        "storage",
        "encryption",
        "network",
        "backup",
        "deletion",
        "credentials",
        "tags",
        "pollInterval",
        "azure",
        "gcp",
        "local",
    ])
    .prop_map(|pg| ("Composition", None, json!({ "postgresql": pg })));
    (prop_oneof![service, database, temporal, composition], "[a-z][a-z0-9-]{0,20}").prop_map(
        |((kind, ns, spec), name)| {
            let mut meta = json!({ "name": name });
            if let Some(ns) = ns {
                meta["namespace"] = json!(ns);
            }
            json!({ "apiVersion": "paved.dev/v1alpha1", "kind": kind, "metadata": meta, "spec": spec })
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_documents_never_panic_and_every_refusal_says_where_and_why(doc in document()) {
        let dir = std::env::temp_dir().join(format!("paved-prop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("doc.yaml");
        std::fs::write(&file, serde_yaml::to_string(&doc).unwrap()).unwrap();

        let problems = validate_files(std::slice::from_ref(&file)).expect("validate reads the file");
        for p in &problems {
            // `file#doc: field: message`
            let (at, rest) = p.split_once(": ").unwrap_or_else(|| panic!("no location: {p}"));
            prop_assert!(at.contains("doc.yaml"), "{p}");
            prop_assert!(!rest.trim().is_empty(), "empty message: {p}");
        }
        // Rendering is offline and total: every document renders or says why not.
        match render_files(std::slice::from_ref(&file), &root().join("compositions"), Cloud::Local) {
            Ok(out) => prop_assert!(!out.trim().is_empty() || problems.is_empty() || doc["kind"] == "Composition"),
            Err(e) => prop_assert!(!e.to_string().trim().is_empty()),
        }
    }
}
