//! The operator runs with a token of the chart's ServiceAccount, bound to exactly
//! the chart's RBAC — not as an admin — and still does the whole golden path:
//! namespace, policies, quota, identity, owner binding (bind on the owner roles only),
//! ExternalSecret, a local database with its connection Secret, Events, its Lease.

use std::time::Duration;

use anyhow::Result;
use kube::{
    api::{DeleteParams, PostParams},
    Api,
};
use paved_api::{conditions, ServiceClaim};
use paved_e2e::{chart_rbac_kubeconfig, control_plane, eventually, Operator};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_rbac_is_enough_for_the_golden_path() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let kubeconfig = chart_rbac_kubeconfig(cp)?;
    // The token really is not an admin.
    let denied = std::process::Command::new("kubectl")
        .args(["auth", "can-i", "create", "deployments", "-n", "default"])
        .env("KUBECONFIG", &kubeconfig)
        .env("PATH", cp.path())
        .output()?;
    assert_eq!(String::from_utf8_lossy(&denied.stdout).trim(), "no");

    let op = Operator::start_with_kubeconfig(
        cp,
        "least-privilege",
        "paved-e2e-least-privilege",
        &[],
        Some(&kubeconfig),
    )?;
    let name = "e2e-leastpriv";
    let claims: Api<ServiceClaim> = Api::all(client.clone());
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let _ = claims.delete(name, &DeleteParams::default()).await;
    eventually("old claim gone", Duration::from_secs(120), || async {
        Ok(
            (claims.get_opt(name).await?.is_none() && nss.get_opt(name).await?.is_none())
                .then_some(()),
        )
    })
    .await?;
    // The Temporal namespace outlives its claim (allowDeletion false): clear a
    // previous run's so this claim is not refused as someone else's.
    let _ = std::process::Command::new(&cp.env["PAVED_TEMPORAL_CLI"])
        .args([
            "operator",
            "namespace",
            "delete",
            "--yes",
            "--address",
            &cp.env["TEMPORAL_ADDRESS"],
            "-n",
            &format!("{name}.wf"),
        ])
        .output();
    let claim: ServiceClaim = serde_json::from_value(json!({
        "apiVersion": "paved.dev/v1alpha1", "kind": "ServiceClaim", "metadata": { "name": name },
        "spec": { "owner": "team-lp", "system": "s", "costCenter": "CC-1", "cloud": "local",
                  "dataClassification": "internal",
                  "network": { "ingressFrom": [ { "namespace": "ingress" } ] },
                  "secrets": [ { "name": "app" } ],
                  "databases": [ { "name": "main" } ],
                  "temporal": [ { "name": "wf" } ] }
    }))?;
    claims.create(&PostParams::default(), &claim).await?;
    eventually(
        "Ready with the chart's RBAC only",
        Duration::from_secs(90),
        || async {
            let c = claims.get(name).await?;
            Ok(c.status
                .filter(|s| conditions::is_ready(&s.conditions, c.metadata.generation))
                .map(|_| ()))
        },
    )
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "{e}\noperator log:\n{}",
            op.logs()
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    // Refused by RBAC or admission; not the apiserver turning away an Event in a
    // namespace that is going (an earlier run's, cleared above).
    let logs = op.logs();
    assert!(
        !logs
            .lines()
            .any(|l| l.contains("forbidden") && !l.contains("because it is being terminated")),
        "the operator was refused something:\n{logs}"
    );
    claims.delete(name, &DeleteParams::default()).await?;
    eventually("namespace gone", Duration::from_secs(120), || async {
        Ok(nss.get_opt(name).await?.is_none().then_some(()))
    })
    .await?;
    Ok(())
}

