//! IPv4 and IPv6 addresses and prefixes as `u128`, with the parsing, containment and
//! object-naming rules the address plan needs. IPv4 values live in the low 32 bits.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::IpamError;

/// An address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// Address width in bits.
    pub fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    /// `"IPv4"` or `"IPv6"`.
    pub fn label(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Addr {
    pub family: Family,
    pub value: u128,
}

impl Addr {
    pub fn v4(value: u32) -> Addr {
        Addr { family: Family::V4, value: u128::from(value) }
    }

    pub fn v6(value: u128) -> Addr {
        Addr { family: Family::V6, value }
    }

    /// Parse `10.20.1.5` or `2001:db8::5` (no brackets, no zone index, no prefix length).
    pub fn parse(text: &str) -> Result<Addr, IpamError> {
        match text.trim().parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => Ok(Addr::v4(u32::from(a))),
            Ok(IpAddr::V6(a)) => Ok(Addr::v6(u128::from(a))),
            Err(_) => Err(IpamError::InvalidAddress(format!("{text:?} is not an IPv4 or IPv6 address"))),
        }
    }

    /// The name of the AddressAllocation object that holds this address:
    /// `10.20.1.5` for IPv4; all eight groups joined by `-` for IPv6
    /// (`2001-db8-20-1-0-0-0-26`), a valid object name that is one-to-one with
    /// the address.
    pub fn object_name(&self) -> String {
        match self.family {
            Family::V4 => self.to_string(),
            Family::V6 => groups(self.value),
        }
    }

    /// The address an AddressAllocation object name stands for.
    pub fn from_object_name(name: &str) -> Option<Addr> {
        if name.contains('.') {
            return name.parse::<Ipv4Addr>().ok().map(|a| Addr::v4(u32::from(a)));
        }
        parse_groups(name, 8).map(Addr::v6)
    }

    /// The reverse-DNS owner name (`5.1.20.10.in-addr.arpa.` or the ip6.arpa nibble form).
    pub fn reverse_name(&self) -> String {
        match self.family {
            Family::V4 => {
                let b = (self.value as u32).to_be_bytes();
                format!("{}.{}.{}.{}.in-addr.arpa.", b[3], b[2], b[1], b[0])
            }
            Family::V6 => {
                let mut out = String::with_capacity(73);
                for i in 0..32 {
                    let nibble = (self.value >> (i * 4)) & 0xf;
                    out.push_str(&format!("{nibble:x}."));
                }
                out.push_str("ip6.arpa.");
                out
            }
        }
    }
}

impl Addr {
    /// The address a reverse-DNS owner name stands for: the inverse of
    /// [`Addr::reverse_name`]. `None` for a name that is not a full address
    /// (e.g. the zone apex `20.10.in-addr.arpa.`).
    pub fn from_reverse_name(name: &str) -> Option<Addr> {
        let n = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(rest) = n.strip_suffix(".in-addr.arpa") {
            let octets: Vec<u8> = rest.split('.').map(|o| o.parse::<u8>().ok()).collect::<Option<Vec<u8>>>()?;
            let [d, c, b, a] = octets.as_slice() else { return None };
            return Some(Addr::v4(u32::from_be_bytes([*a, *b, *c, *d])));
        }
        let rest = n.strip_suffix(".ip6.arpa")?;
        let nibbles: Vec<&str> = rest.split('.').collect();
        if nibbles.len() != 32 {
            return None;
        }
        let mut value: u128 = 0;
        for (i, nib) in nibbles.iter().enumerate() {
            let d = u128::from_str_radix(nib, 16).ok().filter(|_| nib.len() == 1)?;
            value |= d << (i * 4);
        }
        Some(Addr::v6(value))
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.family {
            Family::V4 => write!(f, "{}", Ipv4Addr::from(self.value as u32)),
            Family::V6 => write!(f, "{}", Ipv6Addr::from(self.value)),
        }
    }
}

fn groups(value: u128) -> String {
    (0..8).rev().map(|i| format!("{:x}", (value >> (i * 16)) & 0xffff)).collect::<Vec<_>>().join("-")
}

