//! The Province controller: reports whether the province is usable (the cluster's
//! only one) and how many Departments it has.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, watcher};
use kube::{Api, ResourceExt};
use pdc_api::conditions::{self, Cond, READY};
use pdc_api::{Department, Province, ProvinceStatus};
use tracing::instrument;

use crate::apply;
use crate::context::Context;
use crate::error::{Error, Result};

const CONTROLLER: &str = "province";

pub struct ProvinceContext {
    pub base: Arc<Context>,
    pub departments: Store<Department>,
    pub provinces: Store<Province>,
}

#[instrument(skip_all, fields(province = %prov.name_any()))]
async fn reconcile(prov: Arc<Province>, ctx: Arc<ProvinceContext>) -> Result<Action> {
    let timer = ctx.base.metrics.reconcile_started(CONTROLLER);
    let res = reconcile_inner(&prov, &ctx).await;
    timer.finish(res.is_ok());
    res
}

async fn reconcile_inner(prov: &Province, ctx: &ProvinceContext) -> Result<Action> {
    let depts = ctx.departments.state();
    let ready = depts.iter().filter(|d| d.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, READY))).count();
    ctx.base.metrics.departments_total.set(i64::try_from(depts.len()).unwrap_or(i64::MAX));
    ctx.base.metrics.departments_ready.set(i64::try_from(ready).unwrap_or(i64::MAX));

    let cond = match crate::department::the_province(&ctx.provinces) {
        Ok(_) => Cond::new(READY, true, "Serving", format!("domain {} with {} departments", prov.spec.domain, depts.len())),
        Err((reason, msg)) => Cond::new(READY, false, reason, msg),
    };
    let old = prov.status.clone().unwrap_or_default();
    let new = ProvinceStatus {
        observed_generation: prov.metadata.generation,
        conditions: conditions::merge(&old.conditions, &[cond], prov.metadata.generation, Timestamp::now()),
        departments: Some(i32::try_from(depts.len()).unwrap_or(i32::MAX)),
    };
    if new != old {
        apply::patch_status(&Api::<Province>::all(ctx.base.client.clone()), &prov.name_any(), &new).await?;
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

fn error_policy(prov: Arc<Province>, err: &Error, ctx: Arc<ProvinceContext>) -> Action {
    ctx.base.failed(CONTROLLER, prov.as_ref(), err, Duration::from_secs(5))
}

/// Run the Province controller.
pub async fn run(base: Arc<Context>, departments: Store<Department>, controller: Controller<Province>) {
    let client = base.client.clone();
    let provinces = controller.store();
    let for_all = provinces.clone();
    let ctx = Arc::new(ProvinceContext { base, departments, provinces });
    controller
        .watches(Api::<Department>::all(client), watcher::Config::default().any_semantic(), move |_| {
            for_all.state().into_iter().map(|p| ObjectRef::from_obj(&*p)).collect::<Vec<_>>()
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}
