//! The `local` provider: a role and a database per claim on a PostgreSQL server the
//! operator can reach. The embedded default, for laptops and CI; it refuses PHI
//! (see paved-compose) because it cannot guarantee customer-managed encryption.
//!
//! Ownership is recorded as a comment on the database, so a database with our name
//! but another claim's UID is a conflict, never adopted.

use async_trait::async_trait;
use paved_api::{DeletionPolicy, Reason};
use paved_compose::postgresql::{DesiredDatabase, ObservedDatabase, OWNER_TAG};
use tokio_postgres::{Client, NoTls};

use crate::{DeleteProgress, ExternalClient, Observation, ProviderError, Sensitive};

/// Connection settings parsed from the admin DSN (never logged: it holds a password).
pub struct LocalProvider {
    /// The admin connection, parsed once (its Debug redacts the password).
    admin: tokio_postgres::Config,
    host: String,
    port: u16,
    /// The password the claim's role must have (from the connection Secret).
    password: Sensitive,
}

impl LocalProvider {
    /// `admin_dsn`: `postgres://user:password@host:port/postgres`.
    pub fn new(admin_dsn: Sensitive, password: Sensitive) -> Result<Self, ProviderError> {
        let cfg: tokio_postgres::Config = admin_dsn.expose().parse().map_err(|_| ProviderError::Terminal {
            reason: Reason::InvalidAdminSecret,
            message: "the local provider's admin connection string does not parse (expected postgres://user:password@host:port/db)".into(),
        })?;
        let host = match cfg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".to_string(),
        };
        let port = cfg.get_ports().first().copied().unwrap_or(5432);
        Ok(LocalProvider {
            admin: cfg,
            host,
            port,
            password,
        })
    }

    /// The password the claim's role gets: the one to deliver in the connection Secret.
    pub fn password(&self) -> &Sensitive {
        &self.password
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    async fn connect(cfg: &tokio_postgres::Config) -> Result<Client, ProviderError> {
        let (client, conn) = cfg.connect(NoTls).await.map_err(classify)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "local provider connection closed");
            }
        });
        Ok(client)
    }

    async fn admin(&self) -> Result<Client, ProviderError> {
        Self::connect(&self.admin).await
    }

    /// Gives what `role` owns in database `db` to `paved_snapshots` (a NOLOGIN role
    /// without privileges, never the admin: the service's SECURITY DEFINER functions
    /// and triggers would otherwise run as a superuser when anyone touches the copy)
    /// and drops its grants there (a role that owns or may use objects in any
    /// database cannot be dropped).
    async fn disown_in(&self, db: &str, role: &str) -> Result<(), ProviderError> {
        let mut cfg = self.admin.clone();
        cfg.dbname(db);
        let client = Self::connect(&cfg).await?;
        let exists = client
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
            .await
            .map_err(classify)?
            .is_some();
        if exists {
            let role = ident(role);
            client
                .batch_execute(&format!(
                    "SET search_path = pg_catalog; \
                     REASSIGN OWNED BY {role} TO {SNAPSHOT_OWNER}; DROP OWNED BY {role}"
                ))
                .await
                .map_err(classify)?;
        }
        Ok(())
    }

    /// True when the claim's role can log in to its database with the delivered
    /// password: Ready means usable, not merely present.
    pub async fn can_login(&self, d: &DesiredDatabase) -> bool {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(&self.host)
            .port(self.port)
            .user(&d.master_username)
            .password(self.password.expose())
            .dbname(&d.database_name)
            .connect_timeout(std::time::Duration::from_secs(5));
        match cfg.connect(NoTls).await {
            Ok((client, conn)) => {
                tokio::spawn(conn);
                client.simple_query("SELECT 1").await.is_ok()
            }
            Err(_) => false,
        }
    }

    /// Sets the role's password to the delivered one (after the Secret was
    /// recreated, or a crash between writing it and creating the role).
    pub async fn reset_password(&self, d: &DesiredDatabase) -> Result<(), ProviderError> {
        let admin = self.admin().await?;
        admin
            .batch_execute(&format!(
                "ALTER ROLE {} WITH LOGIN PASSWORD {}",
                ident(&d.master_username),
                verifier(&self.password)
            ))
            .await
            .map_err(classify)
    }
}

