//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go does it: the
//! holder renews every `retry_period`; a standby takes over once it has seen the
//! lease unchanged for `lease_duration` (measured on its own clock, so clock skew
//! between replicas does not matter). A leader that cannot renew within
//! `renew_deadline` stops leading before anyone else can take over.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::ObjectMeta;
use kube::{Api, Client};
use tracing::{debug, info, warn};

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

pub struct LeaderElector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    /// The lease's resourceVersion when we last saw it change, and when that was.
    observed: Option<(String, Instant)>,
}

/// Why a leader stopped leading.
#[derive(Debug)]
pub enum Lost {
    TakenBy(String),
    RenewDeadline(String),
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lost::TakenBy(who) => write!(f, "the lease is now held by {who}"),
            Lost::RenewDeadline(e) => write!(f, "the lease could not be renewed within the renew deadline: {e}"),
        }
    }
}

impl LeaderElector {
    pub fn new(client: Client, cfg: LeaseConfig) -> Self {
        Self { api: Api::namespaced(client, &cfg.namespace), cfg, observed: None }
    }

    /// Wait until this replica holds the lease.
    pub async fn acquire(&mut self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Held) => {
                    info!(lease = %self.cfg.name, identity = %self.cfg.identity, "acquired leader lease");
                    return;
                }
                Ok(Attempt::HeldBy(holder)) => debug!(%holder, "standing by"),
                Err(e) => warn!(error = %e, "leader lease attempt failed"),
            }
            tokio::time::sleep(self.cfg.retry_period).await;
        }
    }

    /// Renew the lease until it is lost; returns why. Every renew is bounded by what
    /// is left of the renew deadline: an API server that does not answer (slow, or a
    /// partition) ends the leadership at the deadline, before a standby may take over
    /// at `lease_duration`, instead of leaving the controllers running.
    pub async fn hold(&mut self) -> Lost {
        let mut last_renew = Instant::now();
        loop {
            tokio::time::sleep(self.cfg.retry_period).await;
            let left = self.cfg.renew_deadline.saturating_sub(last_renew.elapsed());
            let attempt = match tokio::time::timeout(left, self.try_acquire_or_renew()).await {
                Ok(a) => a,
                Err(_) => return Lost::RenewDeadline(format!("no answer from the API server within the renew deadline ({:?})", self.cfg.renew_deadline)),
            };
            match attempt {
                Ok(Attempt::Held) => last_renew = Instant::now(),
                Ok(Attempt::HeldBy(holder)) => return Lost::TakenBy(holder),
                Err(e) => {
                    warn!(error = %e, "renewing leader lease failed");
                    if last_renew.elapsed() >= self.cfg.renew_deadline {
                        return Lost::RenewDeadline(e.to_string());
                    }
                }
            }
        }
    }

    /// Give the lease up so a standby takes over at once (on orderly shutdown): no
    /// holder, and a duration of 1 s. An API server that does not answer within the
    /// renew deadline does not hold up the exit; the lease then lapses as after a crash.
    pub async fn release(&mut self) {
        if tokio::time::timeout(self.cfg.renew_deadline, self.try_release()).await.is_err() {
            warn!(deadline = ?self.cfg.renew_deadline, "releasing leader lease got no answer; it lapses after its duration");
        }
    }

    async fn try_release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.cfg.name).await else { return };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match crate::apply::replace(&self.api, &self.cfg.name, &lease, false).await {
            Ok(_) => info!("released leader lease"),
            Err(e) => warn!(error = %e, "releasing leader lease failed"),
        }
    }

    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let secs = i32::try_from(self.cfg.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.cfg.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.cfg.name.clone()), ..Default::default() },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.cfg.identity.clone()),
                    lease_duration_seconds: Some(secs),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match crate::apply::create(&self.api, &lease).await {
                Ok(_) => Ok(Attempt::Held),
                Err(e) if crate::error::is_conflict(&e) => Ok(Attempt::HeldBy("another replica".into())),
                Err(e) => Err(e),
            };
        };
        let rv = lease.metadata.resource_version.clone().unwrap_or_default();
        if self.observed.as_ref().is_none_or(|(seen, _)| *seen != rv) {
            self.observed = Some((rv, Instant::now()));
        }
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.cfg.lease_duration, Duration::from_secs);
        let expired = self.observed.as_ref().is_none_or(|(_, at)| at.elapsed() >= duration);
        if holder != self.cfg.identity {
            if !holder.is_empty() && !expired {
                return Ok(Attempt::HeldBy(holder));
            }
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            spec.holder_identity = Some(self.cfg.identity.clone());
            info!(previous = %holder, "taking over leader lease");
        }
        spec.lease_duration_seconds = Some(secs);
        spec.renew_time = Some(now);
        // `replace` carries the resourceVersion we read: if anyone wrote in between,
        // the API server answers 409 and we did not get the lease.
        match crate::apply::replace(&self.api, &self.cfg.name, &lease, false).await {
            Ok(l) => {
                self.observed = l.metadata.resource_version.map(|rv| (rv, Instant::now()));
                Ok(Attempt::Held)
            }
            Err(e) if crate::error::is_conflict(&e) => Ok(Attempt::HeldBy("another replica".into())),
            Err(e) => Err(e),
        }
    }
}

enum Attempt {
    Held,
    HeldBy(String),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// An API server that accepts connections and never answers: a renew must end the
    /// leadership at the renew deadline, not hang.
    #[tokio::test]
    async fn a_silent_api_server_ends_leadership_and_the_release_at_the_renew_deadline() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                held.push(sock);
            }
        });
        let mut cfg = kube::Config::new(format!("http://{addr}").parse().unwrap());
        cfg.read_timeout = None;
        cfg.write_timeout = None;
        let client = Client::try_from(cfg).unwrap();
        let lease = LeaseConfig {
            name: "pdc-leader".into(),
            namespace: "pdc-system".into(),
            identity: "a".into(),
            lease_duration: Duration::from_secs(4),
            renew_deadline: Duration::from_secs(1),
            retry_period: Duration::from_millis(200),
        };
        let mut e = LeaderElector::new(client, lease);
        let start = Instant::now();
        let lost = tokio::time::timeout(Duration::from_secs(10), e.hold()).await.expect("hold() did not return: a hung renew kept the leadership");
        assert!(matches!(lost, Lost::RenewDeadline(_)), "{lost}");
        assert!(start.elapsed() < Duration::from_secs(3), "took {:?}", start.elapsed());

        // Nor does giving the lease up on shutdown hang on it.
        let start = Instant::now();
        tokio::time::timeout(Duration::from_secs(10), e.release()).await.expect("release() did not return: a hung API server held up the exit");
        assert!(start.elapsed() < Duration::from_secs(3), "took {:?}", start.elapsed());
    }
}
