//! Cloud identities (phase 7b): what polling services' own identities on Azure or GCP
//! costs, counted by the loopback fakes themselves.

use std::time::Duration;

use anyhow::{Context, Result};
use kube::{Api, Client};
use paved_api::{Cloud, ServiceClaim};
use paved_e2e::{eventually, Operator};
use serde_json::{json, Value};

use crate::{
    claims::{count, create_all, service_claim},
    report::check,
};

/// The operator's default: how long an identity's one-at-a-time reads are trusted.
pub const IDENTITY_RECHECK_SECONDS: u64 = 1800;

/// Phase 7b: what polling `n` services' own identities on Azure or GCP costs.
pub struct IdentityCalls {
    cloud: Cloud,
    identities: usize,
    cycles: u64,
    /// List pages the operator sent (its `paved_cloud_list_calls` metric).
    list_pages: f64,
    /// Requests the fake served in the window, all of them.
    requests: f64,
    /// Of those, reads of one identity's credential or policy.
    per_identity_reads: f64,
    recheck_seconds: u64,
    poll_seconds: u64,
}

impl IdentityCalls {
    /// Calls per identity per poll before the shared lists (a GET of the identity,
    /// of its credential or policy, and, on Azure, its role assignments).
    fn before(&self) -> usize {
        match self.cloud {
            Cloud::Azure => 3,
            _ => 2,
        }
    }

    pub fn json(&self) -> Value {
        json!({ "identities": self.identities, "cycles": self.cycles, "pollSeconds": self.poll_seconds,
                "listPages": self.list_pages, "requests": self.requests,
                "requestsPerPoll": self.requests / self.cycles as f64,
                "perIdentityReads": self.per_identity_reads,
                "recheckSeconds": self.recheck_seconds,
                "callsPerPollBefore": self.before() * self.identities })
    }

    /// Items per list page: what the Azure fake serves (Azure's own pages hold far
    /// more), and what Paved asks Google for.
    fn page_size(&self) -> f64 {
        match self.cloud {
            Cloud::Azure => 2.0,
            _ => 100.0,
        }
    }

    pub fn row(&self, max_lists: f64) -> (String, String, String) {
        let cycles = self.cycles as f64;
        let pages = self.list_pages / cycles;
        let reads = self.per_identity_reads / cycles;
        // Each kind (identities; on Azure also role assignments, a page here) listed
        // at most poll ÷ TTL times a poll.
        let pages_per_list = (self.identities as f64 / self.page_size()).ceil()
            + if self.cloud == Cloud::Azure { 1.0 } else { 0.0 };
        let max_pages = max_lists * pages_per_list;
        let amortized =
            self.identities as f64 * self.poll_seconds as f64 / self.recheck_seconds as f64;
        (
            format!(
                "{} identity calls per poll, {} services' own {}: list pages + one-at-a-time reads",
                self.cloud,
                self.identities,
                if self.cloud == Cloud::Azure { "managed identities" } else { "service accounts" }
            ),
            format!("{pages:.1} + {reads:.1}"),
            format!(
                "≤ {max_pages} pages ({max_lists} lists of each kind, {} per page) + ≤ {:.1} reads (each re-read every {} s), not per identity ({} calls before), {}",
                self.page_size(),
                amortized.ceil(),
                self.recheck_seconds,
                self.before() * self.identities,
                check(pages <= max_pages && reads <= amortized.ceil())
            ),
        )
    }
}

