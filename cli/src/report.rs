//! `pdcctl report`: the province's reports per unit (Department), read from the
//! cluster. This module only gathers the objects; every count, share and rule is
//! pdc-core's (`pdc_core::report`). Tables for people; `-o csv` (a header row, then
//! one line per unit, or per unit and zone or domain; the columns are documented in
//! the README's "Reports"); `-o json|yaml` for scripts.

use std::collections::BTreeSet;
use std::process::ExitCode;

use clap::Subcommand;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use pdc_api::report::Objects;
use pdc_api::{AddressAllocation, Department, DnsRecord, DnsZone, DrPlan, NetworkZone, Province, TenantVM};
use pdc_core::quantity::format_bytes;
use pdc_core::report::{self as r, Unit, csv_line};
use serde::Serialize;

use crate::output::{Format, Listing, Output, Row, out};
use crate::{Cli, CliError, client};

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Per unit: VMs, vCPU, memory, storage per tier, addresses per zone and family,
    /// DNS names, and VMs a Protected DR plan covers.
    Inventory(Which),
    /// Per unit: its names with AAAA, VMs with IPv6, zones with an IPv6 prefix, and the
    /// readiness ratio (their mean).
    Ipv6(Which),
    /// Per unit and zone: the zone's IPv4 phase (Active, Deprecated, Off), the
    /// addresses held per family, and the IPv4 addresses to release once Off.
    #[command(name = "ipv4-phase")]
    Ipv4Phase(Which),
    /// Per unit: its domains (its subdomain, those of units merged into it), the DNS
    /// zone holding each and its DNSSEC state.
    Domains(Which),
}

/// Which units a report covers: every one (the default, or `-A`), or those named.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Which {
    /// Only this department (repeatable).
    #[arg(short = 'd', long = "department", value_name = "DEPARTMENT")]
    departments: Vec<String>,
    /// Every department (the default).
    #[arg(short = 'A', long = "all-departments", conflicts_with = "departments")]
    all: bool,
}

impl Cmd {
    fn which(&self) -> &Which {
        match self {
            Cmd::Inventory(w) | Cmd::Ipv6(w) | Cmd::Ipv4Phase(w) | Cmd::Domains(w) => w,
        }
    }
}

pub async fn run(cli: &Cli, cmd: &Cmd) -> Result<ExitCode, CliError> {
    if matches!(cli.format, Format::Name | Format::Nftables) {
        return Err(CliError::Flag("pdcctl report prints tables, -o wide, csv, json or yaml".into()));
    }
    let objects = load(cli).await?;
    let units = selected(objects.units(), cmd.which())?;
    let output = cli.output();
    match cmd {
        Cmd::Inventory(_) => inventory(output, &objects, &units),
        Cmd::Ipv6(_) => ipv6(output, &units),
        Cmd::Ipv4Phase(_) => phase(output, &objects, &units),
        Cmd::Domains(_) => domains(output, &objects, &units),
    }?;
    Ok(ExitCode::SUCCESS)
}

/// Every object the reports read, listed at once.
async fn load(cli: &Cli) -> Result<Objects, CliError> {
    let c = client(cli).await?;
    let lp = ListParams::default();
    let (pa, da, za, va) = (Api::<Province>::all(c.clone()), Api::<Department>::all(c.clone()), Api::<NetworkZone>::all(c.clone()), Api::<TenantVM>::all(c.clone()));
    let (ra, aa, pl, dz) = (Api::<DnsRecord>::all(c.clone()), Api::<AddressAllocation>::all(c.clone()), Api::<DrPlan>::all(c.clone()), Api::<DnsZone>::all(c));
    let (provinces, departments, zones, vms) = tokio::try_join!(pa.list(&lp), da.list(&lp), za.list(&lp), va.list(&lp))?;
    let (records, allocations, plans, dns_zones) = tokio::try_join!(ra.list(&lp), aa.list(&lp), pl.list(&lp), dz.list(&lp))?;
    let mut provinces = provinces.items;
    provinces.sort_by_key(ResourceExt::name_any);
    Ok(Objects {
        province: provinces.into_iter().next(),
        departments: departments.items,
        zones: zones.items,
        vms: vms.items,
        records: records.items,
        allocations: allocations.items,
        plans: plans.items,
        dns_zones: dns_zones.items,
    })
}

/// The units `which` names (each must exist), or all of them.
fn selected(units: Vec<Unit>, which: &Which) -> Result<Vec<Unit>, CliError> {
    if which.departments.is_empty() {
        return Ok(units);
    }
    let known: BTreeSet<&str> = units.iter().map(|u| u.department.as_str()).collect();
    if let Some(missing) = which.departments.iter().find(|d| !known.contains(d.as_str())) {
        return Err(CliError::Usage(format!("no Department named {missing}; `pdcctl department list` lists them")));
    }
    Ok(units.into_iter().filter(|u| which.departments.contains(&u.department)).collect())
}

