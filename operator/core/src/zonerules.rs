//! The province's zone reachability matrix, one source for every enforcement point:
//! the pod NetworkPolicies, the MultiNetworkPolicies on VM NICs, and the rules of the
//! physical firewalls at the zone boundaries (`pdcctl zone rules`).
//!
//! A zone admits what its reachability rules name: machines of the `fromZones` (by
//! the zones' prefixes, both families, every site) on the rules' ports, and the
//! Internet on the zone's Internet ports when it faces the Internet. Everything else
//! between zones is denied.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Serialize;

/// The source of flows from outside every zone.
pub const INTERNET: &str = "internet";

/// A zone as the matrix needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    pub name: String,
    /// Every prefix of the zone: both families, every site.
    pub prefixes: Vec<String>,
    /// The ports the Internet reaches, when the zone faces it (empty: every port).
    pub internet: Option<Vec<Port>>,
    pub rules: Vec<Reach>,
}

/// One reachability rule of a zone: who may connect, on which ports (none: any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    pub from: Vec<String>,
    pub ports: Vec<Port>,
}

/// A port or a range, with its protocol (`TCP`, `UDP`, `SCTP`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Port {
    pub protocol: String,
    pub port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_port: Option<u16>,
}

impl Port {
    /// `8080` or `8080-8081`.
    pub fn range(&self) -> String {
        match self.end_port {
            Some(e) if e > self.port => format!("{}-{e}", self.port),
            _ => self.port.to_string(),
        }
    }

    /// `tcp/8080-8081`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.protocol.to_ascii_lowercase(), self.range())
    }
}

/// Traffic allowed from one zone (or the Internet) into another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Flow {
    /// A zone's name, or [`INTERNET`].
    pub from: String,
    pub to: String,
    /// The source zone's prefixes; `0.0.0.0/0` and `::/0` for the Internet.
    pub from_prefixes: Vec<String>,
    pub to_prefixes: Vec<String>,
    /// Empty: every port and protocol.
    pub ports: Vec<Port>,
}

/// Every allowed flow, sorted by destination then source. A rule naming a zone that
/// does not exist allows nothing (there are no prefixes to allow); rules of one zone
/// naming the same source are merged, and a rule with no ports makes the flow
/// any-port.
pub fn flows(zones: &[Zone]) -> Vec<Flow> {
    let mut out: Vec<Flow> = Vec::new();
    let mut sorted: Vec<&Zone> = zones.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for to in &sorted {
        let mut sources: Vec<(String, Vec<String>, Option<BTreeSet<Port>>)> = Vec::new();
        let mut add = |from: &str, prefixes: Vec<String>, ports: &[Port]| {
            let ports: Option<BTreeSet<Port>> = (!ports.is_empty()).then(|| ports.iter().cloned().collect());
            match sources.iter_mut().find(|(f, _, _)| f == from) {
                Some((_, _, have)) => {
                    *have = match (have.take(), ports) {
                        (Some(mut a), Some(b)) => {
                            a.extend(b);
                            Some(a)
                        }
                        _ => None,
                    }
                }
                None => sources.push((from.to_string(), prefixes, ports)),
            }
        };
        for rule in &to.rules {
            for from in &rule.from {
                if let Some(z) = sorted.iter().find(|z| &z.name == from) {
                    add(from, z.prefixes.clone(), &rule.ports);
                }
            }
        }
        if let Some(ports) = &to.internet {
            add(INTERNET, vec!["0.0.0.0/0".into(), "::/0".into()], ports);
        }
        sources.sort_by(|a, b| a.0.cmp(&b.0));
        for (from, from_prefixes, ports) in sources {
            out.push(Flow {
                from,
                to: to.name.clone(),
                from_prefixes,
                to_prefixes: to.prefixes.clone(),
                ports: ports.map(|p| p.into_iter().collect()).unwrap_or_default(),
            });
        }
    }
    out
}

fn is_v6(prefix: &str) -> bool {
    prefix.contains(':')
}

