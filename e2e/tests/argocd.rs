//! Argo CD end to end: a real Argo CD (application controller and repo server built
//! from the Go module proxy, `e2e/control-plane up --with argocd`) syncs teams' claims
//! from a git repository on the local file system, laid out as examples/gitops, and
//! judges their health with Paved's own health checks loaded into argocd-cm:
//! Progressing → Healthy once Paved reports Ready; a commit that breaks a claim shows
//! Degraded with Paved's reason, its revert heals; a database claim removed from Git is
//! pruned, and Paved applies its deletion policy (PHI keeps a final snapshot). Each
//! team's Application syncs as the team's own ServiceAccount: a commit claiming in
//! another team's name, or into another team's namespace, fails to sync.
//!
//! It runs on a control plane of its own: Argo CD watches every kind in the cluster,
//! which the shared plane's other tests should not pay for.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use kube::{
    api::{Api, DynamicObject},
    runtime::{watcher, WatchStreamExt},
};
use paved_api::{PostgreSQLInstance, ServiceClaim};
use paved_e2e::{
    db::{self, aws_composition},
    eventually, repo_root, ControlPlane, DedicatedPlane, Operator,
};
use serde_json::{json, Value};

const ARGO: Duration = Duration::from_secs(240);

/// A git working copy Argo CD's repo server clones from (`file://`).
struct Repo {
    dir: PathBuf,
}

impl Repo {
    fn init(dir: PathBuf) -> Result<Repo> {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let repo = Repo { dir };
        repo.git(&["init", "-q", "-b", "main"])?;
        Ok(repo)
    }

    fn url(&self) -> String {
        format!("file://{}", self.dir.display())
    }

    fn git(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args([
                "-c",
                "user.name=Paved e2e",
                "-c",
                "user.email=e2e@paved.dev",
            ])
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .context("running git")?;
        if !out.status.success() {
            bail!(
                "git {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn write(&self, path: &str, text: &str) -> Result<()> {
        let p = self.dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap())?;
        std::fs::write(p, text)?;
        Ok(())
    }

    /// Commits everything; returns the new revision.
    fn commit(&self, message: &str) -> Result<String> {
        self.git(&["add", "-A"])?;
        self.git(&["commit", "-q", "-m", message])?;
        self.git(&["rev-parse", "HEAD"])
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn yaml(path: &Path) -> Result<Value> {
    Ok(serde_yaml::from_str(&read(path)?)?)
}

/// What the example ApplicationSet's git directory generator makes for `teams/<team>`,
/// with the repository URL pointed at `url`.
fn application(set: &Value, url: &str, team: &str) -> Result<Value> {
    let template = serde_json::to_string(&set["spec"]["template"])?
        .replace("{{ .path.basename }}", team)
        .replace("{{ .path.path }}", &format!("teams/{team}"));
    let mut t: Value = serde_json::from_str(&template)?;
    if template.contains("{{") {
        bail!(
            "the ApplicationSet template uses generator fields this test does not fill: {template}"
        );
    }
    t["spec"]["source"]["repoURL"] = json!(url);
    Ok(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": t["metadata"]["name"],
            "namespace": set["metadata"]["namespace"],
            "labels": t["metadata"]["labels"],
        },
        "spec": t["spec"],
    }))
}

fn applications(client: &kube::Client) -> Api<DynamicObject> {
    let ar = paved_api::api_resource("argoproj.io/v1alpha1", "Application", "applications");
    Api::namespaced_with(client.clone(), "argocd", &ar)
}

/// Asks Argo CD to compare with Git now, as `argocd app get --refresh` does.
fn refresh(cp: &ControlPlane, app: &str) -> Result<()> {
    cp.kubectl(&[
        "annotate",
        "-n",
        "argocd",
        "application",
        app,
        "argocd.argoproj.io/refresh=normal",
        "--overwrite",
    ])?;
    Ok(())
}

fn health(app: &DynamicObject) -> &str {
    app.data["status"]["health"]["status"]
        .as_str()
        .unwrap_or("")
}

fn sync(app: &DynamicObject) -> (&str, &str) {
    (
        app.data["status"]["sync"]["status"].as_str().unwrap_or(""),
        app.data["status"]["sync"]["revision"]
            .as_str()
            .unwrap_or(""),
    )
}

