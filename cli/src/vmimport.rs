//! `pdcctl vm import`: bring a VM pdc did not make under a TenantVM.
//!
//! - a KubeVirt VirtualMachine already in the namespace: its addresses (as its
//!   instance reports them), its disks (the claims its volumes name, on their tiers)
//!   and its size are read, shown, and written as an adopting TenantVM;
//! - `--external`: a VM still on the old hypervisor is recorded with the addresses
//!   it has (`--address`), so pdc holds them, charges it and declares its names;
//! - `--from-image URL`: such a record becomes a VM on KubeVirt whose root disk is a
//!   CDI import of the exported image, keeping its addresses, MACs and names.

use std::process::ExitCode;
use std::time::Duration;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use pdc_api::{Department, NetworkZone, Province, SizeClass, TenantVM};
use pdc_core::ipam::{Addr, Family, Prefix};

use crate::connect::Scope;
use crate::output::{Listing, Row};
use crate::wait::{Deadline, parse_duration};
use crate::{Cli, CliError, confirm, outln};

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The VM: a KubeVirt VirtualMachine's name in the namespace, or (with
    /// --external) the name to record a VM of the old hypervisor under.
    name: String,
    #[command(flatten)]
    scope: Scope,
    /// SizeClass (default: the one whose vCPUs and memory are the VM's).
    #[arg(long)]
    size: Option<String>,
    /// Host name (default: the VM's own, else its name).
    #[arg(long)]
    hostname: Option<String>,
    /// Record a VM that still runs on the old hypervisor: no VirtualMachine is made.
    #[arg(long, conflicts_with = "from_image")]
    external: bool,
    /// An address the VM has (repeatable). With --external, its NICs' addresses (an
    /// IPv4 and its IPv6 partner in one zone are one NIC); for a KubeVirt VM whose
    /// instance reports none (no guest agent), the addresses it has.
    #[arg(long = "address")]
    addresses: Vec<String>,
    /// With --external: the MAC of each NIC, in the order of their addresses
    /// (repeatable), for a guest whose network configuration matches on MAC.
    #[arg(long = "mac")]
    macs: Vec<String>,
    /// With --external: its root disk as SIZE:TIER, charged to the quota.
    #[arg(long, default_value = "20Gi:ssd")]
    root: String,
    /// With --external: a data disk NAME=SIZE:TIER (repeatable).
    #[arg(long = "disk")]
    disks: Vec<String>,
    /// Move a recorded external VM onto KubeVirt: its root disk becomes a CDI import
    /// of this exported disk image (http(s) URL or docker://…).
    #[arg(long, value_name = "URL")]
    from_image: Option<String>,
    /// Show what would be done (the TenantVM with -o yaml|json) and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do it without asking.
    #[arg(long)]
    yes: bool,
    /// How long to wait for the TenantVM to be Ready; exit 4 when it runs out.
    #[arg(long, value_parser = parse_duration, default_value = "2m", value_name = "DURATION")]
    timeout: Duration,
}

fn vm_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachine"), "virtualmachines")
}

fn vmi_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachineInstance"), "virtualmachineinstances")
}

fn text<'a>(v: &'a serde_json::Value, p: &str) -> Option<&'a str> {
    v.pointer(p).and_then(|x| x.as_str())
}

/// One NIC as found: zone, addresses, MAC.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FoundNic {
    pub zone: String,
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
    pub mac: Option<String>,
}

/// The zone of the department's subnet holding `a`.
fn zone_of(a: &Addr, subnets: &[(String, Prefix)]) -> Option<String> {
    subnets.iter().find(|(_, p)| p.contains(a)).map(|(z, _)| z.clone())
}

