//! The pdc operator as a library: the controllers, leader election and metrics that
//! `pdc-operator` runs, and the pure build steps benchmarks and tests reuse.

// No function longer than 80 lines (clippy.toml sets the threshold): a long body is
// split into named steps.
#![warn(clippy::too_many_lines)]

pub mod apply;
pub mod cache;
pub mod compute;
pub mod context;
pub mod department;
pub mod dns;
pub mod dr;
pub mod error;
pub mod health;
pub mod ipam;
pub mod leader;
pub mod metrics;
pub mod province;
pub mod reorg;
pub mod report;
