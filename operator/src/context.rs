use std::sync::Arc;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use crate::metrics::Metrics;

/// What every controller shares: the client, the event recorder and the metrics.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
}

impl Context {
    pub fn new(client: Client, metrics: Arc<Metrics>, identity: &str) -> Self {
        let reporter = Reporter { controller: "pdc-operator".into(), instance: Some(identity.to_string()) };
        Self { recorder: Recorder::new(client.clone(), reporter), client, metrics }
    }
}

impl Context {
    /// Publish an event about `obj`; a failure to publish is logged, never fatal. A
    /// note over the API's 1 kB is cut short (the API would refuse the whole event).
    pub async fn event<K>(&self, obj: &K, warning: bool, reason: &str, note: &str)
    where
        K: kube::Resource<DynamicType = ()>,
    {
        use kube::runtime::events::{Event, EventType};
        let type_ = if warning { EventType::Warning } else { EventType::Normal };
        let ev = Event { type_, reason: reason.into(), note: Some(clip(note, NOTE_LIMIT)), action: "Reconcile".into(), secondary: None };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, "publishing event failed");
        }
    }
}

impl Context {
    /// What every controller's error policy does: count the failure, log it with the
    /// object's kind, namespace and name (the alert text sends people to these logs),
    /// and retry after `retry` (`blocked`: a deletion that waits for something, logged
    /// at info and retried after 15 s).
    pub fn failed<K>(&self, controller: &'static str, obj: &K, err: &crate::error::Error, retry: std::time::Duration) -> kube::runtime::controller::Action
    where
        K: kube::Resource,
        K::DynamicType: Default,
    {
        self.metrics.reconcile_failed(controller, err.kind());
        let dt = K::DynamicType::default();
        let kind = K::kind(&dt);
        let (ns, name) = (obj.meta().namespace.as_deref().unwrap_or(""), obj.meta().name.as_deref().unwrap_or(""));
        if let crate::error::Error::DeletionBlocked(why) = err.root() {
            tracing::info!(controller, kind = %kind, namespace = ns, name, reason = %why, "deletion waits");
            return kube::runtime::controller::Action::requeue(std::time::Duration::from_secs(15));
        }
        tracing::warn!(controller, kind = %kind, namespace = ns, name, error = %err, error_kind = err.kind(), "reconcile failed");
        kube::runtime::controller::Action::requeue(retry)
    }

    /// One reconcile of `obj` under finalizer `finalizer`: `apply` while it lives,
    /// `cleanup` once it is being deleted (the finalizer goes when `cleanup`
    /// succeeds); timed and counted under `controller`.
    pub async fn finalized<K, A, C, FA, FC>(
        &self,
        controller: &'static str,
        api: &kube::Api<K>,
        finalizer: &str,
        obj: Arc<K>,
        apply: A,
        cleanup: C,
    ) -> crate::error::Result<kube::runtime::controller::Action>
    where
        K: kube::Resource + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
        K::DynamicType: Default,
        A: FnOnce(Arc<K>) -> FA,
        C: FnOnce(Arc<K>) -> FC,
        FA: std::future::Future<Output = crate::error::Result<kube::runtime::controller::Action>>,
        FC: std::future::Future<Output = crate::error::Result<kube::runtime::controller::Action>>,
    {
        use futures::future::Either;
        use kube::runtime::finalizer::Event;
        let timer = self.metrics.reconcile_started(controller);
        let res = kube::runtime::finalizer(api, finalizer, obj, |ev| match ev {
            Event::Apply(o) => Either::Left(apply(o)),
            Event::Cleanup(o) => Either::Right(cleanup(o)),
        })
        .await
        .map_err(|e| crate::error::Error::Finalizer(Box::new(e)));
        timer.finish(res.is_ok());
        res
    }
}

/// The events API refuses a note of more than 1 kB.
const NOTE_LIMIT: usize = 1024;

/// `s` cut to at most `limit` bytes at a character boundary, with "…" when cut.
fn clip(s: &str, limit: usize) -> String {
    if s.len() <= limit {
        return s.to_string();
    }
    let ell = "…";
    let mut end = limit.saturating_sub(ell.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ell}", &s[..end])
}

#[cfg(test)]
mod clip_tests {
    use super::clip;

    #[test]
    fn a_long_note_is_cut_at_a_character_boundary() {
        assert_eq!(clip("Sở Tư pháp", 100), "Sở Tư pháp");
        let long = "Đắk Lắk ".repeat(200);
        let c = clip(&long, 1024);
        assert!(c.len() <= 1024 && c.ends_with('…'), "{}", c.len());
        assert!(long.starts_with(c.trim_end_matches('…')));
    }
}