/// NICs from addresses grouped per interface (`(mac, addresses)`); addresses in no
/// department subnet (the pod network, link-local) are left out, and an interface
/// with none is no NIC of pdc's.
/// An address in a zone (`zones`: every zone's prefixes) but outside the
/// department's subnets there is refused: pdc could not claim it.
pub fn nics_from(interfaces: &[(Option<String>, Vec<String>)], subnets: &[(String, Prefix)], zones: &[(String, Prefix)]) -> Result<Vec<FoundNic>, CliError> {
    let mut out = Vec::new();
    for (mac, addrs) in interfaces {
        let mut nic = FoundNic { mac: mac.clone(), ..Default::default() };
        for text in addrs {
            let a = Addr::parse(text.split('/').next().unwrap_or(text)).map_err(|e| CliError::Usage(format!("{text}: {e}")))?;
            let Some(zone) = zone_of(&a, subnets) else {
                if let Some(z) = zone_of(&a, zones) {
                    return Err(CliError::Refused(format!(
                        "the VM uses {a} in zone {z}, outside the department's subnets there: pdc cannot claim it for this department; renumber the VM or move it to the department that holds the subnet"
                    )));
                }
                continue;
            };
            if !nic.zone.is_empty() && nic.zone != zone {
                return Err(CliError::Refused(format!("one interface has addresses in zones {} and {zone}: pdc keeps one zone per NIC", nic.zone)));
            }
            nic.zone = zone;
            let slot = if a.family == Family::V4 { &mut nic.ipv4 } else { &mut nic.ipv6 };
            if slot.is_some() {
                return Err(CliError::Refused(format!("one interface has two {} addresses in zone {}: pdc keeps one of each family per NIC", a.family, nic.zone)));
            }
            *slot = Some(a.to_string());
        }
        if !nic.zone.is_empty() {
            out.push(nic);
        }
    }
    Ok(out)
}

/// `--address` values as NICs: per zone, the n-th IPv4 with the n-th IPv6.
pub fn nics_from_flags(addresses: &[String], subnets: &[(String, Prefix)]) -> Result<Vec<FoundNic>, CliError> {
    let mut out: Vec<FoundNic> = Vec::new();
    for text in addresses {
        let a = Addr::parse(text).map_err(|e| CliError::Usage(format!("--address {text}: {e}")))?;
        let zone = zone_of(&a, subnets).ok_or_else(|| {
            let known: Vec<String> = subnets.iter().map(|(z, p)| format!("{p} ({z})")).collect();
            CliError::Usage(format!("--address {text} is in none of the department's subnets ({}): the VM must be renumbered, or the department given that zone", known.join(", ")))
        })?;
        let v4 = a.family == Family::V4;
        match out.iter_mut().find(|n| n.zone == zone && if v4 { n.ipv4.is_none() } else { n.ipv6.is_none() }) {
            Some(n) if v4 => n.ipv4 = Some(a.to_string()),
            Some(n) => n.ipv6 = Some(a.to_string()),
            None => out.push(FoundNic { zone, ipv4: v4.then(|| a.to_string()), ipv6: (!v4).then(|| a.to_string()), mac: None }),
        }
    }
    if out.is_empty() {
        return Err(CliError::Usage("give the VM's addresses with --address (each one it has in a zone)".into()));
    }
    Ok(out)
}

fn subnets_of(d: &Department) -> Vec<(String, Prefix)> {
    let parse = |z: &str, p: &Option<String>| p.as_ref().and_then(|p| Prefix::parse(p).ok()).map(|p| (z.to_string(), p));
    d.status.as_ref().map(|s| s.subnets.iter().flat_map(|n| [parse(&n.zone, &n.ipv4), parse(&n.zone, &n.ipv6)]).flatten().collect()).unwrap_or_default()
}

/// vCPUs (sockets × cores × threads) and memory bytes of a KubeVirt domain.
pub fn domain_size(domain: &serde_json::Value) -> (i64, u128) {
    let n = |p: &str| domain.pointer(p).and_then(serde_json::Value::as_i64).unwrap_or(1);
    let mem = text(domain, "/memory/guest").or_else(|| text(domain, "/resources/requests/memory")).and_then(|m| pdc_core::quantity::parse(m).ok()).unwrap_or(0);
    (n("/cpu/sockets") * n("/cpu/cores") * n("/cpu/threads"), mem)
}

