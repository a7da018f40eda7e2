//! Tenant VMs: the TenantVM controller and the quota ledger it charges.

pub mod adopt;
pub mod build;
pub mod disk;
pub mod ledger;
pub mod plan;
pub mod vm;
pub mod volume;
