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
use tokio::sync::watch;
use tracing::{info, warn};

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    pub duration: Duration,
    pub renew_every: Duration,
}

/// Blocks until this replica holds the lease, then keeps renewing it in the
/// background. The returned receiver turns `false` when leadership is lost.
pub async fn acquire(client: Client, cfg: LeaseConfig) -> anyhow::Result<watch::Receiver<bool>> {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    loop {
        match try_acquire(&api, &cfg).await {
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
            tokio::time::sleep(cfg.renew_every).await;
            let attempt_started = tokio::time::Instant::now();
            let remaining = renew_deadline.saturating_sub(last_renewal.elapsed());
            match tokio::time::timeout(remaining, try_acquire(&api, &cfg)).await {
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

/// One attempt: create, renew or take over an expired lease. Optimistic
/// concurrency (resourceVersion on replace) makes two contenders safe.
async fn try_acquire(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<bool, kube::Error> {
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
                let duration = spec.lease_duration_seconds.unwrap_or(15) as i64;
                let expired = match &spec.renew_time {
                    Some(MicroTime(t)) => now.as_second() - t.as_second() > duration,
                    None => true,
                };
                if !holder.is_empty() && !expired {
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