/// The SizeClass asked for, or the one whose vCPUs and memory are the domain's.
fn pick_size(asked: Option<&String>, sizes: &[SizeClass], domain: &serde_json::Value) -> Result<String, CliError> {
    if let Some(s) = asked {
        return Ok(s.clone());
    }
    let (vcpu, mem) = domain_size(domain);
    sizes
        .iter()
        .find(|s| i64::from(s.spec.vcpu) == vcpu && pdc_core::quantity::parse(&s.spec.memory).is_ok_and(|m| m == mem))
        .map(|s| s.name_any())
        .ok_or_else(|| {
            let names: Vec<String> = sizes.iter().map(|s| format!("{} ({} vCPU, {})", s.name_any(), s.spec.vcpu, s.spec.memory)).collect();
            CliError::Usage(format!(
                "no SizeClass has the VM's {vcpu} vCPU and {} memory; give --size (one of: {}); a different size takes effect at the VM's next restart",
                pdc_core::quantity::format_bytes(mem),
                names.join(", ")
            ))
        })
}

/// The disks of a VirtualMachine: (volume, claim), the boot disk first.
pub fn disk_volumes(vm: &serde_json::Value) -> Vec<(String, String)> {
    let vols = vm.pointer("/spec/template/spec/volumes").and_then(|v| v.as_array()).cloned().unwrap_or_default();
    let mut out: Vec<(String, String)> = vols
        .iter()
        .filter(|v| v.pointer("/dataVolume/hotpluggable").and_then(serde_json::Value::as_bool) != Some(true) && v.pointer("/persistentVolumeClaim/hotpluggable").and_then(serde_json::Value::as_bool) != Some(true))
        .filter_map(|v| Some((text(v, "/name")?.to_string(), text(v, "/dataVolume/name").or_else(|| text(v, "/persistentVolumeClaim/claimName"))?.to_string())))
        .collect();
    let disks = vm.pointer("/spec/template/spec/domain/devices/disks").and_then(|v| v.as_array()).cloned().unwrap_or_default();
    let boot = disks.iter().filter(|d| d.get("bootOrder").is_some()).min_by_key(|d| d.get("bootOrder").and_then(serde_json::Value::as_i64)).or_else(|| disks.first()).and_then(|d| text(d, "/name"));
    if let Some(b) = boot
        && let Some(i) = out.iter().position(|(v, _)| v == b)
    {
        let root = out.remove(i);
        out.insert(0, root);
    }
    out
}

pub async fn run(cli: &Cli, c: Client, a: &ImportArgs) -> Result<ExitCode, CliError> {
    let ns = a.scope.namespace(&c)?;
    if let Some(url) = &a.from_image {
        return from_image(&c, &ns, a, url).await;
    }
    let dept = Api::<Department>::all(c.clone()).get(&ns).await?;
    let subnets = subnets_of(&dept);
    let v = if a.external { external(&c, &ns, a, &subnets)? } else { adopting(&c, &ns, a, &subnets).await? };
    show_plan(cli, &v)?;
    if a.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let what = if a.external { "Record the external VM" } else { "Adopt VirtualMachine" };
    confirm::confirm(&format!("{what} {ns}/{} as a TenantVM (its addresses claimed, quota charged, names declared)", a.name), a.yes)?;
    let api: Api<TenantVM> = Api::namespaced(c, &ns);
    api.create(&PostParams::default(), &v).await?;
    outln!("tenantvm {ns}/{} created", a.name);
    crate::vm::wait_ready(&api, &a.name, Deadline::start(a.timeout)).await
}

fn tenant_vm(name: &str, spec: serde_json::Value) -> Result<TenantVM, CliError> {
    serde_json::from_value(serde_json::json!({"apiVersion": "pdc.io/v1alpha1", "kind": "TenantVM", "metadata": {"name": name}, "spec": spec})).map_err(|e| CliError::Usage(e.to_string()))
}

fn nic_json(n: &FoundNic) -> serde_json::Value {
    let mut o = serde_json::json!({"zone": n.zone});
    for (k, v) in [("ipv4", &n.ipv4), ("ipv6", &n.ipv6), ("mac", &n.mac)] {
        if let (Some(v), Some(m)) = (v, o.as_object_mut()) {
            m.insert(k.into(), serde_json::json!(v));
        }
    }
    o
}

