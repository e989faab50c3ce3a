//! Secrets through the service's own identity, with the real External Secrets
//! Operator (control-plane's `eso`): a service's app secret and its `local` database's
//! credentials are delivered through its namespace's SecretStore `paved`, which
//! authenticates as the service's ServiceAccount, and the delivered credentials work.
//! Another team, acting through its own namespace and store (impersonated, as its
//! members act), can read nothing of the first service: the Kubernetes API refuses the
//! read (403), no Secret with the victim's data appears, and nothing of the victim
//! changes.

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};
use paved_api::ServiceClaim;
use paved_e2e::{control_plane, db::fresh_service, eventually, ControlPlane, Operator};
use serde_json::{json, Value};
use tokio_postgres::NoTls;

const T: Duration = Duration::from_secs(90);
const VICTIM: &str = "e2e-sec-victim";
const ATTACKER: &str = "e2e-sec-attacker";
const SECRETS_NS: &str = paved_api::DEFAULT_SECRETS_NAMESPACE;
/// The victim's prefix in the secrets namespace: its team, then its name.
const GRANT: &str = "team-a.e2e-sec-victim";

/// Runs kubectl as a member of `team` (its group, as the Team names it).
fn as_team(
    cp: &ControlPlane,
    team: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<(bool, String)> {
    let mut full = vec![format!("--as={team}-member"), format!("--as-group={team}")];
    full.extend(args.iter().map(|a| a.to_string()));
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    paved_e2e::run_with(cp.kubectl_command(&refs), stdin)
}

fn service(name: &str, owner: &str, secrets: Value, databases: Value) -> Result<ServiceClaim> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "paved.dev/v1alpha1", "kind": "ServiceClaim",
        "metadata": { "name": name },
        "spec": { "owner": owner, "system": "s", "costCenter": "CC-7", "cloud": "local",
                  "dataClassification": "internal", "secrets": secrets, "databases": databases }
    }))?)
}

async fn secret_data(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<Option<(String, std::collections::BTreeMap<String, String>)>> {
    let s = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await?;
    Ok(s.map(|s| {
        let rv = s.resource_version().unwrap_or_default();
        let data = s
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
            .collect();
        (rv, data)
    }))
}

/// `kubectl get ARGS -o json`, parsed.
fn get_json(cp: &ControlPlane, args: &[&str]) -> Result<Value> {
    let mut all = vec!["get"];
    all.extend(args);
    all.extend(["-o", "json"]);
    Ok(serde_json::from_str(&cp.kubectl(&all)?)?)
}

/// A Secret the platform keeps for a service in the secrets namespace.
fn platform_secret(cp: &ControlPlane, name: &str, token: &str) -> Result<()> {
    let (ok, out) = cp.kubectl_stdin(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        &json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": name, "namespace": SECRETS_NS },
            "stringData": { "token": token },
        })
        .to_string(),
    )?;
    anyhow::ensure!(ok, "creating Secret {name}: {out}");
    Ok(())
}

