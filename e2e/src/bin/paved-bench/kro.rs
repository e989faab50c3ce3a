//! kro (kubernetes-sigs/kro) beside Paved: built by e2e/build-kro, its CRDs and
//! e2e/kro/serviceclaim-rgd.yaml installed on the bench's control plane, its controller
//! run as a child process with a ServiceAccount of its own (as its chart installs it:
//! cluster-admin), with the flags of e2e/kro/README.md and Paved's concurrency and
//! resync. Also what the idle-resync figure needs on both sides: the resourceVersions
//! of a controller's objects.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{
    api::{ApiResource, DynamicObject, ListParams},
    core::GroupVersionKind,
    Api, Client, ResourceExt,
};
use paved_e2e::{free_port, http_get, repo_root, ControlPlane};

use crate::measure::prom_sum;

/// e2e/build-kro: the cached build's directory (bin/kro, crds/).
pub fn build() -> Result<PathBuf> {
    let out = Command::new(repo_root().join("e2e/build-kro"))
        .stderr(Stdio::inherit())
        .output()
        .context("running e2e/build-kro")?;
    if !out.status.success() {
        bail!("e2e/build-kro failed (see its messages above)");
    }
    Ok(PathBuf::from(String::from_utf8(out.stdout)?.trim()))
}

/// kro's CRDs (ResourceGraphDefinition, GraphRevision), its ServiceAccount and a
/// kubeconfig with its token. kro's chart binds it to cluster-admin; as a ServiceAccount
/// its requests meet the same API priority-and-fairness level as Paved's (an admin's are
/// exempt).
pub fn install(cp: &ControlPlane, dir: &Path) -> Result<PathBuf> {
    cp.kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        dir.join("crds").to_str().context("kro's directory")?,
    ])?;
    wait_established(
        cp,
        &[
            "crd/resourcegraphdefinitions.kro.run",
            "crd/graphrevisions.internal.kro.run",
        ],
    )?;
    let rbac = serde_json::json!({
        "apiVersion": "v1", "kind": "List", "items": [
            { "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "kro-system" } },
            { "apiVersion": "v1", "kind": "ServiceAccount",
              "metadata": { "name": "kro", "namespace": "kro-system" } },
            { "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
              "metadata": { "name": "paved-bench-kro" },
              "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin" },
              "subjects": [ { "kind": "ServiceAccount", "name": "kro", "namespace": "kro-system" } ] },
        ],
    });
    let (ok, out) = cp.kubectl_stdin(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        &rbac.to_string(),
    )?;
    if !ok {
        bail!("kro's ServiceAccount: {out}");
    }
    let path = repo_root().join("target/paved-bench/kro.kubeconfig");
    paved_e2e::service_account_kubeconfig(cp, "kro-system", "kro", &path)?;
    Ok(path)
}

