//! Tenancy, attacked as a tenant would: a member of one team (impersonated with
//! kubectl `--as`/`--as-group`, as the team's OIDC group reaches the apiserver) tries
//! to act on another team's claims, namespaces and data, and the test checks from
//! outside — as the platform's admin, and in PostgreSQL — that it was refused with a
//! clear message and that nothing of the victim changed. The operator's part (what
//! admission cannot see) is attacked as the platform's admin, who bypasses admission.
//! docs/security.md maps each attack to its control and to the test here.

use std::time::Duration;

use anyhow::{bail, Result};
use kube::{api::DeleteParams, Api, ResourceExt};
use paved_api::{conditions, PostgreSQLInstance, ServiceClaim};
use paved_e2e::{control_plane, db, eventually, ControlPlane, Operator};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(90);

/// kubectl as `user` in `groups` (the harness's admin may impersonate).
fn as_user(
    cp: &ControlPlane,
    user: &str,
    groups: &[&str],
    args: &[&str],
    stdin: Option<&str>,
) -> Result<(bool, String)> {
    let mut full: Vec<String> = vec![format!("--as={user}")];
    full.extend(groups.iter().map(|g| format!("--as-group={g}")));
    full.extend(args.iter().map(|a| a.to_string()));
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    paved_e2e::run_with(cp.kubectl_command(&refs), stdin)
}

const ALICE: (&str, &[&str]) = ("alice", &["team-a"]);
const BOB: (&str, &[&str]) = ("bob", &["team-b"]);

fn alice(cp: &ControlPlane, args: &[&str], stdin: Option<&str>) -> Result<(bool, String)> {
    as_user(cp, ALICE.0, ALICE.1, args, stdin)
}

fn bob(cp: &ControlPlane, args: &[&str], stdin: Option<&str>) -> Result<(bool, String)> {
    as_user(cp, BOB.0, BOB.1, args, stdin)
}

/// `kubectl patch serviceclaim NAME --type=merge -p PATCH` as `who`.
fn patch_claim(
    cp: &ControlPlane,
    who: (&str, &[&str]),
    name: &str,
    patch: &str,
) -> Result<(bool, String)> {
    as_user(
        cp,
        who.0,
        who.1,
        &["patch", "serviceclaim", name, "--type=merge", "-p", patch],
        None,
    )
}

fn refused(what: &str, (ok, out): (bool, String), expect: &[&str]) {
    assert!(!ok, "{what}: accepted, should be refused:\n{out}");
    for e in expect {
        assert!(out.contains(e), "{what}: message lacks {e:?}:\n{out}");
    }
}

fn service_claim(name: &str, owner: &str) -> Value {
    json!({
        "apiVersion": "paved.dev/v1alpha1", "kind": "ServiceClaim",
        "metadata": { "name": name },
        "spec": { "owner": owner, "system": "tenancy", "costCenter": "CC-1", "cloud": "local",
                  "dataClassification": "internal" }
    })
}

