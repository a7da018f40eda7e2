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
