//! The dual-stack pairing rule: an address's IPv6 interface identifier is its IPv4
//! host number written in decimal digits read as hexadecimal nibbles.
//!
//! Host 26 of `10.20.1.64/26` is `10.20.1.90`; its IPv6 partner in
//! `2001:db8:20:1::/64` is `2001:db8:20:1::26`. An engineer reads one from the
//! other: the last IPv6 group is the host number, the IPv4 address is the subnet's
//! network plus that number. Gateways are host 1 in both families (`.65`, `::1`).

/// The IPv6 interface identifier of host number `h`: its decimal digits as nibbles
/// (26 → `0x26`). `None` when `h` has more than 32 digits.
pub fn interface_id(h: u128) -> Option<u128> {
    let mut out: u128 = 0;
    let mut shift = 0u32;
    let mut n = h;
    loop {
        let digit = n % 10;
        if shift >= 128 {
            return None;
        }
        out |= digit << shift;
        shift += 4;
        n /= 10;
        if n == 0 {
            return Some(out);
        }
    }
}

/// The host number of an IPv6 interface identifier written by [`interface_id`], or
/// `None` when a nibble is not a decimal digit (the address does not follow the rule).
pub fn host_of_interface_id(iid: u128) -> Option<u128> {
    let mut h: u128 = 0;
    for i in (0..32).rev() {
        let nibble = (iid >> (i * 4)) & 0xf;
        if nibble > 9 {
            return None;
        }
        h = h.checked_mul(10)?.checked_add(nibble)?;
    }
    Some(h)
}

/// The largest host number whose interface identifier fits in `host_bits` bits.
pub fn max_host_for_bits(host_bits: u8) -> u128 {
    let digits = u32::from(host_bits / 4).min(38);
    10u128.checked_pow(digits).map_or(u128::MAX, |p| p - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        assert_eq!(interface_id(26), Some(0x26));
        assert_eq!(interface_id(0), Some(0));
        assert_eq!(interface_id(1234), Some(0x1234));
        assert_eq!(host_of_interface_id(0x26), Some(26));
        assert_eq!(host_of_interface_id(0x1a), None);
        assert_eq!(max_host_for_bits(64), 9_999_999_999_999_999);
        assert_eq!(max_host_for_bits(8), 99);
    }

    proptest! {
        #[test]
        fn round_trips(h in 0u128..10u128.pow(32)) {
            let iid = interface_id(h).unwrap();
            prop_assert_eq!(host_of_interface_id(iid), Some(h));
        }

        #[test]
        fn fits_its_bits(bits in 4u8..=128) {
            let m = max_host_for_bits(bits);
            if bits < 128 {
                prop_assert!(interface_id(m).unwrap() < (1u128 << bits));
            }
        }
    }
}