/// Once the ExternalSecret is not Ready with a refusal that says `why`: what External
/// Secrets said about it (its Events carry the provider's error: the API server's
/// refusal, or the cloud's).
async fn refused(cp: &ControlPlane, ns: &str, name: &str, why: &str) -> Result<String> {
    eventually(
        &format!("ExternalSecret {ns}/{name} refused"),
        T,
        || async {
            let es = get_json(cp, &["externalsecret", "-n", ns, name])?;
            let not_ready = es["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "False");
            let events = get_json(
                cp,
                &[
                    "events",
                    "-n",
                    ns,
                    "--field-selector",
                    &format!("involvedObject.name={name},involvedObject.kind=ExternalSecret"),
                ],
            )?;
            let said: Vec<String> = events["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["message"].as_str().map(String::from))
                .collect();
            Ok((not_ready && said.iter().any(|m| m.contains(why))).then(|| said.join("\n")))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_reads_its_own_secrets_through_its_own_identity_and_no_other_team_can(
) -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let _op = Operator::start(cp, "secrets-delivery", &[])?;
    fresh_service(&client, VICTIM).await?;
    fresh_service(&client, ATTACKER).await?;

    // The platform keeps the victim's app secret in the secrets namespace, and the
    // attacker's own, so its store is in working order: a refusal below is the API
    // server judging the read, not a store that cannot read anything.
    platform_secret(cp, &format!("{GRANT}.app"), "victim-token-value")?;
    platform_secret(cp, &format!("team-b.{ATTACKER}.own"), "attacker-token")?;

    let claims: Api<ServiceClaim> = Api::all(client.clone());
    claims
        .create(
            &Default::default(),
            &service(
                VICTIM,
                "team-a",
                json!([{ "name": "app" }]),
                json!([{ "name": "main" }]),
            )?,
        )
        .await?;
    claims
        .create(
            &Default::default(),
            &service(ATTACKER, "team-b", json!([{ "name": "own" }]), json!([]))?,
        )
        .await?;

    // Delivered by ESO through the victim's own store.
    let (_, app) = eventually("the app secret delivered", T, || async {
        secret_data(&client, VICTIM, "app").await
    })
    .await?;
    assert_eq!(app["token"], "victim-token-value");
    let (conn_rv, conn) = eventually("the connection Secret delivered", T, || async {
        secret_data(&client, VICTIM, "main-connection").await
    })
    .await?;
    // The delivered credentials work, exactly as delivered.
    let (pg, c) = tokio_postgres::connect(
        &conn["uri"].replace("sslmode=prefer", "sslmode=disable"),
        NoTls,
    )
    .await
    .context("connecting with the delivered uri")?;
    tokio::spawn(c);
    let who: String = pg.query_one("SELECT current_user::text", &[]).await?.get(0);
    assert_eq!(who, conn["username"]);
    // The service's egress to its database names that one address, on its port.
    let np = get_json(cp, &["networkpolicy", "-n", VICTIM, "paved-db-main"])?;
    assert_eq!(
        np["spec"]["egress"][0],
        json!({ "to": [{ "ipBlock": { "cidr": format!("{}/32", conn["host"]) } }],
                "ports": [{ "protocol": "TCP", "port": conn["port"].parse::<i64>()? }] })
    );
    // The grant is exactly the victim's own Secrets.
    let role = get_json(cp, &["role", "-n", SECRETS_NS, GRANT])?;
    assert_eq!(
        role["rules"],
        json!([{ "apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
                 "resourceNames": [format!("{GRANT}.app"), format!("{GRANT}.postgresql.main")] }])
    );
    let creds_key = format!("{GRANT}.postgresql.main");
    let (creds_rv, _) = secret_data(&client, SECRETS_NS, &creds_key)
        .await?
        .context("credentials kept")?;

    // The attacking team, through its own namespace's store: by name, the database
    // credentials, and a search over the whole store.
    let steal = |name: &str, spec: Value| {
        json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": { "name": name, "namespace": ATTACKER },
            "spec": { "refreshInterval": "10s",
                      "secretStoreRef": { "kind": "SecretStore", "name": "paved" },
                      "target": { "name": name } }
        })
        .as_object()
        .cloned()
        .map(|mut o| {
            let s = o["spec"].as_object_mut().unwrap();
            for (k, v) in spec.as_object().unwrap() {
                s.insert(k.clone(), v.clone());
            }
            Value::Object(o)
        })
        .unwrap()
    };
    let attempts = [
        steal(
            "steal-app",
            json!({ "data": [{ "secretKey": "t", "remoteRef": { "key": format!("{GRANT}.app"), "property": "token" } }] }),
        ),
        steal(
            "steal-db",
            json!({ "dataFrom": [{ "extract": { "key": creds_key } }] }),
        ),
        steal(
            "steal-all",
            json!({ "dataFrom": [{ "find": { "name": { "regexp": ".*" } } }] }),
        ),
    ];
    for a in &attempts {
        let (ok, out) = as_team(cp, "team-b", &["apply", "-f", "-"], Some(&a.to_string()))?;
        anyhow::ensure!(
            ok,
            "team-b may write ExternalSecrets in its own namespace: {out}"
        );
    }
    // Its own secret arrives: the store works.
    eventually("the attacker's own secret delivered", T, || async {
        secret_data(&client, ATTACKER, "own").await
    })
    .await?;
    for name in ["steal-app", "steal-db", "steal-all"] {
        // Refused by the API server (403 Forbidden), not by convention.
        let said = refused(cp, ATTACKER, name, "forbidden").await?;
        assert!(
            said.contains(&format!("system:serviceaccount:{ATTACKER}:{ATTACKER}")),
            "{name}: refused as the attacker's own ServiceAccount: {said}"
        );
        assert!(
            secret_data(&client, ATTACKER, name).await?.is_none(),
            "no Secret {name} appears"
        );
    }
    // Nor can it make a store of its own, or point one at the victim's identity.
    let (ok, out) = as_team(
        cp,
        "team-b",
        &["apply", "-f", "-"],
        Some(
            &json!({
                "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
                "metadata": { "name": "mine", "namespace": ATTACKER },
                "spec": { "provider": { "kubernetes": {
                    "remoteNamespace": SECRETS_NS,
                    "server": { "caProvider": { "type": "ConfigMap", "name": "kube-root-ca.crt", "key": "ca.crt" } },
                    "auth": { "serviceAccount": { "name": VICTIM, "namespace": VICTIM } } } } }
            })
            .to_string(),
        ),
    )?;
    assert!(
        !ok && out.contains("forbidden"),
        "team-b cannot write SecretStores: {out}"
    );

    // On a cloud where the store reads as an identity the Composition's
    // workloadIdentity names (which may serve more than one service), a team writes no
    // ExternalSecrets of its own.
    const CLOUDY: &str = "e2e-sec-cloud";
    fresh_service(&client, CLOUDY).await?;
    let mut cloudy = service(CLOUDY, "team-b", json!([]), json!([]))?;
    cloudy.spec.cloud = Some(paved_api::Cloud::Aws);
    claims.create(&Default::default(), &cloudy).await?;
    eventually("the aws service's namespace", T, || async {
        Ok(cp.kubectl(&["get", "namespace", CLOUDY]).ok())
    })
    .await?;
    let mut on_aws = attempts[0].clone();
    on_aws["metadata"]["namespace"] = json!(CLOUDY);
    let (ok, out) = as_team(
        cp,
        "team-b",
        &["apply", "-f", "-"],
        Some(&on_aws.to_string()),
    )?;
    assert!(!ok && out.contains("ask the platform"), "{out}");
    fresh_service(&client, CLOUDY).await?;

    // Checked from outside: nothing of the victim changed.
    assert_eq!(
        secret_data(&client, SECRETS_NS, &creds_key)
            .await?
            .map(|s| s.0),
        Some(creds_rv)
    );
    assert_eq!(
        secret_data(&client, VICTIM, "main-connection")
            .await?
            .map(|s| s.0),
        Some(conn_rv)
    );
    for name in ["steal-app", "steal-db", "steal-all"] {
        let _ = cp.kubectl(&["delete", "externalsecret", "-n", ATTACKER, name]);
    }

    // The service goes: its grant and its credentials go with it.
    fresh_service(&client, VICTIM).await?;
    eventually("the grant gone", T, || async {
        Ok(cp
            .kubectl(&["get", "role,rolebinding", "-n", SECRETS_NS, GRANT])
            .is_err()
            .then_some(()))
    })
    .await?;
    assert!(
        secret_data(&client, SECRETS_NS, &creds_key)
            .await?
            .is_none(),
        "credentials forgotten with the database"
    );
    fresh_service(&client, ATTACKER).await?;
    Ok(())
}

/// On AWS (moto): Paved makes the service's own IAM role (named from the claim's UID,
/// trusted by exactly its ServiceAccount through the cluster's OIDC provider, allowed
/// exactly its secret path and its database's master secret), puts it back when it is
/// deleted by hand, and deletes it with the claim. The service's store authenticates
/// by web identity as that role (STS AssumeRoleWithWebIdentity with the
/// ServiceAccount's token, which External Secrets requests) and delivers the
/// RDS-managed master secret: the connection Secret holds exactly what Secrets Manager
/// holds. Everything is checked from outside, with boto3 against moto.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_service_reads_its_database_credentials_as_its_own_role() -> Result<()> {
    const SVC: &str = "e2e-sec-aws";
    let cp = control_plane();
    let client = cp.client().await?;
    let seed = paved_e2e::db::moto(cp, "seed.py", &[])?;
    paved_e2e::db::aws_composition(cp, &seed, "postgresql-aws-secrets", "2s")?;
    let _op = Operator::start(cp, "secrets-aws", &["--cloud-list-ttl-seconds", "1"])?;
    fresh_service(&client, SVC).await?;
    // The platform turns on per-service roles: the plane's service-account issuer.
    let oidc = format!(
        "arn:aws:iam::{}:oidc-provider/kubernetes.default.svc.cluster.local",
        paved_e2e::MOTO_ACCOUNT
    );
    let identity = |on: bool| -> Result<()> {
        let v = if on {
            json!({ "aws": { "oidcProviderArn": oidc, "pollInterval": "2s" } })
        } else {
            Value::Null
        };
        paved_e2e::patch_service_composition(cp, "service-aws", json!({ "identity": v }))
    };
    identity(true)?;
    let mut claim = service(
        SVC,
        "team-a",
        json!([]),
        json!([{ "name": "main", "compositionRef": { "name": "postgresql-aws-secrets" } }]),
    )?;
    claim.spec.cloud = Some(paved_api::Cloud::Aws);
    // What an earlier ServiceClaim of this name left behind (its finalizer removed by
    // hand): a role trusting the same ServiceAccount name. It goes before the new
    // service's ServiceAccount exists.
    let trust = json!({ "Version": "2012-10-17", "Statement": [{ "Effect": "Allow",
        "Principal": { "Federated": oidc }, "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": { "StringEquals": {
            "kubernetes.default.svc.cluster.local:sub": format!("system:serviceaccount:{SVC}:{SVC}"),
            "kubernetes.default.svc.cluster.local:aud": "sts.amazonaws.com" } } }] });
    let stale = "paved-00000000-0000-0000-0000-00000000dead";
    if paved_e2e::db::moto(cp, "query.py", &["role", stale])?.is_null() {
        paved_e2e::db::moto(
            cp,
            "query.py",
            &[
                "create-role",
                stale,
                &format!("/paved/{SVC}/"),
                "an-earlier-claim",
                &trust.to_string(),
            ],
        )?;
    }
    let made = Api::<ServiceClaim>::all(client.clone())
        .create(&Default::default(), &claim)
        .await?;
    let role_name = format!("paved-{}", made.uid().unwrap());
    let role_arn = format!(
        "arn:aws:iam::{}:role/paved/{SVC}/{role_name}",
        paved_e2e::MOTO_ACCOUNT
    );

    let pgs: Api<paved_api::PostgreSQLInstance> = Api::namespaced(client.clone(), SVC);
    let db = paved_e2e::db::ready(&pgs, "main").await?;
    let id = db
        .status
        .and_then(|s| s.external_name)
        .context("external name")?;
    let instance = paved_e2e::db::moto(cp, "query.py", &["instances"])?
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["DBInstanceIdentifier"] == id.as_str())
        .cloned()
        .context("the instance in moto")?;
    let arn = instance["MasterUserSecret"]["SecretArn"]
        .as_str()
        .context("RDS manages the master secret")?
        .to_string();
    let master = paved_e2e::db::moto(cp, "query.py", &["secret-value", &arn])?;

    let (_, conn) = eventually(
        "the connection Secret delivered as the service's role",
        T,
        || async { secret_data(&client, SVC, "main-connection").await },
    )
    .await?;
    assert_eq!(conn["username"], master["username"]);
    assert_eq!(conn["password"], master["password"]);
    assert_eq!(conn["host"], instance["Endpoint"]["Address"]);
    // The store that read it is the namespace's own, as the service's ServiceAccount.
    let store = get_json(cp, &["secretstore", "paved", "-n", SVC])?;
    assert_eq!(
        store["spec"]["provider"]["aws"]["auth"]["jwt"]["serviceAccountRef"]["name"],
        SVC
    );
    let sa = get_json(cp, &["serviceaccount", SVC, "-n", SVC])?;
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        role_arn
    );

    // The role, from outside: the claim's, trusted by exactly the ServiceAccount,
    // allowed exactly the service's path and its database's master secret.
    let role = eventually("the role allowed the database's secret", T, || async {
        let r = paved_e2e::db::moto(cp, "query.py", &["role", &role_name])?;
        let policy = r["Policy"].to_string();
        let allows_db = policy.contains(&arn) && policy.contains("rds-db:connect");
        Ok(allows_db.then_some(r))
    })
    .await?;
    assert_eq!(role["Tags"]["paved.dev/claim-uid"], made.uid().unwrap());
    let trust = &role["AssumeRolePolicyDocument"]["Statement"][0];
    assert_eq!(trust["Action"], "sts:AssumeRoleWithWebIdentity");
    assert_eq!(trust["Principal"]["Federated"], oidc);
    assert_eq!(
        trust["Condition"]["StringEquals"]["kubernetes.default.svc.cluster.local:sub"],
        format!("system:serviceaccount:{SVC}:{SVC}")
    );
    let statements = role["Policy"]["Statement"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(statements.len(), 3, "{statements:?}");
    // IAM database authentication to its own instance alone (on since creation).
    assert_eq!(instance["IAMDatabaseAuthenticationEnabled"], true);
    let dbi = instance["DbiResourceId"].as_str().context("resource id")?;
    assert_eq!(statements[2]["Action"], "rds-db:connect");
    assert_eq!(
        statements[2]["Resource"],
        json!([format!(
            "arn:aws:rds-db:us-east-1:{}:dbuser:{dbi}/*",
            paved_e2e::MOTO_ACCOUNT
        )])
    );
    let db_status = pgs.get("main").await?.status.context("status")?;
    assert_eq!(db_status.resource_id.as_deref(), Some(dbi));
    // The database's key decrypts its secret, through Secrets Manager only.
    assert_eq!(statements[1]["Action"], "kms:Decrypt");
    assert_eq!(statements[1]["Resource"], json!([seed["kms_key_arn"]]));
    assert_eq!(
        statements[1]["Condition"]["StringEquals"]["kms:ViaService"],
        "secretsmanager.us-east-1.amazonaws.com"
    );
    let mut resources: Vec<String> = statements[0]["Resource"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(String::from))
        .collect();
    resources.sort();
    let mut want = vec![
        arn.clone(),
        format!(
            "arn:aws:secretsmanager:us-east-1:{}:secret:team-a/{SVC}/*",
            paved_e2e::MOTO_ACCOUNT
        ),
    ];
    want.sort();
    assert_eq!(resources, want, "its own secrets and nothing else");
    let status = Api::<ServiceClaim>::all(client.clone())
        .get(SVC)
        .await?
        .status
        .unwrap();
    assert_eq!(status.identity.as_deref(), Some(role_arn.as_str()));

    assert!(
        paved_e2e::db::moto(cp, "query.py", &["role", stale])?.is_null(),
        "the role an earlier claim of the name left is gone"
    );
    // Its team, which may write its own ServiceClaims (paved-claim-author, as the
    // platform binds it), cannot take Paved's finalizer off: the role would outlive
    // the claim for the next holder of the name.
    paved_e2e::db::apply(
        cp,
        &json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": { "name": "e2e-secrets-author-claims" },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "paved-claim-author" },
            "subjects": [ { "apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "team-a" } ],
        }),
    )?;
    let (ok, out) = as_team(
        cp,
        "team-a",
        &[
            "patch",
            "serviceclaim",
            SVC,
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ],
        None,
    )?;
    assert!(!ok && out.contains("paved.dev/cleanup is Paved's"), "{out}");

    // Policy evaluation, not convention (moto with IAM authorization, e2e/moto/server.py):
    // the service's own token assumes its role and reads its database's secret; the
    // role is refused another team's secret; another ServiceAccount's token cannot
    // assume the role at all.
    let other = paved_e2e::db::moto(cp, "query.py", &["put-secret", "team-b/other-svc/api"])?;
    let token = |ns: &str, sa: &str| -> Result<String> {
        Ok(cp
            .kubectl(&[
                "create",
                "token",
                sa,
                "-n",
                ns,
                "--audience",
                "sts.amazonaws.com",
            ])?
            .trim()
            .to_string())
    };
    let own = token(SVC, SVC)?;
    let read_as = |token: &str, secret: &str| {
        paved_e2e::db::moto(cp, "query.py", &["read-as", &role_arn, token, secret])
    };
    assert_eq!(
        read_as(&own, &arn)?,
        json!({ "assumed": true, "read": true, "error": null }),
        "its own database's secret"
    );
    let denied = read_as(&own, other.as_str().context("arn")?)?;
    assert_eq!(
        denied,
        json!({ "assumed": true, "read": false, "error": "AccessDeniedException" }),
        "another team's secret, refused by the role's policy"
    );
    let stranger = token(SVC, "default")?;
    assert_eq!(
        read_as(&stranger, &arn)?["assumed"],
        false,
        "another ServiceAccount cannot assume the role"
    );

    // With its own role, the team may write its own ExternalSecrets here (the
    // namespace says its store reads as the service alone); one naming another
    // team's secret is refused by the role's policy, and nothing is delivered.
    let ns_labels = get_json(cp, &["namespace", SVC])?["metadata"]["labels"].clone();
    assert_eq!(ns_labels["paved.dev/store-identity"], "service");
    let steal = json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": { "name": "steal-other", "namespace": SVC },
        "spec": { "refreshInterval": "10s",
                  "secretStoreRef": { "kind": "SecretStore", "name": "paved" },
                  "target": { "name": "steal-other" },
                  "dataFrom": [{ "extract": { "key": "team-b/other-svc/api" } }] }
    });
    let (ok, out) = as_team(
        cp,
        "team-a",
        &["apply", "-f", "-"],
        Some(&steal.to_string()),
    )?;
    assert!(ok, "the team may write its own ExternalSecret: {out}");
    let said = refused(cp, SVC, "steal-other", "AccessDeniedException").await?;
    assert!(said.contains("secretsmanager:GetSecretValue"), "{said}");
    assert!(
        secret_data(&client, SVC, "steal-other").await?.is_none(),
        "nothing of the other team delivered"
    );

    // Widened by hand (a managed policy allowing everything attached, an inline one
    // added): both taken off again.
    paved_e2e::db::moto(cp, "query.py", &["widen-role", &role_name])?;
    eventually("the extra policies removed", T, || async {
        let r = paved_e2e::db::moto(cp, "query.py", &["role", &role_name])?;
        Ok((r["Attached"] == json!([]) && r["Inline"] == json!(["paved"])).then_some(()))
    })
    .await?;

    // Deleted by hand: made again, and said so.
    paved_e2e::db::moto(cp, "query.py", &["delete-role", &role_name])?;
    eventually("the role made again", T, || async {
        let r = paved_e2e::db::moto(cp, "query.py", &["role", &role_name])?;
        Ok((!r.is_null() && !r["Policy"].is_null()).then_some(()))
    })
    .await?;
    eventually("a DriftCorrected Event", T, || async {
        let reasons = paved_e2e::db::event_reasons_about(cp, "default", SVC)?;
        Ok(reasons.contains("DriftCorrected").then_some(()))
    })
    .await?;

    // While it may, the team also slips a read of another team's secret into Paved's
    // own ExternalSecret (its role refuses it for now).
    let (ok, out) = as_team(
        cp,
        "team-a",
        &[
            "patch",
            "externalsecret",
            "main-connection",
            "-n",
            SVC,
            "--type=merge",
            "-p",
            r#"{"spec":{"data":[{"secretKey":"stolen","remoteRef":{"key":"team-b/other-svc/api"}}]}}"#,
        ],
        None,
    )?;
    assert!(ok, "{out}");

    // The platform takes per-service roles away again: the store now reads as the
    // Composition's shared role, so the team's own ExternalSecret goes, and Paved's
    // as the team left it (Warning Events say so), before the ServiceAccount
    // switches; admission refuses new ones; Paved's delivery comes back as Paved
    // writes it; the role the Composition no longer asks for is deleted.
    identity(false)?;
    eventually("the team's ExternalSecret removed", T, || async {
        let gone = get_json(cp, &["externalsecrets", "-n", SVC])?["items"]
            .as_array()
            .is_some_and(|l| !l.iter().any(|e| e["metadata"]["name"] == "steal-other"));
        Ok(gone.then_some(()))
    })
    .await?;
    // Revoking: the namespace says so while the team's ExternalSecrets go, then the
    // label goes with the switch.
    let labels = get_json(cp, &["namespace", SVC])?["metadata"]["labels"].clone();
    let during = labels["paved.dev/store-identity"].as_str().unwrap_or("");
    assert!(
        during.is_empty() || during.starts_with("revoking-"),
        "{labels}"
    );
    if !during.is_empty() {
        let sa = get_json(cp, &["serviceaccount", SVC, "-n", SVC])?;
        assert_eq!(
            sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"], role_arn,
            "the ServiceAccount switches only after the revocation"
        );
    }
    eventually(
        "the namespace's store no longer the service's",
        T,
        || async {
            let l = get_json(cp, &["namespace", SVC])?["metadata"]["labels"].clone();
            Ok(l.get("paved.dev/store-identity").is_none().then_some(()))
        },
    )
    .await?;
    let reasons = paved_e2e::db::event_reasons_about(cp, "default", SVC)?;
    assert!(
        reasons.contains("ExternalSecretRemoved") && reasons.contains("ExternalSecretRepaired"),
        "{reasons}"
    );
    let (ok, out) = as_team(
        cp,
        "team-a",
        &["apply", "-f", "-"],
        Some(&steal.to_string()),
    )?;
    assert!(
        !ok && out.contains("reads as the service alone"),
        "no new team ExternalSecret through a shared store: {out}"
    );
    let (_, conn) = eventually(
        "Paved's delivery written again as Paved writes it",
        T,
        || async {
            let es = get_json(cp, &["externalsecret", "main-connection", "-n", SVC]).ok();
            let clean =
                es.is_some_and(|e| e["spec"]["data"].as_array().is_none_or(|d| d.is_empty()));
            let data = secret_data(&client, SVC, "main-connection").await?;
            Ok(data.filter(|_| clean))
        },
    )
    .await?;
    assert!(
        !conn.contains_key("stolen"),
        "nothing of the other team delivered"
    );
    assert_eq!(conn["password"], master["password"]);
    eventually("the role the Composition dropped deleted", T, || async {
        let r = paved_e2e::db::moto(cp, "query.py", &["role", &role_name])?;
        Ok(r.is_null().then_some(()))
    })
    .await?;
    // And back: the service's own role again.
    identity(true)?;
    eventually("the role made again", T, || async {
        let r = paved_e2e::db::moto(cp, "query.py", &["role", &role_name])?;
        Ok((!r.is_null()).then_some(()))
    })
    .await?;

    // The claim goes: so does its role.
    fresh_service(&client, SVC).await?;
    assert!(
        paved_e2e::db::moto(cp, "query.py", &["role", &role_name])?.is_null(),
        "the role is deleted with the claim"
    );
    identity(false)?;
    Ok(())
}

