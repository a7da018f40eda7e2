//! Version `v1alpha1` of group `pdc.io`: one kind per file.

mod compute;
mod department;
mod dns;
mod dr;
mod network;
mod province;
mod reorg;

pub use compute::*;
pub use department::*;
pub use dns::*;
pub use dr::*;
pub use network::*;
pub use province::*;
pub use reorg::*;

/// CEL: a non-negative Kubernetes quantity written as a string (`64Gi`, `500G`, `0`).
pub(crate) const QUANTITY_RULE: &str = "isQuantity(self) && quantity(self).compareTo(quantity('0')) >= 0";
pub(crate) const QUANTITY_MESSAGE: &str =
    "must be a non-negative quantity such as 64Gi, 500G or 0 (binary suffixes Ki Mi Gi Ti, decimal k M G T)";
/// CEL: a DNS name of lowercase labels (`daklak.gov.vn`).
pub(crate) const DOMAIN_RULE: &str =
    "self.matches('^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\\\\.)+[a-z]{2,63}$') && size(self) <= 253";