impl LocalProvider {
    /// An adopted database's claim goes and the database stays: the claim's own login
    /// role (only one carrying the claim's mark) leaves it — what it made there is
    /// handed to the database's owner, its grants go — and is dropped, so no way in
    /// outlives the claim that was granted it.
    pub async fn release_adopted(&self, d: &DesiredDatabase) -> Result<(), ProviderError> {
        let admin = self.admin().await?;
        let ours = role_comment(&admin, &d.master_username)
            .await?
            .is_some_and(|c| c.contains(&ownership(d)));
        if !ours {
            return Ok(());
        }
        let role = ident(&d.master_username);
        if let Some(owner) = database_owner(&admin, &d.database_name).await? {
            let mut cfg = self.admin.clone();
            cfg.dbname(&d.database_name);
            let client = Self::connect(&cfg).await?;
            client
                .batch_execute(&format!(
                    "SET search_path = pg_catalog; REASSIGN OWNED BY {role} TO {}; DROP OWNED BY {role}",
                    ident(&owner)
                ))
                .await
                .map_err(classify)?;
        }
        admin
            .batch_execute(&format!("DROP ROLE IF EXISTS {role}"))
            .await
            .map_err(classify)
    }

    /// Takes over an existing database (the claim's role exists, marked): the role
    /// becomes a member of the database's owner, so it reaches the data as the owner
    /// does, and the database carries the claim's mark after whatever comment it had.
    /// Nothing is revoked: the roles that use it now keep working.
    async fn take_over(&self, admin: &Client, d: &DesiredDatabase) -> Result<(), ProviderError> {
        let (role, db) = (ident(&d.master_username), ident(&d.database_name));
        let comment = database_comment(admin, &d.database_name)
            .await?
            .ok_or_else(|| ProviderError::NotFound(format!("database {}", d.database_name)))?;
        if comment.contains(&ownership(d)) {
            return Ok(());
        }
        if comment.contains(OWNER_TAG) {
            return Err(ProviderError::Terminal {
                reason: Reason::OwnedByOther,
                message: format!("database {} is another claim's", d.database_name),
            });
        }
        let owner = ident(&adoptable_owner(admin, &d.database_name).await?);
        let marked = if comment.is_empty() {
            ownership(d)
        } else {
            format!("{comment}\n{}", ownership(d))
        };
        // The mark last, in one transaction with the grants: a database marked as the
        // claim's always has a role that can reach it.
        admin
            .batch_execute(&format!(
                "BEGIN; GRANT {owner} TO {role}; GRANT CONNECT ON DATABASE {db} TO {role}; \
                 COMMENT ON DATABASE {db} IS {}; COMMIT",
                literal(&marked)
            ))
            .await
            .map_err(classify)
    }
}

/// The one text value `sql` selects for `name`, or None when there is no such row.
async fn lookup(admin: &Client, sql: &str, name: &str) -> Result<Option<String>, ProviderError> {
    let row = admin.query_opt(sql, &[&name]).await.map_err(classify)?;
    Ok(row.map(|r| r.get(0)))
}

/// A database's comment (where Paved marks ownership), or None when it does not exist.
async fn database_comment(admin: &Client, name: &str) -> Result<Option<String>, ProviderError> {
    lookup(
        admin,
        "SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE datname = $1",
        name,
    )
    .await
}

/// A database's owner, or None when it does not exist.
async fn database_owner(admin: &Client, name: &str) -> Result<Option<String>, ProviderError> {
    lookup(
        admin,
        "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1",
        name,
    )
    .await
}

/// Ends every other session on a database.
async fn terminate(admin: &Client, db: &str) -> Result<(), ProviderError> {
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&db],
        )
        .await
        .map_err(classify)?;
    Ok(())
}

