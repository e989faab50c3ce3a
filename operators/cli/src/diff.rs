//! `paved diff`: which claims a Composition edit would change, and how, before the
//! edit is merged — each claim rendered with the Compositions before and after (the
//! same pure code the operator runs), compared claim by claim.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::Result;
use paved_api::Cloud;

/// Pure: a `paved render` stream cut into one section per claim, keyed by its header
/// (`# ServiceClaim name: …` up to the colon).
pub fn sections(rendered: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in rendered.lines() {
        let header = ["# ServiceClaim ", "# PostgreSQLInstance "]
            .iter()
            .any(|p| line.starts_with(p));
        if header {
            let key = line[2..].split(':').next().unwrap_or(line).to_string();
            current = Some(key.clone());
            out.entry(key).or_default();
            continue;
        }
        if let Some(k) = &current {
            let body = out.entry(k.clone()).or_default();
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

/// Pure: the lines removed (`-`) and added (`+`) from `a` to `b`, in order (a longest
/// common subsequence; claims render to a few hundred lines at most).
pub fn line_diff(a: &str, b: &str) -> Vec<String> {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, vec![]);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(format!("- {}", a[i]));
            i += 1;
        } else {
            out.push(format!("+ {}", b[j]));
            j += 1;
        }
    }
    out
}

/// Pure: the report for two renders of the same claims.
pub fn report(before: &str, after: &str) -> (String, usize) {
    let (b, a) = (sections(before), sections(after));
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = String::new();
    let mut changed = 0;
    for k in &keys {
        let (x, y) = (
            b.get(*k).map_or("", String::as_str),
            a.get(*k).map_or("", String::as_str),
        );
        if x == y {
            continue;
        }
        changed += 1;
        out.push_str(&format!("~ {k}\n"));
        for l in line_diff(x, y) {
            out.push_str(&format!("    {l}\n"));
        }
    }
    let head = format!("{changed} of {} claim(s) would change\n", keys.len());
    (head + &out, changed)
}

/// Renders `files` with the Compositions in `before` and in `after`, and reports the
/// claims whose objects or cloud databases differ.
pub fn diff_files(
    files: &[PathBuf],
    before: &Path,
    after: &Path,
    default_cloud: Cloud,
) -> Result<(String, usize)> {
    let b = crate::render::render_files(files, before, default_cloud)?;
    let a = crate::render::render_files(files, after, default_cloud)?;
    Ok(report(&b, &a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_claims_that_change_are_reported_with_their_lines() {
        let before = "# ServiceClaim a: 2 objects from composition x\n---\nclass: small\nkeep: 1\n\
                      # ServiceClaim b: 1 objects from composition x\n---\nsame: 1\n";
        let after = "# ServiceClaim a: 2 objects from composition x\n---\nclass: large\nkeep: 1\n\
                     # ServiceClaim b: 1 objects from composition x\n---\nsame: 1\n";
        let (text, changed) = report(before, after);
        assert_eq!(changed, 1);
        assert!(text.starts_with("1 of 2 claim(s) would change"), "{text}");
        assert!(
            text.contains("~ ServiceClaim a\n    - class: small\n    + class: large\n"),
            "{text}"
        );
        assert!(!text.contains("ServiceClaim b"));
    }

    #[test]
    fn a_size_map_edit_names_the_claims_it_resizes_and_no_other() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dir = std::env::temp_dir().join(format!("paved-diff-{}", std::process::id()));
        let (before, after) = (root.join("compositions"), dir.join("after"));
        std::fs::create_dir_all(&after).unwrap();
        for e in std::fs::read_dir(&before).unwrap() {
            let p = e.unwrap().path();
            let text = std::fs::read_to_string(&p).unwrap();
            // The platform moves `medium` to a bigger class on AWS.
            let text = text.replace("medium: db.r6g.large", "medium: db.r6g.xlarge");
            std::fs::write(after.join(p.file_name().unwrap()), text).unwrap();
        }
        let claims = dir.join("claims.yaml");
        std::fs::write(
            &claims,
            "apiVersion: paved.dev/v1alpha1\nkind: PostgreSQLInstance\nmetadata: { name: big, namespace: ns }\nspec: { parameters: { size: medium } }\n\
             ---\napiVersion: paved.dev/v1alpha1\nkind: PostgreSQLInstance\nmetadata: { name: small, namespace: ns }\nspec: { parameters: { size: small } }\n",
        )
        .unwrap();
        let (text, changed) = diff_files(&[claims], &before, &after, Cloud::Aws).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(changed, 1, "{text}");
        assert!(text.contains("~ PostgreSQLInstance ns/big"), "{text}");
        assert!(text.contains("- instanceClass: db.r6g.large"), "{text}");
        assert!(text.contains("+ instanceClass: db.r6g.xlarge"), "{text}");
    }

    #[test]
    fn a_line_diff_keeps_what_both_share() {
        assert_eq!(line_diff("a\nb\nc", "a\nc\nd"), ["- b", "+ d"]);
        assert!(line_diff("x", "x").is_empty());
    }
}
