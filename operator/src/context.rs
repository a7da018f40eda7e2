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
    /// Publish an event about `obj`; a failure to publish is logged, never fatal.
    pub async fn event<K>(&self, obj: &K, warning: bool, reason: &str, note: &str)
    where
        K: kube::Resource<DynamicType = ()>,
    {
        use kube::runtime::events::{Event, EventType};
        let type_ = if warning { EventType::Warning } else { EventType::Normal };
        let ev = Event { type_, reason: reason.into(), note: Some(note.into()), action: "Reconcile".into(), secondary: None };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, "publishing event failed");
        }
    }
}