/// The owner of an existing database a claim adopts. The claim's role becomes a member
/// of it (and so may do what it may), so the owner must reach nothing but this
/// database: not a superuser or a role with powers beyond its objects (`SET ROLE`
/// would lend them), a member of no other role, and owner of (or granted) nothing in
/// another database, as the server's shared dependency catalog records it.
async fn adoptable_owner(admin: &Client, db: &str) -> Result<String, ProviderError> {
    let row = admin
        .query_one(
            "SELECT r.oid, r.rolname::text, \
             r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolbypassrls OR r.rolreplication \
             OR coalesce(shobj_description(r.oid, 'pg_authid'), '') LIKE '%paved.dev/claim-uid=%' \
             FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = $1",
            &[&db],
        )
        .await
        .map_err(classify)?;
    let (oid, owner, powerful): (u32, String, bool) = (row.get(0), row.get(1), row.get(2));
    let refuse = |why: String| {
        ProviderError::Terminal {
        reason: Reason::NotAdoptable,
        message: format!(
            "database {db} is owned by {owner}, which {why}; the claim's role would become a member of it and reach that too. \
             Give the database an owner of its own first (CREATE ROLE {db}_owner; ALTER DATABASE {db} OWNER TO {db}_owner; \
             and in it REASSIGN OWNED BY {owner} TO {db}_owner), then adopt it"
        ),
    }
    };
    if powerful {
        return Err(refuse(
            "is a superuser, may create roles or databases, bypass row security or replicate, or is a claim's own role"
                .into(),
        ));
    }
    let elsewhere: Vec<String> = admin
        .query(
            "SELECT datname::text FROM pg_database WHERE datdba = $1 AND datname <> $2 \
             UNION SELECT d.datname::text FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid \
             WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = $1 AND s.deptype IN ('o', 'a') AND d.datname <> $2 \
             UNION SELECT d.datname::text FROM pg_shdepend s JOIN pg_database d ON d.oid = s.objid \
             WHERE s.dbid = 0 AND s.classid = 'pg_database'::regclass AND s.refclassid = 'pg_authid'::regclass \
             AND s.refobjid = $1 AND d.datname <> $2 \
             ORDER BY 1",
            &[&oid, &db],
        )
        .await
        .map_err(classify)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !elsewhere.is_empty() {
        return Err(refuse(format!(
            "owns or is granted objects in other databases too ({})",
            elsewhere.join(", ")
        )));
    }
    let member_of: Vec<String> = admin
        .query(
            "SELECT r.rolname::text FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid WHERE m.member = $1 ORDER BY 1",
            &[&oid],
        )
        .await
        .map_err(classify)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !member_of.is_empty() {
        return Err(refuse(format!(
            "is a member of other roles ({})",
            member_of.join(", ")
        )));
    }
    Ok(owner)
}

/// A role's comment (where Paved marks ownership), or None when it does not exist.
async fn role_comment(admin: &Client, name: &str) -> Result<Option<String>, ProviderError> {
    lookup(
        admin,
        "SELECT coalesce(shobj_description(oid, 'pg_authid'), '') FROM pg_roles WHERE rolname = $1",
        name,
    )
    .await
}

fn ownership(d: &DesiredDatabase) -> String {
    format!("{OWNER_TAG}={}", d.owner_uid)
}