fn size_tier(s: &str, flag: &str) -> Result<(String, String), CliError> {
    s.split_once(':').map(|(a, b)| (a.to_string(), b.to_string())).ok_or_else(|| CliError::Usage(format!("{flag} {s:?}: give SIZE:TIER, e.g. 40Gi:ssd")))
}

fn external(_c: &Client, _ns: &str, a: &ImportArgs, subnets: &[(String, Prefix)]) -> Result<TenantVM, CliError> {
    let mut nics = nics_from_flags(&a.addresses, subnets)?;
    if a.macs.len() > nics.len() {
        return Err(CliError::Usage(format!("{} --mac values for {} NIC(s): give one per NIC, in the order of their addresses", a.macs.len(), nics.len())));
    }
    for (n, m) in nics.iter_mut().zip(&a.macs) {
        n.mac = Some(m.to_lowercase());
    }
    let size = a.size.clone().ok_or_else(|| CliError::Usage("an external VM needs --size (the SizeClass it is charged as)".into()))?;
    let (rsize, rtier) = size_tier(&a.root, "--root")?;
    let mut disks = Vec::new();
    for d in &a.disks {
        let (name, st) = d.split_once('=').ok_or_else(|| CliError::Usage(format!("--disk {d:?}: give NAME=SIZE:TIER, e.g. data=100Gi:hdd")))?;
        let (s, t) = size_tier(st, "--disk")?;
        disks.push(serde_json::json!({"name": name, "size": s, "tier": t}));
    }
    tenant_vm(
        &a.name,
        serde_json::json!({
            "size": size, "adopt": {"external": true}, "rootDisk": {"name": "root", "size": rsize, "tier": rtier}, "disks": disks,
            "nics": nics.iter().map(nic_json).collect::<Vec<_>>(), "hostname": a.hostname.clone().unwrap_or_else(|| a.name.clone()),
        }),
    )
}

async fn adopting(c: &Client, ns: &str, a: &ImportArgs, subnets: &[(String, Prefix)]) -> Result<TenantVM, CliError> {
    let vm = Api::<DynamicObject>::namespaced_with(c.clone(), ns, &vm_resource()).get(&a.name).await?;
    let vmi = Api::<DynamicObject>::namespaced_with(c.clone(), ns, &vmi_resource()).get_opt(&a.name).await?;
    let ifaces: Vec<(Option<String>, Vec<String>)> = vmi
        .as_ref()
        .and_then(|i| i.data.pointer("/status/interfaces"))
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .map(|i| {
            let mut addrs: Vec<String> = i.get("ipAddresses").and_then(|v| v.as_array()).into_iter().flatten().filter_map(|x| x.as_str().map(str::to_string)).collect();
            if let Some(one) = text(i, "/ipAddress").filter(|o| !addrs.iter().any(|x| x == o)) {
                addrs.push(one.to_string());
            }
            (text(i, "/mac").map(str::to_lowercase), addrs)
        })
        .collect();
    let zones: Vec<(String, Prefix)> = Api::<NetworkZone>::all(c.clone())
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .flat_map(|z| z.spec.sites.iter().flat_map(|s| [&s.ipv4, &s.ipv6]).flatten().filter_map(|p| Prefix::parse(p).ok()).map(|p| (z.name_any(), p)).collect::<Vec<_>>())
        .collect();
    let mut nics = nics_from(&ifaces, subnets, &zones)?;
    if nics.is_empty() {
        // No guest agent reports them: the addresses given.
        nics = nics_from_flags(&a.addresses, subnets)?;
    }
    let sizes = Api::<SizeClass>::all(c.clone()).list(&ListParams::default()).await?.items;
    let domain = vm.data.pointer("/spec/template/spec/domain").cloned().unwrap_or_default();
    let size = pick_size(a.size.as_ref(), &sizes, &domain)?;
    let province = Api::<Province>::all(c.clone()).list(&ListParams::default()).await?.items.into_iter().next().ok_or_else(|| CliError::Refused("no Province is defined".into()))?;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(c.clone(), ns);
    let mut disks = Vec::new();
    for (volume, claim) in disk_volumes(&vm.data) {
        let pvc = pvcs.get_opt(&claim).await?.ok_or_else(|| CliError::Refused(format!("volume {volume}: its PersistentVolumeClaim {claim} does not exist")))?;
        let spec = pvc.spec.unwrap_or_default();
        let class = spec.storage_class_name.unwrap_or_default();
        let tier = province.spec.storage_tiers.iter().find(|t| t.storage_class == class).map(|t| t.name.clone()).ok_or_else(|| {
            CliError::Refused(format!("volume {volume}: its claim {claim} is on StorageClass {class:?}, which is no tier of the province's; move it to a tier's StorageClass first"))
        })?;
        let size = spec.resources.and_then(|r| r.requests).and_then(|r| r.get("storage").map(|q| q.0.clone())).unwrap_or_default();
        disks.push(serde_json::json!({"name": volume, "size": size, "tier": tier}));
    }
    let Some((root, data)) = disks.split_first() else {
        return Err(CliError::Refused(format!("VirtualMachine {ns}/{} has no disk on a PersistentVolumeClaim: pdc adopts VMs whose disks are claims", a.name)));
    };
    let hostname = a.hostname.clone().or_else(|| text(&vm.data, "/spec/template/spec/hostname").map(str::to_string)).unwrap_or_else(|| a.name.clone());
    tenant_vm(
        &a.name,
        serde_json::json!({
            "size": size, "adopt": {"virtualMachine": a.name}, "rootDisk": root, "disks": data,
            "nics": nics.iter().map(nic_json).collect::<Vec<_>>(), "hostname": hostname,
            "runStrategy": text(&vm.data, "/spec/runStrategy").unwrap_or("Always"),
        }),
    )
}

