//! pdc's pure engines. Nothing here talks to a cluster, a DNS server or a clock:
//! callers pass values (and `now`) in and get decisions out, so every rule can be
//! table- and property-tested without I/O.

// No function longer than 80 lines (clippy.toml sets the threshold): a long body is
// split into named steps.
#![warn(clippy::too_many_lines)]

pub mod code;
pub mod dnsadopt;
pub mod dnsplan;
pub mod dr;
pub mod import;
pub mod ipam;
pub mod netdata;
pub mod quantity;
pub mod quota;
pub mod reorg;
pub mod report;
pub mod slug;
pub mod vmadopt;
pub mod zonerules;