#[async_trait]
impl ExternalClient<DesiredDatabase, ObservedDatabase> for LocalProvider {
    async fn observe(
        &self,
        d: &DesiredDatabase,
    ) -> Result<Observation<ObservedDatabase>, ProviderError> {
        let admin = self.admin().await?;
        let Some(comment) = database_comment(&admin, &d.database_name).await? else {
            return Ok(Observation::Absent);
        };
        if d.observe_only {
            // Whoever's it is: only what the server can say of it.
            return Ok(Observation::Present(ObservedDatabase {
                state: "available".into(),
                endpoint: Some(self.host.clone()),
                port: Some(self.port as i32),
                ..Default::default()
            }));
        }
        // A create interrupted between CREATE DATABASE and its comment leaves an
        // unmarked database owned by our (marked) role: ours, to be finished.
        let owner_role_ours = admin
            .query_opt(
                "SELECT coalesce(shobj_description(r.oid, 'pg_authid'), '') FROM pg_database d \
                 JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = $1",
                &[&d.database_name],
            )
            .await
            .map_err(classify)?
            .is_some_and(|r| r.get::<_, String>(0).contains(&ownership(d)));
        let marked = comment.contains(&ownership(d));
        let ours = marked || (comment.is_empty() && owner_role_ours);
        // An existing database to take over: any that carries no claim's mark, and
        // whose owner is not a superuser (the claim's role becomes a member of it).
        let adoptable = d.adopting && !comment.contains(OWNER_TAG);
        if adoptable && !marked {
            adoptable_owner(&admin, &d.database_name).await?;
        }
        if !ours && !adoptable {
            return Ok(Observation::OwnedByOther {
                owner: if comment.is_empty() {
                    "unknown (no Paved ownership comment)".into()
                } else {
                    comment
                },
            });
        }
        let role = admin
            .query_opt(
                "SELECT 1 FROM pg_roles WHERE rolname = $1",
                &[&d.master_username],
            )
            .await
            .map_err(classify)?;
        let version: String = admin
            .query_one("SELECT current_setting('server_version')", &[])
            .await
            .map_err(classify)?
            .get(0);
        Ok(Observation::Present(ObservedDatabase {
            // Without its role or its mark, a create did not finish.
            state: if role.is_some() && marked {
                "available".into()
            } else {
                INCOMPLETE.into()
            },
            endpoint: Some(self.host.clone()),
            port: Some(self.port as i32),
            // The claim's mark, as the driver judges it (an unmarked one is adopted).
            owner_uid: ours.then(|| d.owner_uid.clone()),
            engine_version: Some(
                version
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            ),
            ..Default::default()
        }))
    }