/// `kubectl auth can-i get secret/NAME` in the secrets namespace, as ServiceAccount
/// `<ns>/<ns>` (a service's own).
fn service_may_read(cp: &ControlPlane, ns: &str, secret: &str) -> Result<bool> {
    let (_, out) = paved_e2e::run_with(
        cp.kubectl_command(&[
            "auth",
            "can-i",
            "get",
            &format!("secret/{secret}"),
            "-n",
            SECRETS_NS,
            &format!("--as=system:serviceaccount:{ns}:{ns}"),
        ]),
        None,
    )?;
    Ok(out.trim() == "yes")
}

/// Name reuse: a service deleted with `--cascade=orphan` leaves its grant in the
/// secrets namespace (a Role and a RoleBinding for the ServiceAccount `<name>/<name>`,
/// which bind by name). Another team's new service of that name gets that
/// ServiceAccount, so the old grant would hand it the old service's Secrets: it goes
/// before the new service is served. Checked from outside: the old grant is gone and
/// the new service's ServiceAccount may not read the old one's Secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_service_of_a_deleted_ones_name_does_not_inherit_its_grant() -> Result<()> {
    const NAME: &str = "e2e-sec-reused";
    let old_grant = format!("team-a.{NAME}");
    let old_secret = format!("{old_grant}.app");
    let cp = control_plane();
    let client = cp.client().await?;
    let _op = Operator::start(cp, "secrets-reuse", &[])?;
    fresh_service(&client, NAME).await?;
    platform_secret(cp, &old_secret, "old-token-value")?;
    let claims: Api<ServiceClaim> = Api::all(client.clone());
    claims
        .create(
            &Default::default(),
            &service(NAME, "team-a", json!([{ "name": "app" }]), json!([]))?,
        )
        .await?;
    paved_e2e::db::ready(&claims, NAME).await?;
    assert!(
        service_may_read(cp, NAME, &old_secret)?,
        "the first service reads its own secret"
    );

    // The platform deletes the claim and keeps what it made, then deletes its namespace
    // (its data went elsewhere): the grant stays, nobody's now.
    cp.kubectl(&["delete", "serviceclaim", NAME, "--cascade=orphan"])?;
    eventually("the grant orphaned", T, || async {
        let rb = get_json(cp, &["rolebinding", "-n", SECRETS_NS, &old_grant])?;
        let owners = rb["metadata"]["ownerReferences"]
            .as_array()
            .map_or(0, Vec::len);
        Ok((owners == 0 && claims.get_opt(NAME).await?.is_none()).then_some(()))
    })
    .await?;
    cp.kubectl(&["delete", "namespace", NAME, "--wait=true", "--timeout=90s"])?;
    assert!(
        service_may_read(cp, NAME, &old_secret)?,
        "the orphaned grant still binds the ServiceAccount's name"
    );

    // Another team's service of the same name.
    claims
        .create(
            &Default::default(),
            &service(NAME, "team-b", json!([]), json!([]))?,
        )
        .await?;
    paved_e2e::db::ready(&claims, NAME).await?;
    for kind in ["role", "rolebinding"] {
        assert!(
            cp.kubectl(&["get", kind, "-n", SECRETS_NS, &old_grant])
                .is_err(),
            "the earlier service's {kind} is gone"
        );
    }
    assert!(
        !service_may_read(cp, NAME, &old_secret)?,
        "the new service may not read the earlier one's secret"
    );
    assert_eq!(
        secret_data(&client, SECRETS_NS, &old_secret)
            .await?
            .map(|(_, d)| d["token"].clone())
            .as_deref(),
        Some("old-token-value"),
        "the platform's Secret itself is untouched"
    );
    fresh_service(&client, NAME).await?;
    cp.kubectl(&["delete", "secret", "-n", SECRETS_NS, &old_secret])?;
    Ok(())
}
