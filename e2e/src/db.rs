//! Helpers shared by the cloud database tests: namespaces labelled for a cloud,
//! claims, readiness and deletion, an e2e copy of a shipped Composition, the crash-point
//! operator, and the loopback fakes' control API.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use kube::{core::object::HasStatus, Api, Client};
use paved_api::{conditions, conditions::ClaimStatus, PostgreSQLInstance};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::{eventually, repo_root, ControlPlane};

pub const T: Duration = Duration::from_secs(60);

/// An existing namespace (not made by a ServiceClaim) that Team `team-claims` lists
/// with these facts: the platform's word for its cloud and classification, as a
/// database claim there is built with. Labels on it would be ignored.
pub fn namespace(cp: &ControlPlane, name: &str, cloud: &str, classification: &str) -> Result<()> {
    team_namespace(cp, "team-claims", name, cloud, classification)
}

/// Namespace `name`, created if missing, listed by Team `team` with these facts. Each
/// namespace's entry is applied under a field manager of its own, so entries of
/// several tests live side by side in the Team.
pub fn team_namespace(
    cp: &ControlPlane,
    team: &str,
    name: &str,
    cloud: &str,
    classification: &str,
) -> Result<()> {
    apply(
        cp,
        &json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name } }),
    )?;
    list_namespace(cp, team, name, (cloud, classification, None), false)
}

/// Team `team` listing existing namespace `name` with these facts (and `system`, where
/// given), and granting it to the team's ServiceClaim of that name to take over when
/// `adopt`.
pub fn list_namespace(
    cp: &ControlPlane,
    team: &str,
    name: &str,
    (cloud, classification, system): (&str, &str, Option<&str>),
    adopt: bool,
) -> Result<()> {
    let mut entry = json!({
        "name": name, "cloud": cloud, "dataClassification": classification,
        "costCenter": "CC-4410",
    });
    // Said only when granted, so a false is nobody's field to conflict over.
    if adopt {
        entry["adoptByServiceClaim"] = json!(true);
    }
    if let Some(s) = system {
        entry["system"] = json!(s);
    }
    apply_team(
        cp,
        &format!("e2e-ns-{name}"),
        team,
        json!({ "namespaces": [entry] }),
    )
    .with_context(|| format!("listing namespace {name} in Team {team}"))
}

/// Team `team` granting existing databases, each `(namespace, externalName,
/// composition)`, under field manager `manager`: what it applied before is replaced.
pub fn grant_existing(
    cp: &ControlPlane,
    manager: &str,
    team: &str,
    grants: &[(&str, &str, &str)],
) -> Result<()> {
    let grants: Vec<_> = grants
        .iter()
        .map(|&(ns, name, comp)| (ns, name, comp, "Observe"))
        .collect();
    grant(cp, manager, team, &grants)
}

/// As [`grant_existing`], each grant with its mode (`Observe` or `Adopt`).
pub fn grant(
    cp: &ControlPlane,
    manager: &str,
    team: &str,
    grants: &[(&str, &str, &str, &str)],
) -> Result<()> {
    let grants: Vec<Value> = grants
        .iter()
        .map(|(ns, name, comp, mode)| {
            json!({ "namespace": ns, "externalName": name, "composition": comp, "mode": mode })
        })
        .collect();
    apply_team(cp, manager, team, json!({ "existingDatabases": grants }))
}

/// Server-side applies `spec` of Team `team` under field manager `manager`, so the
/// entries of several tests live side by side in one Team.
fn apply_team(cp: &ControlPlane, manager: &str, team: &str, spec: Value) -> Result<()> {
    let (ok, out) = cp.kubectl_stdin(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            &format!("--field-manager={manager}"),
            "-f",
            "-",
        ],
        &json!({
            "apiVersion": "paved.dev/v1alpha1", "kind": "Team",
            "metadata": { "name": team }, "spec": spec
        })
        .to_string(),
    )?;
    if !ok {
        bail!("applying Team {team}: {out}");
    }
    Ok(())
}

/// Deletes ServiceClaim `name` (an operator must be running for its finalizers) and
/// waits until it and its namespace are gone: a clean slate for a test.
pub async fn fresh_service(client: &Client, name: &str) -> Result<()> {
    let claims: Api<paved_api::ServiceClaim> = Api::all(client.clone());
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let _ = claims
        .delete(name, &kube::api::DeleteParams::default())
        .await;
    eventually("leftovers gone", Duration::from_secs(120), || async {
        Ok(
            (claims.get_opt(name).await?.is_none() && nss.get_opt(name).await?.is_none())
                .then_some(()),
        )
    })
    .await
}