    async fn create(&self, d: &DesiredDatabase) -> Result<(), ProviderError> {
        let admin = self.admin().await?;
        let role = ident(&d.master_username);
        let db = ident(&d.database_name);
        let exists = admin
            .query_opt(
                "SELECT 1 FROM pg_roles WHERE rolname = $1",
                &[&d.master_username],
            )
            .await
            .map_err(classify)?
            .is_some();
        if exists {
            let comment = role_comment(&admin, &d.master_username)
                .await?
                .unwrap_or_default();
            if !comment.contains(&ownership(d)) {
                return Err(ProviderError::Terminal {
                    reason: Reason::OwnedByOther,
                    message: format!("role {} exists and is not this claim's", d.master_username),
                });
            }
            admin
                .batch_execute(&format!(
                    "ALTER ROLE {role} WITH LOGIN PASSWORD {}",
                    verifier(&self.password)
                ))
                .await
                .map_err(classify)?;
        } else {
            // Role and mark in one transaction: a role of ours is never unmarked.
            admin
                .batch_execute(&format!(
                    "BEGIN; CREATE ROLE {role} WITH LOGIN PASSWORD {}; COMMENT ON ROLE {role} IS {}; COMMIT",
                    verifier(&self.password),
                    literal(&ownership(d))
                ))
                .await
                .map_err(classify)?;
        }
        if d.adopting {
            return self.take_over(&admin, d).await;
        }
        let db_exists = database_owner(&admin, &d.database_name).await?.is_some();
        if !db_exists {
            // CREATE DATABASE cannot run in a transaction block: one statement per call.
            admin
                .batch_execute(&format!("CREATE DATABASE {db} OWNER {role}"))
                .await
                .map_err(classify)?;
        }
        admin
            .batch_execute(&format!(
                "COMMENT ON DATABASE {db} IS {own}; COMMENT ON ROLE {role} IS {own}; \
                 REVOKE CONNECT ON DATABASE {db} FROM PUBLIC; GRANT CONNECT ON DATABASE {db} TO {role}",
                own = literal(&ownership(d))
            ))
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn update(
        &self,
        d: &DesiredDatabase,
        _observed: &ObservedDatabase,
    ) -> Result<(), ProviderError> {
        // Nothing about a local database is sized; finishing an interrupted create is
        // the only correction.
        self.create(d).await
    }

    async fn delete(&self, d: &DesiredDatabase) -> Result<DeleteProgress, ProviderError> {
        if d.deletion_policy == DeletionPolicy::Orphan {
            if d.adopting {
                self.release_adopted(d).await?;
                return Ok(DeleteProgress::Done(format!(
                    "database {} left in place (Orphan); the claim's login role {} is dropped",
                    d.database_name, d.master_username
                )));
            }
            return Ok(DeleteProgress::Done(format!(
                "database {} left in place (Orphan)",
                d.database_name
            )));
        }
        let admin = self.admin().await?;
        let role_owned = role_comment(&admin, &d.master_username)
            .await?
            .is_some_and(|c| c.contains(&ownership(d)));
        let comment = database_comment(&admin, &d.database_name).await?;
        // Ours by its mark, or — the mark is the database owner's to rewrite — owned by
        // our role, whose own mark only the admin can set.
        let owned = match &comment {
            None => None,
            Some(c) => Some(
                c.contains(&ownership(d))
                    || (role_owned
                        && database_owner(&admin, &d.database_name).await?.as_deref()
                            == Some(d.master_username.as_str())),
            ),
        };
        match owned {
            // Someone else's database under our name: nothing of ours to delete, and
            // neither their database nor a role of the same name is touched.
            Some(false) => {
                return Ok(DeleteProgress::Skipped(format!(
                    "database {} belongs to someone else; left untouched",
                    d.database_name
                )))
            }
            Some(true) => {
                let db = ident(&d.database_name);
                // Nobody reconnects while it is copied and dropped.
                admin
                    .batch_execute(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false"))
                    .await
                    .map_err(classify)?;
                terminate(&admin, &d.database_name).await?;
                if d.deletion_policy == DeletionPolicy::Snapshot {
                    let snap = snapshot_name(d);
                    let snap_exists = database_owner(&admin, &snap).await?.is_some();
                    if !snap_exists {
                        // Closed from its first moment: nobody connects before it is
                        // the admin's alone.
                        admin
                            .batch_execute(&format!(
                                "CREATE DATABASE {} TEMPLATE {db} ALLOW_CONNECTIONS false",
                                ident(&snap)
                            ))
                            .await
                            .map_err(classify)?;
                    }
                    // Every pass, so a crash at any point is finished here: the copy
                    // is the platform's (PUBLIC may not connect, the service's role
                    // holds no grant on it), and what the role made inside it passes
                    // to the admin, or the role could never be dropped and the
                    // deletion would never end.
                    admin
                        .batch_execute(&format!(
                            "REVOKE ALL ON DATABASE {s} FROM PUBLIC; COMMENT ON DATABASE {s} IS {c}; \
                             ALTER DATABASE {s} ALLOW_CONNECTIONS true",
                            s = ident(&snap),
                            c = literal(&format!(
                                "final snapshot of {}; {}",
                                d.database_name,
                                ownership(d)
                            ))
                        ))
                        .await
                        .map_err(classify)?;
                    terminate(&admin, &snap).await?;
                    admin
                        .batch_execute(&format!(
                            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{SNAPSHOT_OWNER}') \
                             THEN CREATE ROLE {SNAPSHOT_OWNER} NOLOGIN; END IF; END $$"
                        ))
                        .await
                        .map_err(classify)?;
                    self.disown_in(&snap, &d.master_username).await?;
                }
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                    .await
                    .map_err(classify)?;
            }
            None => {}
        }
        // The role goes only if it carries our ownership comment.
        if role_owned {
            // No new logins with the password the service knew, and none left open,
            // even while something keeps the role from being dropped.
            let role = ident(&d.master_username);
            admin
                .batch_execute(&format!("ALTER ROLE {role} NOLOGIN"))
                .await
                .map_err(classify)?;
            admin
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()",
                    &[&d.master_username],
                )
                .await
                .map_err(classify)?;
            admin
                .batch_execute(&format!(
                    "DROP ROLE IF EXISTS {}",
                    ident(&d.master_username)
                ))
                .await
                .map_err(classify)?;
        }
        Ok(DeleteProgress::Done(match (owned, d.deletion_policy) {
            (None | Some(false), _) => format!("database {} no longer exists", d.database_name),
            (Some(_), DeletionPolicy::Snapshot) => format!(
                "database {} dropped; its final copy {} is kept, connectable only by the server's admin",
                d.database_name,
                snapshot_name(d)
            ),
            (Some(_), _) => format!("database {} dropped", d.database_name),
        }))
    }
}

/// Owns what a service's role made inside a final copy: NOLOGIN, no privileges.
const SNAPSHOT_OWNER: &str = "paved_snapshots";

/// The observed state of a database whose create did not finish.
pub const INCOMPLETE: &str = "incomplete";

/// The local provider's final snapshot: a copy of the database under this name.
pub fn snapshot_name(d: &DesiredDatabase) -> String {
    format!("{}_final", d.database_name)
}

fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn literal(s: &str) -> String {
    // A backslash makes it an escape string (E'…', backslashes doubled), which means
    // the same whatever standard_conforming_strings says; text from elsewhere (an
    // existing database's comment) is never read as SQL.
    if s.contains('\\') {
        return format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"));
    }
    format!("'{}'", s.replace('\'', "''"))
}

/// The password as a SCRAM-SHA-256 verifier literal (what psql's `\password` sends):
/// PostgreSQL stores it as is, so the password itself is never in a statement, a
/// server log or `pg_stat_activity`.
fn verifier(password: &Sensitive) -> String {
    literal(&postgres_protocol::password::scram_sha_256(
        password.expose().as_bytes(),
    ))
}

/// Maps a PostgreSQL error to a category without echoing the statement (which may
/// carry a password).
fn classify(e: tokio_postgres::Error) -> ProviderError {
    match e.code() {
        Some(code) => {
            let c = code.code();
            let msg = e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| c.to_string());
            if c.starts_with("28") {
                ProviderError::Terminal {
                    reason: Reason::ProviderAccessDenied,
                    message: msg,
                }
            } else if c.starts_with("53")
                || c.starts_with("57")
                || c.starts_with("08")
                || c == "40001"
                || c == "55006"
            {
                ProviderError::Retryable(msg)
            } else {
                ProviderError::Terminal {
                    reason: Reason::ProviderRejected,
                    message: msg,
                }
            }
        }
        // No SQLSTATE: the connection itself failed.
        None => ProviderError::Retryable(format!("cannot reach the PostgreSQL server: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_is_safe() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal(r"a\'; DROP"), r"E'a\\''; DROP'");
    }

    #[test]
    fn a_password_is_sent_as_a_scram_verifier_never_as_itself() {
        let v = verifier(&Sensitive::new("pa'ss-w0rd"));
        assert!(v.starts_with("'SCRAM-SHA-256$4096:"), "{v}");
        assert!(!v.contains("pa'ss") && !v.contains("pa''ss"));
        // A fresh salt each time: equal passwords do not give equal verifiers.
        assert_ne!(v, verifier(&Sensitive::new("pa'ss-w0rd")));
    }

    #[test]
    fn an_unparseable_admin_dsn_is_terminal_and_does_not_echo_it() {
        let err = LocalProvider::new(
            Sensitive::new("postgres://u:s3cret@host:notaport/db"),
            Sensitive::new("x"),
        )
        .err()
        .unwrap();
        assert_eq!(err.reason(), Reason::InvalidAdminSecret);
        assert!(!err.to_string().contains("s3cret"));
    }
}
