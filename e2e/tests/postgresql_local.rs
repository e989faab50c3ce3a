//! PostgreSQLInstance on the `local` provider, against a real PostgreSQL server:
//! a database reached with its delivered Secret, the create guard, ownership
//! conflicts, PHI refused, each deletion policy, and a lost Secret healed.

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    api::{DeleteParams, Patch, PatchParams, PostParams},
    Api, Client, ResourceExt,
};
use paved_api::{conditions, PostgreSQLInstance, ServiceClaim};
use paved_e2e::{
    control_plane,
    db::{self, crash_at_every_step, fresh_service, ready},
    eventually, ControlPlane, Operator,
};
use serde_json::json;
use tokio_postgres::NoTls;

const T: Duration = Duration::from_secs(60);

async fn admin(cp: &ControlPlane) -> Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(&cp.env["PAVED_POSTGRES_DSN"], NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

async fn database_exists(cp: &ControlPlane, name: &str) -> Result<bool> {
    Ok(admin(cp)
        .await?
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some())
}

async fn role_exists(cp: &ControlPlane, name: &str) -> Result<bool> {
    Ok(admin(cp)
        .await?
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
        .await?
        .is_some())
}

fn service(name: &str, classification: &str, databases: serde_json::Value) -> Result<ServiceClaim> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "paved.dev/v1alpha1", "kind": "ServiceClaim",
        "metadata": { "name": name },
        "spec": { "owner": "team-db", "system": "s", "costCenter": "CC-9", "cloud": "local",
                  "dataClassification": classification, "databases": databases }
    }))?)
}

async fn condition(
    api: &Api<PostgreSQLInstance>,
    name: &str,
    type_: &str,
    reason: &str,
) -> Result<paved_api::Condition> {
    eventually(&format!("{name} {type_} reason {reason}"), T, || async {
        let p = api.get_opt(name).await?;
        Ok(p.and_then(|p| p.status)
            .and_then(|s| conditions::find(&s.conditions, type_).cloned())
            .filter(|c| c.reason == reason))
    })
    .await
}

/// Connects with exactly what the connection Secret says.
async fn connect_with_secret(
    client: &Client,
    ns: &str,
    secret: &str,
) -> Result<tokio_postgres::Client> {
    let s = Api::<Secret>::namespaced(client.clone(), ns)
        .get(secret)
        .await?;
    let data = s.data.context("secret has data")?;
    let get =
        |k: &str| String::from_utf8(data.get(k).map(|v| v.0.clone()).unwrap_or_default()).unwrap();
    for k in [
        "host", "port", "database", "username", "password", "sslmode", "uri",
    ] {
        assert!(!get(k).is_empty(), "connection secret lacks {k}");
    }
    let (c, conn) = tokio_postgres::connect(
        &get("uri").replace("sslmode=prefer", "sslmode=disable"),
        NoTls,
    )
    .await?;
    tokio::spawn(conn);
    Ok(c)
}

/// A namespace (not a service's) with none of an earlier run's claims, with `op`
/// running for their finalizers.
async fn fresh_namespace(cp: &ControlPlane, ns: &str) -> Result<Api<PostgreSQLInstance>> {
    let _ = cp.kubectl(&[
        "delete",
        "postgresqlinstances.paved.dev",
        "--all",
        "-n",
        ns,
        "--wait=true",
        "--timeout=60s",
    ]);
    let _ = cp.kubectl(&["delete", "namespace", ns, "--wait=true", "--timeout=90s"]);
    paved_e2e::db::namespace(cp, ns, "local", "internal")?;
    Ok(Api::namespaced(cp.client().await?, ns))
}