/// Print `rows`: CSV through `csv`, tables through `listing`, else as data.
fn print<T: Serialize>(output: Output, rows: &[T], csv: impl Fn() -> Vec<Vec<String>>, listing: impl Fn() -> Listing) -> Result<(), CliError> {
    if output.format == Format::Csv {
        let lines: Vec<String> = csv().iter().map(|cells| csv_line(cells)).collect();
        out(lines.join("\n"));
        return Ok(());
    }
    output.list(&listing(), &rows)
}

fn strings<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.iter().map(|c| (*c).to_string()).collect()
}

fn dash(s: String) -> String {
    if s.is_empty() { "-".into() } else { s }
}

fn inventory(output: Output, objects: &Objects, units: &[Unit]) -> Result<(), CliError> {
    let tiers = objects.tiers();
    let rows: Vec<r::Inventory> = units.iter().map(|u| r::inventory(u, &tiers)).collect();
    // One column per zone of the estate and family, whoever holds addresses there.
    let mut zones: BTreeSet<String> = objects.zones.iter().map(ResourceExt::name_any).collect();
    zones.extend(rows.iter().flat_map(|r| r.addresses.keys().cloned()));
    let csv = || {
        let mut head = strings(["department", "vms", "vcpu", "memory_bytes"]);
        head.extend(tiers.iter().map(|t| format!("storage_{t}_bytes")));
        head.extend(zones.iter().flat_map(|z| [format!("addresses_{z}_ipv4"), format!("addresses_{z}_ipv6")]));
        head.extend(strings(["dns_names", "dr_protected_vms"]));
        let mut lines = vec![head];
        for r in &rows {
            let mut l = vec![r.department.clone(), r.vms.to_string(), r.vcpu.to_string(), r.memory_bytes.to_string()];
            l.extend(tiers.iter().map(|t| r.storage_bytes.get(t).copied().unwrap_or(0).to_string()));
            for z in &zones {
                let h = r.addresses.get(z).copied().unwrap_or_default();
                l.extend([h.ipv4.to_string(), h.ipv6.to_string()]);
            }
            l.extend([r.names.to_string(), r.dr_protected.have.to_string()]);
            lines.push(l);
        }
        lines
    };
    let listing = || {
        let body = rows.iter().map(|r| {
            let storage = r.storage_bytes.iter().filter(|(_, b)| **b > 0).map(|(t, b)| format!("{t} {}", format_bytes(*b))).collect::<Vec<_>>().join(", ");
            let addresses = r.addresses.iter().filter(|(_, h)| h.ipv4 + h.ipv6 > 0).map(|(z, h)| format!("{z} {}/{}", h.ipv4, h.ipv6)).collect::<Vec<_>>().join(", ");
            Row::new(vec![
                r.department.clone(),
                r.vms.to_string(),
                r.vcpu.to_string(),
                format_bytes(r.memory_bytes),
                dash(storage),
                dash(addresses),
                r.names.to_string(),
                r.dr_protected.to_string(),
            ])
        });
        Listing::values(&["DEPARTMENT", "VMS", "VCPU", "MEMORY", "STORAGE", "ADDRESSES (V4/V6)", "DNS NAMES", "DR PROTECTED"]).rows(body)
    };
    print(output, &rows, csv, listing)
}

fn ipv6(output: Output, units: &[Unit]) -> Result<(), CliError> {
    let rows: Vec<r::Ipv6Readiness> = units.iter().map(r::ipv6_readiness).collect();
    let csv = || {
        let mut lines = vec![strings(["department", "names_with_aaaa", "names", "vms_with_ipv6", "vms", "zones_with_ipv6", "zones", "ratio"])];
        lines.extend(rows.iter().map(|r| {
            let (n, v, z) = (r.names_with_aaaa, r.vms_with_ipv6, r.zones_with_ipv6);
            let counts = [n.have, n.of, v.have, v.of, z.have, z.of].map(|c| c.to_string());
            let mut l = vec![r.department.clone()];
            l.extend(counts);
            l.push(r::ratio_text(r.ratio));
            l
        }));
        lines
    };
    let listing = || {
        let body = rows.iter().map(|r| {
            let share = |s: r::Share| format!("{s} ({})", r::percent_text(s.ratio()));
            Row::new(vec![r.department.clone(), share(r.names_with_aaaa), share(r.vms_with_ipv6), share(r.zones_with_ipv6), r::percent_text(r.ratio)])
        });
        Listing::values(&["DEPARTMENT", "NAMES WITH AAAA", "VMS WITH IPV6", "ZONES WITH IPV6", "READY"]).rows(body)
    };
    print(output, &rows, csv, listing)
}