/// What the import claims and charges, for people; the TenantVM itself with -o.
fn show_plan(cli: &Cli, v: &TenantVM) -> Result<(), CliError> {
    if cli.output().object(v)? {
        return Ok(());
    }
    outln!("tenantvm {}: size {}, hostname {}", v.name_any(), v.spec.size, v.spec.hostname);
    let nics = v.spec.nics.iter().enumerate().map(|(i, n)| {
        Row::new(vec![format!("nic{i}"), n.zone.clone(), n.ipv4.clone().unwrap_or_default(), n.ipv6.clone().unwrap_or_default(), n.mac.clone().unwrap_or_default()])
    });
    cli.output().list(&Listing::values(&["NIC", "ZONE", "IPV4 (CLAIMED)", "IPV6 (CLAIMED)", "MAC"]).rows(nics), &())?;
    let disks = std::iter::once(&v.spec.root_disk).chain(&v.spec.disks).map(|d| Row::new(vec![d.name.clone(), d.size.clone(), d.tier.clone()]));
    cli.output().list(&Listing::values(&["DISK (CHARGED)", "SIZE", "TIER"]).rows(disks), &())
}

async fn from_image(c: &Client, ns: &str, a: &ImportArgs, url: &str) -> Result<ExitCode, CliError> {
    let api: Api<TenantVM> = Api::namespaced(c.clone(), ns);
    let v = api.get(&a.name).await?;
    if !v.spec.adopt.as_ref().is_some_and(|x| x.external) {
        return Err(CliError::Refused(format!("tenantvm {ns}/{} is not an external VM's record: only those move with --from-image", a.name)));
    }
    let image = if url.starts_with("docker://") {
        serde_json::json!({"registry": url})
    } else if url.starts_with("http://") || url.starts_with("https://") {
        serde_json::json!({"url": url})
    } else {
        return Err(CliError::Usage(format!("--from-image {url:?}: give an http(s) URL of the exported disk image, or docker://…")));
    };
    let kept: Vec<String> = v.spec.nics.iter().flat_map(|n| [n.ipv4.clone(), n.ipv6.clone()]).flatten().collect();
    outln!("tenantvm {ns}/{}: its root disk ({} on {}) is imported from {url}; it keeps {} and {}", a.name, v.spec.root_disk.size, v.spec.root_disk.tier, kept.join(", "), v.spec.hostname);
    if a.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    confirm::confirm(&format!("Move {ns}/{} onto KubeVirt (shut it down on the old hypervisor first)", a.name), a.yes)?;
    let patch = serde_json::json!({"spec": {"adopt": null, "image": image}});
    let generation = api.patch(&a.name, &PatchParams::default(), &Patch::Merge(&patch)).await?.metadata.generation;
    outln!("tenantvm {ns}/{} is now a KubeVirt VM; its disk is being imported", a.name);
    // The record's Ready speaks of the external VM until the operator has seen the move.
    let deadline = Deadline::start(a.timeout);
    while api.get(&a.name).await?.status.and_then(|s| s.observed_generation) < generation {
        deadline.check(|| format!("the operator has not taken up the move of tenantvm {ns}/{} yet (it goes on)", a.name))?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    crate::vm::wait_ready(&api, &a.name, deadline).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn subnets() -> Vec<(String, Prefix)> {
        vec![("app".into(), Prefix::parse("10.15.1.0/24").unwrap()), ("app".into(), Prefix::parse("2001:db8:15:1::/64").unwrap()), ("dmz".into(), Prefix::parse("10.16.1.0/24").unwrap())]
    }

    #[test]
    fn interfaces_become_nics_in_the_zones_their_addresses_are_in() {
        let ifaces = vec![
            (None, vec!["10.244.0.9".to_string()]),
            (Some("02:aa:00:00:00:01".to_string()), vec!["10.15.1.50/24".into(), "2001:db8:15:1::32".into(), "fe80::1".into()]),
            (None, vec!["10.16.1.7".into()]),
        ];
        let zones = vec![("app".to_string(), Prefix::parse("10.15.0.0/16").unwrap())];
        let n = nics_from(&ifaces, &subnets(), &zones).unwrap();
        assert_eq!(n.len(), 2);
        assert_eq!((n[0].zone.as_str(), n[0].ipv4.as_deref(), n[0].ipv6.as_deref(), n[0].mac.as_deref()), ("app", Some("10.15.1.50"), Some("2001:db8:15:1::32"), Some("02:aa:00:00:00:01")));
        assert_eq!((n[1].zone.as_str(), n[1].ipv4.as_deref()), ("dmz", Some("10.16.1.7")));
        let two = vec![(None, vec!["10.15.1.50".to_string(), "10.15.1.51".into()])];
        assert!(nics_from(&two, &subnets(), &zones).unwrap_err().to_string().contains("two IPv4 addresses"));
        let elsewhere = vec![(None, vec!["10.15.9.4".to_string()])];
        assert!(nics_from(&elsewhere, &subnets(), &zones).unwrap_err().to_string().contains("uses 10.15.9.4 in zone app, outside the department's subnets"));
    }

    #[test]
    fn address_flags_pair_per_zone_and_refuse_an_address_outside_the_subnets() {
        let a: Vec<String> = ["10.15.1.50", "2001:db8:15:1::32", "10.16.1.7"].iter().map(|s| s.to_string()).collect();
        let n = nics_from_flags(&a, &subnets()).unwrap();
        assert_eq!(n.len(), 2);
        assert_eq!(n[0].ipv6.as_deref(), Some("2001:db8:15:1::32"));
        let e = nics_from_flags(&["192.0.2.9".to_string()], &subnets()).unwrap_err().to_string();
        assert!(e.contains("none of the department's subnets (10.15.1.0/24 (app)"), "{e}");
    }

    #[test]
    fn the_boot_disk_comes_first() {
        let vm = serde_json::json!({"spec": {"template": {"spec": {
            "domain": {"devices": {"disks": [{"name": "data"}, {"name": "os", "bootOrder": 1}]}},
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "legacy-data"}}, {"name": "os", "dataVolume": {"name": "legacy-os"}},
                        {"name": "ci", "cloudInitNoCloud": {}}, {"name": "hot", "dataVolume": {"name": "x", "hotpluggable": true}}]
        }}}});
        assert_eq!(disk_volumes(&vm), vec![("os".to_string(), "legacy-os".to_string()), ("data".into(), "legacy-data".into())]);
        assert_eq!(domain_size(&serde_json::json!({"cpu": {"sockets": 2, "cores": 2}, "memory": {"guest": "4Gi"}})), (4, 4 << 30));
    }
}