fn parse_groups(name: &str, count: usize) -> Option<u128> {
    let parts: Vec<&str> = name.split('-').collect();
    if parts.len() != count {
        return None;
    }
    let mut v: u128 = 0;
    for p in parts {
        if p.is_empty() || p.len() > 4 {
            return None;
        }
        v = (v << 16) | u128::from(u16::from_str_radix(p, 16).ok()?);
    }
    Some(v)
}

/// A prefix (CIDR block): a network address with all host bits zero, and a length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    pub family: Family,
    pub network: u128,
    pub len: u8,
}

impl Prefix {
    /// A prefix from its parts, or why they do not make one.
    pub fn new(family: Family, network: u128, len: u8) -> Result<Prefix, IpamError> {
        let bits = family.bits();
        if len > bits || len == 0 {
            return Err(IpamError::InvalidPrefix(format!("{family} prefix length must be 1..{bits}, not {len}")));
        }
        if family == Family::V4 && network > u128::from(u32::MAX) {
            return Err(IpamError::InvalidPrefix("IPv4 network out of range".into()));
        }
        let p = Prefix { family, network, len };
        if network & p.host_mask() != 0 {
            let fixed = Prefix { network: network & !p.host_mask(), ..p };
            return Err(IpamError::InvalidPrefix(format!(
                "{} has host bits set; the network of that block is {fixed}",
                Prefix::display_raw(family, network, len)
            )));
        }
        Ok(p)
    }

    /// Parse CIDR notation: `10.20.0.0/16`, `2001:db8:20::/48`.
    pub fn parse(text: &str) -> Result<Prefix, IpamError> {
        let text = text.trim();
        let Some((addr, len)) = text.split_once('/') else {
            return Err(IpamError::InvalidPrefix(format!("{text:?} is not in CIDR notation (address/length, e.g. 10.20.0.0/16)")));
        };
        let a = Addr::parse(addr).map_err(|_| IpamError::InvalidPrefix(format!("{text:?}: {addr:?} is not an IPv4 or IPv6 address")))?;
        let len: u8 = len
            .parse()
            .map_err(|_| IpamError::InvalidPrefix(format!("{text:?}: prefix length {len:?} is not a number")))?;
        Prefix::new(a.family, a.value, len)
    }

    fn display_raw(family: Family, network: u128, len: u8) -> String {
        format!("{}/{len}", Addr { family, value: network })
    }

    /// Mask of the host bits (within the family's width).
    pub fn host_mask(&self) -> u128 {
        let host_bits = u32::from(self.family.bits() - self.len);
        if host_bits >= 128 { u128::MAX } else { (1u128 << host_bits) - 1 }
    }

    pub fn host_bits(&self) -> u8 {
        self.family.bits() - self.len
    }

    /// First address (the network address).
    pub fn first(&self) -> u128 {
        self.network
    }

    /// Last address, inclusive.
    pub fn last(&self) -> u128 {
        self.network | self.host_mask()
    }

    /// Number of addresses, saturating at `u128::MAX` (only a /0 would exceed it).
    pub fn size(&self) -> u128 {
        self.host_mask().saturating_add(1)
    }

    pub fn contains(&self, a: &Addr) -> bool {
        a.family == self.family && a.value >= self.first() && a.value <= self.last()
    }

    /// Whether `other` lies wholly inside this prefix.
    pub fn covers(&self, other: &Prefix) -> bool {
        other.family == self.family && other.len >= self.len && other.first() >= self.first() && other.last() <= self.last()
    }

    pub fn overlaps(&self, other: &Prefix) -> bool {
        self.family == other.family && self.first() <= other.last() && other.first() <= self.last()
    }

    /// The `h`-th address of the prefix, if inside it.
    pub fn nth(&self, h: u128) -> Option<Addr> {
        (h <= self.host_mask()).then_some(Addr { family: self.family, value: self.network | h })
    }

    /// The name of the SubnetAllocation object for this prefix: `10.20.1.0-26`,
    /// `2001-db8-20-1-0-0-0-0-64`.
    pub fn object_name(&self) -> String {
        match self.family {
            Family::V4 => format!("{}-{}", Addr { family: Family::V4, value: self.network }, self.len),
            Family::V6 => format!("{}-{}", groups(self.network), self.len),
        }
    }

