//! Fixtures and checks for the address plan, shared by the reliability tests and
//! the claims benchmark.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use pdc_api::conditions::{self, READY};
use pdc_api::{AddressAllocation, AddressClaim, Department};

use crate::HarnessError;
use crate::cluster::{apply_yaml, wait_for};

/// Apply the sample Province and the sample Sites (daklak: 10.15.0.0/16 and
/// 2001:db8:1500::/40; phuyen: 10.45.0.0/16 and 2001:db8:4500::/40), not its zones.
pub async fn load_province_and_sites(client: &Client) -> Result<(), HarnessError> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/samples");
    let read = |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).map_err(|e| HarnessError::Io(format!("reading {f}"), e));
    crate::cluster::apply_sample_province(client).await?;
    let sites: Vec<String> = read("network.yaml")?.split("\n---\n").filter(|d| d.contains("kind: Site")).map(str::to_string).collect();
    apply_yaml(client, &sites.join("\n---\n"), None).await
}

/// Load the province, the sample sites, one zone `zone` at site daklak
/// (10.15.0.0/16 and 2001:db8:1500::/48, department subnets /`v4_len` and /64), and
/// Departments `departments` allowed to use it; wait until each has its subnets.
pub async fn load_plan(client: &Client, zone: &str, v4_len: u8, departments: &[String]) -> Result<(), HarnessError> {
    load_province_and_sites(client).await?;
    let z = format!(
        "apiVersion: pdc.io/v1alpha1\nkind: NetworkZone\nmetadata: {{name: {zone}}}\nspec:\n  vlan: 120\n  sites: [{{site: daklak, ipv4: 10.15.0.0/16, ipv6: \"2001:db8:1500::/48\"}}]\n  subnetSizes: {{ipv4: {v4_len}, ipv6: 64}}\n"
    );
    apply_yaml(client, &z, None).await?;
    let api: Api<Department> = Api::all(client.clone());
    for (i, d) in departments.iter().enumerate() {
        let obj: Department = serde_json::from_value(serde_json::json!({
            "apiVersion": "pdc.io/v1alpha1", "kind": "Department", "metadata": {"name": d},
            "spec": {"displayName": format!("Đơn vị {i}"), "code": format!("H15.{}", i % 999 + 1), "zones": [zone]}
        }))
        .map_err(|e| HarnessError::Other(e.to_string()))?;
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    for d in departments {
        wait_for(&api, d, Duration::from_secs(120), "Ready with subnets", |d| {
            d.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, READY) && !s.subnets.is_empty())
        })
        .await?;
    }
    Ok(())
}

/// An AddressClaim for a dual-stack pair in `zone`.
pub fn claim(name: &str, zone: &str) -> AddressClaim {
    let mut c = AddressClaim::new(
        name,
        pdc_api::AddressClaimSpec { zone: zone.into(), site: None, families: Default::default(), ipv4_address: None, ipv6_address: None, hostname: None },
    );
    c.metadata.labels = Some(BTreeMap::from([("pdc-tests/batch".to_string(), "reliability".to_string())]));
    c
}

/// Whether a claim is bound.
pub fn bound(c: &AddressClaim) -> bool {
    c.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, READY) && s.ipv4.is_some() && s.ipv6.is_some())
}

/// Every problem found in the allocations and claim statuses: duplicates, claims with
/// other than one IPv4 + one IPv6 allocation, statuses that disagree with the
/// allocation objects, pairs that break the pairing rule, allocations without a
/// live claim. Empty when all is well.
pub async fn audit(client: &Client) -> Result<Vec<String>, HarnessError> {
    let claims = Api::<AddressClaim>::all(client.clone()).list(&ListParams::default()).await?.items;
    let allocs = Api::<AddressAllocation>::all(client.clone()).list(&ListParams::default()).await?.items;
    let mut problems = Vec::new();
    let uids: BTreeMap<String, &AddressClaim> = claims.iter().filter_map(|c| c.uid().map(|u| (u, c))).collect();
    let mut by_claim: BTreeMap<String, Vec<&AddressAllocation>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for a in &allocs {
        if !seen.insert(a.spec.address.clone()) {
            problems.push(format!("address {} allocated twice", a.spec.address));
        }
        if a.name_any() != a.spec.address && a.name_any() != a.spec.address.replace(':', "-") {
            // IPv6 names are the eight groups; check by parsing instead.
            let ok = pdc_core::ipam::Addr::from_object_name(&a.name_any()).map(|x| x.to_string()) == Some(a.spec.address.clone());
            if !ok {
                problems.push(format!("allocation {} does not hold the address its name says ({})", a.name_any(), a.spec.address));
            }
        }
        if !uids.contains_key(&a.spec.claim.uid) {
            problems.push(format!("allocation {} has no live claim ({}/{})", a.spec.address, a.spec.claim.namespace, a.spec.claim.name));
        }
        by_claim.entry(a.spec.claim.uid.clone()).or_default().push(a);
    }
    let mut status_addrs = BTreeSet::new();
    for c in &claims {
        let uid = c.uid().unwrap_or_default();
        let mine = by_claim.get(&uid).cloned().unwrap_or_default();
        if !bound(c) {
            problems.push(format!("claim {}/{} is not bound", c.namespace().unwrap_or_default(), c.name_any()));
            continue;
        }
        let s = c.status.as_ref();
        let v4 = s.and_then(|s| s.ipv4.as_ref()).map(|a| a.address.clone()).unwrap_or_default();
        let v6 = s.and_then(|s| s.ipv6.as_ref()).map(|a| a.address.clone()).unwrap_or_default();
        let mut held: Vec<String> = mine.iter().map(|a| a.spec.address.clone()).collect();
        held.sort();
        let mut want = vec![v4.clone(), v6.clone()];
        want.sort();
        if held != want {
            problems.push(format!("claim {} status says {want:?} but holds {held:?}", c.name_any()));
        }
        for a in [&v4, &v6] {
            if !status_addrs.insert(a.clone()) {
                problems.push(format!("address {a} appears in two claims' status"));
            }
        }
        // Pairing: the IPv6 interface id is the IPv4 host number in decimal digits.
        let host4 = v4.rsplit('.').next().and_then(|o| o.parse::<u32>().ok());
        let subnet_len = s.and_then(|s| s.ipv4.as_ref()).map(|a| a.prefix_length).unwrap_or(32);
        if let (Ok(a4), Some(_)) = (v4.parse::<std::net::Ipv4Addr>(), host4) {
            let host = u32::from(a4) & ((1u32 << (32 - subnet_len)) - 1);
            if !v6.ends_with(&format!("::{host}")) {
                problems.push(format!("claim {}: {v6} is not the partner of {v4} (host {host})", c.name_any()));
            }
        }
    }
    Ok(problems)
}