/// Every developer may write ServiceClaims at all (the chart's paved-claim-author,
/// bound by the platform); the admission policy narrows it to their own team's.
fn grant_claim_authoring(cp: &ControlPlane) -> Result<()> {
    db::apply(
        cp,
        &json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": { "name": "e2e-tenants-author-claims" },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "paved-claim-author" },
            "subjects": [
                { "apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "team-a" },
                { "apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "team-b" },
                { "apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "nobody" },
            ],
        }),
    )
}

/// No Team `name` (an earlier run's deleted), so one made later is younger than the
/// claims a test makes before it.
async fn no_team(cp: &ControlPlane, client: &kube::Client, name: &str) -> Result<()> {
    let teams: Api<paved_api::Team> = Api::all(client.clone());
    let _ = cp.kubectl(&["delete", "team", name, "--ignore-not-found", "--wait=false"]);
    eventually(&format!("an earlier Team {name} gone"), T, || async {
        Ok(teams.get_opt(name).await?.is_none().then_some(()))
    })
    .await
}

/// Team `name` made anew: its group of that name, cloud `local`, then `spec` over
/// them; a second passes before any claim names it (a claim made in its Team's
/// second counts as older than the Team).
async fn fresh_team(
    cp: &ControlPlane,
    client: &kube::Client,
    name: &str,
    spec: Value,
) -> Result<()> {
    no_team(cp, client, name).await?;
    let mut team = json!({
        "apiVersion": "paved.dev/v1alpha1", "kind": "Team", "metadata": { "name": name },
        "spec": { "groups": [name], "clouds": ["local"] } });
    for (k, v) in spec.as_object().into_iter().flatten() {
        team["spec"][k] = v.clone();
    }
    db::apply(cp, &team)?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    Ok(())
}

async fn condition(
    api: &Api<ServiceClaim>,
    name: &str,
    reason: &str,
) -> Result<paved_api::Condition> {
    eventually(&format!("{name} Synced=False {reason}"), T, || async {
        let c = api.get(name).await?;
        Ok(c.status
            .and_then(|s| conditions::find(&s.conditions, conditions::SYNCED).cloned())
            .filter(|c| c.status == "False" && c.reason == reason))
    })
    .await
}

async fn clean(client: &kube::Client, names: &[&str]) -> Result<()> {
    for n in names {
        db::fresh_service(client, n).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_write_or_take_over_another_teams_service() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    grant_claim_authoring(cp)?;
    let _op = Operator::start(cp, "tenancy-admission", &[])?;
    let victim = "e2e-ten-victim";
    clean(&client, &[victim, "e2e-ten-forged"]).await?;
    let claims: Api<ServiceClaim> = Api::all(client.clone());

    // Alice, of team-a, makes her team's service: admitted, and Paved builds it.
    let (ok, out) = alice(
        cp,
        &["create", "-f", "-"],
        Some(&service_claim(victim, "team-a").to_string()),
    )?;
    assert!(ok, "alice could not create her own team's claim: {out}");
    db::ready(&claims, victim).await?;
    let before = claims.get(victim).await?;

    // Bob, of team-b, tries to take it over, delete it, or claim for team-a.
    refused(
        "bob moves the victim to team-b",
        patch_claim(cp, BOB, victim, r#"{"spec":{"owner":"team-b"}}"#)?,
        &["spec.owner", "team-a"],
    );
    refused(
        "bob edits the victim's egress",
        patch_claim(
            cp,
            BOB,
            victim,
            r#"{"spec":{"network":{"egressTo":[{"namespace":"team-b-exfil"}]}}}"#,
        )?,
        &["only identities of Team team-a"],
    );
    refused(
        "bob deletes the victim",
        bob(
            cp,
            &["delete", "serviceclaim", victim, "--wait=false"],
            None,
        )?,
        &["only identities of Team team-a"],
    );
    refused(
        "bob creates a claim in team-a's name",
        bob(
            cp,
            &["create", "-f", "-"],
            Some(&service_claim("e2e-ten-forged", "team-a").to_string()),
        )?,
        &["only identities of Team team-a", "bob"],
    );
    refused(
        "someone in no team creates a claim",
        as_user(
            cp,
            "carol",
            &["nobody"],
            &["create", "-f", "-"],
            Some(&service_claim("e2e-ten-forged", "team-a").to_string()),
        )?,
        &["Team team-a"],
    );
    // Not even the owning team moves a service to another team: only the platform.
    refused(
        "alice hands her service to team-b",
        patch_claim(cp, ALICE, victim, r#"{"spec":{"owner":"team-b"}}"#)?,
        &["spec.owner cannot change"],
    );
    // Squatting a namespace the platform relies on.
    for name in ["argocd", "paved-system", "monitoring", "platform-logs"] {
        refused(
            &format!("bob squats {name}"),
            bob(
                cp,
                &["create", "--dry-run=server", "-f", "-"],
                Some(&service_claim(name, "team-b").to_string()),
            )?,
            &["metadata.name", "reserved"],
        );
    }

    // In the victim's namespace, Bob has no rights at all.
    let db_claim = db::claim("stolen", victim, "postgresql-local", None).to_string();
    refused(
        "bob creates a database claim in the victim's namespace",
        bob(cp, &["create", "-f", "-"], Some(&db_claim))?,
        &["forbidden"],
    );
    refused(
        "bob reads the victim's Secrets",
        bob(cp, &["get", "secrets", "-n", victim], None)?,
        &["forbidden"],
    );
    // Alice, owner of the namespace, still cannot weaken its floor.
    refused(
        "alice deletes default-deny",
        alice(
            cp,
            &[
                "delete",
                "networkpolicy",
                "paved-default-deny",
                "-n",
                victim,
            ],
            None,
        )?,
        &["forbidden"],
    );
    for (what, manifest) in [
        (
            "an allow-all NetworkPolicy",
            json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": { "name": "allow-all", "namespace": victim },
            "spec": { "podSelector": {}, "egress": [ {} ], "policyTypes": ["Egress"] } }),
        ),
        (
            "a RoleBinding letting bob in",
            json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": { "name": "let-bob-in", "namespace": victim },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "paved-developer" },
            "subjects": [ { "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob" } ] }),
        ),
        (
            "a bigger ResourceQuota",
            json!({
            "apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": { "name": "more", "namespace": victim },
            "spec": { "hard": { "requests.cpu": "1000" } } }),
        ),
    ] {
        refused(
            &format!("alice creates {what}"),
            alice(cp, &["create", "-f", "-"], Some(&manifest.to_string()))?,
            &["forbidden"],
        );
    }
    // Her own ExternalSecrets read through the namespace's own store only: never a
    // ClusterSecretStore (whose identity is not the service's), by any of its refs.
    for (what, spec) in [
        (
            "the store",
            json!({ "secretStoreRef": { "kind": "ClusterSecretStore", "name": "shared" },
                              "dataFrom": [ { "find": { "name": { "regexp": ".*" } } } ] }),
        ),
        (
            "a data source",
            json!({ "secretStoreRef": { "kind": "SecretStore", "name": "paved" },
                                  "data": [ { "secretKey": "k", "remoteRef": { "key": "x" },
                                              "sourceRef": { "storeRef": { "kind": "ClusterSecretStore", "name": "shared" } } } ] }),
        ),
        (
            "a dataFrom source",
            json!({ "secretStoreRef": { "kind": "SecretStore", "name": "paved" },
                                      "dataFrom": [ { "extract": { "key": "x" },
                                                      "sourceRef": { "storeRef": { "kind": "ClusterSecretStore", "name": "shared" } } } ] }),
        ),
    ] {
        let manifest = json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": { "name": "everything", "namespace": victim }, "spec": spec });
        refused(
            &format!("alice reads through a ClusterSecretStore in {what}"),
            alice(cp, &["create", "-f", "-"], Some(&manifest.to_string()))?,
            &["never a ClusterSecretStore"],
        );
    }
    // Services stay inside the cluster and claim no external IPs.
    let svc = |spec: Value| {
        json!({ "apiVersion": "v1", "kind": "Service",
                "metadata": { "name": "web", "namespace": victim },
                "spec": spec })
        .to_string()
    };
    refused(
        "alice intercepts traffic with an external IP",
        alice(
            cp,
            &["create", "--dry-run=server", "-f", "-"],
            Some(&svc(
                json!({ "ports": [ { "port": 5432 } ], "externalIPs": ["10.20.0.5"] }),
            )),
        )?,
        &["spec.externalIPs", "CVE-2020-8554"],
    );
    refused(
        "alice exposes a LoadBalancer",
        alice(
            cp,
            &["create", "--dry-run=server", "-f", "-"],
            Some(&svc(
                json!({ "ports": [ { "port": 80 } ], "type": "LoadBalancer" }),
            )),
        )?,
        &["spec.type", "LoadBalancer"],
    );
    let (ok, out) = alice(
        cp,
        &["create", "--dry-run=server", "-f", "-"],
        Some(&svc(json!({ "ports": [ { "port": 80 } ] }))),
    )?;
    assert!(ok, "alice cannot make an ordinary Service: {out}");
    // Ingress hosts are the service's own, never another team's.
    let ingress = |host: &str| {
        json!({ "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": { "name": "web", "namespace": victim },
                "spec": { "rules": [ { "host": host, "http": { "paths": [ {
                    "path": "/", "pathType": "Prefix",
                    "backend": { "service": { "name": "web", "port": { "number": 80 } } } } ] } } ] } })
        .to_string()
    };
    refused(
        "alice takes another service's host",
        alice(
            cp,
            &["create", "--dry-run=server", "-f", "-"],
            Some(&ingress("payments.apps.example.com")),
        )?,
        &["spec.rules[].host", &format!("{victim}.apps.example.com")],
    );
    let (ok, out) = alice(
        cp,
        &["create", "--dry-run=server", "-f", "-"],
        Some(&ingress(&format!("api.{victim}.apps.example.com"))),
    )?;
    assert!(ok, "alice cannot serve her own host: {out}");
    // A Team's sync identity cannot live where tenants run pods (the platform's guard).
    let (ok, out) = cp.kubectl_stdin(
        &["create", "--dry-run=server", "-f", "-"],
        &json!({ "apiVersion": "paved.dev/v1alpha1", "kind": "Team", "metadata": { "name": "team-x2" },
                 "spec": { "clouds": ["local"],
                           "serviceAccounts": [ { "namespace": victim, "name": "default" } ] } })
        .to_string(),
    )?;
    assert!(
        !ok && out.contains("spec.serviceAccounts[].namespace"),
        "{out}"
    );
    // What the owner role is for works: Alice runs her own database claim.
    let (ok, out) = alice(
        cp,
        &["create", "--dry-run=server", "-f", "-"],
        Some(&db::claim("mine", victim, "postgresql-local", None).to_string()),
    )?;
    assert!(
        ok,
        "alice cannot create a database claim in her namespace: {out}"
    );
    // ...but the records deletion acts on (whether and where the database was made)
    // are the operator's: forged, a deletion would aim at something else.
    let mut forged = db::claim("forged", victim, "postgresql-local", None);
    forged["metadata"]["annotations"] = json!({
        "paved.dev/create-pending": "2026-01-01T00:00:00Z",
        "paved.dev/placement": r#"{"composition":"x","provider":"local","region":"local","externalName":"paved-someone-else","localAdmin":{"namespace":"kube-system","name":"any","key":"dsn"}}"#,
    });
    refused(
        "alice forges a placement record",
        alice(
            cp,
            &["create", "--dry-run=server", "-f", "-"],
            Some(&forged.to_string()),
        )?,
        &["paved.dev/ create and placement records"],
    );
    let (ok, out) = alice(
        cp,
        &["create", "-f", "-"],
        Some(&db::claim("mine", victim, "postgresql-local", None).to_string()),
    )?;
    assert!(ok, "{out}");
    let pgs: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), victim);
    eventually("mine recorded", T, || async {
        Ok(pgs
            .get("mine")
            .await?
            .annotations()
            .contains_key(paved_api::annotations::CREATE_SUCCEEDED)
            .then_some(()))
    })
    .await?;
    for change in [
        "paved.dev/create-succeeded-",
        "paved.dev/placement={}",
        "paved.dev/external-location=aws/us-east-1",
    ] {
        refused(
            &format!("alice rewrites the record: {change}"),
            alice(
                cp,
                &[
                    "annotate",
                    "--overwrite",
                    "postgresqlinstances.paved.dev",
                    "mine",
                    "-n",
                    victim,
                    change,
                ],
                None,
            )?,
            &["paved.dev/ create and placement records"],
        );
    }
    let (ok, out) = alice(
        cp,
        &[
            "annotate",
            "postgresqlinstances.paved.dev",
            "mine",
            "-n",
            victim,
            "team.example.com/note=ours",
        ],
        None,
    )?;
    assert!(ok, "alice cannot annotate her own claim: {out}");

    // From outside: nothing of the victim changed.
    let after = claims.get(victim).await?;
    assert_eq!(after.spec, before.spec, "the victim's spec changed");
    assert_eq!(after.metadata.generation, before.metadata.generation);
    assert!(after.metadata.deletion_timestamp.is_none());
    assert!(claims.get_opt("e2e-ten-forged").await?.is_none());
    let rb = cp.kubectl(&[
        "get",
        "rolebinding",
        "paved-owner",
        "-n",
        victim,
        "-o",
        "jsonpath={.roleRef.name} {.subjects[*].name}",
    ])?;
    assert_eq!(rb.trim(), "paved-developer team-a");
    let nps = cp.kubectl(&["get", "networkpolicy", "-n", victim, "-o", "name"])?;
    assert!(nps.contains("paved-default-deny") && !nps.contains("allow-all"));

    // The owning team deletes its own service, in the foreground as Argo CD prunes:
    // the garbage collector finishes the deletion, though it is no member of the Team.
    let (ok, out) = alice(
        cp,
        &[
            "delete",
            "serviceclaim",
            victim,
            "--cascade=foreground",
            "--wait=false",
        ],
        None,
    )?;
    assert!(ok, "alice cannot delete her own claim: {out}");
    eventually(
        "the victim's claim gone",
        Duration::from_secs(120),
        || async { Ok(claims.get_opt(victim).await?.is_none().then_some(())) },
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_serves_a_claim_only_as_its_team_allows() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let claims: Api<ServiceClaim> = Api::all(client.clone());
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let _op = Operator::start(cp, "tenancy-operator", &[])?;
    let names = [
        "e2e-ten-ghost",
        "e2e-ten-late",
        "e2e-ten-gcp",
        "e2e-ten-cap-1",
        "e2e-ten-cap-2",
        "monitoring",
    ];
    clean(&client, &names).await?;
    no_team(cp, &client, "team-late").await?;
    fresh_team(cp, &client, "team-local-only", json!({})).await?;
    fresh_team(
        cp,
        &client,
        "team-capped",
        json!({ "limits": { "services": 1 } }),
    )
    .await?;
    // Created by the platform's admin, past admission: the operator's own checks.
    let create = |name: &str, owner: &str, cloud: &str| {
        let mut c = service_claim(name, owner);
        c["spec"]["cloud"] = json!(cloud);
        db::create(cp, &c)
    };
    create("e2e-ten-ghost", "team-ghost", "local")?;
    create("e2e-ten-late", "team-late", "local")?;
    create("e2e-ten-gcp", "team-local-only", "gcp")?;
    create("e2e-ten-cap-1", "team-capped", "local")?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    create("e2e-ten-cap-2", "team-capped", "local")?;
    create("monitoring", "team-a", "local")?;

    let c = condition(&claims, "e2e-ten-ghost", "TeamNotFound").await?;
    assert!(c.message.contains("team-ghost"), "{}", c.message);
    let c = condition(&claims, "e2e-ten-gcp", "CloudNotAllowed").await?;
    assert!(
        c.message.contains("[local]") && c.message.contains("gcp"),
        "{}",
        c.message
    );
    let c = condition(&claims, "e2e-ten-cap-2", "TeamLimitExceeded").await?;
    assert!(c.message.contains("1 services"), "{}", c.message);
    db::ready(&claims, "e2e-ten-cap-1").await?;
    let c = condition(&claims, "monitoring", "NamespaceReserved").await?;
    assert!(
        c.message.contains("Composition service-") && c.message.contains("trusts it"),
        "{}",
        c.message
    );
    // A Team made after a claim naming it: the claim was never checked by admission.
    condition(&claims, "e2e-ten-late", "TeamNotFound").await?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    db::apply(
        cp,
        &json!({ "apiVersion": "paved.dev/v1alpha1", "kind": "Team", "metadata": { "name": "team-late" },
                 "spec": { "groups": ["team-late"], "clouds": ["local"] } }),
    )?;
    let c = condition(&claims, "e2e-ten-late", "ClaimPredatesTeam").await?;
    assert!(c.message.contains("re-create"), "{}", c.message);

    // Nothing was made for any refused claim.
    for n in [
        "e2e-ten-ghost",
        "e2e-ten-late",
        "e2e-ten-gcp",
        "e2e-ten-cap-2",
    ] {
        assert!(nss.get_opt(n).await?.is_none(), "namespace {n} was made");
    }
    // The platform vouches for claims older than their Team (the upgrade path): served.
    let now = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    cp.kubectl(&[
        "patch",
        "team",
        "team-late",
        "--type=merge",
        "-p",
        &json!({ "spec": { "adoptClaimsCreatedBefore": now } }).to_string(),
    ])?;
    db::ready(&claims, "e2e-ten-late").await?;
    // `monitoring` is not Paved's to make (it may exist as the platform's own).
    let mon = nss.get_opt("monitoring").await?;
    assert!(
        mon.is_none_or(|m| !m.labels().contains_key(paved_api::labels::CLAIM_NAME)),
        "Paved made or took namespace monitoring"
    );
    clean(&client, &names).await?;
    Ok(())
}

