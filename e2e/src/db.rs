//! Helpers shared by the cloud database tests: namespaces labelled for a cloud,
//! claims, readiness and deletion, an e2e copy of a shipped Composition, the crash-point
//! operator, and the loopback fakes' control API.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use kube::{Api, Client};
use paved_api::{conditions, PostgreSQLInstance};
use serde_json::{json, Value};

use crate::{eventually, repo_root, ControlPlane};

pub const T: Duration = Duration::from_secs(60);

/// A namespace as a ServiceClaim would label it, for `cloud`.
pub fn namespace(cp: &ControlPlane, name: &str, cloud: &str, classification: &str) -> Result<()> {
    apply(
        cp,
        &json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": { "name": name, "labels": {
                "paved.dev/cloud": cloud, "paved.dev/data-classification": classification,
                "paved.dev/owner": "team-claims", "paved.dev/service": name, "paved.dev/cost-center": "CC-4410",
            } }
        }),
    )
}

/// `kubectl apply --server-side` of one object.
pub fn apply(cp: &ControlPlane, obj: &Value) -> Result<()> {
    let (ok, out) = cp.kubectl_stdin(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        &obj.to_string(),
    )?;
    if !ok {
        bail!("kubectl apply: {out}");
    }
    Ok(())
}

/// The shipped Composition `file` under another name, changed by `edit`, applied.
pub fn composition(
    cp: &ControlPlane,
    file: &str,
    name: &str,
    edit: impl FnOnce(&mut Value),
) -> Result<()> {
    let text = std::fs::read_to_string(repo_root().join("compositions").join(file))?;
    let mut c: Value = serde_yaml::from_str(&text)?;
    c["metadata"] = json!({ "name": name });
    c["spec"]["postgresql"]["pollInterval"] = json!("2s");
    edit(&mut c);
    apply(cp, &c)
}

/// A claim in the Crossplane shape.
pub fn claim(name: &str, ns: &str, composition: &str, policy: Option<&str>) -> Value {
    let mut c = json!({
        "apiVersion": "paved.dev/v1alpha1", "kind": "PostgreSQLInstance",
        "metadata": { "name": name, "namespace": ns },
        "spec": {
            "compositionRef": { "name": composition },
            "parameters": { "size": "small", "storageGB": 50, "multiAZ": true },
            "writeConnectionSecretToRef": { "name": format!("{name}-conn") },
        },
    });
    if let Some(p) = policy {
        c["spec"]["deletionPolicy"] = json!(p);
    }
    c
}

pub fn create(cp: &ControlPlane, obj: &Value) -> Result<()> {
    let (ok, out) = cp.kubectl_stdin(&["create", "-f", "-"], &obj.to_string())?;
    if !ok {
        bail!("{out}");
    }
    Ok(())
}

pub async fn ready(api: &Api<PostgreSQLInstance>, name: &str) -> Result<PostgreSQLInstance> {
    eventually(&format!("{name} Ready"), T, || async {
        let p = api.get(name).await?;
        let ok = p
            .status
            .as_ref()
            .is_some_and(|s| conditions::is_ready(&s.conditions, p.metadata.generation));
        Ok(ok.then_some(p))
    })
    .await
}

pub async fn gone(api: &Api<PostgreSQLInstance>, name: &str) -> Result<()> {
    eventually(&format!("{name} deleted"), T, || async {
        Ok(api.get_opt(name).await?.is_none().then_some(()))
    })
    .await
}

/// Deletes every claim in `ns` and waits until they are gone (an operator must run).
pub async fn clear(client: &Client, cp: &ControlPlane, ns: &str) -> Result<()> {
    let api: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), ns);
    let _ = cp.kubectl(&[
        "delete",
        "postgresqlinstance",
        "--all",
        "-n",
        ns,
        "--wait=false",
    ]);
    eventually(
        &format!("claims in {ns} gone"),
        Duration::from_secs(120),
        || async {
            Ok(api
                .list(&Default::default())
                .await?
                .items
                .is_empty()
                .then_some(()))
        },
    )
    .await
}

