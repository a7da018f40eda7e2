//! Tenant VMs: the TenantVM controller and the quota ledger it charges.

pub mod build;
pub mod ledger;
pub mod vm;
pub mod volume;
