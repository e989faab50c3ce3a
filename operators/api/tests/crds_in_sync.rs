//! crds/ is generated from the Rust types; this fails when someone edits one
//! without the other. Fix with `cargo run -p paved-cli -- crds`.

use std::path::Path;

#[test]
fn crds_directory_matches_the_rust_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crds");
    let crds = paved_api::crds::all();
    let mut expected: Vec<String> = crds.iter().map(paved_api::crds::file_name).collect();
    expected.sort();
    let mut present: Vec<String> = std::fs::read_dir(&dir)
        .expect("crds/ exists")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    present.sort();
    assert_eq!(present, expected, "crds/ holds exactly the generated files");
    for crd in &crds {
        let path = dir.join(paved_api::crds::file_name(crd));
        let have = std::fs::read_to_string(&path).unwrap();
        assert!(
            have == paved_api::crds::to_yaml(crd),
            "{} drifted from the Rust types: run `cargo run -p paved-cli -- crds`",
            path.display()
        );
    }
}

/// The Helm chart ships copies (Helm cannot read outside its directory); they must
/// be the same bytes as crds/ and compositions/.
#[test]
fn the_chart_carries_the_same_crds_and_compositions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for (src, copy) in [
        ("crds", "charts/paved/crds"),
        ("compositions", "charts/paved/files/compositions"),
    ] {
        let list = |d: &Path| {
            let mut v: Vec<String> = std::fs::read_dir(d)
                .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".yaml"))
                .collect();
            v.sort();
            v
        };
        let (a, b) = (root.join(src), root.join(copy));
        assert_eq!(
            list(&a),
            list(&b),
            "{copy} lists the same files as {src}: run `make crds`"
        );
        for f in list(&a) {
            assert!(
                std::fs::read(a.join(&f)).unwrap() == std::fs::read(b.join(&f)).unwrap(),
                "{copy}/{f} differs from {src}/{f}: run `make crds`"
            );
        }
    }
}
