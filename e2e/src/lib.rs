//! The e2e harness: a real control plane (started through `e2e/control-plane up`,
//! reused when already up), Paved's CRDs, the upstream External Secrets CRDs and the
//! default Compositions installed, and the operator binary run as a child process
//! that is stopped by PID when the test ends.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use kube::{config::KubeConfigOptions, Client, Config};

pub mod crossplane;
pub mod db;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repo root")
}

/// shared/ beside the project (read-only upstream material).
pub fn shared_dir() -> PathBuf {
    repo_root().join("../shared")
}

/// The exports of `e2e/control-plane up`, parsed.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    pub env: BTreeMap<String, String>,
}

impl ControlPlane {
    pub fn kubeconfig(&self) -> &str {
        &self.env["KUBECONFIG"]
    }

    /// PATH with the pinned kubectl first.
    pub fn path(&self) -> String {
        self.env.get("PATH").cloned().unwrap_or_default()
    }

    pub async fn client(&self) -> Result<Client> {
        // With the AWS SDK in the workspace, rustls has two backends; pick kube's.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let kc = kube::config::Kubeconfig::read_from(self.kubeconfig())?;
        let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
        Ok(Client::try_from(config)?)
    }

    /// The pinned kubectl, pointed at this control plane, with `args`.
    pub fn kubectl_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("PATH", self.path());
        cmd
    }

    /// Runs kubectl against this control plane; fails with its stderr.
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        let out = self
            .kubectl_command(args)
            .output()
            .context("running kubectl")?;
        if !out.status.success() {
            bail!(
                "kubectl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Like [`kubectl`](Self::kubectl) with stdin, returning (success, stdout+stderr).
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Result<(bool, String)> {
        run_with(self.kubectl_command(args), Some(stdin))
    }
}

/// Runs `cmd` (with `stdin`, if any) and returns (success, stdout+stderr): for
/// commands expected to fail with a message.
pub fn run_with(mut cmd: Command, stdin: Option<&str>) -> Result<(bool, String)> {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Closed before the wait, so a command that reads stdin sees its end.
    let mut input = child.stdin.take().expect("piped");
    if let Some(s) = stdin {
        input.write_all(s.as_bytes())?;
    }
    drop(input);
    let out = child.wait_with_output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

static CONTROL_PLANE: OnceLock<ControlPlane> = OnceLock::new();

/// Starts (or reuses) the control plane and installs the CRDs and Compositions once
/// per test process. Fails, never skips, when something is missing.
pub fn control_plane() -> &'static ControlPlane {
    control_plane_with_env(&[])
}

/// `control_plane` with `env` set for `e2e/control-plane up` (see
/// `ControlPlane::up_with_env`); the first call of the process decides.
pub fn control_plane_with_env(env: &[(&str, &str)]) -> &'static ControlPlane {
    CONTROL_PLANE.get_or_init(|| {
        ControlPlane::up_with_env(None, &[], env)
            .expect("e2e/control-plane up failed (see its messages above)")
    })
}

/// A control plane of one test's own (e.g. with Argo CD, whose cluster-wide watches
/// should not load the shared plane the other tests run on); stopped by
/// `e2e/control-plane down` when dropped, panics included, unless
/// PAVED_E2E_KEEP_PLANE is set (to look around after a failure). Its components' logs
/// are kept in target/e2e-logs/control-plane-<name>/.
pub struct DedicatedPlane(ControlPlane);

impl DedicatedPlane {
    /// Starts the plane in `target/control-plane-<name>` with the optional groups
    /// `with` (`e2e/control-plane up --with ...`).
    pub fn up(name: &str, with: &[&str]) -> Result<DedicatedPlane> {
        let dir = repo_root().join(format!("target/control-plane-{name}"));
        match ControlPlane::up(Some(&dir), with) {
            Ok(cp) => Ok(DedicatedPlane(cp)),
            Err(e) => {
                // Whatever a failed up left behind is this test's to stop.
                let _ = Command::new(repo_root().join("e2e/control-plane"))
                    .arg("down")
                    .env("PAVED_CP_DIR", &dir)
                    .stdout(Stdio::null())
                    .status();
                Err(e)
            }
        }
    }
}

