//! Two replicas: one leads and writes, the other waits; a clean shutdown of the
//! leader releases the Lease and the standby takes over at once; a leader killed
//! outright (SIGKILL: no release) is replaced once its Lease expires, within the lease
//! duration and one retry. Logs are JSON lines.

use std::time::{Duration, Instant};

use anyhow::Result;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use paved_e2e::{control_plane, eventually, prom_sum, Operator};

async fn holder(api: &Api<Lease>, name: &str) -> Result<Option<String>> {
    Ok(api
        .get_opt(name)
        .await?
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_leads_and_a_standby_takes_over_on_shutdown_or_kill() -> Result<()> {
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

    // A short lease (renewed every 0.8 s) keeps the SIGKILL handover quick.
    let lease_seconds = 6;
    let flags = ["--lease-seconds", "6"];
    let mut a = Operator::start_with_lease(cp, "replica-a", lease, &flags)?;
    eventually("replica-a leads", Duration::from_secs(20), || async {
        Ok(holder(&leases, lease).await?.filter(|h| h == "replica-a"))
    })
    .await?;
    // Its Lease requests are at the leader-election priority level (the chart's
    // FlowSchema), not queued behind its own reconciles' requests.
    let schema =
        "flow_schema=\"paved-operator-leader-election\",priority_level=\"leader-election\"";
    eventually(
        "the Lease requests at the leader-election level",
        Duration::from_secs(20),
        || async {
            let req = http::Request::get("/metrics").body(Vec::new())?;
            let text = client.request_text(req).await?;
            let n = prom_sum(
                &text,
                "apiserver_flowcontrol_dispatched_requests_total",
                schema,
            );
            Ok((n > 0.0).then_some(()))
        },
    )
    .await?;
    let mut b = Operator::start_with_lease(cp, "replica-b", lease, &flags)?;
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

    // The leader killed outright: nothing releases its Lease, and the next replica
    // takes over once it expires.
    let c = Operator::start_with_lease(cp, "replica-c", lease, &flags)?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !c.metrics()?.contains("paved_reconciles_total"),
        "replica-c reconciled while replica-b led:\n{}",
        c.logs()
    );
    let killed = Instant::now();
    std::process::Command::new("kill")
        .args(["-KILL", &b.pid().to_string()])
        .status()?;
    let _ = b.stop();
    // The standby judges expiry by its own clock: it saw the Lease's last renewal at
    // most one 2 s try after the kill; the Lease expires once it has stood unchanged
    // for its duration, which the standby notices at a try at most 2 s later; a
    // second for rounding, plus a second for requests and polling.
    let bound = Duration::from_secs(lease_seconds + 1 + 2 * 2 + 1);
    eventually("replica-c takes over", bound * 2, || async {
        Ok(holder(&leases, lease).await?.filter(|h| h == "replica-c"))
    })
    .await?;
    let took = killed.elapsed();
    assert!(
        took <= bound,
        "after a SIGKILL the Lease changed hands in {took:?}: more than its {lease_seconds} s \
         and two 2 s periods, with 2 s of rounding and polling"
    );
    eventually("replica-c reconciles", Duration::from_secs(20), || async {
        Ok(c.metrics()?
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
