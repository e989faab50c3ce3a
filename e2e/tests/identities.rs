//! The cloud identity Paved makes for each service on Azure and GCP, against the
//! loopback fakes (e2e/fakes, written from the published Managed Identity,
//! Authorization, IAM and Secret Manager contracts; no emulator exists). Everything is
//! checked from outside, through the fakes' own state:
//!
//! - Azure: a user-assigned identity named from the Composition's prefix and the
//!   claim's UID and tagged as its,
//!   one federated credential for exactly the service's ServiceAccount, `Key Vault
//!   Secrets User` on exactly its own secret; the ServiceAccount annotated with its
//!   client ID; a role assignment added by hand taken off (the vault in another
//!   subscription than the identity); its federated credential pointed elsewhere by
//!   hand put back; the Composition's prefix changed: made anew, the old one deleted
//!   with a Warning; an identity an earlier
//!   claim of the name left deleted before the new one is made; all of it deleted
//!   with the claim, role assignments included.
//! - AWS with EKS Pod Identity (moto, extended with the association API in
//!   e2e/moto/server.py): one association for exactly the service's namespace and
//!   ServiceAccount to its role, recorded on the role; the role trusts
//!   `pods.eks.amazonaws.com` for exactly that cluster, namespace and ServiceAccount;
//!   someone else's association for that ServiceAccount refused as `OwnedByOther`
//!   and left alone; one pointed elsewhere or deleted by hand put back; deleted with
//!   the claim.
//! - GCP: a service account named from the claim's UID and marked as its, impersonable
//!   by exactly the service's ServiceAccount, `secretAccessor` on exactly its own
//!   secret; drift (a binding removed, the account deleted) put back; an account
//!   re-marked as another claim's refused as `OwnedByOther`; deleted with the claim.

use std::time::Duration;

use anyhow::{Context, Result};
use kube::{Api, ResourceExt};
use paved_api::{conditions, ServiceClaim};
use paved_e2e::{control_plane, db::fresh_service, db::Fake, eventually, Operator};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(90);

fn claim(name: &str, cloud: &str) -> Result<ServiceClaim> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "paved.dev/v1alpha1", "kind": "ServiceClaim",
        "metadata": { "name": name },
        "spec": { "owner": "team-a", "system": "s", "costCenter": "CC-7", "cloud": cloud,
                  "dataClassification": "internal", "secrets": [{ "name": "api" }] }
    }))?)
}

fn sa_annotation(cp: &paved_e2e::ControlPlane, ns: &str, key: &str) -> Result<Option<String>> {
    let sa: Value = serde_json::from_str(&cp.kubectl(&[
        "get",
        "serviceaccount",
        ns,
        "-n",
        ns,
        "-o",
        "json",
    ])?)?;
    Ok(sa["metadata"]["annotations"][key]
        .as_str()
        .map(String::from))
}

