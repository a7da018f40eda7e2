//! `pdcctl ip`: the province's address plan, read from the cluster. Counts use
//! pdc-core's 128-bit arithmetic: nothing iterates a range.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Subcommand;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use pdc_api::{AddressAllocation, NetworkZone, Province, Site, SubnetAllocation};
use pdc_core::ipam::{self, Addr, Family, HostPool, Prefix};
use serde::Serialize;

use crate::output::{Format, Listing, Output, Row, print_data};
use crate::{Cli, CliError, client, exit, outln};

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// The plan as a tree: province → site → zone → department subnets, both families.
    Plan,
    /// Utilisation per zone, site and family.
    Usage,
    /// Who holds an address, or where it would belong.
    Find {
        /// An IPv4 or IPv6 address.
        address: String,
    },
    /// Every allocated subnet and address (`-o csv`, `-o json`, `-o yaml`, or a table).
    Export,
    /// Take over the declared address plan (CSV or YAML): sites, zones, department
    /// subnets and the addresses in use outside pdc, kept exactly as declared. The
    /// file and the cluster are checked whole first; a plan with a conflict writes
    /// nothing (each conflict is reported with its line and a fix, exit 1).
    Import {
        /// The plan: `.csv` (one row per item, a `kind` column) or `.yaml`/`.yml`
        /// (see deploy/samples/address-plan.csv and address-plan.yaml).
        file: std::path::PathBuf,
        /// Check the file alone, offline: no cluster is needed and nothing is written.
        #[arg(long)]
        check: bool,
    },
    /// Let external addresses (imported from the declared plan) go: they may then be
    /// handed to claims. Addresses held by claims are refused.
    ReleaseExternal {
        /// IPv4 or IPv6 addresses.
        #[arg(required = true)]
        addresses: Vec<String>,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
}

/// Everything the commands read, in one go.
struct Plan {
    province: Option<Province>,
    sites: Vec<Site>,
    zones: Vec<NetworkZone>,
    subnets: Vec<SubnetAllocation>,
    addresses: Vec<AddressAllocation>,
}

async fn load(cli: &Cli) -> Result<Plan, CliError> {
    let c = client(cli).await?;
    let lp = ListParams::default();
    let (pa, sa, za) = (Api::<Province>::all(c.clone()), Api::<Site>::all(c.clone()), Api::<NetworkZone>::all(c.clone()));
    let (suba, adda) = (Api::<SubnetAllocation>::all(c.clone()), Api::<AddressAllocation>::all(c));
    let (province, sites, zones, subnets, addresses) = tokio::try_join!(pa.list(&lp), sa.list(&lp), za.list(&lp), suba.list(&lp), adda.list(&lp))?;
    let mut p = Plan {
        province: province.items.into_iter().next(),
        sites: sites.items,
        zones: zones.items,
        subnets: subnets.items,
        addresses: addresses.items,
    };
    p.sites.sort_by_key(|s| (s.spec.role != pdc_api::SiteRole::Primary, s.name_any()));
    p.zones.sort_by_key(|z| (z.spec.vlan, z.name_any()));
    p.subnets.sort_by_key(|s| (s.spec.department.clone(), Prefix::parse(&s.spec.prefix).ok()));
    p.addresses.sort_by_key(|a| Addr::parse(&a.spec.address).ok());
    Ok(p)
}

pub async fn run(cli: &Cli, cmd: &Cmd) -> Result<ExitCode, CliError> {
    match cmd {
        Cmd::Import { file, check } => return crate::import::run(cli, file, *check).await,
        Cmd::ReleaseExternal { addresses, yes } => return crate::import::release(cli, addresses, *yes).await,
        _ => {}
    }
    let plan = load(cli).await?;
    match cmd {
        Cmd::Plan => show_plan(cli.format, &plan),
        Cmd::Usage => usage(cli.output(), &plan),
        Cmd::Find { address } => find(cli.format, &plan, address),
        Cmd::Export => export(cli.output(), &plan),
        Cmd::Import { .. } | Cmd::ReleaseExternal { .. } => Ok(ExitCode::SUCCESS),
    }
}

