//! The Helm chart: `helm lint`, and everything `helm template` renders accepted by
//! the real apiserver (server-side dry run), with the operator's hardening and
//! least-privilege RBAC checked in the rendered objects.

use std::process::Command;

use anyhow::{bail, Context, Result};
use paved_e2e::{control_plane, repo_root};
use serde_json::Value;

fn helm() -> Result<String> {
    let out = Command::new(repo_root().join("e2e/build-helm"))
        .output()
        .context("running e2e/build-helm")?;
    if !out.status.success() {
        bail!(
            "e2e/build-helm failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

fn run(cmd: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(cmd).args(args).output()?;
    if !out.status.success() {
        bail!(
            "{cmd} {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn template(helm: &str, extra: &[&str]) -> Result<Vec<Value>> {
    let chart = repo_root().join("charts/paved");
    let mut args = vec![
        "template",
        "paved",
        chart.to_str().unwrap(),
        "-n",
        "paved-system",
        "--kube-version",
        "v1.36.2",
    ];
    args.extend(extra);
    let yaml = run(helm, &args)?;
    let mut docs = vec![];
    for d in serde_yaml::Deserializer::from_str(&yaml) {
        let v: Value = serde::Deserialize::deserialize(d)?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

#[test]
fn the_chart_lints_and_the_apiserver_accepts_what_it_renders() -> Result<()> {
    let helm = helm()?;
    let chart = repo_root().join("charts/paved");
    run(
        &helm,
        &[
            "lint",
            "--strict",
            chart.to_str().unwrap(),
            "--kube-version",
            "v1.36.2",
        ],
    )?;

    let cp = control_plane();
    let _ = cp.kubectl(&["create", "namespace", "paved-system"]);
    let docs = template(&helm, &[])?;
    let stream: String = docs
        .iter()
        .map(|d| format!("---\n{}", serde_yaml::to_string(d).unwrap()))
        .collect();
    let (ok, out) = cp.kubectl_stdin(
        &[
            "apply",
            "--dry-run=server",
            "--server-side",
            "--force-conflicts",
            "-f",
            "-",
        ],
        &stream,
    )?;
    assert!(ok, "the apiserver refused the chart:\n{out}");

    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    for want in [
        "Deployment",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "NetworkPolicy",
        "Composition",
    ] {
        assert!(kinds.contains(&want), "chart renders no {want}: {kinds:?}");
    }
    assert_eq!(
        docs.iter().filter(|d| d["kind"] == "Composition").count(),
        9,
        "the default compositions"
    );

    // The operator Deployment is hardened.
    let dep = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let pod = &dep["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(dep["spec"]["replicas"], 2);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert!(c["resources"]["requests"].is_object() && c["resources"]["limits"].is_object());
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(c["args"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a == "--leader-election=true"));

    // Least privilege: every rule enumerates groups, resources and verbs.
    for role in docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role")
    {
        for rule in role["rules"].as_array().unwrap() {
            for field in ["apiGroups", "resources", "verbs"] {
                let items = rule[field]
                    .as_array()
                    .unwrap_or_else(|| panic!("{field} missing in {rule}"));
                assert!(
                    !items.is_empty() && items.iter().all(|x| x != "*"),
                    "wildcard in {rule}"
                );
            }
        }
    }

    // Values switch parts off and on.
    let without = template(
        &helm,
        &[
            "--set",
            "compositions.enabled=false",
            "--set",
            "networkPolicy.enabled=false",
            "--set",
            "metrics.serviceMonitor.enabled=true",
        ],
    )?;
    assert!(!without
        .iter()
        .any(|d| d["kind"] == "Composition" || d["kind"] == "NetworkPolicy"));
    assert!(without.iter().any(|d| d["kind"] == "ServiceMonitor"));
    Ok(())
}