/// A namespace Paved did not make (a Crossplane platform's, say) is taken over by a
/// ServiceClaim only where the platform grants it twice (the Team's
/// `adoptByServiceClaim`, the namespace's `paved.dev/adoptable` label, which no tenant
/// can set), never over an object in it Paved did not make, and it stays, with what was
/// in it, when the claim goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_namespace_is_taken_over_only_where_the_platform_grants_it_and_outlives_its_claim(
) -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    grant_claim_authoring(cp)?;
    let claims: Api<ServiceClaim> = Api::all(client.clone());
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let _op = Operator::start(cp, "tenancy-adopt-namespace", &[])?;
    let ns = "e2e-legacy-orders";
    // An earlier run's claim and namespace gone (a namespace taken over outlives its
    // claim: the admin deletes it).
    let _ = claims.delete(ns, &DeleteParams::default()).await;
    eventually("an earlier claim gone", T, || async {
        Ok(claims.get_opt(ns).await?.is_none().then_some(()))
    })
    .await?;
    cp.kubectl(&[
        "delete",
        "namespace",
        ns,
        "--ignore-not-found",
        "--timeout=120s",
    ])?;

    // The legacy namespace: data in it, a ServiceAccount of the service's name, another
    // team's access, and its own Pod Security level.
    db::apply(
        cp,
        &json!({ "apiVersion": "v1", "kind": "Namespace",
                 "metadata": { "name": ns, "labels": { "pod-security.kubernetes.io/enforce": "privileged" } } }),
    )?;
    for obj in [
        json!({ "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": { "name": "legacy-data", "namespace": ns }, "data": { "rows": "42" } }),
        json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": { "name": ns, "namespace": ns } }),
        json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": { "name": "legacy-admins", "namespace": ns },
                "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit" },
                "subjects": [ { "apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "team-b" } ] }),
    ] {
        db::apply(cp, &obj)?;
    }
    db::list_namespace(cp, "team-a", ns, ("local", "internal", None), false)?;
    let untouched = |n: &k8s_openapi::api::core::v1::Namespace| {
        !n.labels().contains_key(paved_api::labels::CLAIM_NAME)
            && n.metadata.owner_references.is_none()
    };
    let refused_for = |want: String| {
        let claims = claims.clone();
        async move {
            eventually(&format!("refused: {want}"), T, || async {
                let c = condition(&claims, ns, "NamespaceConflict").await?;
                Ok(c.message.contains(&want).then_some(c.message))
            })
            .await
        }
    };

    // Alice's team lists it for claims inside it only: her claim for it is refused.
    let (ok, out) = alice(
        cp,
        &["create", "-f", "-"],
        Some(&service_claim(ns, "team-a").to_string()),
    )?;
    assert!(ok, "{out}");
    refused_for("adoptByServiceClaim".into()).await?;
    // Granted by the Team, not marked by the platform: still refused. Alice cannot
    // mark it herself.
    db::list_namespace(cp, "team-a", ns, ("local", "internal", None), true)?;
    refused_for("paved.dev/adoptable=true".into()).await?;
    refused(
        "alice marks the namespace adoptable",
        alice(
            cp,
            &["label", "namespace", ns, "paved.dev/adoptable=true"],
            None,
        )?,
        &["forbidden"],
    );
    // Marked: each thing in the way is named, and nothing is written until it is gone.
    cp.kubectl(&["label", "namespace", ns, "paved.dev/adoptable=true"])?;
    refused_for("pod-security.kubernetes.io/enforce=privileged".into()).await?;
    cp.kubectl(&[
        "label",
        "namespace",
        ns,
        "pod-security.kubernetes.io/enforce-",
    ])?;
    refused_for(format!("ServiceAccount {ns}")).await?;
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), ns);
    assert!(sas.get_opt(ns).await?.is_some(), "never taken over");
    cp.kubectl(&["delete", "serviceaccount", ns, "-n", ns])?;
    refused_for("RoleBinding legacy-admins".into()).await?;
    assert!(untouched(&nss.get(ns).await?), "refused: nothing written");
    cp.kubectl(&["delete", "rolebinding", "legacy-admins", "-n", ns])?;

    // Then the namespace is taken over and served.
    let claim = db::ready(&claims, ns).await?;
    let uid = claim.uid().unwrap();
    let n = nss.get(ns).await?;
    assert!(
        n.metadata.owner_references.is_none(),
        "never owned: it would go with the claim"
    );
    assert_eq!(
        n.annotations().get(paved_api::annotations::ADOPTED_BY),
        Some(&uid)
    );
    assert_eq!(
        n.labels()
            .get(paved_api::labels::CLAIM_KIND)
            .map(String::as_str),
        Some("ServiceClaim")
    );
    let nps: Api<k8s_openapi::api::networking::v1::NetworkPolicy> =
        Api::namespaced(client.clone(), ns);
    assert!(nps.get_opt("paved-default-deny").await?.is_some());
    assert!(db::event_reasons_about(cp, "default", ns)?.contains("AdoptingNamespace"));
    // Alice cannot take the finalizer off that hands the namespace back.
    refused(
        "alice removes the adopted-namespace finalizer",
        patch_claim(cp, ALICE, ns, r#"{"metadata":{"finalizers":null}}"#)?,
        &["paved.dev/adopted-namespace"],
    );

    // The Team's grant taken back: the claim is refused and nobody is bound there.
    let bindings: Api<k8s_openapi::api::rbac::v1::RoleBinding> =
        Api::namespaced(client.clone(), ns);
    assert!(bindings.get_opt("paved-owner").await?.is_some());
    db::list_namespace(cp, "team-a", ns, ("local", "internal", None), false)?;
    refused_for("no longer granted".into()).await?;
    eventually("the owner binding gone", T, || async {
        Ok(bindings
            .get_opt("paved-owner")
            .await?
            .is_none()
            .then_some(()))
    })
    .await?;
    // Granted again: served again.
    db::list_namespace(cp, "team-a", ns, ("local", "internal", None), true)?;
    db::ready(&claims, ns).await?;
    eventually("the owner binding back", T, || async {
        Ok(bindings.get_opt("paved-owner").await?.map(|_| ()))
    })
    .await?;

    // The claim goes: the namespace and its data stay; Paved's objects and marks go.
    claims.delete(ns, &DeleteParams::default()).await?;
    eventually("the claim gone", T, || async {
        Ok(claims.get_opt(ns).await?.is_none().then_some(()))
    })
    .await?;
    let n = nss.get(ns).await?;
    assert!(
        n.metadata.deletion_timestamp.is_none(),
        "the namespace stays"
    );
    assert!(untouched(&n), "{:?}", n.metadata);
    assert!(!n
        .annotations()
        .contains_key(paved_api::annotations::ADOPTED_BY));
    assert_eq!(
        n.labels()
            .get(paved_api::labels::ADOPTABLE)
            .map(String::as_str),
        Some("true"),
        "the platform's label is the platform's"
    );
    assert!(bindings.get_opt("paved-owner").await?.is_none());
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), ns);
    assert_eq!(
        cms.get("legacy-data").await?.data.unwrap()["rows"],
        "42",
        "what was in it stays"
    );
    eventually("Paved's objects in it gone", T, || async {
        Ok(nps
            .get_opt("paved-default-deny")
            .await?
            .is_none()
            .then_some(()))
    })
    .await?;
    cp.kubectl(&["delete", "namespace", ns, "--wait=false"])?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_claim_is_held_to_its_namespaces_facts_and_its_teams_compositions() -> Result<()>
{
    let cp = control_plane();
    let client = cp.client().await?;
    let claims: Api<ServiceClaim> = Api::all(client.clone());
    let _op = Operator::start(cp, "tenancy-databases", &[])?;
    let svc = "e2e-ten-dbs";
    let squat = "e2e-ten-labelled";
    clean(&client, &[svc]).await?;
    db::create(cp, &service_claim(svc, "team-a"))?;
    db::ready(&claims, svc).await?;
    let pgs: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), svc);
    db::clear(&client, cp, svc).await?;

    // A namespace Paved did not make, labelled as if it were a public one: the labels
    // are not believed; unknown means PHI, which the local provider refuses.
    let _ = cp.kubectl(&["create", "namespace", squat]);
    cp.kubectl(&[
        "label",
        "--overwrite",
        "namespace",
        squat,
        "paved.dev/cloud=local",
        "paved.dev/data-classification=public",
        "paved.dev/owner=team-a",
    ])?;
    let squat_pgs: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), squat);
    db::clear(&client, cp, squat).await?;
    db::create(cp, &db::claim("labelled", squat, "postgresql-local", None))?;

    // Another cloud's Composition, and one granted to team-b only.
    db::composition(cp, "postgresql-local.yaml", "e2e-ten-team-b-only", |c| {
        c["spec"]["access"] = json!({ "teams": ["team-b"] });
    })?;
    db::create(
        cp,
        &db::claim("other-cloud", svc, "postgresql-aws-standard", None),
    )?;
    db::create(
        cp,
        &db::claim("not-granted", svc, "e2e-ten-team-b-only", None),
    )?;
    // A connection Secret name that is taken by a Secret that is not Paved's.
    db::apply(
        cp,
        &json!({ "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "foreign", "namespace": svc }, "stringData": { "keep": "me" } }),
    )?;
    let mut taken = db::claim("taken", svc, "postgresql-local", None);
    taken["spec"]["writeConnectionSecretToRef"]["name"] = json!("foreign");
    db::create(cp, &taken)?;

    let verdict = |api: Api<PostgreSQLInstance>, name: &'static str, reason: &'static str| async move {
        eventually(&format!("{name} {reason}"), T, || async {
            let p = api.get(name).await?;
            Ok(p.status
                .and_then(|s| conditions::find(&s.conditions, conditions::SYNCED).cloned())
                .filter(|c| c.status == "False" && c.reason == reason)
                .map(|c| (c, p.metadata.annotations.unwrap_or_default())))
        })
        .await
    };
    let (c, ann) = verdict(squat_pgs.clone(), "labelled", "ClassificationNotSupported").await?;
    assert!(c.message.to_lowercase().contains("phi"), "{}", c.message);
    assert!(!ann.contains_key(paved_api::annotations::CREATE_PENDING));
    let (c, ann) = verdict(pgs.clone(), "other-cloud", "CompositionNotAllowed").await?;
    assert!(
        c.message.contains("aws") && c.message.contains("local"),
        "{}",
        c.message
    );
    assert!(
        !ann.contains_key(paved_api::annotations::CREATE_PENDING),
        "a cloud call was made"
    );
    let (c, _) = verdict(pgs.clone(), "not-granted", "CompositionNotAllowed").await?;
    assert!(
        c.message.contains("team-b") && c.message.contains("team-a"),
        "{}",
        c.message
    );
    let (c, _) = verdict(pgs.clone(), "taken", "SecretConflict").await?;
    assert!(c.message.contains("foreign"), "{}", c.message);
    let kept = cp.kubectl(&[
        "get",
        "secret",
        "foreign",
        "-n",
        svc,
        "-o",
        "jsonpath={.data.keep}",
    ])?;
    if kept.trim() != "bWU=" {
        bail!("the foreign Secret was overwritten: {kept}");
    }

    // A database claim in the operator's own namespace is not served.
    let _ = cp.kubectl(&[
        "delete",
        "postgresqlinstances.paved.dev",
        "sneaky",
        "-n",
        "paved-system",
        "--wait=false",
    ]);
    db::apply(
        cp,
        &db::claim("sneaky", "paved-system", "postgresql-local", None),
    )?;
    let (c, _) = verdict(
        Api::namespaced(client.clone(), "paved-system"),
        "sneaky",
        "NamespaceReserved",
    )
    .await?;
    assert!(c.message.contains("paved-system"), "{}", c.message);

    for (api, name) in [
        (squat_pgs, "labelled"),
        (pgs.clone(), "other-cloud"),
        (pgs.clone(), "not-granted"),
        (pgs, "taken"),
        (Api::namespaced(client.clone(), "paved-system"), "sneaky"),
    ] {
        let _ = api.delete(name, &DeleteParams::default()).await;
    }
    clean(&client, &[svc]).await?;
    Ok(())
}

#[test]
fn egress_to_the_metadata_service_and_oversized_claims_are_refused_at_admission() -> Result<()> {
    let cp = control_plane();
    let with = |spec_extra: Value| {
        let mut c = service_claim("e2e-ten-bad", "team-a");
        for (k, v) in spec_extra.as_object().unwrap() {
            c["spec"][k] = v.clone();
        }
        cp.kubectl_stdin(&["create", "--dry-run=server", "-f", "-"], &c.to_string())
    };
    let port = json!([{ "port": 80 }]);
    for (cidr, expect) in [
        ("169.254.169.254/32", "metadata"),
        ("169.0.0.0/8", "metadata"),
        ("fd00:ec2::254/128", "metadata"),
        ("2000::/8", "/32 (IPv6)"),
    ] {
        refused(
            &format!("egress to {cidr}"),
            with(json!({ "network": { "egressTo": [ { "cidr": cidr, "ports": port } ] } }))?,
            &["spec.network.egressTo[0]", expect],
        );
    }
    let labels: serde_json::Map<String, Value> =
        (0..40).map(|i| (format!("k{i}"), json!("v"))).collect();
    refused(
        "a claim with 40 pod labels in one peer",
        with(
            json!({ "network": { "ingressFrom": [ { "namespace": "x", "podLabels": labels } ] } }),
        )?,
        &["podLabels", "16"],
    );
    refused(
        "a secret named as a database's connection Secret",
        with(
            json!({ "secrets": [ { "name": "main-connection" } ], "databases": [ { "name": "main" } ] }),
        )?,
        &["spec.secrets[].name", "connection"],
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offboarded_team_keeps_its_data_loses_access_and_its_claims_stay_guarded() -> Result<()>
{
    let cp = control_plane();
    let client = cp.client().await?;
    grant_claim_authoring(cp)?;
    let claims: Api<ServiceClaim> = Api::all(client.clone());
    let teams: Api<paved_api::Team> = Api::all(client.clone());
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let _op = Operator::start(cp, "tenancy-offboarding", &[])?;
    let name = "e2e-ten-offboarded";
    clean(&client, &[name]).await?;
    fresh_team(cp, &client, "team-leaving", json!({})).await?;
    db::create(cp, &service_claim(name, "team-leaving"))?;
    db::ready(&claims, name).await?;
    // While a claim names it, the Team carries Paved's finalizer.
    eventually("the Team kept by its claim", T, || async {
        let t = teams.get("team-leaving").await?;
        Ok(t.finalizers()
            .iter()
            .any(|f| f == "paved.dev/claims-exist")
            .then_some(()))
    })
    .await?;

    // The platform deletes the Team: it stays while its claim exists; the claim says
    // so, its namespace and data stay, and nobody is bound in it any more.
    cp.kubectl(&["delete", "team", "team-leaving", "--wait=false"])?;
    let c = condition(&claims, name, "TeamDeleting").await?;
    assert!(
        c.message.contains("keeps its namespace and data"),
        "{}",
        c.message
    );
    eventually("the owner binding revoked", T, || async {
        let rbs = cp.kubectl(&["get", "rolebinding", "-n", name, "-o", "name"])?;
        Ok((!rbs.contains("paved-owner")).then_some(()))
    })
    .await?;
    assert!(nss.get_opt(name).await?.is_some(), "the namespace is kept");
    assert!(
        teams.get_opt("team-leaving").await?.is_some(),
        "the Team is kept"
    );
    // And the claim is still guarded: another team cannot delete it (with its data).
    refused(
        "bob deletes an offboarded team's claim",
        bob(cp, &["delete", "serviceclaim", name, "--wait=false"], None)?,
        &["only identities of Team team-leaving"],
    );
    assert!(claims.get_opt(name).await?.is_some());

    // The platform removes the claim; the Team then goes.
    cp.kubectl(&["delete", "serviceclaim", name, "--wait=false"])?;
    eventually(
        "the Team gone after its last claim",
        Duration::from_secs(120),
        || async { Ok(teams.get_opt("team-leaving").await?.is_none().then_some(())) },
    )
    .await?;
    clean(&client, &[name]).await?;
    Ok(())
}

/// Namespace `e2e-ten-a`'s claim `b-c` and namespace `e2e-ten-a-b`'s claim `c` once
/// rendered the same Temporal name (`e2e-ten-a-b-c`): the first could squat it. With
/// the injective `{namespace}.{name}` both are registered, each as its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporal_names_of_two_teams_never_collide() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let _op = Operator::start(cp, "tenancy-temporal", &[])?;
    db::team_namespace(cp, "team-a", "e2e-ten-a", "local", "internal")?;
    db::team_namespace(cp, "team-b", "e2e-ten-a-b", "local", "internal")?;
    let first: Api<paved_api::TemporalNamespace> = Api::namespaced(client.clone(), "e2e-ten-a");
    let second: Api<paved_api::TemporalNamespace> = Api::namespaced(client.clone(), "e2e-ten-a-b");
    // A TemporalNamespace claim made anew (an earlier run's deleted, which removes its
    // namespace on Temporal: allowDeletion).
    let fresh_tns = |ns: &str, name: &str| -> Result<()> {
        let _ = cp.kubectl(&[
            "delete",
            "temporalnamespace",
            name,
            "-n",
            ns,
            "--wait=true",
            "--timeout=60s",
        ]);
        db::create(
            cp,
            &json!({
            "apiVersion": "paved.dev/v1alpha1", "kind": "TemporalNamespace",
            "metadata": { "name": name, "namespace": ns },
            "spec": { "retentionDays": 1, "allowDeletion": true } }),
        )
    };
    fresh_tns("e2e-ten-a", "b-c")?;
    fresh_tns("e2e-ten-a-b", "c")?;
    let a = db::ready(&first, "b-c").await?;
    let b = db::ready(&second, "c").await?;
    let held = |t: &paved_api::TemporalNamespace| {
        t.status
            .as_ref()
            .and_then(|s| s.registered_name.clone())
            .unwrap_or_default()
    };
    assert_eq!(held(&a), "e2e-ten-a.b-c");
    assert_eq!(held(&b), "e2e-ten-a-b.c");
    // A claim name with a '.' (which could forge the separator) is not served.
    fresh_tns("e2e-ten-a", "b.c")?;
    let refused = eventually("the dotted claim refused", T, || async {
        let t = first.get("b.c").await?;
        Ok(t.status
            .and_then(|s| conditions::find(&s.conditions, conditions::SYNCED).cloned())
            .filter(|c| c.reason == "InvalidSpec"))
    })
    .await?;
    assert!(
        refused.message.contains("cannot contain '.'"),
        "{}",
        refused.message
    );
    for (api, name) in [(first.clone(), "b-c"), (second, "c"), (first, "b.c")] {
        api.delete(name, &DeleteParams::default()).await?;
    }
    Ok(())
}