impl std::ops::Deref for DedicatedPlane {
    type Target = ControlPlane;
    fn deref(&self) -> &ControlPlane {
        &self.0
    }
}

impl Drop for DedicatedPlane {
    fn drop(&mut self) {
        // The components' logs outlive the plane, for a failure's post-mortem.
        let state = PathBuf::from(&self.0.env["PAVED_CP_DIR"]);
        let name = state.file_name().unwrap_or_default().to_string_lossy();
        let keep = repo_root().join(format!("target/e2e-logs/{name}"));
        let _ = std::fs::remove_dir_all(&keep);
        let _ = Command::new("cp")
            .arg("-r")
            .arg(state.join("logs"))
            .arg(&keep)
            .status();
        if std::env::var_os("PAVED_E2E_KEEP_PLANE").is_some() {
            eprintln!("PAVED_E2E_KEEP_PLANE: leaving {} running", state.display());
            return;
        }
        let _ = Command::new(repo_root().join("e2e/control-plane"))
            .arg("down")
            .env("PAVED_CP_DIR", &self.0.env["PAVED_CP_DIR"])
            .stdout(Stdio::null())
            .status();
    }
}

impl ControlPlane {
    /// Waits until the tenancy admission policy judges ServiceClaims again. The
    /// apiserver resolves its paramKind (Team) through discovery, which it refreshes a
    /// while after a CRD is created or changed, or after it restarts; until then every
    /// ServiceClaim write is refused ("failed to configure policy": it fails closed).
    pub fn await_tenancy_policy(&self) -> Result<()> {
        let probe = serde_json::json!({
            "apiVersion": "paved.dev/v1alpha1", "kind": "ServiceClaim",
            "metadata": { "name": "e2e-policy-probe" },
            "spec": { "owner": "e2e", "system": "s", "costCenter": "CC-1" },
        })
        .to_string();
        let start = Instant::now();
        loop {
            let (ok, out) =
                self.kubectl_stdin(&["create", "--dry-run=server", "-f", "-"], &probe)?;
            if ok {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(120) {
                bail!("the tenancy policy does not admit the platform's ServiceClaim: {out}");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// `e2e/control-plane restart COMPONENT`: stopped and started again on the same
    /// ports with the same data (after the apiserver, once admission works again).
    pub fn restart(&self, component: &str) -> Result<()> {
        let out = Command::new(repo_root().join("e2e/control-plane"))
            .args(["restart", component])
            .env("PAVED_CP_DIR", &self.env["PAVED_CP_DIR"])
            .output()?;
        if !out.status.success() {
            bail!(
                "restarting {component}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if component == "kube-apiserver" {
            self.await_tenancy_policy()?;
        }
        Ok(())
    }

    /// `e2e/control-plane up` (in `dir`, else PAVED_CP_DIR's or the default), then the
    /// CRDs and Compositions installed.
    pub fn up(dir: Option<&Path>, with: &[&str]) -> Result<ControlPlane> {
        ControlPlane::up_with_env(dir, with, &[])
    }

    /// `up` with `env` set for `e2e/control-plane` (its settings, such as
    /// PAVED_ESO_STORE_REQUEUE; a plane already up keeps the ones it was started with).
    pub fn up_with_env(
        dir: Option<&Path>,
        with: &[&str],
        env: &[(&str, &str)],
    ) -> Result<ControlPlane> {
        let mut up = Command::new(repo_root().join("e2e/control-plane"));
        up.arg("up");
        up.envs(env.iter().copied());
        for w in with {
            up.args(["--with", w]);
        }
        if let Some(dir) = dir {
            up.env("PAVED_CP_DIR", dir);
        }
        let out = up
            .stderr(Stdio::inherit())
            .output()
            .context("running e2e/control-plane up")?;
        if !out.status.success() {
            bail!("e2e/control-plane up failed (see its messages above)");
        }
        // Let bash evaluate the exports (they are shell-quoted), then read them back.
        let exports = String::from_utf8_lossy(&out.stdout).into_owned();
        let names: Vec<String> = exports
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_string()))
            .collect();
        let evaluated = Command::new("bash")
            .args(["-c", "eval \"$PAVED_EXPORTS\"; env -0"])
            .env("PAVED_EXPORTS", &exports)
            .output()
            .context("evaluating the exports with bash")?;
        let mut env = BTreeMap::new();
        for pair in evaluated.stdout.split(|b| *b == 0) {
            let pair = String::from_utf8_lossy(pair);
            if let Some((k, v)) = pair.split_once('=') {
                if names.iter().any(|n| n == k) {
                    env.insert(k.to_string(), v.to_string());
                }
            }
        }
        if !env.contains_key("KUBECONFIG") {
            bail!("control-plane up printed no KUBECONFIG");
        }
        let cp = ControlPlane { env };
        install(&cp).context("installing CRDs and Compositions")?;
        Ok(cp)
    }
}

fn install(cp: &ControlPlane) -> Result<()> {
    let root = repo_root();
    // The External Secrets CRDs come with its controller (control-plane's eso, from
    // the module it is built from).
    cp.kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        root.join("crds").to_str().unwrap(),
    ])?;
    // kubectl wait fails at once while a new CRD has no status yet: retry.
    let crds = [
        "crd/serviceclaims.paved.dev",
        "crd/postgresqlinstances.paved.dev",
        "crd/temporalnamespaces.paved.dev",
        "crd/compositions.paved.dev",
        "crd/teams.paved.dev",
        "crd/externalsecrets.external-secrets.io",
    ];
    let start = Instant::now();
    loop {
        let mut args = vec!["wait", "--for=condition=Established", "--timeout=10s"];
        args.extend(crds);
        match cp.kubectl(&args) {
            Ok(_) => break,
            Err(e) if start.elapsed() > Duration::from_secs(60) => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
    cp.kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        root.join("compositions").to_str().unwrap(),
    ])?;
    // The platform's Temporal cluster, for this environment: the dev server
    // control-plane started.
    let temporal = cp
        .env
        .get("TEMPORAL_ADDRESS")
        .context("control-plane up exported no TEMPORAL_ADDRESS")?;
    cp.kubectl(&[
        "patch",
        "compositions.paved.dev",
        "temporal-standard",
        "--type=merge",
        "-p",
        &serde_json::json!({ "spec": { "temporal": { "frontendAddress": temporal, "pollInterval": "2s" } } }).to_string(),
    ])?;
    // The API server External Secrets reads the `kubernetes` backend from: this
    // plane's (in a cluster it is kubernetes.default.svc, the Composition's default).
    let server = cp.kubectl(&[
        "config",
        "view",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ])?;
    patch_service_composition(
        cp,
        "service-local",
        serde_json::json!({ "secrets": { "backend": { "kubernetes": { "server": server.trim() } } } }),
    )?;
    // Without per-service roles (as shipped) a platform names the role its services'
    // stores read as: here one role the platform made in moto, trusted by every
    // ServiceAccount of the plane and allowed every secret, the shared identity that
    // keeps tenants' own ExternalSecrets out of such namespaces. (Per-service roles
    // off: a test that turns them on and fails midway does not leave them on for the
    // next binary.)
    let platform_role = db::moto(cp, "query.py", &["platform-role", "paved-e2e-platform"])?;
    patch_service_composition(
        cp,
        "service-aws",
        serde_json::json!({
            "workloadIdentity": { "value": platform_role },
            "identity": null,
        }),
    )?;
    // The operator's own namespace, for its Lease and Events, and the platform's
    // secrets namespace, as the chart makes them.
    let _ = cp.kubectl(&["create", "namespace", "paved-system"]);
    let _ = cp.kubectl(&["create", "namespace", paved_api::DEFAULT_SECRETS_NAMESPACE]);
    // Tenancy as the chart installs it: the owner roles, the admission policy (the
    // harness's admin is in system:masters, a platform group), and the tests' Teams.
    let tenancy = helm_template(&["templates/owner-roles.yaml", "templates/admission.yaml"])?;
    let teams: String = TEST_TEAMS
        .iter()
        .map(|t| format!("---\n{}\n", test_team(t)))
        .collect();
    let (ok, out) = cp.kubectl_stdin(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        &format!("{tenancy}\n{teams}"),
    )?;
    if !ok {
        bail!("installing the tenancy policy and the test Teams: {out}");
    }
    // A claim created in its Team's second is taken as older than the Team
    // (ClaimPredatesTeam; timestamps have seconds only): the first test on a new plane
    // must not create one that fast.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    cp.await_tenancy_policy()?;
    // The local provider's admin connection string, as the postgresql-local
    // Composition names it.
    let dsn = cp
        .env
        .get("PAVED_POSTGRES_DSN")
        .context("control-plane up exported no PAVED_POSTGRES_DSN")?;
    let (ok, out) = cp.kubectl_stdin(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        &serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": "paved-local-postgres-admin", "namespace": "paved-system" },
            "stringData": { "dsn": dsn },
        })
        .to_string(),
    )?;
    if !ok {
        bail!("creating the admin Secret: {out}");
    }
    Ok(())
}

