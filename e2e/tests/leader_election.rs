//! Two replicas: one leads and writes, the other waits; a clean shutdown of the
//! leader releases the Lease and the standby takes over well within the lease
//! duration. Logs are JSON lines.

use std::time::{Duration, Instant};

use anyhow::Result;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use paved_e2e::{control_plane, eventually, Operator};

async fn holder(api: &Api<Lease>, name: &str) -> Result<Option<String>> {
    Ok(api
        .get_opt(name)
        .await?
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_leads_and_a_standby_takes_over_on_shutdown() -> Result<()> {
    let cp = control_plane();
    let client = cp.client().await?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "paved-system");
    let lease = "paved-e2e-leader-election";
    let _ = cp.kubectl(&[
        "delete",
        "lease",
        "-n",
        "paved-system",
        lease,
        "--ignore-not-found",
    ]);

    let mut a = Operator::start_with_lease(cp, "replica-a", lease, &[])?;
    eventually("replica-a leads", Duration::from_secs(20), || async {
        Ok(holder(&leases, lease).await?.filter(|h| h == "replica-a"))
    })
    .await?;
    let b = Operator::start_with_lease(cp, "replica-b", lease, &[])?;
    eventually("replica-a reconciles", Duration::from_secs(20), || async {
        Ok(a.metrics()?
            .contains("paved_reconciles_total{controller=\"composition\"}")
            .then_some(()))
    })
    .await?;
    // Give the standby time to (wrongly) start; it must not.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !b.metrics()?.contains("paved_reconciles_total"),
        "the standby reconciled while another replica held the lease:\n{}",
        b.logs()
    );
    assert_eq!(holder(&leases, lease).await?.as_deref(), Some("replica-a"));

    let stopped = Instant::now();
    let status = a.stop().expect("replica-a exited");
    assert!(
        status.success(),
        "graceful shutdown exits 0, got {status:?}\n{}",
        a.logs()
    );
    eventually("replica-b takes over", Duration::from_secs(15), || async {
        Ok(holder(&leases, lease).await?.filter(|h| h == "replica-b"))
    })
    .await?;
    assert!(
        stopped.elapsed() < Duration::from_secs(15),
        "handover within the lease duration"
    );
    eventually("replica-b reconciles", Duration::from_secs(20), || async {
        Ok(b.metrics()?
            .contains("paved_reconciles_total")
            .then_some(()))
    })
    .await?;

    for line in a.logs().lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        assert!(
            v.get("level").is_some() && v.get("timestamp").is_some(),
            "{line}"
        );
    }
    assert!(a.logs().contains("released the lease"), "{}", a.logs());
    Ok(())
}
