//! Lists read a page at a time, each object kept as the caller's summary of it, so a
//! page is dropped before the next one is read: a command that reads 100,000
//! objects holds their summaries, not the typed objects with their managed fields.

use kube::Api;
use kube::api::ListParams;

use crate::CliError;

/// Objects per list request.
const PAGE: u32 = 1000;

/// Every `K` of `api`, a page at a time, each kept as `keep` makes it.
pub async fn paged<K, T>(api: &Api<K>, keep: impl Fn(&K) -> Option<T>) -> Result<Vec<T>, CliError>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut out = Vec::new();
    let mut lp = ListParams::default().limit(PAGE);
    loop {
        let page = api.list(&lp).await?;
        out.extend(page.items.iter().filter_map(&keep));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp = lp.continue_token(&token),
            None => return Ok(out),
        }
    }
}