/// The operator binary, built by `cargo build` before the e2e tests run
/// (`PAVED_OPERATOR_PROFILE=release` picks the release build, as `make bench` does).
pub fn operator_binary() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("target"));
    let profile = std::env::var("PAVED_OPERATOR_PROFILE").unwrap_or_else(|_| "debug".into());
    let bin = target.join(profile).join("paved-operator");
    assert!(
        bin.is_file(),
        "{} not found: run `cargo build -p paved-operator` first (make test does)",
        bin.display()
    );
    bin
}

/// A running operator; stopped (SIGTERM, then SIGKILL) by PID on drop.
pub struct Operator {
    child: Child,
    pub metrics_addr: String,
    pub log: PathBuf,
}

impl Operator {
    /// Starts the operator with leader election on, as in production, on a Lease of
    /// its own.
    pub fn start(cp: &ControlPlane, name: &str, extra: &[&str]) -> Result<Operator> {
        Self::start_with_lease(cp, name, &format!("paved-e2e-{name}"), extra)
    }

    /// Starts a replica that competes for `lease`; `name` names its log.
    pub fn start_with_lease(
        cp: &ControlPlane,
        name: &str,
        lease: &str,
        extra: &[&str],
    ) -> Result<Operator> {
        // As users run it: with the chart's ServiceAccount and RBAC, not as an admin.
        static CHART_RBAC: OnceLock<PathBuf> = OnceLock::new();
        let kubeconfig = match CHART_RBAC.get() {
            Some(k) => k.clone(),
            None => {
                let k = chart_rbac_kubeconfig(cp)?;
                CHART_RBAC.get_or_init(|| k).clone()
            }
        };
        Self::start_with_kubeconfig(cp, name, lease, extra, Some(&kubeconfig))
    }