fn zone_prefix(z: &NetworkZone, site: &str, family: Family) -> Option<Prefix> {
    z.spec
        .sites
        .iter()
        .filter(|s| s.site == site)
        .flat_map(|s| [&s.ipv4, &s.ipv6])
        .flatten()
        .filter_map(|p| Prefix::parse(p).ok())
        .find(|p| p.family == family)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanSite {
    name: String,
    role: String,
    location: Option<String>,
    zones: Vec<PlanZone>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanZone {
    name: String,
    vlan: i32,
    ipv4: Option<String>,
    ipv6: Option<String>,
    departments: Vec<PlanDept>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanDept {
    department: String,
    ipv4: Option<String>,
    ipv6: Option<String>,
    ipv4_addresses: usize,
    ipv6_addresses: usize,
}

fn tree(plan: &Plan) -> Vec<PlanSite> {
    let mut held: BTreeMap<(String, String, String, bool), usize> = BTreeMap::new();
    for a in &plan.addresses {
        let v6 = a.spec.address.contains(':');
        *held.entry((a.spec.site.clone(), a.spec.zone.clone(), a.spec.department.clone(), v6)).or_default() += 1;
    }
    plan.sites
        .iter()
        .map(|s| {
            let site = s.name_any();
            let zones = plan
                .zones
                .iter()
                .filter(|z| z.spec.sites.iter().any(|x| x.site == site))
                .map(|z| {
                    let zone = z.name_any();
                    let mut depts: BTreeMap<String, PlanDept> = BTreeMap::new();
                    for a in plan.subnets.iter().filter(|a| a.spec.site == site && a.spec.zone == zone) {
                        let d = depts.entry(a.spec.department.clone()).or_insert_with(|| PlanDept {
                            department: a.spec.department.clone(),
                            ipv4: None,
                            ipv6: None,
                            ipv4_addresses: held.get(&(site.clone(), zone.clone(), a.spec.department.clone(), false)).copied().unwrap_or(0),
                            ipv6_addresses: held.get(&(site.clone(), zone.clone(), a.spec.department.clone(), true)).copied().unwrap_or(0),
                        });
                        match Prefix::parse(&a.spec.prefix).map(|p| p.family) {
                            Ok(Family::V4) => d.ipv4 = Some(a.spec.prefix.clone()),
                            Ok(Family::V6) => d.ipv6 = Some(a.spec.prefix.clone()),
                            Err(_) => {}
                        }
                    }
                    PlanZone {
                        name: zone.clone(),
                        vlan: z.spec.vlan,
                        ipv4: zone_prefix(z, &site, Family::V4).map(|p| p.to_string()),
                        ipv6: zone_prefix(z, &site, Family::V6).map(|p| p.to_string()),
                        departments: depts.into_values().collect(),
                    }
                })
                .collect();
            PlanSite { name: site, role: format!("{:?}", s.spec.role), location: s.spec.location.clone(), zones }
        })
        .collect()
}

fn show_plan(format: Format, plan: &Plan) -> Result<ExitCode, CliError> {
    let sites = tree(plan);
    if !format.for_people() {
        print_data(format, &sites)?;
        return Ok(ExitCode::SUCCESS);
    }
    match &plan.province {
        Some(p) => outln!("{} ({})", p.spec.display_name, p.spec.domain),
        None => outln!("(no Province)"),
    }
    let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    for (i, s) in sites.iter().enumerate() {
        let last_site = i + 1 == sites.len();
        let (branch, pad) = if last_site { ("└─", "   ") } else { ("├─", "│  ") };
        outln!("{branch} site {} ({}{})", s.name, s.role, s.location.as_ref().map(|l| format!(", {l}")).unwrap_or_default());
        for (j, z) in s.zones.iter().enumerate() {
            let last_zone = j + 1 == s.zones.len();
            let (zb, zp) = if last_zone { ("└─", "   ") } else { ("├─", "│  ") };
            outln!("{pad}{zb} zone {:<8} VLAN {:<5} {:<18} {}", z.name, z.vlan, dash(&z.ipv4), dash(&z.ipv6));
            let width = z.departments.iter().map(|d| d.department.chars().count()).max().unwrap_or(0);
            for (k, d) in z.departments.iter().enumerate() {
                let db = if k + 1 == z.departments.len() { "└─" } else { "├─" };
                outln!(
                    "{pad}{zp}{db} {:<width$}  {:<18} {:<28} {} IPv4, {} IPv6 in use",
                    d.department,
                    dash(&d.ipv4),
                    dash(&d.ipv6),
                    d.ipv4_addresses,
                    d.ipv6_addresses
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UsageRow {
    zone: String,
    site: String,
    family: String,
    prefix: String,
    subnets_allocated: String,
    subnets_total: String,
    addresses_allocated: String,
    addresses_total: String,
    /// Addresses in use outside pdc (imported), in or outside department subnets.
    addresses_external: String,
    percent_subnets: f64,
    percent_addresses: f64,
}

fn percent(a: u128, t: u128) -> f64 {
    if t == 0 { 0.0 } else { (a as f64) * 100.0 / (t as f64) }
}

fn usage_rows(plan: &Plan) -> Vec<UsageRow> {
    let mut rows = Vec::new();
    for z in &plan.zones {
        let zone = z.name_any();
        for s in &z.spec.sites {
            for family in [Family::V4, Family::V6] {
                let Some(prefix) = zone_prefix(z, &s.site, family) else { continue };
                let len = match family {
                    Family::V4 => z.spec.subnet_sizes.ipv4,
                    Family::V6 => z.spec.subnet_sizes.ipv6,
                };
                let len = u8::try_from(len).unwrap_or(family.bits());
                let subnets: Vec<Prefix> = plan
                    .subnets
                    .iter()
                    .filter(|a| a.spec.zone == zone && a.spec.site == s.site)
                    .filter_map(|a| Prefix::parse(&a.spec.prefix).ok())
                    .filter(|p| p.family == family)
                    .collect();
                let reserved = u128::try_from(z.spec.reserved_hosts.max(1)).unwrap_or(1);
                let usable: u128 = subnets
                    .iter()
                    .filter_map(|p| {
                        let (v4, v6) = if family == Family::V4 { (Some(*p), None) } else { (None, Some(*p)) };
                        HostPool::new(v4, v6, reserved).ok().map(|pool| pool.usage(family).1)
                    })
                    .fold(0u128, u128::saturating_add);
                let here: Vec<&AddressAllocation> = plan
                    .addresses
                    .iter()
                    .filter(|a| a.spec.zone == zone && a.spec.site == s.site)
                    .filter(|a| Addr::parse(&a.spec.address).is_ok_and(|x| x.family == family))
                    .collect();
                let external = here.iter().filter(|a| a.spec.external.is_some()).count();
                // Inside department subnets; external addresses in none are only counted as external.
                let held = here.iter().filter(|a| !a.spec.department.is_empty()).count() as u128;
                let total = ipam::blocks_in(&prefix, len);
                rows.push(UsageRow {
                    zone: zone.clone(),
                    site: s.site.clone(),
                    family: family.label().into(),
                    prefix: prefix.to_string(),
                    subnets_allocated: subnets.len().to_string(),
                    subnets_total: total.to_string(),
                    addresses_allocated: held.to_string(),
                    addresses_total: usable.to_string(),
                    addresses_external: external.to_string(),
                    percent_subnets: percent(subnets.len() as u128, total),
                    percent_addresses: percent(held, usable),
                });
            }
        }
    }
    rows
}

fn usage(output: Output, plan: &Plan) -> Result<ExitCode, CliError> {
    let rows = usage_rows(plan);
    let body = rows.iter().map(|r| {
        Row::new(vec![
            r.zone.clone(),
            r.site.clone(),
            r.family.clone(),
            r.prefix.clone(),
            format!("{}/{} ({:.1}%)", r.subnets_allocated, r.subnets_total, r.percent_subnets),
            format!("{}/{} ({:.1}%)", r.addresses_allocated, r.addresses_total, r.percent_addresses),
            r.addresses_external.clone(),
        ])
    });
    output.list(&Listing::values(&["ZONE", "SITE", "FAMILY", "PREFIX", "SUBNETS", "ADDRESSES (IN SUBNETS)", "EXTERNAL"]).rows(body), &rows)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Found {
    address: String,
    state: String,
    zone: Option<String>,
    site: Option<String>,
    department: Option<String>,
    subnet: Option<String>,
    claim: Option<String>,
    hostname: Option<String>,
    /// For an external address: what holds it, the plan it came from, its note.
    external: Option<pdc_api::ExternalUse>,
    reverse_name: String,
}

fn find(format: Format, plan: &Plan, text: &str) -> Result<ExitCode, CliError> {
    let addr = Addr::parse(text).map_err(|e| CliError::Usage(e.to_string()))?;
    let mut f = Found {
        address: addr.to_string(),
        state: "outside the address plan".into(),
        zone: None,
        site: None,
        department: None,
        subnet: None,
        claim: None,
        hostname: None,
        external: None,
        reverse_name: addr.reverse_name(),
    };
    let name = addr.object_name();
    if let Some(a) = plan.addresses.iter().find(|a| a.name_any() == name) {
        f.state = "allocated".into();
        f.zone = Some(a.spec.zone.clone());
        f.site = Some(a.spec.site.clone());
        f.department = Some(a.spec.department.clone());
        f.subnet = Some(a.spec.subnet.clone());
        f.claim = Some(format!("{}/{}", a.spec.claim.namespace, a.spec.claim.name));
        f.hostname = a.spec.hostname.clone();
        if let Some(e) = &a.spec.external {
            f.state = format!("external: in use outside pdc ({}), imported from {}; never handed to a claim", e.role, e.plan);
            f.claim = None;
            f.external = Some(e.clone());
        }
    } else if let Some(s) = plan.subnets.iter().find(|s| Prefix::parse(&s.spec.prefix).is_ok_and(|p| p.contains(&addr))) {
        f.state = "free, inside a department subnet".into();
        f.zone = Some(s.spec.zone.clone());
        f.site = Some(s.spec.site.clone());
        f.department = Some(s.spec.department.clone());
        f.subnet = Some(s.spec.prefix.clone());
    } else if let Some((z, site)) = plan.zones.iter().find_map(|z| {
        z.spec.sites.iter().find(|s| zone_prefix(z, &s.site, addr.family).is_some_and(|p| p.contains(&addr))).map(|s| (z, s.site.clone()))
    }) {
        f.state = "free, inside a zone but in no department subnet".into();
        f.zone = Some(z.name_any());
        f.site = Some(site);
    }
    if !format.for_people() {
        print_data(format, &f)?;
    } else {
        let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
        outln!("Address:     {}", f.address);
        outln!("State:       {}", f.state);
        outln!("Zone:        {}", dash(&f.zone));
        outln!("Site:        {}", dash(&f.site));
        outln!("Department:  {}", dash(&f.department));
        outln!("Subnet:      {}", dash(&f.subnet));
        outln!("Claim:       {}", dash(&f.claim));
        outln!("Hostname:    {}", dash(&f.hostname));
        if let Some(d) = f.external.as_ref().and_then(|e| e.description.clone()) {
            outln!("Note:        {d}");
        }
        outln!("Reverse:     {}", f.reverse_name);
    }
    Ok(exit::unless(f.state != "outside the address plan", exit::FAILED))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExportRow {
    /// The SubnetAllocation's or AddressAllocation's name, for `-o name` and wide.
    #[serde(skip)]
    object: String,
    kind: &'static str,
    value: String,
    family: String,
    zone: String,
    site: String,
    department: String,
    claim: String,
    hostname: String,
}

fn export(output: Output, plan: &Plan) -> Result<ExitCode, CliError> {
    let rows = export_rows(plan);
    if output.format == Format::Csv {
        outln!("kind,value,family,zone,site,department,claim,hostname");
        for r in &rows {
            let cells = [r.kind, &r.value, &r.family, &r.zone, &r.site, &r.department, &r.claim, &r.hostname];
            outln!("{}", cells.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(","));
        }
        return Ok(ExitCode::SUCCESS);
    }
    output.list(&export_listing(&rows), &rows)?;
    Ok(ExitCode::SUCCESS)
}

/// Every subnet, then every address.
fn export_rows(plan: &Plan) -> Vec<ExportRow> {
    let fam = |s: &str| if s.contains(':') { "IPv6" } else { "IPv4" }.to_string();
    let mut rows: Vec<ExportRow> = plan
        .subnets
        .iter()
        .map(|s| ExportRow {
            object: s.name_any(),
            kind: "subnet",
            value: s.spec.prefix.clone(),
            family: fam(&s.spec.prefix),
            zone: s.spec.zone.clone(),
            site: s.spec.site.clone(),
            department: s.spec.department.clone(),
            claim: String::new(),
            hostname: String::new(),
        })
        .collect();
    rows.extend(plan.addresses.iter().map(|a| ExportRow {
        object: a.name_any(),
        kind: "address",
        value: a.spec.address.clone(),
        family: fam(&a.spec.address),
        zone: a.spec.zone.clone(),
        site: a.spec.site.clone(),
        department: a.spec.department.clone(),
        claim: match &a.spec.external {
            Some(e) => format!("external:{}", e.role),
            None => format!("{}/{}", a.spec.claim.namespace, a.spec.claim.name),
        },
        hostname: a.spec.hostname.clone().unwrap_or_default(),
    }));
    rows
}

/// `ip export` as a table; each row is its SubnetAllocation or AddressAllocation for
/// `-o name`, and wide adds the family and the object's name.
fn export_listing(rows: &[ExportRow]) -> Listing {
    let body = rows.iter().map(|r| {
        let cells = vec![r.kind.into(), r.value.clone(), r.zone.clone(), r.site.clone(), r.department.clone(), r.claim.clone(), r.hostname.clone()];
        let row = if r.kind == "subnet" { Row::object::<SubnetAllocation>(&r.object, cells) } else { Row::object::<AddressAllocation>(&r.object, cells) };
        row.wide(vec![r.family.clone(), r.object.clone()])
    });
    Listing::objects(&["KIND", "VALUE", "ZONE", "SITE", "DEPARTMENT", "CLAIM", "HOSTNAME"]).wide(&["FAMILY", "OBJECT"]).rows(body)
}

/// RFC 4180: quote a cell holding a comma, quote or newline.
fn csv_cell(c: &str) -> String {
    if c.contains([',', '"', '\n']) { format!("\"{}\"", c.replace('"', "\"\"")) } else { c.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_with_one_vm() -> Plan {
        let subnet: SubnetAllocation = serde_json::from_value(serde_json::json!({
            "apiVersion": "pdc.io/v1alpha1", "kind": "SubnetAllocation", "metadata": {"name": "app-daklak-so-y-te-v4"},
            "spec": {"prefix": "10.15.0.0/26", "zone": "app", "site": "daklak", "department": "so-y-te"}
        }))
        .unwrap();
        let address: AddressAllocation = serde_json::from_value(serde_json::json!({
            "apiVersion": "pdc.io/v1alpha1", "kind": "AddressAllocation", "metadata": {"name": "10-15-0-8"},
            "spec": {"address": "10.15.0.8", "subnet": "10.15.0.0/26", "zone": "app", "site": "daklak", "department": "so-y-te",
                     "claim": {"namespace": "so-y-te", "name": "his", "uid": "u1"}, "hostname": "his"}
        }))
        .unwrap();
        Plan { province: None, sites: Vec::new(), zones: Vec::new(), subnets: vec![subnet], addresses: vec![address] }
    }

    #[test]
    fn export_names_each_row_by_its_allocation_kind() {
        let listing = export_listing(&export_rows(&plan_with_one_vm()));
        let names = Output { format: Format::Name, headers: true }.render(&listing).unwrap();
        assert_eq!(names, "subnetallocation.pdc.io/app-daklak-so-y-te-v4\naddressallocation.pdc.io/10-15-0-8");
    }

    #[test]
    fn export_without_headers_is_one_line_per_allocation_and_wide_adds_family_and_object() {
        let listing = export_listing(&export_rows(&plan_with_one_vm()));
        let bare = Output { format: Format::Table, headers: false }.render(&listing).unwrap();
        let lines: Vec<Vec<&str>> = bare.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(lines, vec![vec!["subnet", "10.15.0.0/26", "app", "daklak", "so-y-te"], vec!["address", "10.15.0.8", "app", "daklak", "so-y-te", "so-y-te/his", "his"]]);
        let wide = Output { format: Format::Wide, headers: true }.render(&listing).unwrap();
        let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(header.last().copied(), Some("OBJECT"), "{wide}");
        let address: Vec<&str> = wide.lines().nth(2).unwrap().split_whitespace().collect();
        assert_eq!(address[address.len() - 2..], ["IPv4", "10-15-0-8"], "{wide}");
    }
}