/// One line per flow and port: `from,to,fromPrefixes,toPrefixes,protocol,ports`,
/// prefixes separated by spaces; `any` where every port or protocol is allowed.
pub fn csv(flows: &[Flow]) -> String {
    let mut s = String::from("from,to,from_prefixes,to_prefixes,protocol,ports\n");
    for f in flows {
        let (fp, tp) = (f.from_prefixes.join(" "), f.to_prefixes.join(" "));
        if f.ports.is_empty() {
            let _ = writeln!(s, "{},{},{fp},{tp},any,any", f.from, f.to);
        }
        for p in &f.ports {
            let _ = writeln!(s, "{},{},{fp},{tp},{},{}", f.from, f.to, p.protocol.to_ascii_lowercase(), p.range());
        }
    }
    s
}

/// An nftables ruleset (`nft -f`) for a firewall pair between the zones: a forward
/// chain that drops what the matrix does not allow, one rule per flow, family and
/// port, replies allowed by connection tracking.
pub fn nftables(flows: &[Flow]) -> String {
    let mut s = String::from(
        "# pdc zone reachability: generated by `pdcctl zone rules -o nftables`; edit the NetworkZones, not this file.\n\
         table inet pdc_zones {\n\
         \tchain forward {\n\
         \t\ttype filter hook forward priority filter; policy drop;\n\
         \t\tct state established,related accept\n",
    );
    for f in flows {
        let _ = writeln!(s, "\t\t# {} -> {}", f.from, f.to);
        for (family, v6) in [("ip", false), ("ip6", true)] {
            let from: Vec<&str> = f.from_prefixes.iter().filter(|p| is_v6(p) == v6).map(String::as_str).collect();
            let to: Vec<&str> = f.to_prefixes.iter().filter(|p| is_v6(p) == v6).map(String::as_str).collect();
            if from.is_empty() || to.is_empty() {
                continue;
            }
            let saddr = if f.from == INTERNET { String::new() } else { format!("{family} saddr {{ {} }} ", from.join(", ")) };
            let daddr = format!("{family} daddr {{ {} }}", to.join(", "));
            if f.ports.is_empty() {
                let _ = writeln!(s, "\t\t{saddr}{daddr} accept");
            }
            for p in &f.ports {
                let _ = writeln!(s, "\t\t{saddr}{daddr} {} dport {} accept", p.protocol.to_ascii_lowercase(), p.range());
            }
        }
    }
    s.push_str("\t}\n}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tcp(port: u16) -> Port {
        Port { protocol: "TCP".into(), port, end_port: None }
    }

    fn zone(name: &str, v4: &str, v6: &str, internet: bool, rules: Vec<Reach>) -> Zone {
        Zone { name: name.into(), prefixes: vec![v4.into(), v6.into()], internet: internet.then(|| vec![tcp(443)]), rules }
    }

    fn province() -> Vec<Zone> {
        vec![
            zone(
                "dmz",
                "10.20.0.0/20",
                "2001:db8:20::/48",
                true,
                vec![Reach { from: vec!["app".into()], ports: vec![tcp(443)] }, Reach { from: vec!["data".into()], ports: vec![tcp(22)] }],
            ),
            zone("app", "10.21.0.0/20", "2001:db8:21::/48", false, vec![Reach { from: vec!["dmz".into()], ports: vec![tcp(8080), tcp(8443)] }]),
            zone(
                "data",
                "10.22.0.0/20",
                "2001:db8:22::/48",
                false,
                vec![
                    Reach { from: vec!["app".into(), "gone".into()], ports: vec![tcp(5432)] },
                    Reach { from: vec!["app".into()], ports: vec![Port { protocol: "TCP".into(), port: 6379, end_port: Some(6380) }] },
                    Reach { from: vec!["data".into()], ports: vec![] },
                ],
            ),
        ]
    }

    #[test]
    fn every_rule_becomes_a_flow_between_prefixes_and_unknown_zones_allow_nothing() {
        let f = flows(&province());
        let pairs: Vec<(&str, &str)> = f.iter().map(|x| (x.from.as_str(), x.to.as_str())).collect();
        assert_eq!(pairs, [("dmz", "app"), ("app", "data"), ("data", "data"), ("app", "dmz"), ("data", "dmz"), (INTERNET, "dmz")]);
        let app_data = &f[1];
        assert_eq!(app_data.from_prefixes, ["10.21.0.0/20", "2001:db8:21::/48"]);
        assert_eq!(app_data.to_prefixes, ["10.22.0.0/20", "2001:db8:22::/48"]);
        assert_eq!(app_data.ports, [tcp(5432), Port { protocol: "TCP".into(), port: 6379, end_port: Some(6380) }], "two rules merged");
        assert!(f[2].ports.is_empty(), "data reaches itself on every port");
        assert_eq!(f[5].from_prefixes, ["0.0.0.0/0", "::/0"]);
        assert_eq!(f[5].ports, [tcp(443)], "the Internet gets the zone's Internet ports, not the data zone's SSH");
    }

    #[test]
    fn csv_and_nftables_carry_each_port_and_family() {
        let f = flows(&province());
        let c = csv(&f);
        assert!(c.starts_with("from,to,from_prefixes,to_prefixes,protocol,ports\n"));
        assert!(c.contains("app,data,10.21.0.0/20 2001:db8:21::/48,10.22.0.0/20 2001:db8:22::/48,tcp,6379-6380\n"), "{c}");
        assert!(c.contains("data,data,10.22.0.0/20 2001:db8:22::/48,10.22.0.0/20 2001:db8:22::/48,any,any\n"), "{c}");
        let n = nftables(&f);
        assert!(n.contains("ip saddr { 10.21.0.0/20 } ip daddr { 10.22.0.0/20 } tcp dport 5432 accept"), "{n}");
        assert!(n.contains("ip6 saddr { 2001:db8:21::/48 } ip6 daddr { 2001:db8:22::/48 } tcp dport 6379-6380 accept"), "{n}");
        assert!(n.contains("\t\tip daddr { 10.20.0.0/20 } tcp dport 443 accept"), "Internet: any source\n{n}");
        assert!(n.contains("policy drop;"));
        assert_eq!(n.matches('{').count(), n.matches('}').count());
    }

    fn arb_zones() -> impl Strategy<Value = Vec<Zone>> {
        let names = ["a", "b", "c", "d"];
        proptest::collection::vec(
            (
                any::<bool>(),
                proptest::collection::vec(
                    (proptest::sample::subsequence(names.to_vec(), 1..4), proptest::collection::vec(1u16..100, 0..3)),
                    0..3,
                ),
            ),
            4,
        )
        .prop_map(move |specs| {
            specs
                .into_iter()
                .enumerate()
                .map(|(i, (internet, rules))| Zone {
                    name: names.get(i).copied().unwrap_or("z").to_string(),
                    prefixes: vec![format!("10.{i}.0.0/16"), format!("2001:db8:{i}::/48")],
                    internet: internet.then(|| vec![tcp(443)]),
                    rules: rules
                        .into_iter()
                        .map(|(from, ports)| Reach { from: from.into_iter().map(str::to_string).collect(), ports: ports.into_iter().map(tcp).collect() })
                        .collect(),
                })
                .collect()
        })
    }

    proptest! {
        /// A flow exists exactly when some rule of its destination names its source
        /// (or the destination faces the Internet), once per pair, and allows only
        /// ports some rule names (every port only when a rule names none).
        #[test]
        fn flows_are_exactly_the_rules(zones in arb_zones()) {
            let f = flows(&zones);
            for to in &zones {
                for from in zones.iter().map(|z| z.name.as_str()).chain([INTERNET]) {
                    let found: Vec<&Flow> = f.iter().filter(|x| x.to == to.name && x.from == from).collect();
                    let rules: Vec<&Reach> = to.rules.iter().filter(|r| r.from.iter().any(|z| z == from)).collect();
                    let expected = if from == INTERNET { to.internet.is_some() } else { !rules.is_empty() };
                    prop_assert_eq!(found.len(), usize::from(expected));
                    if let (Some(flow), false) = (found.first(), from == INTERNET) {
                        let any = rules.iter().any(|r| r.ports.is_empty());
                        prop_assert_eq!(flow.ports.is_empty(), any);
                        for p in &flow.ports {
                            prop_assert!(rules.iter().any(|r| r.ports.contains(p)));
                        }
                    }
                }
            }
        }
    }
}