/// e2e/kro/serviceclaim-rgd.yaml applied (kro must run): Active, and its CRD
/// serviceclaims.kro.run Established.
pub fn apply_rgd(cp: &ControlPlane) -> Result<()> {
    let rgd = repo_root().join("e2e/kro/serviceclaim-rgd.yaml");
    cp.kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        rgd.to_str().unwrap(),
    ])?;
    let start = Instant::now();
    loop {
        let state = cp
            .kubectl(&[
                "get",
                "resourcegraphdefinitions.kro.run",
                "paved-serviceclaim",
                "-o",
                "jsonpath={.status.state}",
            ])
            .unwrap_or_default();
        if state.trim() == "Active" {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            bail!("the RGD paved-serviceclaim is not Active after 120 s (state {state:?})");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    wait_established(cp, &["crd/serviceclaims.kro.run"])
}

fn wait_established(cp: &ControlPlane, crds: &[&str]) -> Result<()> {
    // kubectl wait fails at once while a new CRD has no status yet: retry.
    let start = Instant::now();
    loop {
        let mut args = vec!["wait", "--for=condition=Established", "--timeout=10s"];
        args.extend(crds);
        match cp.kubectl(&args) {
            Ok(_) => return Ok(()),
            Err(e) if start.elapsed() > Duration::from_secs(60) => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// A running kro controller; stopped (SIGTERM, then SIGKILL) by PID on drop.
pub struct Kro {
    child: Child,
    pub metrics_addr: String,
    pub log: PathBuf,
}

impl Kro {
    pub fn start(
        dir: &Path,
        kubeconfig: &Path,
        name: &str,
        concurrency: usize,
        resync_seconds: u64,
    ) -> Result<Kro> {
        let metrics_addr = format!("127.0.0.1:{}", free_port()?);
        let probe = loop {
            let p = format!("127.0.0.1:{}", free_port()?);
            if p != metrics_addr {
                break p;
            }
        };
        let log = repo_root().join(format!("target/e2e-logs/{name}.log"));
        std::fs::create_dir_all(log.parent().unwrap())?;
        let logfile = std::fs::File::create(&log)?;
        let child = Command::new(dir.join("bin/kro"))
            .args(flags(
                kubeconfig,
                &metrics_addr,
                &probe,
                concurrency,
                resync_seconds,
            ))
            .stdout(logfile.try_clone()?)
            .stderr(logfile)
            .spawn()
            .context("starting kro")?;
        let kro = Kro {
            child,
            metrics_addr,
            log,
        };
        let start = Instant::now();
        while http_get(&probe, "/readyz").is_err() {
            if start.elapsed() > Duration::from_secs(60) {
                bail!("kro not ready after 60 s; log: {}", kro.log.display());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(kro)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// One counter or gauge of kro's /metrics, summed over the series whose labels
    /// contain `filter`.
    pub fn metric(&self, name: &str, filter: &str) -> Result<f64> {
        Ok(prom_sum(
            &http_get(&self.metrics_addr, "/metrics")?,
            name,
            filter,
        ))
    }

    /// Instance reconciles so far.
    pub fn reconciles(&self) -> Result<f64> {
        self.metric("dynamic_controller_reconcile_total", "")
    }

    /// kro's own requests to the apiserver so far, of one method (GET, PATCH, PUT, ...).
    pub fn requests(&self, method: &str) -> Result<f64> {
        self.metric(
            "rest_client_requests_total",
            &format!("method=\"{method}\""),
        )
    }

    /// Instances waiting in kro's queue.
    pub fn queued(&self) -> Result<f64> {
        self.metric("workqueue_depth", "name=\"dynamic-controller-queue\"")
    }

    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(25) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Kro {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// Pure: kro's command line (e2e/kro/README.md): loopback metrics and probes, no
/// leader election (one replica, as Paved's bench runs one), `concurrency` instance
/// workers, the informers' resync every `resync_seconds`, info logs (the default is
/// debug lines for every sync).
pub fn flags(
    kubeconfig: &Path,
    metrics: &str,
    probe: &str,
    concurrency: usize,
    resync_seconds: u64,
) -> Vec<String> {
    [
        "--kubeconfig",
        &kubeconfig.display().to_string(),
        "--metrics-bind-address",
        metrics,
        "--health-probe-bind-address",
        probe,
        "--leader-elect=false",
        "--dynamic-controller-concurrent-reconciles",
        &concurrency.to_string(),
        "--dynamic-controller-default-resync-period",
        &resync_seconds.to_string(),
        "--zap-log-level",
        "info",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The kinds of a claim's objects (as the bench's claims have them: no ExternalSecret,
/// nothing in paved-secrets).
fn owned_kinds() -> Vec<ApiResource> {
    [
        ("", "v1", "Namespace", "namespaces"),
        (
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
        ),
        ("", "v1", "ResourceQuota", "resourcequotas"),
        ("", "v1", "LimitRange", "limitranges"),
        ("", "v1", "ServiceAccount", "serviceaccounts"),
        (
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
        ),
        ("external-secrets.io", "v1", "SecretStore", "secretstores"),
    ]
    .into_iter()
    .map(|(g, v, k, plural)| {
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, v, k), plural)
    })
    .collect()
}

/// A fingerprint of every object of the claims' kinds with `selector` (a controller's
/// label), and of the claims themselves, keyed "Kind ns/name": what tells whether the
/// controller changed one (see `fingerprint`); a claim's is its resourceVersion (its
/// status is its controller's to write).
pub async fn versions(
    client: &Client,
    selector: &str,
    claims: (&ApiResource, &str),
) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut kinds: Vec<(ApiResource, String, bool)> = owned_kinds()
        .into_iter()
        .map(|k| (k, selector.to_string(), false))
        .collect();
    kinds.push((claims.0.clone(), claims.1.to_string(), true));
    for (ar, sel, is_claim) in kinds {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        for o in api
            .list_metadata(&ListParams::default().labels(&sel))
            .await?
        {
            let key = format!(
                "{} {}/{}",
                ar.kind,
                o.namespace().unwrap_or_default(),
                o.name_any()
            );
            let print = if is_claim {
                o.resource_version().unwrap_or_default()
            } else {
                fingerprint(&o.metadata)
            };
            out.insert(key, print);
        }
    }
    Ok(out)
}

/// Pure: an object's metadata but for what other controllers' status writes move (its
/// resourceVersion, and the managedFields entries of the status subresource: the quota
/// controller's, External Secrets' on a SecretStore). A write to anything else (labels,
/// annotations, owners, finalizers, or a spec, which moves its writer's managedFields
/// entry and, where kept, the generation) changes it.
pub fn fingerprint(meta: &ObjectMeta) -> String {
    use std::hash::{Hash, Hasher};
    let mut m = meta.clone();
    m.resource_version = None;
    if let Some(fields) = &mut m.managed_fields {
        fields.retain(|e| e.subresource.as_deref() != Some("status"));
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(&m).unwrap_or_default().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Pure: the objects of `before` that changed or went (by fingerprint), counted by kind
/// (the first word of the key).
pub fn changed(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (k, v) in before {
        if after.get(k) != Some(v) {
            let kind = k.split(' ').next().unwrap_or_default().to_string();
            *out.entry(kind).or_insert(0) += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kro_runs_with_paveds_concurrency_and_resync_on_loopback() {
        let f = flags(Path::new("/k/kc"), "127.0.0.1:1", "127.0.0.1:2", 16, 30);
        let after = |flag: &str| f.iter().position(|x| x == flag).map(|i| f[i + 1].as_str());
        assert_eq!(
            after("--dynamic-controller-concurrent-reconciles"),
            Some("16")
        );
        assert_eq!(
            after("--dynamic-controller-default-resync-period"),
            Some("30")
        );
        assert_eq!(after("--metrics-bind-address"), Some("127.0.0.1:1"));
        assert_eq!(after("--health-probe-bind-address"), Some("127.0.0.1:2"));
        assert_eq!(after("--kubeconfig"), Some("/k/kc"));
        assert!(f.iter().any(|x| x == "--leader-elect=false"));
    }

    #[test]
    fn another_controllers_status_write_is_not_a_change() {
        let meta = |rv: &str, label: &str, status_time: &str, spec_time: &str| -> ObjectMeta {
            serde_json::from_value(serde_json::json!({
                "name": "paved", "namespace": "a", "resourceVersion": rv,
                "labels": { "paved.dev/slo-tier": label },
                "managedFields": [
                    { "manager": "paved", "operation": "Apply", "apiVersion": "v1",
                      "time": spec_time, "fieldsType": "FieldsV1", "fieldsV1": {} },
                    { "manager": "external-secrets", "operation": "Update", "apiVersion": "v1",
                      "subresource": "status", "time": status_time, "fieldsType": "FieldsV1", "fieldsV1": {} },
                ],
            }))
            .unwrap()
        };
        let t0 = "2026-12-07T00:00:00Z";
        let t1 = "2026-12-07T00:05:00Z";
        let before = fingerprint(&meta("1", "bronze", t0, t0));
        assert_eq!(before, fingerprint(&meta("2", "bronze", t1, t0)));
        assert_ne!(before, fingerprint(&meta("3", "gold", t0, t0)));
        assert_ne!(before, fingerprint(&meta("4", "bronze", t0, t1)));
    }

    #[test]
    fn an_object_changed_when_its_fingerprint_moved_or_it_went() {
        let m = |v: &[(&str, &str)]| -> BTreeMap<String, String> {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let before = m(&[
            ("Namespace /a", "1"),
            ("Namespace /b", "2"),
            ("ResourceQuota a/q", "3"),
        ]);
        assert!(changed(&before, &before).is_empty());
        let after = m(&[
            ("Namespace /a", "1"),
            ("Namespace /b", "9"),
            ("ResourceQuota a/r", "4"),
        ]);
        assert_eq!(
            changed(&before, &after),
            BTreeMap::from([
                ("Namespace".to_string(), 1),
                ("ResourceQuota".to_string(), 1)
            ])
        );
    }
}