    /// The prefix a SubnetAllocation object name stands for.
    pub fn from_object_name(name: &str) -> Option<Prefix> {
        let (net, len) = name.rsplit_once('-')?;
        let len: u8 = len.parse().ok()?;
        let a = if net.contains('.') {
            Addr::v4(u32::from(net.parse::<Ipv4Addr>().ok()?))
        } else {
            Addr::v6(parse_groups(net, 8)?)
        };
        Prefix::new(a.family, a.value, len).ok()
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&Prefix::display_raw(self.family, self.network, self.len))
    }
}

impl std::str::FromStr for Prefix {
    type Err = IpamError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Prefix::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_rejects_with_a_useful_message() {
        let p = Prefix::parse("10.20.0.0/16").unwrap();
        assert_eq!(p.size(), 65536);
        assert_eq!(p.to_string(), "10.20.0.0/16");
        let e = Prefix::parse("10.20.1.5/16").unwrap_err().to_string();
        assert!(e.contains("host bits set") && e.contains("10.20.0.0/16"), "{e}");
        assert!(Prefix::parse("10.20.0.0").unwrap_err().to_string().contains("CIDR"));
        assert!(Prefix::parse("10.20.0.0/33").is_err());
        assert!(Prefix::parse("10.300.0.0/16").is_err());
        assert!(Prefix::parse("2001:db8::/0").is_err());
        let v6 = Prefix::parse("2001:db8:20::/48").unwrap();
        assert_eq!(v6.size(), 1u128 << 80);
        assert!(Prefix::parse("2001:db8::/1").unwrap_err().to_string().contains("host bits"));
    }

    #[test]
    fn object_names_are_valid_and_reversible() {
        let a = Addr::parse("2001:db8:20:1::26").unwrap();
        assert_eq!(a.object_name(), "2001-db8-20-1-0-0-0-26");
        assert_eq!(Addr::from_object_name(&a.object_name()), Some(a));
        let p = Prefix::parse("2001:db8:20:1::/64").unwrap();
        assert_eq!(p.object_name(), "2001-db8-20-1-0-0-0-0-64");
        assert_eq!(Prefix::from_object_name(&p.object_name()), Some(p));
        let p4 = Prefix::parse("10.20.1.64/26").unwrap();
        assert_eq!(p4.object_name(), "10.20.1.64-26");
        assert_eq!(Prefix::from_object_name("10.20.1.64-26"), Some(p4));
    }

    #[test]
    fn reverse_names() {
        assert_eq!(Addr::parse("10.20.1.5").unwrap().reverse_name(), "5.1.20.10.in-addr.arpa.");
        let r = Addr::parse("2001:db8::1").unwrap().reverse_name();
        assert!(r.starts_with("1.0.0.0.") && r.ends_with(".8.b.d.0.1.0.0.2.ip6.arpa."), "{r}");
        for a in ["10.20.1.5", "2001:db8::1", "2001:db8:20:1::26"] {
            let a = Addr::parse(a).unwrap();
            assert_eq!(Addr::from_reverse_name(&a.reverse_name()), Some(a));
        }
        assert_eq!(Addr::from_reverse_name("20.10.in-addr.arpa."), None);
        assert_eq!(Addr::from_reverse_name("x.1.20.10.in-addr.arpa."), None);
    }

    proptest! {
        #[test]
        fn v6_names_round_trip(v in any::<u128>(), len in 1u8..=128) {
            let a = Addr::v6(v);
            prop_assert_eq!(Addr::from_object_name(&a.object_name()), Some(a));
            let p = Prefix { family: Family::V6, network: v & !Prefix { family: Family::V6, network: 0, len }.host_mask(), len };
            prop_assert_eq!(Prefix::from_object_name(&p.object_name()), Some(p));
            prop_assert!(p.object_name().len() <= 63);
        }

        #[test]
        fn v4_names_round_trip(v in any::<u32>(), len in 1u8..=32) {
            let a = Addr::v4(v);
            prop_assert_eq!(Addr::from_object_name(&a.object_name()), Some(a));
            let mask = Prefix { family: Family::V4, network: 0, len }.host_mask();
            let p = Prefix::new(Family::V4, u128::from(v) & !mask, len).unwrap();
            prop_assert_eq!(Prefix::parse(&p.to_string()).unwrap(), p);
        }
    }
}
