//! Leader election on a coordination.k8s.io Lease, so two replicas never write at
//! once. A replica that loses its lease stops (and is restarted by its Deployment)
//! rather than risk acting on stale leadership.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    api::{ObjectMeta, PostParams},
    Api, Client,
};
use tokio::{sync::watch, time::Instant};
use tracing::{info, warn};

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    pub duration: Duration,
    pub renew_every: Duration,
}

/// Pure: how often a lease of `duration` is renewed (and a standby tries for it):
/// client-go's proportions, 2 s for 15 s. Leadership ends when no renewal succeeded
/// within two thirds of the duration; renewing every third of it left one attempt, with
/// 5 s, before that, and one request slowed by a busy apiserver (or by the operator's
/// own requests queued ahead of it in the same priority-and-fairness flow) cost the
/// lease. Every 2 s, an attempt has 8 s and is followed by others.
pub fn renew_period(duration: Duration) -> Duration {
    (duration * 2 / 15).max(Duration::from_millis(500))
}

/// Blocks until this replica holds the lease, then keeps renewing it in the
/// background. The returned receiver turns `false` when leadership is lost.
pub async fn acquire(client: Client, cfg: LeaseConfig) -> anyhow::Result<watch::Receiver<bool>> {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let mut seen = Sighting::default();
    loop {
        match try_acquire(&api, &cfg, &mut seen).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => warn!(error = %e, "lease attempt failed"),
        }
        tokio::time::sleep(cfg.renew_every).await;
    }
    info!(lease = %cfg.name, identity = %cfg.identity, "became leader");
    let (tx, rx) = watch::channel(true);
    // Step down well before another replica may take over: a renewal that has not
    // succeeded within two thirds of the lease duration (measured from before the
    // request, and bounded, so a hung call cannot keep us "leading") ends leadership.
    let renew_deadline = cfg.duration * 2 / 3;
    tokio::spawn(async move {
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            // Never past the deadline: after a late failure, step down at the deadline,
            // not a renew period after it.
            let left = renew_deadline.saturating_sub(last_renewal.elapsed());
            tokio::time::sleep(cfg.renew_every.min(left)).await;
            let attempt_started = tokio::time::Instant::now();
            let remaining = renew_deadline.saturating_sub(last_renewal.elapsed());
            if remaining.is_zero() {
                let _ = tx.send(false);
                return;
            }
            match tokio::time::timeout(remaining, try_acquire(&api, &cfg, &mut seen)).await {
                Ok(Ok(true)) => last_renewal = attempt_started,
                Ok(Ok(false)) => {
                    warn!("lease taken by another replica");
                    let _ = tx.send(false);
                    return;
                }
                Ok(Err(e)) => warn!(error = %e, "lease renewal failed"),
                Err(_) => warn!("lease renewal timed out"),
            }
            if last_renewal.elapsed() >= renew_deadline {
                let _ = tx.send(false);
                return;
            }
        }
    });
    Ok(rx)
}

/// What this replica last saw of the lease record, and when by its own monotonic
/// clock. Expiry is judged by how long the record has stood unchanged here, not by
/// comparing the holder's renewTime with this machine's wall clock (as client-go
/// does): two nodes' clocks may disagree by more than a lease, and a replica whose
/// clock runs ahead would take a lease that is still held.
#[derive(Default)]
struct Sighting {
    last: Option<(LeaseSpec, Instant)>,
}

impl Sighting {
    /// Pure: whether the lease record `spec` has stood unchanged for longer than its
    /// duration, as of `now`. A record seen for the first time (or changed since)
    /// starts the count, so a newcomer waits one whole lease before taking over.
    fn expired(&mut self, spec: &LeaseSpec, now: Instant) -> bool {
        let since = match &self.last {
            Some((s, at)) if s == spec => *at,
            _ => {
                self.last = Some((spec.clone(), now));
                now
            }
        };
        let duration = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(15).max(1) as u64);
        now.duration_since(since) > duration
    }
}

