//! The pdc operator as a library: the controllers, leader election and metrics that
//! `pdc-operator` runs, and the pure build steps benchmarks and tests reuse.

pub mod apply;
pub mod cache;
pub mod compute;
pub mod context;
pub mod department;
pub mod dns;
pub mod dr;
pub mod error;
pub mod ipam;
pub mod leader;
pub mod metrics;
pub mod province;