/// The explicit act that lets a `Delete` claim drop its data without a final
/// snapshot: the annotation `paved.dev/confirm-delete` set to the claim's UID.
pub async fn confirm_delete(api: &Api<paved_api::PostgreSQLInstance>, name: &str) -> Result<()> {
    let uid = api.get(name).await?.metadata.uid.unwrap_or_default();
    api.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(serde_json::json!({
            "metadata": { "annotations": { paved_api::annotations::CONFIRM_DELETE: uid } }
        })),
    )
    .await?;
    Ok(())
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

/// Waits for any Paved object to be Ready at its current generation.
pub async fn ready<K>(api: &Api<K>, name: &str) -> Result<K>
where
    K: kube::Resource + HasStatus + Clone + DeserializeOwned + std::fmt::Debug,
    K::Status: ClaimStatus,
{
    eventually(&format!("{name} Ready"), T, || async {
        let p = api.get(name).await?;
        let ok = p
            .status()
            .is_some_and(|s| conditions::is_ready(s.conditions(), p.meta().generation));
        Ok(ok.then_some(p))
    })
    .await
}

/// The reasons of the Events about object `name` in `namespace` (cluster-scoped
/// objects' are in `default`).
pub fn event_reasons_about(cp: &ControlPlane, namespace: &str, name: &str) -> Result<String> {
    cp.kubectl(&[
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        &format!("involvedObject.name={name}"),
        "-o",
        "jsonpath={.items[*].reason}",
    ])
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
        "postgresqlinstances.paved.dev",
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

/// Runs an operator armed to abort at `point` (a test-build crash point) of claim
/// `claim` (`namespace/name`) and waits until it has; fails if it never gets there.
pub async fn crash_at(cp: &ControlPlane, lease: &str, point: &str, claim: &str) -> Result<()> {
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
        .env("PAVED_TEST_CRASH_CLAIM", claim)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > 2 * T {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the armed operator never reached crash point {point} of {claim}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if status.success() {
        bail!("the armed operator exited cleanly instead of crashing at {point} of {claim}");
    }
    Ok(())
}

/// The steps of a cloud create at which the crash tests kill the operator, in order:
/// before the cloud call (the pending create recorded), right after it (nothing of the
/// outcome recorded), and on either side of the status write that follows.
pub const CRASH_POINTS: [&str; 4] = [
    "before-create",
    "after-create",
    "before-status",
    "after-status",
];

/// One claim `crash-<point>` per crash point, made by `make(name)`, each followed by an
/// operator armed to abort at that step of that claim; checks that the claim recorded
/// exactly what that step had done. Returns each claim's (name, UID, cloud name); the
/// caller then runs a normal operator and checks every claim ends Ready with exactly
/// one cloud resource.
pub async fn crash_at_every_step(
    cp: &ControlPlane,
    api: &Api<PostgreSQLInstance>,
    lease: &str,
    make: impl Fn(&str) -> Value,
) -> Result<Vec<(String, String, String)>> {
    use kube::ResourceExt;
    let mut claims = vec![];
    for point in CRASH_POINTS {
        let name = format!("crash-{point}");
        let claim = make(&name);
        create(cp, &claim)?;
        let at = format!(
            "{}/{name}",
            claim["metadata"]["namespace"].as_str().unwrap_or("")
        );
        // A Lease per step: the aborted run never releases its Lease, and the next
        // armed run should not wait for it to expire.
        crash_at(cp, &format!("{lease}-{point}"), point, &at).await?;
        let c = api.get(&name).await?;
        let pending = c.annotations().contains_key("paved.dev/create-pending");
        let succeeded = c.annotations().contains_key("paved.dev/create-succeeded");
        let creating = c
            .status
            .as_ref()
            .and_then(|s| conditions::find(&s.conditions, "Ready"))
            .is_some_and(|r| r.reason == "Creating");
        let recorded = match point {
            "before-create" | "after-create" => pending && !succeeded && !creating,
            "before-status" => succeeded && !creating,
            _ => succeeded && creating,
        };
        if !recorded {
            bail!(
                "{name}: after a crash at {point} the claim recorded pending={pending} \
                 succeeded={succeeded} status Creating={creating}"
            );
        }
        let uid = c.uid().context("uid")?;
        let external = paved_compose::postgresql::external_name(&uid);
        claims.push((name, uid, external));
    }
    Ok(claims)
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

    /// A GET of a `/_fake/` read (no auth), parsed.
    pub fn get(&self, path: &str) -> Result<Value> {
        Ok(serde_json::from_str(&crate::http_get(&self.addr, path)?)?)
    }

    /// A call to the faked cloud API as a caller with `token`: the status and the
    /// parsed body (null when empty).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        let auth = format!("Bearer {token}");
        let body = body.map(Value::to_string);
        let (status, text) = crate::http_request(
            &self.addr,
            method,
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.as_deref(),
        )?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// A token of the Azure fake's Entra ID endpoint (any client).
    pub fn azure_token(&self) -> Result<String> {
        let form = "client_id=e2e&scope=https%3A%2F%2Fmanagement.azure.com%2F.default&grant_type=client_credentials\
                    &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=e2e";
        let (status, text) = crate::http_request(
            &self.addr,
            "POST",
            "/11111111-1111-1111-1111-111111111111/oauth2/v2.0/token",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some(form),
        )?;
        anyhow::ensure!(status == 200, "token: HTTP {status}: {text}");
        let v: Value = serde_json::from_str(&text)?;
        Ok(v["access_token"].as_str().unwrap_or_default().to_string())
    }

    /// A token of the GCP fake's metadata server.
    pub fn gcp_token(&self) -> Result<String> {
        let (status, text) = crate::http_request(
            &self.addr,
            "GET",
            "/computeMetadata/v1/instance/service-accounts/default/token",
            &[("Metadata-Flavor", "Google")],
            None,
        )?;
        anyhow::ensure!(status == 200, "token: HTTP {status}: {text}");
        let v: Value = serde_json::from_str(&text)?;
        Ok(v["access_token"].as_str().unwrap_or_default().to_string())
    }
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

/// Sets what adopting does to a password nobody keeps in Composition `composition`
/// (`Keep` or `Rotate`; a patch outlives a later apply of the Composition).
pub fn existing_password(cp: &ControlPlane, composition: &str, how: &str) -> Result<()> {
    cp.kubectl(&[
        "patch",
        "compositions.paved.dev",
        composition,
        "--type=merge",
        "-p",
        &json!({ "spec": { "postgresql": { "credentials": { "existingPassword": how } } } })
            .to_string(),
    ])?;
    Ok(())
}

/// RDS instance `id` as boto3 describes it in moto, if it exists.
pub fn rds_instance(cp: &ControlPlane, id: &str) -> Result<Option<Value>> {
    Ok(moto(cp, "query.py", &["instances"])?
        .as_array()
        .context("a list of instances")?
        .iter()
        .find(|i| i["DBInstanceIdentifier"] == id)
        .cloned())
}

/// Observes existing database `name` through a claim `report` in `ns` (its Team must
/// grant it), waits until it is judged and returns the fields it falls short in (the
/// word before each violation's colon); the claim is deleted again.
pub async fn observe_report(
    cp: &ControlPlane,
    ns: &str,
    composition: &str,
    name: &str,
) -> Result<Vec<String>> {
    let pgs: Api<PostgreSQLInstance> = Api::namespaced(cp.client().await?, ns);
    create(
        cp,
        &json!({
            "apiVersion": "paved.dev/v1alpha1", "kind": "PostgreSQLInstance",
            "metadata": { "name": "report", "namespace": ns },
            "spec": { "compositionRef": { "name": composition },
                      "existing": { "externalName": name } },
        }),
    )?;
    let p = ready(&pgs, "report").await?;
    let st = p.status.unwrap_or_default();
    let compliant = paved_api::conditions::find(&st.conditions, "Compliant")
        .map(|c| c.reason.clone())
        .unwrap_or_default();
    pgs.delete("report", &Default::default()).await?;
    gone(&pgs, "report").await?;
    let mut fields: Vec<String> = st
        .violations
        .iter()
        .map(|v| v.split(':').next().unwrap_or_default().to_string())
        .collect();
    fields.push(format!("Compliant={compliant}"));
    Ok(fields)
}

/// The shipped postgresql-aws-standard as `name`, pointed at what e2e/moto/seed.py
/// created in moto, polling every `poll`.
pub fn aws_composition(cp: &ControlPlane, seed: &Value, name: &str, poll: &str) -> Result<()> {
    composition(cp, "postgresql-aws-standard.yaml", name, |c| {
        let pg = &mut c["spec"]["postgresql"];
        pg["encryption"]["keyId"] = seed["kms_key_arn"].clone();
        pg["network"]["subnetGroupName"] = seed["subnet_group"].clone();
        pg["network"]["securityGroupIds"] = json!([seed["security_group"]]);
        // Each database its own group, admitting the plane's "cluster" range only.
        pg["network"]["ownSecurityGroup"] =
            json!({ "vpcId": seed["vpc_id"], "clientCidrs": [seed["client_cidr"]] });
        pg["pollInterval"] = json!(poll);
    })
}
