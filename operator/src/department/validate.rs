//! Checks a Department against its Province. Pure: the messages go into the
//! Department's `Ready` condition and must tell the department what to change.
//! (The chart's admission policies reject most of these at the API already; the
//! operator checks again so a cluster without the policies is still safe.)

use pdc_api::{Department, Province};
use pdc_core::{code, quantity};

/// Every problem found, each a sentence a department can act on.
pub fn problems(dept: &Department, province: &Province) -> Vec<String> {
    let mut out = Vec::new();
    let p = &province.spec;
    let prefixes: Vec<&str> =
        std::iter::once(p.code_prefix.as_str()).chain(p.absorbed_code_prefixes.iter().map(String::as_str)).collect();
    if !prefixes.iter().any(|pre| code::is_under(&dept.spec.code, pre)) {
        out.push(format!(
            "code {} is not under the province's code prefix {}; use a code that starts with {}",
            dept.spec.code,
            prefixes.join(" or "),
            prefixes.iter().map(|p| format!("{p}.")).collect::<Vec<_>>().join(" or ")
        ));
    }
    let sub = dept.subdomain_in(&p.domain);
    if !sub.ends_with(&format!(".{}", p.domain)) {
        out.push(format!("subdomain {sub} is not inside the province domain {}; use a name ending in .{}", p.domain, p.domain));
    }
    let tiers: Vec<&str> = p.storage_tiers.iter().map(|t| t.name.as_str()).collect();
    for (tier, q) in &dept.spec.quota.storage {
        if !tiers.contains(&tier.as_str()) {
            out.push(format!(
                "storage quota names tier {tier:?}, which province {} does not define; known tiers: {}",
                kube::ResourceExt::name_any(province),
                if tiers.is_empty() { "none".to_string() } else { tiers.join(", ") }
            ));
        }
        if let Err(e) = quantity::parse(q) {
            out.push(format!("storage quota for tier {tier}: {e}"));
        }
    }
    if let Err(e) = quantity::parse(&dept.spec.quota.memory) {
        out.push(format!("memory quota: {e}"));
    }
    if let Err(e) = quantity::parse(&p.vm_memory_overhead) {
        out.push(format!("province vmMemoryOverhead: {e}"));
    }
    out
}