/// Event reasons recorded in `ns`.
pub fn event_reasons(cp: &ControlPlane, ns: &str) -> Result<String> {
    cp.kubectl(&[
        "get",
        "events",
        "-n",
        ns,
        "-o",
        "jsonpath={.items[*].reason}",
    ])
}

/// Runs an operator armed to abort at `point` (a test-build crash point) and waits
/// until it has; fails if it never gets there.
pub async fn crash_at(cp: &ControlPlane, lease: &str, point: &str) -> Result<()> {
    let mut child = std::process::Command::new(crate::operator_binary())
        .args([
            "--metrics-addr",
            "127.0.0.1:0",
            "--lease-namespace",
            "paved-system",
            "--lease-name",
            lease,
            "--cloud-list-ttl-seconds",
            "1",
        ])
        .envs(cp.env.iter())
        .env("PAVED_TEST_CRASH_POINT", point)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > T {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the armed operator never reached crash point {point}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if status.success() {
        bail!("the armed operator exited cleanly instead of crashing at {point}");
    }
    Ok(())
}

/// A loopback fake's control API (`/_fake/...`), at the URL the control plane exported.
pub struct Fake {
    addr: String,
}

impl Fake {
    pub fn new(cp: &ControlPlane, url_var: &str) -> Result<Fake> {
        let url = cp
            .env
            .get(url_var)
            .with_context(|| format!("control-plane up exported no {url_var}"))?;
        Ok(Fake {
            addr: url.trim_start_matches("http://").to_string(),
        })
    }

    pub fn state(&self) -> Result<Value> {
        Ok(serde_json::from_str(&crate::http_get(
            &self.addr,
            "/_fake/state",
        )?)?)
    }

    pub fn calls(&self) -> Result<Value> {
        Ok(serde_json::from_str(&crate::http_get(
            &self.addr,
            "/_fake/calls",
        )?)?)
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<String> {
        crate::http_post(&self.addr, path, &body.to_string())
    }
}

/// After [`crash_at`] `after-create`: the claim recorded the pending create but not
/// its outcome. Returns the claim's UID and cloud name.
pub async fn crashed_after_create(
    api: &Api<PostgreSQLInstance>,
    name: &str,
) -> Result<(String, String)> {
    use kube::ResourceExt;
    let claim = api.get(name).await?;
    if !claim.annotations().contains_key("paved.dev/create-pending") {
        bail!("{name}: the pending create was not recorded before the call");
    }
    if claim
        .annotations()
        .contains_key("paved.dev/create-succeeded")
    {
        bail!("{name}: the crash came after the outcome was recorded");
    }
    let uid = claim.uid().context("uid")?;
    let external = paved_compose::postgresql::external_name(&uid);
    Ok((uid, external))
}

/// The ExternalSecret Paved wrote for a claim.
pub async fn external_secret(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<kube::api::DynamicObject> {
    let ar = paved_api::api_resource(
        "external-secrets.io/v1",
        "ExternalSecret",
        "externalsecrets",
    );
    Ok(
        Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), ns, &ar)
            .get(name)
            .await?,
    )
}

/// Runs e2e/moto/<script> with moto's Python and returns its JSON.
pub fn moto(cp: &ControlPlane, script: &str, args: &[&str]) -> Result<Value> {
    let out = std::process::Command::new(&cp.env["PAVED_MOTO_PYTHON"])
        .arg(repo_root().join("e2e/moto").join(script))
        .args(args)
        .envs(cp.env.iter().filter(|(k, _)| k.starts_with("AWS_")))
        .output()
        .context("running moto's python")?;
    if !out.status.success() {
        bail!(
            "{script} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The shipped postgresql-aws-standard as `name`, pointed at what e2e/moto/seed.py
/// created in moto, polling every `poll`.
pub fn aws_composition(cp: &ControlPlane, seed: &Value, name: &str, poll: &str) -> Result<()> {
    composition(cp, "postgresql-aws-standard.yaml", name, |c| {
        let pg = &mut c["spec"]["postgresql"];
        pg["encryption"]["keyId"] = seed["kms_key_arn"].clone();
        pg["network"]["subnetGroupName"] = seed["subnet_group"].clone();
        pg["network"]["securityGroupIds"] = json!([seed["security_group"]]);
        pg["pollInterval"] = json!(poll);
    })
}
