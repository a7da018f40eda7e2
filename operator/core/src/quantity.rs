//! Kubernetes quantities (`64Gi`, `500G`, `1.5Ti`, `0`) as whole bytes, for quota
//! arithmetic in guest units. Fractions round up: a quota is never smaller than asked.

/// Why a string is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a quantity; write a number with an optional suffix such as 64Gi, 500G or 0")]
pub struct QuantityError {
    pub input: String,
}

const SUFFIXES: &[(&str, u128, u32)] = &[
    // (suffix, base, power): value = n * base^power
    ("Ki", 1024, 1),
    ("Mi", 1024, 2),
    ("Gi", 1024, 3),
    ("Ti", 1024, 4),
    ("Pi", 1024, 5),
    ("Ei", 1024, 6),
    ("k", 1000, 1),
    ("M", 1000, 2),
    ("G", 1000, 3),
    ("T", 1000, 4),
    ("P", 1000, 5),
    ("E", 1000, 6),
];

/// Parse a non-negative quantity into whole units (bytes for memory and storage),
/// rounding fractions up.
pub fn parse(input: &str) -> Result<u128, QuantityError> {
    let err = || QuantityError { input: input.to_string() };
    let s = input.trim();
    let (num, mult) = match SUFFIXES.iter().find(|(suf, _, _)| s.ends_with(suf)) {
        Some((suf, base, pow)) => (&s[..s.len() - suf.len()], base.checked_pow(*pow).ok_or_else(err)?),
        None => (s, 1),
    };
    let num = num.strip_prefix('+').unwrap_or(num);
    let (int_part, frac_part) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
        || frac_part.len() > 9
    {
        return Err(err());
    }
    let int: u128 = if int_part.is_empty() { 0 } else { int_part.parse().map_err(|_| err())? };
    let whole = int.checked_mul(mult).ok_or_else(err)?;
    if frac_part.is_empty() {
        return Ok(whole);
    }
    let frac: u128 = frac_part.parse().map_err(|_| err())?;
    let denom = 10u128.pow(u32::try_from(frac_part.len()).map_err(|_| err())?);
    let frac_units = frac.checked_mul(mult).ok_or_else(err)?.div_ceil(denom);
    whole.checked_add(frac_units).ok_or_else(err)
}

/// Format whole bytes the way people read them: the largest binary suffix that
/// divides exactly (`68719476736` → `64Gi`).
pub fn format_bytes(n: u128) -> String {
    for (suf, base, pow) in SUFFIXES.iter().take(6).rev() {
        let unit = base.pow(*pow);
        if n >= unit && n.is_multiple_of(unit) {
            return format!("{}{suf}", n / unit);
        }
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn table() {
        let gi = 1u128 << 30;
        for (s, want) in [("0", 0), ("64Gi", 64 * gi), ("1.5Gi", 3 * gi / 2), ("500G", 500_000_000_000), ("2Ti", 2 << 40), ("1k", 1000), ("7", 7), (".5Ki", 512)] {
            assert_eq!(parse(s), Ok(want), "{s}");
        }
        for bad in ["", "-1Gi", "Gi", "1.2.3", "1GB", "abc", "1e3", "99999999999999999999999999999999999999999Ei"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(format_bytes(64 * gi), "64Gi");
        assert_eq!(format_bytes(1000), "1000");
        assert_eq!(format_bytes(0), "0");
    }

    proptest! {
        #[test]
        fn formatted_bytes_parse_back(n in 0u128..(1u128 << 70)) {
            prop_assert_eq!(parse(&format_bytes(n)), Ok(n));
        }
    }
}