    /// Starts the operator with another kubeconfig (e.g. a ServiceAccount token
    /// bound to exactly the chart's RBAC).
    pub fn start_with_kubeconfig(
        cp: &ControlPlane,
        name: &str,
        lease: &str,
        extra: &[&str],
        kubeconfig: Option<&Path>,
    ) -> Result<Operator> {
        let port = free_port()?;
        let metrics_addr = format!("127.0.0.1:{port}");
        let log = repo_root().join(format!("target/e2e-logs/{name}.log"));
        std::fs::create_dir_all(log.parent().unwrap())?;
        let logfile = std::fs::File::create(&log)?;
        let child = Command::new(operator_binary())
            .args([
                "--metrics-addr",
                &metrics_addr,
                "--lease-namespace",
                "paved-system",
            ])
            .args(["--lease-name", lease, "--identity", name])
            .args(extra)
            // A default a test may override through `cp.env` (e.g. RUST_LOG=debug).
            .env("RUST_LOG", "info,paved_operator=debug,kube=warn")
            // Everything the control plane exported: KUBECONFIG, and the cloud
            // endpoints (AWS_ENDPOINT_URL, ...) the providers are pointed at.
            .envs(cp.env.iter())
            // A filter of one's own when looking into a failure, e.g. `kube=debug`.
            .envs(std::env::var("PAVED_E2E_RUST_LOG").map(|l| ("RUST_LOG", l)))
            .envs(kubeconfig.map(|k| ("KUBECONFIG", k.as_os_str().to_owned())))
            .stdout(logfile.try_clone()?)
            .stderr(logfile)
            .spawn()
            .context("starting paved-operator")?;
        let op = Operator {
            child,
            metrics_addr,
            log,
        };
        op.wait_healthy(Duration::from_secs(30))?;
        Ok(op)
    }

