//! The Backstage front door end to end, on the real control plane with the operator
//! running: the golden-path template run as a real scaffolder task
//! (backstage/e2e/publish.js: the real scaffolder engine and `publish:github:pull-request`
//! against the loopback GitHub stand-in over real git repositories) opens a pull request
//! whose claims the real apiserver accepts from the team and the operator brings to
//! Ready; the Paved catalog module (backstage/e2e/catalog.js: the real catalog and
//! Kubernetes backends, reading the cluster through the Kubernetes proxy with a
//! read-only ServiceAccount token) shows the claims as Resource entities whose status
//! follows the cluster: Unknown while nothing reconciled them, Ready when they are, the
//! reason when one is refused, gone when deleted. The npm side's own tests (template
//! drift against crds/, dry runs, the module's mapping) run in `make test` as `npm test`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use kube::{api::DeleteParams, Api};
use paved_api::{PostgreSQLInstance, ServiceClaim};
use paved_e2e::{control_plane, db, eventually, repo_root, ControlPlane, Operator};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(120);

/// backstage/node_modules as the lockfile says (a warm machine reuses its tree).
fn installed() -> Result<()> {
    let ok = Command::new(repo_root().join("backstage/install"))
        .stdout(Stdio::null())
        .status()
        .context("running backstage/install")?
        .success();
    if !ok {
        bail!("backstage/install failed");
    }
    Ok(())
}

/// kubectl as a member of team-claims (its OIDC group, as the apiserver sees it).
fn as_team(cp: &ControlPlane, args: &[&str], stdin: &str) -> Result<(bool, String)> {
    let mut full = vec!["--as=dev@claims", "--as-group=team-claims"];
    full.extend(args);
    paved_e2e::run_with(cp.kubectl_command(&full), Some(stdin))
}

/// A read-only ServiceAccount for the catalog (get/list/watch on Paved's claims and
/// Teams, nothing else), its token, and the plane's apiserver URL and CA file.
fn reader(
    cp: &ControlPlane,
    dir: &std::path::Path,
) -> Result<(String, String, std::path::PathBuf)> {
    for obj in [
        json!({ "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": { "name": "e2e-backstage-reader", "namespace": "paved-system" } }),
        json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": { "name": "e2e-backstage-reader" },
                "rules": [ { "apiGroups": ["paved.dev"],
                             "resources": ["serviceclaims", "postgresqlinstances", "temporalnamespaces", "teams"],
                             "verbs": ["get", "list", "watch"] } ] }),
        json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": { "name": "e2e-backstage-reader" },
                "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "e2e-backstage-reader" },
                "subjects": [ { "kind": "ServiceAccount", "name": "e2e-backstage-reader", "namespace": "paved-system" } ] }),
        // Developers write ServiceClaims at all through the chart's role; admission
        // narrows it to their own team's.
        json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": { "name": "e2e-backstage-authors" },
                "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "paved-claim-author" },
                "subjects": [ { "apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "team-claims" } ] }),
    ] {
        db::apply(cp, &obj)?;
    }
    let token = cp
        .kubectl(&[
            "create",
            "token",
            "e2e-backstage-reader",
            "-n",
            "paved-system",
            "--duration=1h",
        ])?
        .trim()
        .to_string();
    let server = cp.kubectl(&[
        "config",
        "view",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ])?;
    // The CA the plane's kubeconfig trusts, decoded by kubectl itself.
    let ca = cp.kubectl(&[
        "config",
        "view",
        "--minify",
        "--raw",
        "--flatten",
        "-o",
        "jsonpath={.clusters[0].cluster.certificate-authority-data}",
    ])?;
    let pem = Command::new("base64")
        .arg("-d")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(ca.trim().as_bytes())?;
            c.wait_with_output()
        })?;
    anyhow::ensure!(
        pem.status.success() && !pem.stdout.is_empty(),
        "decoding the CA"
    );
    let ca_file = dir.join("ca.crt");
    std::fs::write(&ca_file, pem.stdout)?;
    Ok((server.trim().to_string(), token, ca_file))
}

/// The catalog backend (backstage/e2e/catalog.js), asked questions line by line.
struct Catalog {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Catalog {
    fn start(server: &str, token: &str, ca: &std::path::Path) -> Result<Catalog> {
        let mut child = Command::new("node")
            .arg(repo_root().join("backstage/e2e/catalog.js"))
            .env("PAVED_K8S_URL", server)
            .env("PAVED_K8S_TOKEN", token)
            .env("PAVED_K8S_CA_FILE", ca)
            .env("PAVED_K8S_CLUSTER", "e2e")
            .env("PAVED_REFRESH_SECONDS", "2")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(
                repo_root().join("target/e2e-logs/backstage-catalog.log"),
            )?))
            .spawn()
            .context("starting node backstage/e2e/catalog.js")?;
        let stdin = child.stdin.take().context("stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("stdout")?);
        let mut c = Catalog {
            child,
            stdin,
            stdout,
        };
        let first = c.line()?;
        if first["event"] != "ready" {
            bail!("the catalog backend did not start: {first}");
        }
        Ok(c)
    }