/// Lines of a fake's request log (`<time> <method> <path> <status>`).
fn fake_requests(cp: &paved_e2e::ControlPlane, fake: &str) -> Result<Vec<String>> {
    let path =
        std::path::Path::new(&cp.env["PAVED_CP_DIR"]).join(format!("logs/{fake}.log.requests"));
    Ok(std::fs::read_to_string(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .lines()
        .map(String::from)
        .collect())
}

/// One cloud's services with their own identities, created; `measure_identities`
/// waits for them and counts the calls of a window of polls.
pub struct IdentityClaims {
    cloud: Cloud,
    n: usize,
    prefix: String,
    fake: &'static str,
    label: &'static str,
    one_at_a_time: fn(&str) -> bool,
}

/// The cloud's Composition given its identity settings, and `n` ServiceClaims on it.
pub async fn start_identities(
    cp: &paved_e2e::ControlPlane,
    client: &Client,
    cloud: Cloud,
    n: usize,
    poll: u64,
    concurrency: usize,
) -> Result<IdentityClaims> {
    eprintln!("bench: {n} {cloud} ServiceClaims with their own identity");
    let (composition, identity, fake, label, one_at_a_time): (_, _, _, _, fn(&str) -> bool) =
        match cloud {
            Cloud::Azure => (
                "service-azure",
                json!({ "azure": { "subscriptionId": "00000000-0000-0000-0000-0000000000b1",
                                   "resourceGroup": "paved-bench-ids", "location": "westeurope",
                                   "oidcIssuer": "https://oidc.bench.example/cluster/",
                                   "keyVaultId": "/subscriptions/00000000-0000-0000-0000-0000000000b1/resourceGroups/kv/providers/Microsoft.KeyVault/vaults/paved-kv",
                                   "pollInterval": format!("{poll}s") } }),
                "azure",
                "provider=\"azure-identity\"",
                |l: &str| l.contains(" GET ") && l.contains("/federatedIdentityCredentials/"),
            ),
            _ => (
                "service-gcp",
                json!({ "gcp": { "projectId": "paved-bench-ids", "workloadPool": "paved-prod.svc.id.goog",
                                 "pollInterval": format!("{poll}s") } }),
                "gcp",
                "provider=\"gcp-identity\"",
                |l: &str| l.contains(":getIamPolicy"),
            ),
        };
    paved_e2e::patch_service_composition(cp, composition, json!({ "identity": identity }))?;
    let prefix = format!("bench-{cloud}-id-");
    let services: Api<ServiceClaim> = Api::all(client.clone());
    let claims: Vec<ServiceClaim> = (0..n)
        .map(|i| {
            let mut c = service_claim(&format!("{prefix}{i}"), "identities");
            c.spec.cloud = Some(cloud);
            c
        })
        .collect();
    create_all(&services, claims, concurrency).await?;
    Ok(IdentityClaims {
        cloud,
        n,
        prefix,
        fake,
        label,
        one_at_a_time,
    })
}

/// Once every service's identity is made: one poll, then the calls of three polls.
pub async fn measure_identities(
    cp: &paved_e2e::ControlPlane,
    client: &Client,
    op: &Operator,
    c: IdentityClaims,
    poll: u64,
) -> Result<IdentityCalls> {
    let services: Api<ServiceClaim> = Api::all(client.clone());
    eventually(
        "every service's identity made",
        Duration::from_secs(1800),
        || async {
            let got = count(&services, |s| {
                s.metadata
                    .name
                    .as_deref()
                    .is_some_and(|m| m.starts_with(&c.prefix))
                    && s.status.as_ref().is_some_and(|s| s.identity.is_some())
            })
            .await?;
            Ok((got >= c.n).then_some(()))
        },
    )
    .await?;
    let cycles = 3u64;
    // One poll first: each identity's first read after Paved's own writes is not the
    // steady state.
    tokio::time::sleep(Duration::from_secs(poll)).await;
    let lists0 = op.counter("paved_cloud_list_calls", c.label)?;
    let seen0 = fake_requests(cp, c.fake)?.len();
    tokio::time::sleep(Duration::from_secs(poll * cycles)).await;
    let window: Vec<String> = fake_requests(cp, c.fake)?
        .get(seen0..)
        .map(<[String]>::to_vec)
        .unwrap_or_default();
    Ok(IdentityCalls {
        cloud: c.cloud,
        identities: c.n,
        cycles,
        list_pages: op.counter("paved_cloud_list_calls", c.label)? - lists0,
        requests: window.len() as f64,
        per_identity_reads: window.iter().filter(|l| (c.one_at_a_time)(l)).count() as f64,
        recheck_seconds: IDENTITY_RECHECK_SECONDS,
        poll_seconds: poll,
    })
}