fn phase(output: Output, objects: &Objects, units: &[Unit]) -> Result<(), CliError> {
    let phases = objects.phases();
    let rows: Vec<r::PhaseRow> = units.iter().flat_map(|u| r::ipv4_phase(u, &phases)).collect();
    let csv = || {
        let mut lines = vec![strings(["department", "zone", "phase", "ipv4_held", "ipv6_held", "ipv4_to_release"])];
        lines.extend(rows.iter().map(|r| {
            vec![r.department.clone(), r.zone.clone(), r.phase.as_str().into(), r.ipv4_held.to_string(), r.ipv6_held.to_string(), r.to_release.join(" ")]
        }));
        lines
    };
    let listing = || {
        let body = rows.iter().map(|r| {
            Row::new(vec![
                r.department.clone(),
                r.zone.clone(),
                r.phase.as_str().into(),
                r.ipv4_held.to_string(),
                r.ipv6_held.to_string(),
                dash(r.to_release.join(" ")),
            ])
        });
        Listing::values(&["DEPARTMENT", "ZONE", "IPV4 PHASE", "IPV4 HELD", "IPV6 HELD", "IPV4 TO RELEASE"]).rows(body)
    };
    print(output, &rows, csv, listing)
}

fn domains(output: Output, objects: &Objects, units: &[Unit]) -> Result<(), CliError> {
    let zones = objects.dns_zones();
    let rows: Vec<r::DomainRow> = units.iter().flat_map(|u| r::domains(u, &zones)).collect();
    let cells = |r: &r::DomainRow| vec![r.department.clone(), r.domain.clone(), r.role.clone(), r.dns_zone.clone().unwrap_or_default(), r.dnssec.as_str().into()];
    let csv = || {
        let mut lines = vec![strings(["department", "domain", "role", "dns_zone", "dnssec"])];
        lines.extend(rows.iter().map(cells));
        lines
    };
    let listing = || {
        let body = rows.iter().map(|r| {
            let mut c = cells(r);
            if let Some(z) = c.get_mut(3) {
                *z = dash(std::mem::take(z));
            }
            Row::new(c)
        });
        Listing::values(&["DEPARTMENT", "DOMAIN", "ROLE", "DNS ZONE", "DNSSEC"]).rows(body)
    };
    print(output, &rows, csv, listing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units() -> Vec<Unit> {
        ["so-y-te", "so-noi-vu"].map(|d| Unit { department: d.into(), ..Default::default() }).into()
    }

    #[test]
    fn a_department_named_is_kept_and_an_unknown_one_is_a_usage_error() {
        let which = Which { departments: vec!["so-y-te".into()], all: false };
        let kept = selected(units(), &which).unwrap();
        assert_eq!(kept.iter().map(|u| u.department.as_str()).collect::<Vec<_>>(), ["so-y-te"]);
        let which = Which { departments: vec!["so-y-teh".into()], all: false };
        assert!(matches!(selected(units(), &which), Err(CliError::Usage(m)) if m.contains("so-y-teh") && m.contains("department list")));
        assert_eq!(selected(units(), &Which::default()).unwrap().len(), 2, "all by default");
    }

    #[test]
    fn every_report_serializes_as_json_and_yaml() {
        let mut u = Unit { department: "so-y-te".into(), memory: 4 << 30, ..Default::default() };
        u.storage.insert("ssd".into(), 20 << 30);
        u.zones.push(r::Zone { name: "dmz".into(), ipv6: true, phase: r::Ipv4Phase::Off });
        u.addresses.push(r::Address { zone: "dmz".into(), address: "10.15.0.4".into(), ipv6: false });
        let inv = [r::inventory(&u, &["hdd".into(), "ssd".into()])];
        let json = serde_json::to_value(&inv).unwrap();
        assert_eq!(json[0]["storageBytes"]["ssd"], 20u64 << 30);
        assert_eq!(json[0]["drProtected"], serde_json::json!({"have": 0, "of": 0}));
        let yaml = serde_yaml::to_string(&inv).unwrap();
        assert!(yaml.contains("memoryBytes: 4294967296"), "{yaml}");
        let phase = serde_json::to_value(r::ipv4_phase(&u, &Default::default())).unwrap();
        assert_eq!(phase[0]["phase"], "Off");
        assert_eq!(phase[0]["toRelease"], serde_json::json!(["10.15.0.4"]));
        let ready = serde_json::to_value(r::ipv6_readiness(&u)).unwrap();
        assert_eq!(ready["ratio"], 1.0);
        serde_yaml::to_string(&r::domains(&u, &[])).unwrap();
    }

    #[test]
    fn the_command_line_takes_each_report_with_d_or_a() {
        use clap::Parser;
        for report in ["inventory", "ipv6", "ipv4-phase", "domains"] {
            assert!(crate::Cli::try_parse_from(["pdcctl", "report", report, "-A"]).is_ok(), "{report} -A");
            assert!(crate::Cli::try_parse_from(["pdcctl", "report", report, "-d", "so-y-te", "-d", "so-noi-vu", "-o", "csv"]).is_ok(), "{report} -d");
            assert!(crate::Cli::try_parse_from(["pdcctl", "report", report, "-A", "-d", "so-y-te"]).is_err(), "{report}: -A and -d conflict");
        }
    }
}
