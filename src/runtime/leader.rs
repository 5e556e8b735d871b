//! Leader election on a `coordination.k8s.io/v1` Lease, so that replicas can run side by side
//! and only one acts.
//!
//! Written here rather than taken from a crate because of one safety property the available
//! crates lack: a leader that cannot renew its lease within `renew_deadline` steps down on its
//! own, before the lease can expire for the others, so two replicas never drive OpenStack at
//! once, even when one is cut off from the Kubernetes API. Expiry is judged as client-go does,
//! by how long this replica has seen the record unchanged on its own monotonic clock, so clock
//! skew between nodes does not matter.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How the lease is held.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// Unique per replica: the pod name, or host name and PID.
    pub identity: String,
    /// How long a lease not renewed stays valid for the others.
    pub lease_duration: Duration,
    /// A leader that could not renew for this long steps down; shorter than `lease_duration`.
    pub renew_deadline: Duration,
    /// How often to try to acquire or renew.
    pub retry_period: Duration,
}

/// What a replica does with the lease it has just read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// We hold it: write a new renew time.
    Renew,
    /// Nobody holds it, or its holder stopped renewing: take it.
    Acquire,
    /// Someone else holds it.
    Wait,
}

/// Decides from the lease's holder and how long this replica has seen the record unchanged.
pub fn decide(holder: Option<&str>, me: &str, unchanged_for: Duration, lease_duration: Duration) -> Decision {
    match holder {
        Some(h) if h == me => Decision::Renew,
        None | Some("") => Decision::Acquire,
        Some(_) if unchanged_for >= lease_duration => Decision::Acquire,
        Some(_) => Decision::Wait,
    }
}

/// Runs the election until `shutdown`; the returned channel says whether this replica leads.
/// On shutdown a leader releases the lease so that a standby takes over at once.
pub fn spawn(
    api_client: kube::Client,
    config: LeaseConfig,
    shutdown: CancellationToken,
) -> (watch::Receiver<bool>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let api: Api<Lease> = Api::namespaced(api_client, &config.namespace);
        let mut elector = Elector { api, config, observed: None, last_renewed: None };
        loop {
            let leading = elector.step().await;
            tx.send_if_modified(|was| std::mem::replace(was, leading) != leading);
            tokio::select! {
                _ = tokio::time::sleep(elector.config.retry_period) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        if *tx.borrow() {
            elector.release().await;
            tx.send_replace(false);
        }
    });
    (rx, task)
}

struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    /// The resourceVersion last read, and when this replica first saw it.
    observed: Option<(String, Instant)>,
    /// When this replica last renewed successfully, while it leads.
    last_renewed: Option<Instant>,
}

impl Elector {
    /// One attempt to acquire or renew; returns whether this replica leads afterwards.
    async fn step(&mut self) -> bool {
        // A request that hangs counts as failed, so that the renew deadline is kept.
        let attempt = tokio::time::timeout(self.config.retry_period, self.try_acquire_or_renew()).await;
        match attempt.unwrap_or_else(|_| Err(kube::Error::Service("lease request timed out".into()))) {
            Ok(true) => {
                self.last_renewed = Some(Instant::now());
                true
            }
            Ok(false) => {
                self.last_renewed = None;
                false
            }
            Err(error) => {
                tracing::warn!(%error, lease = %self.config.name, "lease request failed");
                let still_valid = self.last_renewed.is_some_and(|t| t.elapsed() < self.config.renew_deadline);
                if !still_valid {
                    self.last_renewed = None;
                }
                still_valid
            }
        }
    }

    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = MicroTime(jiff::Timestamp::now());
        let duration_secs = i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.config.name.clone()), ..Default::default() },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.config.identity.clone()),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(&created);
                    Ok(true)
                }
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let unchanged_for = self.observe(&lease);
        let spec = lease.spec.get_or_insert_with(Default::default);
        let their_duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.config.lease_duration, Duration::from_secs);
        let decision = decide(spec.holder_identity.as_deref(), &self.config.identity, unchanged_for, their_duration);
        match decision {
            Decision::Wait => return Ok(false),
            Decision::Acquire => {
                tracing::info!(lease = %self.config.name, previous = ?spec.holder_identity, "acquiring lease");
                spec.holder_identity = Some(self.config.identity.clone());
                spec.acquire_time = Some(now.clone());
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            Decision::Renew => {}
        }
        spec.lease_duration_seconds = Some(duration_secs);
        spec.renew_time = Some(now);
        // replace() sends the resourceVersion read above: a concurrent writer makes it fail
        // with 409 instead of both replicas believing they lead.
        match self.api.replace(&self.config.name, &PostParams::default(), &lease).await {
            Ok(written) => {
                self.observe(&written);
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Records the lease's version; returns how long this replica has seen it unchanged.
    fn observe(&mut self, lease: &Lease) -> Duration {
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        match &self.observed {
            Some((seen, since)) if *seen == version => since.elapsed(),
            _ => {
                self.observed = Some((version, Instant::now()));
                Duration::ZERO
            }
        }
    }

    /// Gives the lease up so that a standby need not wait for it to expire.
    async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await else { return };
        let Some(spec) = lease.spec.as_mut() else { return };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        match self.api.replace(&self.config.name, &PostParams::default(), &lease).await {
            Ok(_) => tracing::info!(lease = %self.config.name, "released lease"),
            Err(error) => tracing::warn!(%error, lease = %self.config.name, "could not release lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(12);

    #[test]
    fn holder_renews_its_own_lease() {
        assert_eq!(decide(Some("a"), "a", Duration::from_secs(60), D), Decision::Renew);
    }

    #[test]
    fn free_lease_is_acquired() {
        assert_eq!(decide(None, "a", Duration::ZERO, D), Decision::Acquire);
        assert_eq!(decide(Some(""), "a", Duration::ZERO, D), Decision::Acquire);
    }

    #[test]
    fn another_holder_is_respected_until_its_lease_runs_out_unrenewed() {
        assert_eq!(decide(Some("b"), "a", Duration::from_secs(11), D), Decision::Wait);
        assert_eq!(decide(Some("b"), "a", D, D), Decision::Acquire);
    }
}