/// What the chart's ServiceAccount may and may not do, asked of the apiserver with
/// `kubectl auth can-i` under its own token: a compromised operator reads no Secret
/// it was not pointed at, binds no role but the owner roles, writes no Team, and
/// grants itself nothing.
#[test]
fn the_operators_own_rights_are_enumerated_and_narrow() -> Result<()> {
    let cp = control_plane();
    let kubeconfig = chart_rbac_kubeconfig(cp)?;
    let can = |args: &[&str]| -> Result<String> {
        let out = std::process::Command::new("kubectl")
            .args(["auth", "can-i"])
            .args(args)
            .env("KUBECONFIG", &kubeconfig)
            .env("PATH", cp.path())
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    for (args, want) in [
        // A connection Secret by name, in a claim's namespace.
        (
            &["get", "secrets/main-connection", "-n", "some-service"][..],
            "yes",
        ),
        (&["create", "secrets", "-n", "some-service"], "yes"),
        // Never the cluster's Secrets as a list or a watch.
        (&["list", "secrets", "--all-namespaces"], "no"),
        (&["watch", "secrets", "--all-namespaces"], "no"),
        (&["list", "secrets", "-n", "paved-system"], "no"),
        // Binds the owner roles only.
        (&["bind", "clusterroles/paved-developer"], "yes"),
        (&["bind", "clusterroles/view"], "yes"),
        (&["bind", "clusterroles/edit"], "no"),
        (&["bind", "clusterroles/admin"], "no"),
        (&["bind", "clusterroles/cluster-admin"], "no"),
        (&["escalate", "clusterroles"], "no"),
        (&["create", "clusterrolebindings"], "no"),
        (&["create", "clusterroles"], "no"),
        (&["impersonate", "users"], "no"),
        (&["impersonate", "serviceaccounts"], "no"),
        // Teams are the platform's.
        (&["list", "teams.paved.dev"], "yes"),
        (&["create", "teams.paved.dev"], "no"),
        (&["update", "teams.paved.dev"], "no"),
        // Services are only listed (before a namespace is taken over), never written.
        (&["list", "services", "-n", "some-service"], "yes"),
        (&["create", "services", "-n", "some-service"], "no"),
        (&["get", "services", "-n", "some-service"], "no"),
        // Nothing a workload would need.
        (&["create", "pods", "-n", "some-service"], "no"),
        (&["create", "deployments", "-n", "some-service"], "no"),
        (
            &["create", "pods", "--subresource=exec", "-n", "some-service"],
            "no",
        ),
        (
            &[
                "create",
                "serviceaccounts",
                "--subresource=token",
                "-n",
                "some-service",
            ],
            "no",
        ),
        (&["update", "validatingadmissionpolicies"], "no"),
        (&["delete", "customresourcedefinitions"], "no"),
        (
            &["create", "externalsecrets.external-secrets.io", "-n", "x"],
            "yes",
        ),
        // Each service namespace's own store, and its grant in the secrets namespace.
        (
            &["create", "secretstores.external-secrets.io", "-n", "x"],
            "yes",
        ),
        (&["create", "roles", "-n", "paved-secrets"], "yes"),
        (&["create", "clustersecretstores.external-secrets.io"], "no"),
    ] {
        assert_eq!(can(args)?, want, "can-i {}", args.join(" "));
    }

    // What RBAC must allow (Secrets and RoleBindings in namespaces that do not exist
    // yet) the chart's admission policy paved-operator-scope narrows: writes the
    // operator's token actually attempts, refused with the reason.
    let as_operator = |manifest: serde_json::Value| -> Result<(bool, String)> {
        let mut cmd = std::process::Command::new("kubectl");
        cmd.args(["create", "--dry-run=server", "-f", "-"])
            .env("KUBECONFIG", &kubeconfig)
            .env("PATH", cp.path());
        paved_e2e::run_with(cmd, Some(&manifest.to_string()))
    };
    let (ok, out) = as_operator(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
        "metadata": { "name": "stolen-token", "namespace": "kube-system",
                      "annotations": { "kubernetes.io/service-account.name": "default" } },
    }))?;
    assert!(
        !ok && out.contains("never writes ServiceAccount token Secrets"),
        "{out}"
    );
    let (ok, out) = as_operator(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": { "name": "paved-owner", "namespace": "kube-system" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "paved-developer" },
        "subjects": [ { "kind": "ServiceAccount", "name": "paved-operator", "namespace": "paved-system" } ],
    }))?;
    assert!(
        !ok && out.contains("binds owners only in namespaces a ServiceClaim made"),
        "{out}"
    );
    let relabel = std::process::Command::new("kubectl")
        .args([
            "label",
            "--dry-run=server",
            "namespace",
            "kube-system",
            "paved.dev/claim-kind=ServiceClaim",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("PATH", cp.path())
        .output()?;
    let said = String::from_utf8_lossy(&relabel.stderr);
    assert!(
        !relabel.status.success() && said.contains("changes only namespaces a ServiceClaim made"),
        "{said}"
    );
    // A namespace the platform marked for a ServiceClaim to take over: the operator may
    // change it, never delete it or give it an owner (the garbage collector would
    // delete it with the claim).
    cp.kubectl_stdin(
        &["apply", "-f", "-"],
        &json!({ "apiVersion": "v1", "kind": "Namespace",
                 "metadata": { "name": "e2e-adoptable", "labels": { "paved.dev/adoptable": "true" } } })
        .to_string(),
    )?;
    let as_operator_kubectl = |args: &[&str]| -> Result<(bool, String)> {
        let out = std::process::Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", &kubeconfig)
            .env("PATH", cp.path())
            .output()?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        ))
    };
    let (ok, said) = as_operator_kubectl(&[
        "label",
        "--dry-run=server",
        "namespace",
        "e2e-adoptable",
        "paved.dev/claim-kind=ServiceClaim",
    ])?;
    assert!(
        ok,
        "an adoptable namespace is the operator's to mark: {said}"
    );
    // Marked as a service's, it is still no place to bind more than an owner role.
    cp.kubectl(&[
        "label",
        "--overwrite",
        "namespace",
        "e2e-adoptable",
        "paved.dev/claim-kind=ServiceClaim",
    ])?;
    // A role that grants nothing (so RBAC's own escalation check lets it through) and
    // is not an owner role: refused by the policy alone.
    cp.kubectl_stdin(
        &["apply", "-f", "-"],
        &json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                 "metadata": { "name": "e2e-not-an-owner-role" }, "rules": [] })
        .to_string(),
    )?;
    let (ok, out) = as_operator(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": { "name": "paved-owner", "namespace": "e2e-adoptable" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "e2e-not-an-owner-role" },
        "subjects": [ { "apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "team-a" } ],
    }))?;
    assert!(!ok && out.contains("binds only an owner role"), "{out}");
    let (ok, out) = as_operator(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": { "name": "paved-owner", "namespace": "e2e-adoptable" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "paved-developer" },
        "subjects": [ { "apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "team-a" } ],
    }))?;
    assert!(ok, "an owner role: {out}");
    let owner = json!({ "metadata": { "ownerReferences": [ { "apiVersion": "paved.dev/v1alpha1", "kind": "ServiceClaim",
        "name": "e2e-adoptable", "uid": "00000000-0000-0000-0000-000000000001", "controller": true } ] } })
    .to_string();
    for (args, what) in [
        (
            vec![
                "patch",
                "--dry-run=server",
                "namespace",
                "e2e-adoptable",
                "--type=merge",
                "-p",
                owner.as_str(),
            ],
            "an owner",
        ),
        (
            vec!["delete", "--dry-run=server", "namespace", "e2e-adoptable"],
            "a delete",
        ),
    ] {
        let (ok, said) = as_operator_kubectl(&args)?;
        assert!(
            !ok && said.contains("never deleting it or giving it an owner"),
            "{what}: {said}"
        );
    }
    // In the secrets namespace: a grant of every Secret (an empty resourceNames), of
    // another service's Secrets, or bound to anyone but the service, is refused.
    for (rules, why) in [
        (
            json!([{ "apiGroups": [""], "resources": ["secrets"], "verbs": ["get"] }]),
            "every Secret",
        ),
        (
            json!([{ "apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["victim.app"] }]),
            "another's",
        ),
        (
            json!([{ "apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create"], "resourceNames": ["team-a.svc.app"] }]),
            "create",
        ),
    ] {
        let (ok, out) = as_operator(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": { "name": "team-a.svc", "namespace": "paved-secrets" },
            "rules": rules,
        }))?;
        assert!(!ok && out.contains("its own Secrets"), "{why}: {out}");
    }
    let (ok, out) = as_operator(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": { "name": "team-a.svc", "namespace": "paved-secrets" },
        "rules": [{ "apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["team-a.svc.app"] }],
    }))?;
    assert!(ok, "a service's own grant: {out}");
    // Binding checks the Role it names, so that one exists for real (made as admin).
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": { "name": "team-a.svc", "namespace": "paved-secrets" },
        "rules": [{ "apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["team-a.svc.app"] }],
    });
    let (ok, out) = cp.kubectl_stdin(&["apply", "-f", "-"], &role.to_string())?;
    assert!(ok, "{out}");
    let (ok, out) = as_operator(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": { "name": "team-a.svc", "namespace": "paved-secrets" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "team-a.svc" },
        "subjects": [ { "kind": "ServiceAccount", "name": "paved-operator", "namespace": "paved-system" } ],
    }))?;
    assert!(
        !ok && out.contains("that service's ServiceAccount only"),
        "{out}"
    );
    let (ok, out) = as_operator(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": { "name": "team-a.svc", "namespace": "paved-secrets" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "team-a.svc" },
        "subjects": [ { "kind": "ServiceAccount", "name": "svc", "namespace": "svc" } ],
    }))?;
    assert!(ok, "the service's own binding: {out}");
    cp.kubectl(&["delete", "role", "-n", "paved-secrets", "team-a.svc"])?;
    // An ordinary connection Secret is still the operator's to write.
    let (ok, out) = as_operator(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "main-connection", "namespace": "default" },
        "stringData": { "password": "x" },
    }))?;
    assert!(ok, "{out}");
    Ok(())
}