    fn wait_healthy(&self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if http_get(&self.metrics_addr, "/healthz").is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!(
            "operator not healthy after {timeout:?}; log: {}",
            self.log.display()
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn metrics(&self) -> Result<String> {
        http_get(&self.metrics_addr, "/metrics")
    }

    /// One `paved_*` counter from the operator's /metrics, summed over its labels
    /// (optionally only the series whose labels contain `filter`).
    pub fn counter(&self, name: &str, filter: &str) -> Result<f64> {
        Ok(prom_sum(&self.metrics()?, name, filter))
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Still running (not exited on its own).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM and wait: a graceful shutdown.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(25) {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// Pure: one counter or gauge of a Prometheus text page, summed over its series (only
/// those whose labels contain `filter`); `name` matches with or without `_total`.
pub fn prom_sum(text: &str, name: &str, filter: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.split(['{', ' '])
                .next()
                .is_some_and(|n| n == name || n == format!("{name}_total"))
        })
        .filter(|l| l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>()
        // An empty float sum is -0.0; a count of nothing prints as 0.
        + 0.0
}

pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// A minimal HTTP/1.0 request (loopback servers: the operator's metrics, the fakes):
/// the status code and the body.
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    write!(s, "{head}\r\n{}", body.unwrap_or(""))?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    let status = answer
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((
        status,
        answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default(),
    ))
}

/// A GET that fails unless the answer is 200; enough for /healthz and /metrics.
pub fn http_get(addr: &str, path: &str) -> Result<String> {
    match http_request(addr, "GET", path, &[], None)? {
        (200, body) => Ok(body),
        (status, _) => bail!("GET {path}: HTTP {status}"),
    }
}

/// A POST of a JSON body; fails unless the answer is 2xx.
pub fn http_post(addr: &str, path: &str, body: &str) -> Result<String> {
    match http_request(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        Some(body),
    )? {
        (200..=299, body) => Ok(body),
        (status, _) => bail!("POST {path}: HTTP {status}"),
    }
}

/// Polls `check` until it returns Some or `timeout` passes; the error says what was
/// awaited and the last observation.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let start = Instant::now();
    let mut last = String::from("no observation");
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}; last error: {last}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The pinned helm, built (once) by e2e/build-helm.
pub fn helm_binary() -> Result<String> {
    let out = Command::new(repo_root().join("e2e/build-helm"))
        .output()
        .context("running e2e/build-helm")?;
    if !out.status.success() {
        bail!("e2e/build-helm: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// Templates of the chart as `helm template` renders them for release `paved` in
/// `paved-system` with default values.
pub fn helm_template(show_only: &[&str]) -> Result<String> {
    let args: Vec<&str> = show_only.iter().flat_map(|t| ["--show-only", t]).collect();
    helm_template_with(&args)
}

/// The chart as `helm template` renders it for release `paved` in `paved-system`,
/// with `extra` arguments (`--set`, `--show-only`, ...).
pub fn helm_template_with(extra: &[&str]) -> Result<String> {
    let helm = helm_binary()?;
    let chart = repo_root().join("charts/paved");
    let mut cmd = Command::new(&helm);
    cmd.args([
        "template",
        "paved",
        chart.to_str().unwrap(),
        "-n",
        "paved-system",
        "--kube-version",
        "v1.36.2",
    ]);
    cmd.args(extra);
    let rendered = cmd.output()?;
    if !rendered.status.success() {
        bail!(
            "helm template: {}",
            String::from_utf8_lossy(&rendered.stderr)
        );
    }
    Ok(String::from_utf8(rendered.stdout)?)
}

/// Merges `service` into the `spec.service` of Composition `name` (this plane's
/// settings for it; a null removes a field).
pub fn patch_service_composition(
    cp: &ControlPlane,
    name: &str,
    service: serde_json::Value,
) -> Result<()> {
    cp.kubectl(&[
        "patch",
        "compositions.paved.dev",
        name,
        "--type=merge",
        "-p",
        &serde_json::json!({ "spec": { "service": service } }).to_string(),
    ])?;
    Ok(())
}

/// The account moto serves by default (its state is per account).
pub const MOTO_ACCOUNT: &str = "123456789012";

/// The teams the e2e tests' claims name as owners. Each acts through a group of its
/// own name; `team-a` and `team-b` are the tenancy tests' tenants.
pub const TEST_TEAMS: &[&str] = &[
    "team-claims",
    "team-members",
    "team-frozen",
    "team-x",
    "team-lp",
    "team-db",
    "team-t",
    "team-reliability",
    "team-bench",
    "team-records",
    "team-orders",
    "team-a",
    "team-b",
    "e2e",
    "o",
];

/// A Team for the tests: its group of the same name, every cloud, room for the
/// benchmark's thousands of claims.
pub fn test_team(name: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "paved.dev/v1alpha1", "kind": "Team",
        "metadata": { "name": name },
        "spec": {
            "groups": [name],
            "clouds": ["aws", "azure", "gcp", "local"],
            "limits": { "services": 10000, "databases": 10000 },
        },
    })
}

/// A kubeconfig for the chart's `paved-operator` ServiceAccount: the chart's RBAC
/// (rendered by helm) applied to the control plane and a token requested for it,
/// so a test runs the operator with exactly the permissions users install.
pub fn chart_rbac_kubeconfig(cp: &ControlPlane) -> Result<PathBuf> {
    let rendered = helm_template(&[
        "templates/serviceaccount.yaml",
        "templates/rbac.yaml",
        "templates/flowschema.yaml",
    ])?;
    let (ok, out) = cp.kubectl_stdin(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        &rendered,
    )?;
    if !ok {
        bail!("applying the chart's RBAC: {out}");
    }
    // One file per test process: several test binaries may run in turn.
    let path = repo_root().join(format!(
        "target/e2e-logs/chart-rbac-{}.kubeconfig",
        std::process::id()
    ));
    service_account_kubeconfig(cp, "paved-system", "paved-operator", &path)?;
    Ok(path)
}

/// A kubeconfig at `path` for the plane's apiserver as ServiceAccount `namespace/name`
/// (a token valid 2 h), so what runs with it meets that account's RBAC and API
/// priority and fairness, as in a cluster.
pub fn service_account_kubeconfig(
    cp: &ControlPlane,
    namespace: &str,
    name: &str,
    path: &Path,
) -> Result<()> {
    let token = cp.kubectl(&["create", "token", name, "-n", namespace, "--duration", "2h"])?;
    let admin: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(cp.kubeconfig())?)?;
    let cluster = admin["clusters"][0]["cluster"].clone();
    let kc = serde_json::json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [ { "name": "paved", "cluster": cluster } ],
        "users": [ { "name": name, "user": { "token": token.trim() } } ],
        "contexts": [ { "name": "paved", "context": { "cluster": "paved", "user": name } } ],
        "current-context": "paved",
    });
    std::fs::create_dir_all(path.parent().context("a kubeconfig's directory")?)?;
    std::fs::write(path, serde_yaml::to_string(&kc)?)?;
    Ok(())
}
