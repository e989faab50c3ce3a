//! examples/gitops/ against the real Argo CD CRDs (shared/upstream/argo-cd) and Paved's
//! own, and the Argo CD health checks in resource_customizations/paved.dev/ on Lua 5.1
//! (through e2e/health-checks, so `cargo test` runs them too).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use paved_e2e::{control_plane, repo_root, shared_dir, ControlPlane};
use serde_yaml::Value;

fn gitops() -> PathBuf {
    repo_root().join("examples/gitops")
}

/// Installs the Argo CD CRDs (server-side: they are too large for client-side apply's
/// last-applied annotation) and waits until they are Established.
fn install_argo_cd_crds(cp: &ControlPlane) -> Result<()> {
    let dir = shared_dir().join("upstream/argo-cd");
    if !dir.is_dir() {
        bail!(
            "{} is missing: the upstream Argo CD CRDs come from shared/",
            dir.display()
        );
    }
    cp.kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        dir.to_str().unwrap(),
    ])?;
    // kubectl wait fails at once while a new CRD has no status yet: retry.
    let start = Instant::now();
    loop {
        match cp.kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=10s",
            "crd/applications.argoproj.io",
            "crd/applicationsets.argoproj.io",
            "crd/appprojects.argoproj.io",
        ]) {
            Ok(_) => return Ok(()),
            Err(e) if start.elapsed() > Duration::from_secs(60) => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// The namespace's phase, or None when it does not exist.
fn namespace_phase(cp: &ControlPlane, name: &str) -> Result<Option<String>> {
    let out = cp.kubectl(&[
        "get",
        "namespace",
        name,
        "--ignore-not-found",
        "-o",
        "jsonpath={.status.phase}",
    ])?;
    Ok((!out.trim().is_empty()).then(|| out.trim().to_string()))
}

/// Creates the namespace unless it exists (waiting out a Terminating one first);
/// true when this call created it.
fn ensure_namespace(cp: &ControlPlane, name: &str) -> Result<bool> {
    let start = Instant::now();
    loop {
        match namespace_phase(cp, name)?.as_deref() {
            Some("Terminating") if start.elapsed() < Duration::from_secs(90) => {
                std::thread::sleep(Duration::from_millis(500))
            }
            Some("Terminating") => bail!("namespace {name} stayed Terminating for 90 s"),
            Some(_) => return Ok(false),
            None => {
                let (ok, out) = cp.kubectl_stdin(
                    &["create", "-f", "-"],
                    &format!("{{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{{\"name\":\"{name}\"}}}}"),
                )?;
                if ok {
                    return Ok(true);
                }
                if !out.contains("AlreadyExists") {
                    bail!("creating namespace {name}: {out}");
                }
            }
        }
    }
}

/// `kubectl create --dry-run=server -f <file>`: the API server's full admission
/// (schema, strict field validation, CEL rules) without storing anything.
fn dry_run_create(cp: &ControlPlane, file: &Path) -> Result<String> {
    cp.kubectl(&[
        "create",
        "--dry-run=server",
        "-o",
        "name",
        "-f",
        file.to_str().unwrap(),
    ])
    .with_context(|| format!("{} was refused by the API server", file.display()))
}

fn load(file: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(file).with_context(|| file.display().to_string())?;
    serde_yaml::from_str(&text).with_context(|| format!("parsing {}", file.display()))
}

fn text<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .try_fold(v, |v, k| v.get(*k))
        .and_then(Value::as_str)
        .unwrap_or("")
}

