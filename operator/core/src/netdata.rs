//! cloud-init NoCloud network configuration (version 2) for a VM with static
//! dual-stack addresses, and stable MAC addresses to match interfaces by.

/// One interface: its MAC and addresses in CIDR form (`10.15.0.5/27`), with gateways.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nic {
    pub mac: String,
    pub ipv4: Option<(String, String)>,
    pub ipv6: Option<(String, String)>,
}

/// A locally administered unicast MAC derived from `seed` (e.g. the VM's UID and
/// the NIC's index): the same seed always gives the same MAC.
pub fn mac_for(seed: &str) -> String {
    // FNV-1a, 64 bits; five bytes of it after the 0x02 prefix.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    format!("02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[3], b[4], b[5], b[6], b[7])
}

fn quote(s: &str) -> String {
    format!("\"{s}\"")
}

/// The network-config document: interfaces matched by MAC and renamed `nic0`…,
/// static addresses, default routes through the first NIC's gateways, resolvers and
/// the department's subdomain as search domain.
pub fn network_config(nics: &[Nic], resolvers: &[String], search: &str) -> String {
    let mut out = String::from("version: 2\nethernets:\n");
    for (i, n) in nics.iter().enumerate() {
        out.push_str(&format!("  nic{i}:\n    match:\n      macaddress: {}\n    set-name: nic{i}\n", quote(&n.mac)));
        let addrs: Vec<String> = [&n.ipv4, &n.ipv6].into_iter().flatten().map(|(a, _)| quote(a)).collect();
        out.push_str(&format!("    addresses: [{}]\n", addrs.join(", ")));
        if i == 0 {
            let mut routes = Vec::new();
            if let Some((_, gw)) = &n.ipv4 {
                routes.push(format!("{{to: default, via: {}}}", quote(gw)));
            }
            if let Some((_, gw)) = &n.ipv6 {
                routes.push(format!("{{to: \"::/0\", via: {}}}", quote(gw)));
            }
            if !routes.is_empty() {
                out.push_str(&format!("    routes: [{}]\n", routes.join(", ")));
            }
            if !resolvers.is_empty() {
                let rs: Vec<String> = resolvers.iter().map(|r| quote(r)).collect();
                out.push_str(&format!("    nameservers:\n      addresses: [{}]\n      search: [{}]\n", rs.join(", "), quote(search)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn macs_are_stable_local_and_distinct() {
        let a = mac_for("uid-1/0");
        assert_eq!(a, mac_for("uid-1/0"));
        assert_ne!(a, mac_for("uid-1/1"));
        assert!(a.starts_with("02:") && a.len() == 17);
    }

    #[test]
    fn network_config_is_yaml_with_both_families() {
        let nics = vec![
            Nic { mac: "02:00:00:00:00:01".into(), ipv4: Some(("10.15.0.5/27".into(), "10.15.0.1".into())), ipv6: Some(("2001:db8:1500::5/64".into(), "2001:db8:1500::1".into())) },
            Nic { mac: "02:00:00:00:00:02".into(), ipv4: Some(("10.15.16.5/26".into(), "10.15.16.1".into())), ipv6: None },
        ];
        let y = network_config(&nics, &["10.15.255.53".into()], "so-y-te.daklak.gov.vn");
        let v: serde_yaml::Value = serde_yaml::from_str(&y).unwrap();
        assert_eq!(v["version"].as_i64(), Some(2));
        let nic0 = &v["ethernets"]["nic0"];
        assert_eq!(nic0["match"]["macaddress"].as_str(), Some("02:00:00:00:00:01"));
        assert_eq!(nic0["addresses"][1].as_str(), Some("2001:db8:1500::5/64"));
        assert_eq!(nic0["routes"][1]["via"].as_str(), Some("2001:db8:1500::1"));
        assert_eq!(nic0["nameservers"]["search"][0].as_str(), Some("so-y-te.daklak.gov.vn"));
        assert!(v["ethernets"]["nic1"]["routes"].is_null(), "only the first NIC carries default routes");
    }
}