/// A database's name on the server: the claim's external name with `_` for `-`.
fn server_name(uid: &str) -> String {
    paved_compose::postgresql::external_name(uid).replace('-', "_")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_every_step_of_a_create_leaves_exactly_one_database() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let ns = "e2e-localdb-crash";
    let api = {
        let _op = Operator::start(cp, "postgresql-local-crash-0", &[])?;
        fresh_namespace(cp, ns).await?
    };
    // Each step on a claim of its own, with no other operator running.
    let crashed = crash_at_every_step(cp, &api, "paved-e2e-local-crash", |name| {
        json!({
            "apiVersion": "paved.dev/v1alpha1", "kind": "PostgreSQLInstance",
            "metadata": { "name": name, "namespace": ns }, "spec": {}
        })
    })
    .await?;
    let op = Operator::start(cp, "postgresql-local-crash", &[])?;
    let a = admin(cp).await?;
    for (name, _, external) in &crashed {
        ready(&api, name).await?;
        let db = external.replace('-', "_");
        let count: i64 = a
            .query_one(
                "SELECT count(*) FROM pg_database WHERE datname = $1",
                &[&db],
            )
            .await?
            .get(0);
        assert_eq!(count, 1, "{name}: exactly one database after the crash");
        connect_with_secret(&client, ns, &format!("{name}-connection")).await?;
    }
    drop(op);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_made_database_is_finished_and_a_foreign_one_never_adopted() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let ns = "e2e-localdb-guard";
    // Staged with no operator running: what a crash or a stranger leaves behind.
    let api = {
        let _op = Operator::start(cp, "postgresql-local-guard-0", &[])?;
        fresh_namespace(cp, ns).await?
    };
    let mut uids = vec![];
    for name in ["taken", "guarded"] {
        let p: PostgreSQLInstance = serde_json::from_value(json!({
            "apiVersion": "paved.dev/v1alpha1", "kind": "PostgreSQLInstance",
            "metadata": { "name": name, "namespace": ns }, "spec": {}
        }))?;
        uids.push(api.create(&PostParams::default(), &p).await?.uid().unwrap());
    }
    let (taken_db, guarded_uid) = (server_name(&uids[0]), uids[1].clone());
    let guarded_db = server_name(&guarded_uid);
    let a = admin(cp).await?;
    // One statement per call: CREATE DATABASE cannot run in a transaction block.
    a.batch_execute(&format!("CREATE DATABASE \"{taken_db}\""))
        .await?;
    a.batch_execute(&format!(
        "COMMENT ON DATABASE \"{taken_db}\" IS 'someone else''s'"
    ))
    .await?;
    // What a crash in the middle of our create leaves: the role (created together
    // with its ownership mark) and the database, but not yet the database's mark.
    // The guard must recognise it as ours, finish it, and not make another.
    a.batch_execute(&format!(
        "CREATE ROLE \"{guarded_db}\" LOGIN PASSWORD 'pre-crash'; COMMENT ON ROLE \"{guarded_db}\" IS 'paved.dev/claim-uid={guarded_uid}'"
    ))
    .await?;
    a.batch_execute(&format!(
        "CREATE DATABASE \"{guarded_db}\" OWNER \"{guarded_db}\""
    ))
    .await?;
    let op = Operator::start(cp, "postgresql-local-guard", &[])?;

    // A database with our name but someone else's ownership is never adopted.
    let t = condition(&api, "taken", "Synced", "OwnedByOther").await?;
    assert!(t.message.contains("will not adopt"), "{}", t.message);
    let comment: String = a
        .query_one("SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE datname = $1", &[&taken_db])
        .await?
        .get(0);
    assert_eq!(
        comment, "someone else's",
        "a foreign database is never touched"
    );

    // The pre-crash database was adopted: exactly one, and usable with the Secret.
    ready(&api, "guarded").await?;
    let count: i64 = a
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname LIKE $1",
            &[&format!("{guarded_db}%")],
        )
        .await?
        .get(0);
    assert_eq!(count, 1, "exactly one database after the crash");
    let mark: String = a
        .query_one("SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE datname = $1", &[&guarded_db])
        .await?
        .get(0);
    assert_eq!(
        mark,
        format!("paved.dev/claim-uid={guarded_uid}"),
        "the interrupted create was finished"
    );
    connect_with_secret(&client, ns, "guarded-connection").await?;

    // Both claims go: the adopted database follows its claim's policy, the foreign one
    // survives the claim that collided with it.
    api.delete("taken", &DeleteParams::default()).await?;
    api.delete("guarded", &DeleteParams::default()).await?;
    eventually("guard claims gone", T, || async {
        Ok(
            (api.get_opt("taken").await?.is_none() && api.get_opt("guarded").await?.is_none())
                .then_some(()),
        )
    })
    .await?;
    assert!(
        !database_exists(cp, &guarded_db).await?,
        "the adopted database follows its claim's policy"
    );
    assert!(
        database_exists(cp, &taken_db).await?,
        "the foreign database survives the claim that collided with it"
    );
    for db in [taken_db, format!("{guarded_db}_final")] {
        a.batch_execute(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
            .await?;
    }
    drop(op);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_database_is_usable_and_its_lost_secret_heals() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let svc = "e2e-localdb";
    let op = Operator::start(cp, "postgresql-local", &["--resync-seconds", "5"])?;
    fresh_service(&client, svc).await?;
    let claims: Api<ServiceClaim> = Api::all(client.clone());
    claims
        .create(
            &PostParams::default(),
            &service(
                svc,
                "internal",
                json!([{ "name": "main", "parameters": { "size": "small" } }]),
            )?,
        )
        .await?;
    let pgs: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), svc);

    // A usable database, reached with the delivered Secret.
    let main = ready(&pgs, "main").await?;
    let st = main.status.clone().unwrap();
    assert_eq!(st.provider.as_deref(), Some("local"));
    assert_eq!(st.endpoint.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        st.port.map(|p| p.to_string()),
        Some(cp.env["PAVED_POSTGRES_PORT"].clone())
    );
    assert!(st
        .external_name
        .as_deref()
        .is_some_and(|n| n.starts_with("paved-")));
    assert_eq!(
        main.annotations().get("paved.dev/external-name"),
        st.external_name.as_ref()
    );
    assert!(main
        .annotations()
        .contains_key("paved.dev/create-succeeded"));
    let c = connect_with_secret(&client, svc, "main-connection").await?;
    c.batch_execute("CREATE TABLE claims (id int primary key); INSERT INTO claims VALUES (1)")
        .await?;
    let n: i64 = c
        .query_one("SELECT count(*) FROM claims", &[])
        .await?
        .get(0);
    assert_eq!(n, 1);

    // A lost connection Secret is recreated and the role's password follows it.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), svc);
    // A new object (a reconcile already running when the Secret went may write it back
    // with the password it had read), and usable.
    let before = secrets.get("main-connection").await?.uid();
    secrets
        .delete("main-connection", &DeleteParams::default())
        .await?;
    eventually("secret restored and usable", T, || async {
        match secrets.get_opt("main-connection").await? {
            Some(s) if s.uid() != before => {
                Ok(connect_with_secret(&client, svc, "main-connection")
                    .await
                    .ok()
                    .map(|_| ()))
            }
            _ => Ok(None),
        }
    })
    .await?;

    // Status never carries the password.
    let pw = String::from_utf8(
        secrets.get("main-connection").await?.data.unwrap()["password"]
            .0
            .clone(),
    )?;
    let status = serde_json::to_string(&pgs.get("main").await?.status)?;
    assert!(!status.contains(&pw), "password leaked into status");
    assert!(
        !op.logs().contains(&pw),
        "password leaked into the operator log"
    );

    // The ServiceClaim goes (as when Argo CD prunes it or moves it to another
    // directory): its namespace goes with it, and `main`, whose policy is only the
    // Composition's default, leaves a final copy rather than nothing.
    let main_db = st.external_name.unwrap().replace('-', "_");
    claims.delete(svc, &DeleteParams::default()).await?;
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    eventually(
        "the service's namespace is gone",
        Duration::from_secs(120),
        || async { Ok(nss.get_opt(svc).await?.is_none().then_some(())) },
    )
    .await?;
    assert!(
        !database_exists(cp, &main_db).await?
            && database_exists(cp, &format!("{main_db}_final")).await?,
        "a cascade takes a final copy before dropping the database"
    );
    admin(cp)
        .await?
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS \"{main_db}_final\" WITH (FORCE)"
        ))
        .await?;
    drop(op);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_removed_from_a_service_are_kept_until_deleted_by_their_policy() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let svc = "e2e-localdb-policy";
    let op = Operator::start(cp, "postgresql-local-policy", &[])?;
    fresh_service(&client, svc).await?;
    let claims: Api<ServiceClaim> = Api::all(client.clone());
    let dbs = json!([
        { "name": "main", "parameters": { "size": "small" } },
        { "name": "del", "deletionPolicy": "Delete" },
        { "name": "orph", "deletionPolicy": "Orphan" },
        { "name": "snap", "deletionPolicy": "Snapshot" },
    ]);
    claims
        .create(&PostParams::default(), &service(svc, "internal", dbs)?)
        .await?;
    let pgs: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), svc);
    let mut names = vec![];
    for name in ["main", "del", "orph", "snap"] {
        let p = ready(&pgs, name).await?;
        names.push(p.status.unwrap().external_name.unwrap().replace('-', "_"));
    }
    let (main_db, del_db, orph_db, snap_db) = (&names[0], &names[1], &names[2], &names[3]);
    let a = admin(cp).await?;
    // The service's app makes a table in `snap`: its objects must not keep the
    // Snapshot deletion from finishing.
    connect_with_secret(&client, svc, "snap-connection")
        .await?
        .batch_execute("CREATE TABLE orders (id int); INSERT INTO orders VALUES (1)")
        .await?;

    // Removing entries from the spec is not a request to destroy data: all three are
    // kept, running, and the ServiceClaim says so.
    claims
        .patch(
            svc,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "databases": [
            { "name": "main", "parameters": { "size": "small" } }
        ] } })),
        )
        .await?;
    let kept = vec!["del".to_string(), "orph".into(), "snap".into()];
    eventually("three databases kept", T, || async {
        let c = claims.get(svc).await?;
        let s = c.status.unwrap_or_default();
        let cond = conditions::find(&s.conditions, conditions::DATABASES_RETAINED).cloned();
        Ok((s.retained_databases == kept).then_some(()).and(cond))
    })
    .await?;
    for name in &kept {
        let p = pgs.get(name).await?;
        assert!(
            p.metadata.deletion_timestamp.is_none(),
            "{name} is not being deleted"
        );
    }
    for db in [del_db, orph_db, snap_db] {
        assert!(
            database_exists(cp, db).await?,
            "{db} kept after its entry went"
        );
    }
    let events = cp.kubectl(&[
        "get",
        "events",
        "-A",
        "--field-selector",
        "reason=DatabaseRetained",
        "-o",
        "name",
    ])?;
    assert!(
        !events.trim().is_empty(),
        "a DatabaseRetained Event names what was kept"
    );

    // Deleting them is the explicit act; each one's policy applies then (`del` is
    // confirmed, so its Delete drops the data without a copy).
    db::confirm_delete(&pgs, "del").await?;
    for name in &kept {
        pgs.delete(name, &DeleteParams::default()).await?;
    }
    eventually("three claims gone", T, || async {
        let gone = pgs.get_opt("del").await?.is_none()
            && pgs.get_opt("orph").await?.is_none()
            && pgs.get_opt("snap").await?.is_none();
        Ok(gone.then_some(()))
    })
    .await?;
    eventually("the ServiceClaim no longer lists them", T, || async {
        let s = claims.get(svc).await?.status.unwrap_or_default();
        let cond = conditions::find(&s.conditions, conditions::DATABASES_RETAINED);
        Ok((s.retained_databases.is_empty() && cond.is_none()).then_some(()))
    })
    .await?;
    assert!(
        !database_exists(cp, del_db).await? && !role_exists(cp, del_db).await?,
        "Delete drops database and role"
    );
    assert!(
        database_exists(cp, orph_db).await?,
        "Orphan leaves the database"
    );
    assert!(
        !database_exists(cp, snap_db).await?,
        "Snapshot deletes the database..."
    );
    assert!(
        database_exists(cp, &format!("{snap_db}_final")).await?,
        "...after a final snapshot"
    );
    assert!(
        !role_exists(cp, snap_db).await?,
        "the Snapshot deletion finished: the role is gone too"
    );
    // The copy is the platform's: the service's role could not connect, nor can any
    // other role on the server.
    let main_role = main_db;
    let connectable: bool = a
        .query_one(
            "SELECT has_database_privilege($1, $2, 'CONNECT')",
            &[&main_role, &format!("{snap_db}_final")],
        )
        .await?
        .get(0);
    assert!(
        !connectable,
        "another service's role cannot connect to the final copy"
    );
    let rows: i64 = {
        let mut cfg: tokio_postgres::Config = cp.env["PAVED_POSTGRES_DSN"].parse()?;
        cfg.dbname(format!("{snap_db}_final"));
        let (c, conn) = cfg.connect(NoTls).await?;
        tokio::spawn(conn);
        c.query_one("SELECT count(*) FROM orders", &[])
            .await?
            .get(0)
    };
    assert_eq!(rows, 1, "the final copy holds the service's data");

    // With only a Ready database left, the ServiceClaim is Ready too.
    eventually("ServiceClaim Ready", T, || async {
        let c = claims.get(svc).await?;
        Ok(c.status
            .filter(|s| conditions::is_ready(&s.conditions, c.metadata.generation))
            .map(|_| ()))
    })
    .await?;

    // Cleanup for reruns: the orphan, the snapshot and `main`'s final copy are ours to
    // drop here.
    claims.delete(svc, &DeleteParams::default()).await?;
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    eventually(
        "the service's namespace is gone",
        Duration::from_secs(120),
        || async { Ok(nss.get_opt(svc).await?.is_none().then_some(())) },
    )
    .await?;
    for db in [
        orph_db.clone(),
        format!("{snap_db}_final"),
        format!("{main_db}_final"),
    ] {
        a.batch_execute(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
            .await?;
    }
    drop(op);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_local_database_is_observed_read_only_and_what_it_cannot_show_is_not_judged(
) -> Result<()> {
    let cp = control_plane();
    let ns = "e2e-localdb-observe";
    let api = {
        let _op = Operator::start(cp, "postgresql-local-observe-0", &[])?;
        fresh_namespace(cp, ns).await?
    };
    // A database made by hand, with a comment of its own.
    let legacy = format!("legacy_reports_{}", std::process::id());
    let a = admin(cp).await?;
    a.batch_execute(&format!("CREATE DATABASE \"{legacy}\""))
        .await?;
    a.batch_execute(&format!(
        "COMMENT ON DATABASE \"{legacy}\" IS 'made by hand'"
    ))
    .await?;
    db::grant_existing(
        cp,
        "e2e-existing-local",
        "team-claims",
        &[(ns, &legacy, "postgresql-local")],
    )?;
    let op = Operator::start(cp, "postgresql-local-observe", &[])?;
    let claim: PostgreSQLInstance = serde_json::from_value(json!({
        "apiVersion": "paved.dev/v1alpha1", "kind": "PostgreSQLInstance",
        "metadata": { "name": "reports", "namespace": ns },
        "spec": { "compositionRef": { "name": "postgresql-local" },
                  "existing": { "externalName": legacy } }
    }))?;
    api.create(&PostParams::default(), &claim).await?;
    let p = ready(&api, "reports").await?;
    let st = p.status.unwrap();
    assert_eq!(st.endpoint.as_deref(), Some("127.0.0.1"));
    assert!(st.violations.is_empty(), "{:?}", st.violations);
    // The local provider shows none of the floor's properties: not judged, not met.
    let c = conditions::find(&st.conditions, "Compliant").context("Compliant")?;
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("Unknown", "NotJudged")
    );
    assert!(
        c.message.contains("encryption") && c.message.contains("tls"),
        "{}",
        c.message
    );
    // Nothing of it was touched: its comment, no role of its name, no Secret.
    let comment: String = a
        .query_one("SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE datname = $1", &[&legacy])
        .await?
        .get(0);
    assert_eq!(comment, "made by hand");
    assert!(!role_exists(cp, &legacy).await?, "no role made for it");
    let secrets: Api<Secret> = Api::namespaced(cp.client().await?, ns);
    assert!(secrets.get_opt("reports-connection").await?.is_none());
    // The claim goes, the database stays.
    api.delete("reports", &DeleteParams::default()).await?;
    eventually("reports gone", T, || async {
        Ok(api.get_opt("reports").await?.is_none().then_some(()))
    })
    .await?;
    assert!(database_exists(cp, &legacy).await?, "left as it was");
    a.batch_execute(&format!(
        "DROP DATABASE IF EXISTS \"{legacy}\" WITH (FORCE)"
    ))
    .await?;
    drop(op);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_local_database_is_adopted_with_its_data_and_its_users_kept() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let ns = "e2e-localdb-adopt";
    let api = {
        let _op = Operator::start(cp, "postgresql-local-adopt-0", &[])?;
        fresh_namespace(cp, ns).await?
    };
    // A database made by hand: its own owner and user, a comment, data.
    let run = std::process::id();
    let (legacy, owner) = (
        format!("legacy_orders_{run}"),
        format!("legacy_owner_{run}"),
    );
    let by_superuser = format!("legacy_admin_{run}");
    // And two databases of one shared owner: adopting one would reach the other.
    let (shared, shared_other, shared_owner) = (
        format!("legacy_shared_{run}"),
        format!("legacy_shared_other_{run}"),
        format!("legacy_shared_owner_{run}"),
    );
    let a = admin(cp).await?;
    // CREATE DATABASE runs alone (never in a transaction block).
    for sql in [
        format!("CREATE ROLE \"{owner}\" LOGIN PASSWORD 'legacy-pw'"),
        format!("CREATE DATABASE \"{legacy}\" OWNER \"{owner}\""),
        format!("COMMENT ON DATABASE \"{legacy}\" IS 'made by hand'"),
        format!("CREATE DATABASE \"{by_superuser}\""),
        format!("CREATE ROLE \"{shared_owner}\""),
        format!("CREATE DATABASE \"{shared}\" OWNER \"{shared_owner}\""),
        format!("CREATE DATABASE \"{shared_other}\" OWNER \"{shared_owner}\""),
    ] {
        a.batch_execute(&sql).await?;
    }
    let as_owner = |db: &str| {
        let mut cfg: tokio_postgres::Config = cp.env["PAVED_POSTGRES_DSN"].parse().unwrap();
        cfg.user(&owner).password("legacy-pw").dbname(db);
        cfg
    };
    {
        let (c, conn) = as_owner(&legacy).connect(NoTls).await?;
        tokio::spawn(conn);
        c.batch_execute("CREATE TABLE orders (id int); INSERT INTO orders VALUES (42)")
            .await?;
    }
    db::grant(
        cp,
        "e2e-adopt-local",
        "team-claims",
        &[
            (ns, &legacy, "postgresql-local", "Adopt"),
            (ns, &by_superuser, "postgresql-local", "Adopt"),
            (ns, &shared, "postgresql-local", "Adopt"),
        ],
    )?;
    let op = Operator::start(cp, "postgresql-local-adopt", &[])?;
    let adopt = |claim: &str, name: &str| -> Result<PostgreSQLInstance> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "paved.dev/v1alpha1", "kind": "PostgreSQLInstance",
            "metadata": { "name": claim, "namespace": ns },
            "spec": { "compositionRef": { "name": "postgresql-local" },
                      "existing": { "externalName": name, "mode": "Adopt" } }
        }))?)
    };
    api.create(&PostParams::default(), &adopt("orders", &legacy)?)
        .await?;
    let p = ready(&api, "orders").await?;
    // The claim's own login reaches the data written before it was adopted.
    let c = connect_with_secret(&client, ns, "orders-connection").await?;
    let row = c.query_one("SELECT id FROM orders", &[]).await?;
    assert_eq!(row.get::<_, i32>(0), 42);
    c.batch_execute("INSERT INTO orders VALUES (43)").await?;
    // Nothing was recreated, the old comment is kept before the claim's mark, and
    // the old user still gets in.
    let (oid_comment,): (String,) = {
        let r = a
            .query_one(
                "SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE datname = $1",
                &[&legacy],
            )
            .await?;
        (r.get(0),)
    };
    assert!(oid_comment.starts_with("made by hand"), "{oid_comment}");
    assert!(oid_comment.contains(&format!("paved.dev/claim-uid={}", p.uid().unwrap())));
    let (c, conn) = as_owner(&legacy).connect(NoTls).await?;
    tokio::spawn(conn);
    let n: i64 = c
        .query_one("SELECT count(*) FROM orders", &[])
        .await?
        .get(0);
    assert_eq!(n, 2);
    assert!(db::event_reasons_about(cp, ns, "orders")?.contains("Adopted"));

    // Owned by a superuser: not adoptable as it is, and the message says what to do.
    api.create(&PostParams::default(), &adopt("admin", &by_superuser)?)
        .await?;
    let c = condition(&api, "admin", "Synced", "NotAdoptable").await?;
    assert!(c.message.contains("ALTER DATABASE"), "{}", c.message);
    // Owned by a role that owns another database too: the claim would reach both.
    api.create(&PostParams::default(), &adopt("shared", &shared)?)
        .await?;
    let c = condition(&api, "shared", "Synced", "NotAdoptable").await?;
    assert!(c.message.contains(&shared_other), "{}", c.message);
    for name in [&by_superuser, &shared] {
        let comment: String = a
            .query_one(
                "SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE datname = $1",
                &[name],
            )
            .await?
            .get(0);
        assert_eq!(comment, "", "nothing of {name} was marked");
    }

    // The claims go; the databases and their data stay.
    for name in ["orders", "admin", "shared"] {
        api.delete(name, &DeleteParams::default()).await?;
        eventually(&format!("{name} gone"), T, || async {
            Ok(api.get_opt(name).await?.is_none().then_some(()))
        })
        .await?;
    }
    let (c, conn) = as_owner(&legacy).connect(NoTls).await?;
    tokio::spawn(conn);
    let n: i64 = c
        .query_one("SELECT count(*) FROM orders", &[])
        .await?
        .get(0);
    assert_eq!(n, 2, "an adopted database outlives its claim");
    drop(c);
    // The claim's own way in went with it.
    let paved_role = server_name(&p.uid().unwrap());
    assert!(
        !role_exists(cp, &paved_role).await?,
        "the claim's login role {paved_role} is dropped with the claim"
    );
    for sql in [
        format!("DROP DATABASE IF EXISTS \"{legacy}\" WITH (FORCE)"),
        format!("DROP DATABASE IF EXISTS \"{by_superuser}\" WITH (FORCE)"),
        format!("DROP DATABASE IF EXISTS \"{shared}\" WITH (FORCE)"),
        format!("DROP DATABASE IF EXISTS \"{shared_other}\" WITH (FORCE)"),
        format!("DROP ROLE IF EXISTS \"{shared_owner}\""),
        format!("DROP ROLE IF EXISTS \"{paved_role}\""),
        format!("DROP ROLE IF EXISTS \"{owner}\""),
    ] {
        a.batch_execute(&sql).await?;
    }
    drop(op);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_provider_refuses_phi_with_a_reason() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let svc = "e2e-localphi";
    let _op = Operator::start(cp, "postgresql-local-phi", &[])?;
    fresh_service(&client, svc).await?;
    let claims: Api<ServiceClaim> = Api::all(client.clone());
    claims
        .create(
            &PostParams::default(),
            &service(svc, "phi", json!([{ "name": "records" }]))?,
        )
        .await?;
    let pgs: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), svc);
    let c = condition(&pgs, "records", "Ready", "ClassificationNotSupported").await?;
    assert!(
        c.message.contains("customer-managed encryption"),
        "{}",
        c.message
    );
    let sc = eventually("service names the database", T, || async {
        let s = claims.get(svc).await?;
        Ok(s.status
            .and_then(|st| conditions::find(&st.conditions, "Ready").cloned())
            .filter(|r| {
                r.message.contains("PostgreSQLInstance records")
                    && r.message.contains("ClassificationNotSupported")
            }))
    })
    .await?;
    assert!(!sc.is_true());
    claims.delete(svc, &DeleteParams::default()).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_only_the_composition_can_refuse_shows_as_synced_false() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let ns = "e2e-pg-badinput";
    let _op = Operator::start(cp, "postgresql-badinput", &[])?;
    paved_e2e::db::namespace(cp, ns, "local", "internal")?;
    let pgs: Api<PostgreSQLInstance> = Api::namespaced(client.clone(), ns);
    for name in ["too-big", "wrong-class"] {
        let _ = pgs.delete(name, &DeleteParams::default()).await;
    }
    eventually("old claims gone", T, || async {
        Ok(
            (pgs.get_opt("too-big").await?.is_none()
                && pgs.get_opt("wrong-class").await?.is_none())
            .then_some(()),
        )
    })
    .await?;
    for (name, params) in [
        ("too-big", json!({ "storageGB": 1000 })),
        ("wrong-class", json!({ "instanceClass": "db.x2g.16xlarge" })),
    ] {
        let p: PostgreSQLInstance = serde_json::from_value(json!({
            "apiVersion": "paved.dev/v1alpha1", "kind": "PostgreSQLInstance",
            "metadata": { "name": name, "namespace": ns }, "spec": { "parameters": params }
        }))?;
        pgs.create(&PostParams::default(), &p).await?;
    }
    let big = condition(&pgs, "too-big", "Synced", "InvalidSpec").await?;
    assert!(
        big.message.contains("storageGB 1000 is outside") && big.message.contains("5..100"),
        "{}",
        big.message
    );
    let class = condition(&pgs, "wrong-class", "Synced", "InvalidSpec").await?;
    assert!(
        class.message.contains("db.x2g.16xlarge is not allowed"),
        "{}",
        class.message
    );
    // Nothing was created for either, so deletion is immediate.
    for name in ["too-big", "wrong-class"] {
        pgs.delete(name, &DeleteParams::default()).await?;
    }
    eventually("bad claims deleted", T, || async {
        Ok(
            (pgs.get_opt("too-big").await?.is_none()
                && pgs.get_opt("wrong-class").await?.is_none())
            .then_some(()),
        )
    })
    .await?;
    Ok(())
}