/// The health Argo CD recorded for one of the Application's resources.
fn resource_health<'a>(app: &'a DynamicObject, kind: &str, name: &str) -> Option<&'a Value> {
    app.data["status"]["resources"]
        .as_array()?
        .iter()
        .find(|r| r["kind"] == kind && r["name"] == name)
        .map(|r| &r["health"])
}

/// Waits until `app` is Synced to `revision` and its health is `status`.
async fn settled(
    apps: &Api<DynamicObject>,
    app: &str,
    revision: &str,
    status: &str,
) -> Result<DynamicObject> {
    let waited = eventually(
        &format!("Application {app} Synced at {revision} and {status}"),
        ARGO,
        || async {
            let a = apps.get(app).await?;
            Ok((sync(&a) == ("Synced", revision) && health(&a) == status).then_some(a))
        },
    )
    .await;
    match waited {
        Ok(a) => Ok(a),
        Err(e) => {
            let now = apps.get_opt(app).await?.map(|a| a.data["status"].clone());
            bail!("{e:#}\nthe Application's status: {}", json!(now))
        }
    }
}

/// Every health status the Application goes through, in order, from a watch.
fn record_health(apps: Api<DynamicObject>, app: &str) -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let out = seen.clone();
    let config = watcher::Config::default().fields(&format!("metadata.name={app}"));
    tokio::spawn(async move {
        let mut stream = watcher(apps, config).applied_objects().boxed();
        while let Some(Ok(a)) = stream.next().await {
            let h = health(&a).to_string();
            let mut seen = out.lock().unwrap();
            if !h.is_empty() && seen.last() != Some(&h) {
                seen.push(h);
            }
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argocd_syncs_claims_from_git_and_judges_them_with_paveds_health_checks() -> Result<()> {
    let cp = DedicatedPlane::up("argocd", &["argocd"])?;
    let client = cp.client().await?;
    let examples = repo_root().join("examples/gitops");

    // The platform's side: an AWS Composition pointed at moto, for the PHI team.
    let seed = db::moto(&cp, "seed.py", &[])?;
    aws_composition(&cp, &seed, "postgresql-aws-e2e", "2s")?;
    let _op = Operator::start(&cp, "argocd", &["--cloud-list-ttl-seconds", "1"])?;

    // The claims repository: examples/gitops/teams/claims verbatim, and a PHI team on
    // AWS in the same layout.
    let repo = Repo::init(PathBuf::from(&cp.env["PAVED_CP_DIR"]).join("gitops/claims"))?;
    for file in ["serviceclaim.yaml", "postgresqlinstance.yaml"] {
        repo.write(
            &format!("teams/claims/{file}"),
            &read(&examples.join("teams/claims").join(file))?,
        )?;
    }
    let records_db = r#"apiVersion: paved.dev/v1alpha1
kind: PostgreSQLInstance
metadata:
  name: records-db
  namespace: records-api
  annotations:
    argocd.argoproj.io/sync-wave: "1"
    argocd.argoproj.io/sync-options: SkipDryRunOnMissingResource=true
spec:
  compositionRef:
    name: postgresql-aws-e2e
  parameters:
    size: small
    storageGB: 50
  # The floor keeps a final snapshot of PHI whatever the claim asks.
  deletionPolicy: Delete
  writeConnectionSecretToRef:
    name: records-db-connection
"#;
    repo.write(
        "teams/records/serviceclaim.yaml",
        r#"apiVersion: paved.dev/v1alpha1
kind: ServiceClaim
metadata:
  name: records-api
  annotations:
    argocd.argoproj.io/sync-wave: "0"
spec:
  owner: team-records
  system: member-records
  cloud: aws
  dataClassification: phi
  sloTier: gold
  costCenter: CC-5120
"#,
    )?;
    repo.write("teams/records/postgresqlinstance.yaml", records_db)?;
    let first = repo.commit("teams claims and records")?;

    // Argo CD's side: per team, the example AppProject and sync identity (examples are
    // team `claims`'s: the same with the team's name for `records`), the Team naming
    // that identity, and the Applications the example ApplicationSet generates,
    // pointed at this repository. Syncs run as the team's ServiceAccount.
    for team in ["claims", "records"] {
        let named = |file: &str| -> Result<String> {
            Ok(read(&examples.join(file))?.replace("team-claims", &format!("team-{team}")))
        };
        let mut project: Value = serde_yaml::from_str(&named("appproject.yaml")?)?;
        project["spec"]["sourceRepos"] = json!([repo.url()]);
        db::apply(&cp, &project)?;
        let (ok, out) = cp.kubectl_stdin(
            &["apply", "--server-side", "--force-conflicts", "-f", "-"],
            &named("team-sync-identity.yaml")?,
        )?;
        assert!(ok, "sync identity of team-{team}: {out}");
        let (ok, out) = cp.kubectl_stdin(
            &["apply", "--server-side", "--field-manager=e2e-argocd", "-f", "-"],
            &json!({
                "apiVersion": "paved.dev/v1alpha1", "kind": "Team",
                "metadata": { "name": format!("team-{team}") },
                "spec": { "serviceAccounts": [ { "namespace": "argocd", "name": format!("team-{team}-sync") } ] }
            })
            .to_string(),
        )?;
        assert!(ok, "Team team-{team} naming its sync identity: {out}");
    }
    let set = yaml(&examples.join("applicationset.yaml"))?;
    let apps = applications(&client);
    let seen = record_health(apps.clone(), "team-claims");
    for team in ["claims", "records"] {
        db::apply(&cp, &application(&set, &repo.url(), team)?)?;
    }

    // Synced, Paved reconciles, and Argo CD calls it Healthy through Paved's checks.
    let claims_app = settled(&apps, "team-claims", &first, "Healthy").await?;
    let records_app = settled(&apps, "team-records", &first, "Healthy").await?;
    let services: Api<ServiceClaim> = Api::all(client.clone());
    let intake: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), "claims-intake-api");
    let records: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), "records-api");
    for name in ["claims-intake-api", "records-api"] {
        let s = services.get(name).await?;
        let conditions = s.status.map(|s| s.conditions).unwrap_or_default();
        assert!(
            paved_api::conditions::find(&conditions, "Ready").is_some_and(|c| c.is_true()),
            "ServiceClaim {name} is Ready when Argo CD says Healthy"
        );
    }
    let db = db::ready(&intake, "intake-db").await?;
    assert_eq!(
        resource_health(&claims_app, "PostgreSQLInstance", "intake-db")
            .and_then(|h| h["status"].as_str()),
        Some("Healthy"),
        "Argo CD judges the database by Paved's check: {:?}",
        claims_app.data["status"]["resources"]
    );
    assert!(resource_health(&records_app, "ServiceClaim", "records-api").is_some());
    let records_id = db::ready(&records, "records-db")
        .await?
        .status
        .and_then(|s| s.external_name)
        .context("records-db has a cloud name")?;
    let sequence = seen.lock().unwrap().clone();
    let progressing = sequence.iter().position(|h| h == "Progressing");
    let healthy = sequence.iter().position(|h| h == "Healthy");
    assert!(
        matches!((progressing, healthy), (Some(p), Some(h)) if p < h),
        "team-claims went Progressing, then Healthy: {sequence:?}"
    );
    assert!(db.status.is_some());

    // A commit that breaks the claim: a size the Composition does not allow. Argo CD
    // applies it (the schema accepts it); Paved refuses it; Argo CD shows Degraded with
    // Paved's reason.
    let broken = read(&examples.join("teams/claims/postgresqlinstance.yaml"))?
        .replace("storageGB: 10", "storageGB: 500");
    assert!(broken.contains("storageGB: 500"));
    repo.write("teams/claims/postgresqlinstance.yaml", &broken)?;
    let second = repo.commit("intake-db: 500 GB")?;
    refresh(&cp, "team-claims")?;
    let degraded = settled(&apps, "team-claims", &second, "Degraded").await?;
    let h = resource_health(&degraded, "PostgreSQLInstance", "intake-db")
        .cloned()
        .context("intake-db's health in the Application")?;
    let message = h["message"].as_str().unwrap_or("");
    assert_eq!(h["status"], "Degraded");
    assert!(
        message.contains("storageGB 500") && message.contains("postgresql-local"),
        "Paved's reason reaches Argo CD: {message}"
    );

    // The revert heals it.
    repo.git(&["revert", "--no-edit", "HEAD"])?;
    let third = repo.git(&["rev-parse", "HEAD"])?;
    refresh(&cp, "team-claims")?;
    settled(&apps, "team-claims", &third, "Healthy").await?;

    // Pruning: the PHI database leaves Git; Argo CD deletes the claim; Paved deletes
    // the instance after a final, encrypted snapshot.
    std::fs::remove_file(repo.dir.join("teams/records/postgresqlinstance.yaml"))?;
    let fourth = repo.commit("records: drop records-db")?;
    refresh(&cp, "team-records")?;
    settled(&apps, "team-records", &fourth, "Healthy").await?;
    db::gone(&records, "records-db").await?;
    let instances = db::moto(&cp, "query.py", &["instances"])?;
    assert!(
        !instances
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["DBInstanceIdentifier"] == records_id.as_str()),
        "the pruned claim's instance is deleted"
    );
    let snapshots = db::moto(&cp, "query.py", &["snapshots"])?;
    assert!(
        snapshots
            .as_array()
            .unwrap()
            .iter()
            .any(
                |s| s["DBSnapshotIdentifier"] == format!("{records_id}-final")
                    && s["Encrypted"] == true
            ),
        "PHI keeps an encrypted final snapshot: {snapshots}"
    );
    assert!(
        services.get_opt("records-api").await?.is_some(),
        "the ServiceClaim stays in Git and in the cluster"
    );

    // An attack through Git: team records commits a claim in team claims' name and a
    // database claim into team claims' namespace. Its Application syncs as
    // team-records-sync: the sync fails with the apiserver's reasons, and nothing of
    // team claims changes.
    let intake_before = intake.get("intake-db").await?;
    repo.write(
        "teams/records/forged.yaml",
        r#"apiVersion: paved.dev/v1alpha1
kind: ServiceClaim
metadata:
  name: forged-svc
spec:
  owner: team-claims
  system: claims-platform
  cloud: local
  dataClassification: internal
  costCenter: CC-4410
---
apiVersion: paved.dev/v1alpha1
kind: PostgreSQLInstance
metadata:
  name: stolen
  namespace: claims-intake-api
spec:
  writeConnectionSecretToRef:
    name: intake-db-connection
"#,
    )?;
    let fifth = repo.commit("records: claim what is not ours")?;
    refresh(&cp, "team-records")?;
    // Argo CD retries a failed automated sync with backoff; each attempt records the
    // resources' results, the apiserver's refusals among them.
    let waited = eventually("team-records' sync refused", ARGO, || async {
        let a = apps.get("team-records").await?;
        let op = &a.data["status"]["operationState"];
        let at = op["operation"]["sync"]["revision"].as_str().unwrap_or("");
        let text = op.to_string();
        Ok((at == fifth
            && text.contains("only identities of Team team-claims")
            && text.contains("postgresqlinstances"))
        .then_some(text))
    })
    .await;
    let failed = match waited {
        Ok(t) => t,
        Err(e) => {
            let now = apps
                .get_opt("team-records")
                .await?
                .map(|a| a.data["status"].clone());
            bail!("{e:#}\nthe Application's status: {}", json!(now))
        }
    };
    assert!(
        failed.contains("only identities of Team team-claims"),
        "the admission policy's reason reaches Argo CD: {failed}"
    );
    assert!(
        failed.contains("cannot ")
            && failed.contains("resource \\\"postgresqlinstances\\\"")
            && failed.contains("in the namespace \\\"claims-intake-api\\\""),
        "RBAC's refusal in the other namespace reaches Argo CD: {failed}"
    );
    assert!(services.get_opt("forged-svc").await?.is_none());
    assert!(intake.get_opt("stolen").await?.is_none());
    let intake_after = intake.get("intake-db").await?;
    assert_eq!(intake_after.spec, intake_before.spec);
    assert_eq!(
        intake_after.metadata.generation,
        intake_before.metadata.generation
    );
    Ok(())
}