async fn synced_reason(api: &Api<ServiceClaim>, name: &str) -> Result<Option<String>> {
    Ok(api.get(name).await?.status.and_then(|s| {
        s.conditions
            .iter()
            .find(|c| c.type_ == conditions::SYNCED)
            .map(|c| c.reason.to_string())
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_azure_service_gets_its_own_managed_identity_reading_only_its_own_secret() -> Result<()>
{
    const SVC: &str = "e2e-id-azure";
    const SUB: &str = "00000000-0000-0000-0000-0000000000a1";
    // The vault lives in another subscription than the identities (role assignments
    // on it are looked for there too).
    const VAULT_SUB: &str = "00000000-0000-0000-0000-0000000000a2";
    let vault = format!(
        "/subscriptions/{VAULT_SUB}/resourceGroups/kv/providers/Microsoft.KeyVault/vaults/paved-kv"
    );
    let cp = control_plane();
    let client = cp.client().await?;
    let fake = Fake::new(cp, "PAVED_AZURE_URL")?;
    let identity = |on: bool| {
        let v = if on {
            json!({ "azure": { "subscriptionId": SUB, "resourceGroup": "paved-ids", "location": "westeurope",
                               "oidcIssuer": "https://oidc.e2e.example/cluster/", "keyVaultId": vault,
                               "namePrefix": "acme-", "pollInterval": "2s" } })
        } else {
            Value::Null
        };
        paved_e2e::patch_service_composition(cp, "service-azure", json!({ "identity": v }))
    };
    identity(true)?;
    // Federated credentials and IAM policies, which these clouds read one identity at
    // a time, are trusted for a recheck period (30 minutes by default): short here,
    // so drift in them is seen within the test.
    let _op = Operator::start(cp, "identity-azure", &["--identity-recheck-seconds", "2"])?;
    fresh_service(&client, SVC).await?;
    let token = fake.azure_token()?;

    // What an earlier ServiceClaim of this name left (its finalizer taken off by
    // hand): an identity trusting the same ServiceAccount name.
    let stale_id = format!(
        "/subscriptions/{SUB}/resourceGroups/paved-ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/paved-stale"
    );
    let (status, body) = fake.call(
        "PUT",
        &format!("{stale_id}?api-version=2023-01-31"),
        &token,
        Some(&json!({ "location": "westeurope",
                      "tags": { "paved.dev_claim-uid": "00000000-dead", "paved.dev_claim-name": SVC } })),
    )?;
    assert!(status < 300, "{status} {body}");
    let (status, body) = fake.call(
        "PUT",
        &format!("{stale_id}/federatedIdentityCredentials/kubernetes?api-version=2023-01-31"),
        &token,
        Some(
            &json!({ "properties": { "issuer": "https://oidc.e2e.example/cluster/",
                                      "subject": format!("system:serviceaccount:{SVC}:{SVC}"),
                                      "audiences": ["api://AzureADTokenExchange"] } }),
        ),
    )?;
    assert!(status < 300, "{status} {body}");

    let claims: Api<ServiceClaim> = Api::all(client.clone());
    let made = claims
        .create(&Default::default(), &claim(SVC, "azure")?)
        .await?;
    let uid = made.uid().unwrap();
    // The Composition's prefix, then the claim's UID.
    let name = format!("acme-{uid}");

    // The identity, from outside: the claim's, trusted by exactly its ServiceAccount.
    let me = eventually("the managed identity with its credential", T, || async {
        let state = fake.get("/_fake/identities")?;
        Ok(state["identities"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| {
                i["name"] == name.as_str()
                    && i["federatedIdentityCredentials"]
                        .as_array()
                        .is_some_and(|f| !f.is_empty())
            })
            .cloned())
    })
    .await?;
    assert_eq!(me["resourceGroup"], "paved-ids");
    assert_eq!(me["tags"]["paved.dev_claim-uid"], uid.as_str());
    let fic = &me["federatedIdentityCredentials"];
    assert_eq!(fic.as_array().map(Vec::len), Some(1));
    assert_eq!(fic[0]["issuer"], "https://oidc.e2e.example/cluster/");
    assert_eq!(
        fic[0]["subject"],
        format!("system:serviceaccount:{SVC}:{SVC}")
    );
    assert_eq!(fic[0]["audiences"], json!(["api://AzureADTokenExchange"]));
    let principal = me["principalId"].as_str().context("principal")?.to_string();
    let client_id = me["clientId"].as_str().context("client id")?.to_string();

    // Exactly its own secret, as Key Vault Secrets User.
    let own_secret = format!("{vault}/secrets/team-a--{SVC}--api").to_lowercase();
    let assignments = |principal: &str| -> Result<Vec<Value>> {
        Ok(
            fake.get(&format!("/_fake/role-assignments?principalId={principal}"))?
                ["roleAssignments"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        )
    };
    eventually("its one role assignment", T, || async {
        let a = assignments(&principal)?;
        Ok((a.len() == 1
            && a[0]["scope"].as_str().map(str::to_lowercase) == Some(own_secret.clone()))
        .then_some(a))
    })
    .await
    .and_then(|a| {
        anyhow::ensure!(
            a[0]["roleDefinitionId"]
                .as_str()
                .unwrap_or("")
                .ends_with("4633458b-17de-408a-b874-0445c86b69e6"),
            "Key Vault Secrets User: {a:?}"
        );
        Ok(())
    })?;

    // Its ServiceAccount runs as it; its status says so.
    eventually(
        "the ServiceAccount annotated with the client ID",
        T,
        || async {
            Ok(
                (sa_annotation(cp, SVC, "azure.workload.identity/client-id")?.as_deref()
                    == Some(client_id.as_str()))
                .then_some(()),
            )
        },
    )
    .await?;
    let status = claims.get(SVC).await?.status.unwrap();
    assert_eq!(status.identity.as_deref(), Some(client_id.as_str()));
    assert!(status.identity_id.unwrap().ends_with(&name));

    // The earlier claim's identity went before the new one was made.
    let state = fake.get("/_fake/identities")?;
    assert!(
        !state["identities"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|i| i["name"] == "paved-stale"),
        "the identity an earlier claim of the name left is gone"
    );

    // Widened by hand (Contributor on the whole vault): taken off again.
    let extra = format!(
        "{vault}/providers/Microsoft.Authorization/roleAssignments/0b5e1c2a-0000-4000-8000-00000000e2e0?api-version=2022-04-01"
    );
    let (status, body) = fake.call("PUT", &extra, &token, Some(&json!({ "properties": {
        "roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c"),
        "principalId": principal, "principalType": "ServicePrincipal" } })))?;
    assert!(status < 300, "{status} {body}");
    eventually("the extra role assignment taken off", T, || async {
        Ok((assignments(&principal)?.len() == 1).then_some(()))
    })
    .await?;

    // Its federated credential pointed at another ServiceAccount by hand: put back
    // (read on the recheck period), and said so.
    let (status, body) = fake.call(
        "PUT",
        &format!("/subscriptions/{SUB}/resourceGroups/paved-ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}/federatedIdentityCredentials/kubernetes?api-version=2023-01-31"),
        &token,
        Some(&json!({ "properties": { "issuer": "https://oidc.e2e.example/cluster/",
                                      "subject": "system:serviceaccount:team-b:intruder",
                                      "audiences": ["api://AzureADTokenExchange"] } })),
    )?;
    assert!(status < 300, "{status} {body}");
    eventually("the federated credential put back", T, || async {
        let state = fake.get("/_fake/identities")?;
        Ok(state["identities"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["name"] == name.as_str())
            .and_then(|i| i["federatedIdentityCredentials"].get(0).cloned())
            .filter(|f| f["subject"] == format!("system:serviceaccount:{SVC}:{SVC}").as_str()))
    })
    .await?;
    eventually("a DriftCorrected Event", T, || async {
        let reasons = paved_e2e::db::event_reasons_about(cp, "default", SVC)?;
        Ok(reasons.contains("DriftCorrected").then_some(()))
    })
    .await?;

    // The platform renames its identities: each service's is made anew under the new
    // prefix, the old one deleted first, with a Warning (running pods hold the old
    // one until they are rolled out).
    paved_e2e::patch_service_composition(
        cp,
        "service-azure",
        json!({ "identity": { "azure": { "namePrefix": "acme2-" } } }),
    )?;
    let renamed = format!("acme2-{uid}");
    eventually("the identity made under the new prefix", T, || async {
        let state = fake.get("/_fake/identities")?;
        let names: Vec<String> = state["identities"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["name"].as_str().map(String::from))
            .collect();
        Ok((names.contains(&renamed) && !names.contains(&name)).then_some(()))
    })
    .await?;
    let warned = cp.kubectl(&[
        "get",
        "events",
        "-n",
        "default",
        "--field-selector",
        &format!("involvedObject.name={SVC},type=Warning,reason=Deleted"),
        "-o",
        "jsonpath={.items[*].message}",
    ])?;
    assert!(
        warned.contains(&name) && warned.contains("until they restart"),
        "a Warning names the old identity: {warned}"
    );
    assert_eq!(
        assignments(&principal)?,
        Vec::<Value>::new(),
        "the old identity's assignments went with it"
    );

    // The claim goes: so do the identity and its role assignments (none left
    // orphaned).
    fresh_service(&client, SVC).await?;
    let state = fake.get("/_fake/identities")?;
    assert!(!state["identities"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|i| i["name"] == name.as_str() || i["name"] == renamed.as_str()));
    assert_eq!(assignments(&principal)?, Vec::<Value>::new());
    identity(false)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gcp_service_gets_its_own_service_account_reading_only_its_own_secret() -> Result<()> {
    const SVC: &str = "e2e-id-gcp";
    const PROJECT: &str = "paved-ids";
    let cp = control_plane();
    let client = cp.client().await?;
    let fake = Fake::new(cp, "PAVED_GCP_URL")?;
    let identity = |on: bool| {
        let v = if on {
            json!({ "gcp": { "projectId": PROJECT, "workloadPool": "paved-prod.svc.id.goog", "pollInterval": "2s" } })
        } else {
            Value::Null
        };
        paved_e2e::patch_service_composition(cp, "service-gcp", json!({ "identity": v }))
    };
    identity(true)?;
    let _op = Operator::start(cp, "identity-gcp", &["--identity-recheck-seconds", "2"])?;
    fresh_service(&client, SVC).await?;
    let token = fake.gcp_token()?;
    // The service's app secret exists in Secret Manager (the shipped Composition's
    // project), as the platform put it there; and another service's.
    let secret_id = format!("team-a_{SVC}_api");
    for id in [secret_id.as_str(), "team-b_other_api"] {
        let (status, body) = fake.call(
            "POST",
            &format!("/v1/projects/paved-prod/secrets?secretId={id}"),
            &token,
            Some(&json!({ "replication": { "automatic": {} } })),
        )?;
        assert!(status < 300 || status == 409, "{status} {body}");
    }
    // What an earlier ServiceClaim of this name left: an account marked as its.
    let (status, body) = fake.call(
        "POST",
        &format!("/v1/projects/{PROJECT}/serviceAccounts"),
        &token,
        Some(&json!({ "accountId": "paved-000000000000000000dead",
                      "serviceAccount": { "description": format!("paved.dev/claim-uid=00000000-dead paved.dev/claim-name={SVC}") } })),
    )?;
    assert!(status < 300 || status == 409, "{status} {body}");
    let (status, body) = fake.call(
        "POST",
        &format!("/v1/projects/{PROJECT}/serviceAccounts/paved-000000000000000000dead@{PROJECT}.iam.gserviceaccount.com:setIamPolicy"),
        &token,
        Some(&json!({ "policy": { "bindings": [{ "role": "roles/iam.workloadIdentityUser",
            "members": [format!("serviceAccount:paved-prod.svc.id.goog[{SVC}/{SVC}]")] }] } })),
    )?;
    assert!(status < 300, "{status} {body}");

    let claims: Api<ServiceClaim> = Api::all(client.clone());
    let made = claims
        .create(&Default::default(), &claim(SVC, "gcp")?)
        .await?;
    let uid = made.uid().unwrap();
    let hex: String = uid
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(24)
        .collect();
    let email = format!("paved-{hex}@{PROJECT}.iam.gserviceaccount.com");
    let member = format!("serviceAccount:{email}");

    let account = |email: &str| -> Result<Option<Value>> {
        Ok(fake.get("/_fake/service-accounts")?["accounts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["email"] == email)
            .cloned())
    };
    let accessors = |secret: &str| -> Result<Vec<String>> {
        let policies = fake.get("/_fake/secret-policies")?;
        Ok(policies[secret]["bindings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|b| b["role"] == "roles/secretmanager.secretAccessor")
            .flat_map(|b| b["members"].as_array().cloned().unwrap_or_default())
            .filter_map(|m| m.as_str().map(String::from))
            .collect())
    };
    let a = eventually("the service account reading its secret", T, || async {
        Ok(account(&email)?.filter(|_| accessors(&secret_id).is_ok_and(|m| m.contains(&member))))
    })
    .await?;
    assert!(a["description"].as_str().unwrap_or("").contains(&uid));
    assert_eq!(
        a["policy"]["bindings"],
        json!([{ "role": "roles/iam.workloadIdentityUser",
                 "members": [format!("serviceAccount:paved-prod.svc.id.goog[{SVC}/{SVC}]")] }]),
        "impersonable by exactly its ServiceAccount"
    );
    assert!(
        !accessors("team-b_other_api")?.contains(&member),
        "no other service's secret"
    );
    eventually(
        "the ServiceAccount annotated with the account",
        T,
        || async {
            Ok(
                (sa_annotation(cp, SVC, "iam.gke.io/gcp-service-account")?.as_deref()
                    == Some(email.as_str()))
                .then_some(()),
            )
        },
    )
    .await?;
    assert!(
        account("paved-000000000000000000dead@paved-ids.iam.gserviceaccount.com")?.is_none(),
        "the account an earlier claim of the name left is gone"
    );

    // Drift: its access to its secret removed by hand, put back.
    fake.post(
        &format!("/_fake/secret-policies/{secret_id}/set?project=paved-prod"),
        &json!({ "bindings": [] }),
    )?;
    eventually("the secret binding put back", T, || async {
        Ok(accessors(&secret_id)?.contains(&member).then_some(()))
    })
    .await?;
    // Deleted by hand: made again (a new account of the same email), and said so.
    let first_uid = a["uniqueId"].clone();
    fake.post(
        &format!("/_fake/service-accounts/{email}/delete"),
        &json!({}),
    )?;
    eventually("the account made again", T, || async {
        Ok(account(&email)?
            .filter(|a| a["uniqueId"] != first_uid && !a["policy"]["bindings"].is_null()))
    })
    .await?;
    eventually("a DriftCorrected Event", T, || async {
        let reasons = paved_e2e::db::event_reasons_about(cp, "default", SVC)?;
        Ok(reasons.contains("DriftCorrected").then_some(()))
    })
    .await?;

    // Marked as another claim's (as if someone took the name): never adopted.
    let mark = |uid: &str| {
        fake.call(
            "PATCH",
            &format!("/v1/projects/{PROJECT}/serviceAccounts/{email}"),
            &token,
            Some(&json!({ "serviceAccount": { "description": format!("paved.dev/claim-uid={uid} paved.dev/claim-name={SVC}") },
                          "updateMask": "description" })),
        )
    };
    let (status, body) = mark("11111111-other")?;
    assert!(status < 300, "{status} {body}");
    eventually("OwnedByOther", T, || async {
        Ok((synced_reason(&claims, SVC).await?.as_deref() == Some("OwnedByOther")).then_some(()))
    })
    .await?;
    let (status, body) = mark(&uid)?;
    assert!(status < 300, "{status} {body}");
    eventually("synced again once it is the claim's", T, || async {
        Ok(
            (synced_reason(&claims, SVC).await?.as_deref() == Some("ReconcileSuccess"))
                .then_some(()),
        )
    })
    .await?;

    // The claim goes while Google fails every deletion of its account (past the
    // client's own retries): the claim stays and says so (Ready=False, Deleting), then
    // goes with its account once Google deletes it.
    // Taken back however the test ends, so no later test meets it.
    struct Clear<'a>(&'a Fake);
    impl Drop for Clear<'_> {
        fn drop(&mut self) {
            let _ = self.0.post("/_fake/inject", &json!({ "clear": true }));
        }
    }
    let clear = Clear(&fake);
    fake.post(
        "/_fake/inject",
        &json!({ "status": 503, "count": 100000, "method": "DELETE", "match": "/serviceAccounts/" }),
    )?;
    claims.delete(SVC, &Default::default()).await?;
    let (ready, synced) = eventually("the blocked deletion in the claim's status", T, || async {
        let status = claims.get_opt(SVC).await?.and_then(|c| c.status);
        let find = |t: &str| {
            status
                .as_ref()
                .and_then(|s| conditions::find(&s.conditions, t).cloned())
        };
        Ok(find(conditions::READY)
            .filter(|r| r.status == "False" && r.reason == conditions::reasons::DELETING)
            .zip(find(conditions::SYNCED)))
    })
    .await?;
    assert!(
        ready.message.contains("cloud identity is not deleted yet"),
        "{ready:?}"
    );
    assert_eq!(
        (synced.status.as_str(), synced.reason.as_str()),
        ("False", "ProviderUnavailable"),
        "{synced:?}"
    );
    assert!(account(&email)?.is_some(), "the account is still there");
    drop(clear);
    fresh_service(&client, SVC).await?;
    assert!(
        account(&email)?.is_none(),
        "the account is deleted with the claim"
    );
    identity(false)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_service_on_eks_gets_a_pod_identity_association_for_exactly_its_service_account(
) -> Result<()> {
    const SVC: &str = "e2e-id-eks";
    const CLUSTER: &str = "paved-e2e";
    let cp = control_plane();
    let client = cp.client().await?;
    let moto = |args: &[&str]| paved_e2e::db::moto(cp, "query.py", args);
    let cluster_arn = moto(&["eks-cluster", CLUSTER])?;
    let oidc = format!(
        "arn:aws:iam::{}:oidc-provider/kubernetes.default.svc.cluster.local",
        paved_e2e::MOTO_ACCOUNT
    );
    let identity = |on: bool| {
        let v = if on {
            json!({ "aws": { "oidcProviderArn": oidc, "pollInterval": "2s",
                             "podIdentity": { "clusterName": CLUSTER, "region": "us-east-1" } } })
        } else {
            Value::Null
        };
        paved_e2e::patch_service_composition(cp, "service-aws", json!({ "identity": v }))
    };
    identity(true)?;
    let _op = Operator::start(
        cp,
        "identity-eks",
        &[
            "--identity-recheck-seconds",
            "2",
            "--cloud-list-ttl-seconds",
            "1",
        ],
    )?;
    fresh_service(&client, SVC).await?;
    let association = || -> Result<Option<Value>> {
        Ok(moto(&["pod-identity", CLUSTER])?
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["namespace"] == SVC && a["serviceAccount"] == SVC)
            .cloned())
    };
    if let Some(left) = association()? {
        let id = left["associationId"].as_str().unwrap_or_default();
        moto(&["pod-identity-delete", CLUSTER, id])?;
    }
    // Someone else's association for the service's ServiceAccount, to another role:
    // never taken over.
    let other = format!(
        "arn:aws:iam::{}:role/someone-elses",
        paved_e2e::MOTO_ACCOUNT
    );
    let theirs = moto(&["pod-identity-create", CLUSTER, SVC, SVC, &other])?;
    let claims: Api<ServiceClaim> = Api::all(client.clone());
    let made = claims
        .create(&Default::default(), &claim(SVC, "aws")?)
        .await?;
    let role_name = format!("paved-{}", made.uid().unwrap());
    let role_arn = format!(
        "arn:aws:iam::{}:role/paved/{SVC}/{role_name}",
        paved_e2e::MOTO_ACCOUNT
    );
    eventually("OwnedByOther", T, || async {
        Ok((synced_reason(&claims, SVC).await?.as_deref() == Some("OwnedByOther")).then_some(()))
    })
    .await?;
    let left = association()?.context("theirs is still there")?;
    assert_eq!(left["roleArn"], other.as_str(), "left as it was");
    // Once it is gone, the service gets its own.
    let id = theirs["associationId"].as_str().context("id")?;
    moto(&["pod-identity-delete", CLUSTER, id])?;

    // From outside: one association, the service's ServiceAccount as its role.
    let a = eventually("the association", T, || async {
        Ok(association()?.filter(|a| a["roleArn"] == role_arn.as_str()))
    })
    .await?;
    assert_eq!(a["tags"]["paved.dev/claim-uid"], made.uid().unwrap());
    let role = moto(&["role", &role_name])?;
    assert_eq!(
        role["Tags"]["paved.dev/eks-pod-identity-association"], a["associationArn"],
        "the role records its association"
    );
    // The role trusts EKS Pod Identity for exactly this cluster, namespace and
    // ServiceAccount, and keeps its web identity trust (the External Secrets Operator
    // authenticates with it).
    let statements = role["AssumeRolePolicyDocument"]["Statement"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(statements.len(), 2, "{statements:?}");
    assert_eq!(statements[0]["Action"], "sts:AssumeRoleWithWebIdentity");
    assert_eq!(
        statements[1]["Principal"]["Service"],
        "pods.eks.amazonaws.com"
    );
    assert_eq!(
        statements[1]["Condition"]["StringEquals"],
        json!({ "aws:RequestTag/eks-cluster-arn": cluster_arn,
                "aws:RequestTag/kubernetes-namespace": SVC,
                "aws:RequestTag/kubernetes-service-account": SVC })
    );

    // Pointed at another role, session tags off, by hand: put back, and said so.
    let id = a["associationId"].as_str().context("association id")?;
    moto(&["pod-identity-point", CLUSTER, id, &other])?;
    eventually("the association pointed back", T, || async {
        Ok(association()?.filter(|a| {
            a["roleArn"] == role_arn.as_str()
                && a["associationId"] == id
                && a["disableSessionTags"] == false
        }))
    })
    .await?;
    eventually("a DriftCorrected Event", T, || async {
        let reasons = paved_e2e::db::event_reasons_about(cp, "default", SVC)?;
        Ok(reasons.contains("DriftCorrected").then_some(()))
    })
    .await?;
    // Deleted by hand: made again.
    moto(&["pod-identity-delete", CLUSTER, id])?;
    let again =
        eventually("the association made again", T, || async {
            Ok(association()?
                .filter(|a| a["roleArn"] == role_arn.as_str() && a["associationId"] != id))
        })
        .await?;

    eventually("the role records the new association", T, || async {
        let role = moto(&["role", &role_name])?;
        Ok(
            (role["Tags"]["paved.dev/eks-pod-identity-association"] == again["associationArn"])
                .then_some(()),
        )
    })
    .await?;

    // The claim goes: its association and role with it.
    fresh_service(&client, SVC).await?;
    assert_eq!(association()?, None, "no association left for {SVC}");
    assert!(
        moto(&["role", &role_name])?.is_null(),
        "the role is deleted"
    );
    identity(false)?;
    Ok(())
}