/// One attempt: create, renew or take over an expired lease. Optimistic
/// concurrency (resourceVersion on replace) makes two contenders safe.
async fn try_acquire(
    api: &Api<Lease>,
    cfg: &LeaseConfig,
    seen: &mut Sighting,
) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let fresh = |transitions: i32, acquire: Option<MicroTime>| LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        lease_duration_seconds: Some(cfg.duration.as_secs() as i32),
        acquire_time: acquire.or(Some(MicroTime(now))),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..Default::default()
    };
    match api.get_opt(&cfg.name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    ..Default::default()
                },
                spec: Some(fresh(0, None)),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(mut lease) => {
            let spec = lease.spec.clone().unwrap_or_default();
            let holder = spec.holder_identity.clone().unwrap_or_default();
            let transitions = spec.lease_transitions.unwrap_or(0);
            let new_spec = if holder == cfg.identity {
                fresh(transitions, spec.acquire_time.clone())
            } else {
                if !holder.is_empty() && !seen.expired(&spec, Instant::now()) {
                    return Ok(false);
                }
                fresh(transitions + 1, None)
            };
            lease.spec = Some(new_spec);
            match api.replace(&cfg.name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Gives the lease up on a clean shutdown so the next replica need not wait for it
/// to expire.
pub async fn release(client: Client, cfg: &LeaseConfig) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    if let Ok(Some(mut lease)) = api.get_opt(&cfg.name).await {
        if let Some(spec) = lease.spec.as_mut() {
            if spec.holder_identity.as_deref() == Some(&cfg.identity) {
                spec.holder_identity = None;
                spec.renew_time = None;
                let _ = api.replace(&cfg.name, &PostParams::default(), &lease).await;
                info!("released the lease");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(by: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(by.into()),
            lease_duration_seconds: Some(6),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
            ..Default::default()
        }
    }

    #[test]
    fn a_lease_expires_only_after_standing_unchanged_for_its_duration_by_our_clock() {
        let t0 = Instant::now();
        let mut seen = Sighting::default();
        // The renewTime is far in the past by any clock: it does not matter, only how
        // long this replica has seen the record unchanged.
        let lease = held("a", 1_000);
        assert!(!seen.expired(&lease, t0));
        assert!(!seen.expired(&lease, t0 + Duration::from_secs(6)));
        assert!(seen.expired(&lease, t0 + Duration::from_secs(7)));
    }

    #[test]
    fn a_lease_is_renewed_several_times_before_its_deadline() {
        assert_eq!(
            renew_period(Duration::from_secs(15)),
            Duration::from_secs(2)
        );
        assert_eq!(
            renew_period(Duration::from_secs(60)),
            Duration::from_secs(8)
        );
        assert_eq!(
            renew_period(Duration::from_secs(1)),
            Duration::from_millis(500)
        );
        // At least three attempts fit in the renew deadline (two thirds of it).
        for secs in [2, 15, 30, 137] {
            let d = Duration::from_secs(secs);
            assert!(
                renew_period(d) * 3 <= d * 2 / 3 || renew_period(d) == Duration::from_millis(500)
            );
        }
    }

    #[test]
    fn a_renewal_restarts_the_count_whatever_its_timestamp_says() {
        let t0 = Instant::now();
        let mut seen = Sighting::default();
        assert!(!seen.expired(&held("a", 1_000), t0));
        // Renewed (a new record), even with a renewTime behind ours: held again.
        assert!(!seen.expired(&held("a", 999), t0 + Duration::from_secs(5)));
        assert!(!seen.expired(&held("a", 999), t0 + Duration::from_secs(11)));
        assert!(seen.expired(&held("a", 999), t0 + Duration::from_secs(12)));
        // Another holder is another record.
        assert!(!seen.expired(&held("b", 999), t0 + Duration::from_secs(12)));
    }
}