#[test]
fn gitops_examples_are_accepted_by_the_real_crds() -> Result<()> {
    let cp = control_plane();
    install_argo_cd_crds(cp)?;
    ensure_namespace(cp, "argocd")?;
    let dir = gitops();

    for (file, expect) in [
        (
            "applicationset.yaml",
            "applicationset.argoproj.io/paved-claims",
        ),
        ("appproject.yaml", "appproject.argoproj.io/team-claims"),
        ("argocd-cm.yaml", "configmap/argocd-cm"),
        (
            "teams/claims/serviceclaim.yaml",
            "serviceclaim.paved.dev/claims-intake-api",
        ),
    ] {
        let out = dry_run_create(cp, &dir.join(file))?;
        assert_eq!(out.trim(), expect, "{file}");
    }

    // The database lives in the service's namespace, which only Paved makes: check it
    // in a namespace of that name made by hand for the purpose, removed afterwards.
    let claim = load(&dir.join("teams/claims/serviceclaim.yaml"))?;
    let db_file = dir.join("teams/claims/postgresqlinstance.yaml");
    let db = load(&db_file)?;
    let service = text(&claim, &["metadata", "name"]);
    let created = ensure_namespace(cp, service)?;
    let result = dry_run_create(cp, &db_file);
    if created {
        let _ = cp.kubectl(&["delete", "namespace", service, "--wait=false"]);
    }
    assert_eq!(result?.trim(), "postgresqlinstance.paved.dev/intake-db");

    // The ordering the README promises: the ServiceClaim in wave 0, the claims in its
    // namespace after it, in that namespace.
    let annotation = |v: &Value, key: &str| text(v, &["metadata", "annotations", key]).to_string();
    assert_eq!(annotation(&claim, "argocd.argoproj.io/sync-wave"), "0");
    assert_eq!(annotation(&db, "argocd.argoproj.io/sync-wave"), "1");
    assert!(annotation(&db, "argocd.argoproj.io/sync-options")
        .split(',')
        .any(|o| o.trim() == "SkipDryRunOnMissingResource=true"));
    assert_eq!(text(&db, &["metadata", "namespace"]), service);

    // The ApplicationSet's Applications run in the project, from a repository it allows.
    let appset = load(&dir.join("applicationset.yaml"))?;
    let project = load(&dir.join("appproject.yaml"))?;
    let template = &appset["spec"]["template"]["spec"];
    // teams/claims/ is synced in project team-claims, as team-claims-sync.
    assert_eq!(
        text(template, &["project"]).replace("{{ .path.basename }}", "claims"),
        text(&project, &["metadata", "name"])
    );
    let sa = &project["spec"]["destinationServiceAccounts"][0];
    assert_eq!(
        text(sa, &["defaultServiceAccount"]),
        "argocd:team-claims-sync"
    );
    let identity = std::fs::read_to_string(dir.join("team-sync-identity.yaml"))?;
    assert!(identity.contains("name: team-claims-sync") && identity.contains("paved-claim-author"));
    let teams = std::fs::read_to_string(repo_root().join("examples/teams.yaml"))?;
    assert!(
        teams.contains("{ namespace: argocd, name: team-claims-sync }"),
        "Team team-claims names its Application's sync identity"
    );
    let cm = load(&dir.join("argocd-cm.yaml"))?;
    assert_eq!(
        text(&cm, &["data", "application.sync.impersonation.enabled"]),
        "true"
    );
    let repo = text(template, &["source", "repoURL"]);
    let allowed: Vec<&str> = project["spec"]["sourceRepos"]
        .as_sequence()
        .context("spec.sourceRepos")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        allowed,
        [repo],
        "sourceRepos is exactly the claims repository"
    );
    Ok(())
}

/// Runs e2e/health-checks with `args`, against this control plane when given one.
fn health_checks(args: &[&str], cp: Option<&ControlPlane>) -> Result<String> {
    let mut cmd = Command::new(repo_root().join("e2e/health-checks"));
    cmd.args(args);
    if let Some(cp) = cp {
        cmd.env("KUBECONFIG", cp.kubeconfig())
            .env("PATH", cp.path());
    }
    let out = cmd.output().context("running e2e/health-checks")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "e2e/health-checks failed:\n{text}");
    Ok(text)
}

#[test]
fn argo_cd_health_checks_pass_on_lua_5_1() -> Result<()> {
    let out = health_checks(&[], None)?;
    assert!(out.contains("health checks:"), "{out}");
    assert!(out.contains(" 0 failed"), "{out}");
    Ok(())
}

#[test]
fn health_check_testdata_is_accepted_by_the_api_server() -> Result<()> {
    let cp = control_plane();
    let out = health_checks(&["--kubectl"], Some(cp))?;
    assert!(out.contains("(API server)"), "{out}");
    assert!(out.contains(" 0 failed"), "{out}");
    Ok(())
}
