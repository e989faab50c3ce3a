//! The Helm chart: `helm lint`, and everything `helm template` renders accepted by
//! the real apiserver (server-side dry run), with the operator's hardening and
//! least-privilege RBAC checked in the rendered objects.

use std::process::Command;

use anyhow::{bail, Result};
use paved_e2e::{control_plane, repo_root};
use serde_json::Value;

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

/// The real apiserver accepts `yaml` (a server-side dry run).
fn accepted(yaml: &str, what: &str) -> Result<()> {
    let (ok, out) = control_plane().kubectl_stdin(
        &[
            "apply",
            "--dry-run=server",
            "--server-side",
            "--force-conflicts",
            "-f",
            "-",
        ],
        yaml,
    )?;
    assert!(ok, "the apiserver refused {what}:\n{out}");
    Ok(())
}

fn template(extra: &[&str]) -> Result<Vec<Value>> {
    let yaml = paved_e2e::helm_template_with(extra)?;
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
    let helm = paved_e2e::helm_binary()?;
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
    let docs = template(&[])?;
    let stream: String = docs
        .iter()
        .map(|d| format!("---\n{}", serde_yaml::to_string(d).unwrap()))
        .collect();
    accepted(&stream, "the chart")?;

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
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ] {
        assert!(kinds.contains(&want), "chart renders no {want}: {kinds:?}");
    }

    // Tenancy: the owner role writes nothing that guards the namespace; the operator
    // never lists or watches Secrets and binds only the owner roles.
    let role = |name: &str| {
        docs.iter()
            .find(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no ClusterRole {name}"))
    };
    let writes = ["create", "update", "patch", "delete", "deletecollection"];
    for rule in role("paved-developer")["rules"].as_array().unwrap() {
        let resources: Vec<&str> = rule["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r.as_str())
            .collect();
        let writes_any = rule["verbs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| writes.contains(&v.as_str().unwrap()));
        for guarded in [
            "networkpolicies",
            "rolebindings",
            "roles",
            "resourcequotas",
            "limitranges",
            // (Its own ExternalSecrets it may write: they read through the store that
            // authenticates as the service, and admission keeps them off cloud
            // stores and ClusterSecretStores; the store itself it may not.)
            "secretstores",
            "serviceaccounts",
            "pods/exec",
        ] {
            assert!(
                !(writes_any && resources.contains(&guarded)),
                "paved-developer writes {guarded}: {rule}"
            );
        }
    }
    let operator = role("paved-operator")["rules"].as_array().unwrap();
    for rule in operator {
        let resources = rule["resources"].as_array().unwrap();
        let verbs = rule["verbs"].as_array().unwrap();
        if resources.iter().any(|r| r == "secrets") {
            assert!(
                !verbs.iter().any(|v| v == "list" || v == "watch"),
                "the operator lists or watches Secrets: {rule}"
            );
        }
        if verbs
            .iter()
            .any(|v| v == "bind" || v == "escalate" || v == "impersonate")
        {
            assert_eq!(
                rule["resourceNames"],
                serde_json::json!(["paved-developer", "paved-viewer", "view"]),
                "{rule}"
            );
        }
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
    let without = template(&[
        "--set",
        "compositions.enabled=false",
        "--set",
        "networkPolicy.enabled=false",
        "--set",
        "metrics.serviceMonitor.enabled=true",
    ])?;
    assert!(!without
        .iter()
        .any(|d| d["kind"] == "Composition" || d["kind"] == "NetworkPolicy"));
    let open = template(&["--set", "tenancy.admissionPolicy=false"])?;
    assert!(!open
        .iter()
        .any(|d| d["kind"] == "ValidatingAdmissionPolicy"));
    assert!(without.iter().any(|d| d["kind"] == "ServiceMonitor"));
    Ok(())
}

/// The CRDs as a chart of their own, so `helm upgrade` upgrades them (Helm installs a
/// chart's crds/ once and never again): it lints, renders every CRD crds/ holds, each
/// kept when the release is uninstalled, and the apiserver accepts them.
#[test]
fn the_crds_chart_renders_every_crd_for_helm_to_upgrade() -> Result<()> {
    let helm = paved_e2e::helm_binary()?;
    let chart = repo_root().join("charts/paved-crds");
    let chart = chart.to_str().unwrap();
    run(
        &helm,
        &["lint", "--strict", chart, "--kube-version", "v1.36.2"],
    )?;
    let yaml = run(
        &helm,
        &["template", "paved-crds", chart, "--kube-version", "v1.36.2"],
    )?;
    let mut names = vec![];
    for d in serde_yaml::Deserializer::from_str(&yaml) {
        let v: Value = serde::Deserialize::deserialize(d)?;
        if v.is_null() {
            continue;
        }
        assert_eq!(v["kind"], "CustomResourceDefinition");
        assert_eq!(
            v["metadata"]["annotations"]["helm.sh/resource-policy"],
            "keep"
        );
        names.push(v["metadata"]["name"].as_str().unwrap().to_string());
    }
    names.sort();
    let mut want: Vec<String> = paved_api::crds::all()
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    want.sort();
    assert_eq!(names, want);
    accepted(&yaml, "the CRDs chart")?;
    Ok(())
}
