//! pdc's pure engines. Nothing here talks to a cluster, a DNS server or a clock:
//! callers pass values (and `now`) in and get decisions out, so every rule can be
//! table- and property-tested without I/O.

pub mod code;
pub mod dnsplan;
pub mod dr;
pub mod ipam;
pub mod netdata;
pub mod quantity;
pub mod quota;
pub mod slug;
pub mod zonerules;