    fn line(&mut self) -> Result<Value> {
        let mut l = String::new();
        if self.stdout.read_line(&mut l)? == 0 {
            bail!("the catalog backend exited (target/e2e-logs/backstage-catalog.log)");
        }
        Ok(serde_json::from_str(&l)?)
    }

    /// Sends one command; its answer, which must be `ok`.
    fn ask(&mut self, command: &str) -> Result<Value> {
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()?;
        let answer = self.line()?;
        if answer["ok"] != true {
            bail!("{command}: {answer}");
        }
        Ok(answer)
    }
}

impl Drop for Catalog {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn gone<K>(api: &Api<K>, name: &str) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    eventually(&format!("{name} gone"), T, || async {
        Ok(api.get_opt(name).await?.is_none().then_some(()))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_answers_become_a_pull_request_whose_claims_go_ready_and_show_in_the_catalog(
) -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    installed()?;
    let (name, refused) = ("e2e-bs-api", "e2e-bs-refused");
    let claims: Api<ServiceClaim> = Api::all(client.clone());
    let dir = std::env::temp_dir().join(format!("paved-backstage-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    {
        let _op = Operator::start(cp, "backstage-cleanup", &[])?;
        for n in [name, refused] {
            db::fresh_service(&client, n).await?;
        }
    }

    // The developer's five answers (and a database), as a real scaffolder task: the
    // pull request's files.
    let out = Command::new("node")
        .arg(repo_root().join("backstage/e2e/publish.js"))
        .args(["--out", dir.to_str().unwrap(), "--name", name])
        .args(["--owner", "group:default/team-claims", "--cloud", "local"])
        .args(["--classification", "internal", "--database", "small:10"])
        .stderr(Stdio::from(std::fs::File::create(
            repo_root().join("target/e2e-logs/backstage-publish.log"),
        )?))
        .output()
        .context("running node backstage/e2e/publish.js")?;
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert!(
        out.status.success() && events.iter().any(|e| e["event"] == "done"),
        "publish failed (target/e2e-logs/backstage-publish.log): {events:?}"
    );
    let pr = events
        .iter()
        .find(|e| e["event"] == "pull-request")
        .context("a pull request")?;
    assert_eq!(pr["repo"], "platform/claims");
    assert_eq!(pr["base"], "main");
    let file = dir.join(format!("teams/claims/{name}.yaml"));
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&std::fs::read_to_string(&file)?)
        .map(|d| serde::Deserialize::deserialize(d).map_err(anyhow::Error::from))
        .collect::<Result<_>>()?;
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["ServiceClaim", "PostgreSQLInstance"], "{docs:?}");
    assert_eq!(docs[0]["spec"]["owner"], "team-claims");
    assert_eq!(
        docs[0]["spec"]["system"], "claims-platform",
        "from the owner Group's annotations, never typed"
    );

    // The catalog, with the claim not yet reconciled by anyone: shown, never healthy.
    let work = dir.join("catalog");
    std::fs::create_dir_all(&work)?;
    let (server, token, ca) = reader(cp, &work)?;
    let mut catalog = Catalog::start(&server, &token, &ca)?;
    let (ok, said) = as_team(cp, &["create", "-f", "-"], &docs[0].to_string())?;
    assert!(ok, "the team's ServiceClaim from the pull request: {said}");
    let service = format!("resource:default/{name}");
    catalog.ask(&format!(
        "wait-entity {service} ready=Unknown spec.owner=group:default/team-claims spec.type=paved-service 60"
    ))?;

    // The operator runs: Ready in the cluster and in the catalog.
    let op = Operator::start(cp, "backstage", &[])?;
    db::ready(&claims, name).await?;
    let (ok, said) = as_team(cp, &["create", "-f", "-"], &docs[1].to_string())?;
    assert!(ok, "the team's database from the pull request: {said}");
    let pgis: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), name);
    db::ready(&pgis, "main").await?;
    catalog.ask(&format!("wait-entity {service} ready=True synced=True 60"))?;
    let database = catalog.ask(&format!(
        "wait-entity resource:{name}/main ready=True spec.type=database 60"
    ))?;
    let relations = database["entity"]["relations"].to_string();
    assert!(
        relations.contains("dependencyOf") && relations.contains(name),
        "{relations}"
    );

    // A claim the operator refuses shows why.
    let mut c = docs[0].clone();
    c["metadata"]["name"] = json!(refused);
    c["spec"]["owner"] = json!("team-nobody");
    db::create(cp, &c)?;
    catalog.ask(&format!(
        "wait-entity resource:default/{refused} ready=False synced=False reason=TeamNotFound 60"
    ))?;

    // Deleted (the service with its namespace and database): gone from the catalog.
    for n in [name, refused] {
        claims.delete(n, &DeleteParams::default()).await?;
    }
    for n in [name, refused] {
        gone(&claims, n).await?;
        catalog.ask(&format!("wait-gone resource:default/{n} 90"))?;
    }
    catalog.ask(&format!("wait-gone resource:{name}/main 90"))?;
    drop(catalog);
    drop(op);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
