//! Electronic identifier codes of state bodies ("mã định danh điện tử", Decision
//! 20/2020/QĐ-TTg): a province prefix such as `H15` (Đắk Lắk) or `H45` (Phú Yên),
//! extended by dotted sub-unit parts (`H15.23`, `H15.23.05`).

/// The pattern every code must match; the CRD schema carries the same string.
pub const CODE_PATTERN: &str = r"^[A-Z][0-9]{2}(\.[0-9]{1,3}){0,4}$";

/// The pattern of a province prefix (`H15`).
pub const PREFIX_PATTERN: &str = r"^[A-Z][0-9]{2}$";

/// Whether `code` is a well-formed identifier code (see [`CODE_PATTERN`]).
pub fn is_identifier_code(code: &str) -> bool {
    let mut parts = code.split('.');
    let Some(head) = parts.next() else { return false };
    if !is_prefix(head) {
        return false;
    }
    let mut n = 0;
    for p in parts {
        n += 1;
        if n > 4 || p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    true
}

/// Whether `prefix` is a province prefix (`H15`).
pub fn is_prefix(prefix: &str) -> bool {
    matches!(prefix.as_bytes(), [l, d1, d2] if l.is_ascii_uppercase() && d1.is_ascii_digit() && d2.is_ascii_digit())
}

/// Whether `code` was issued under `prefix` (the code itself or one of its sub-units).
pub fn is_under(code: &str, prefix: &str) -> bool {
    code == prefix || code.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('.'))
}

/// Sort key that orders codes the way people read them: `H15.2` before `H15.10`.
pub fn sort_key(code: &str) -> (String, Vec<u32>) {
    let mut parts = code.split('.');
    let head = parts.next().unwrap_or_default().to_string();
    (head, parts.map(|p| p.parse().unwrap_or(u32::MAX)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        for ok in ["H15", "H15.23", "H15.23.05", "H45.1.2.3.4"] {
            assert!(is_identifier_code(ok), "{ok}");
        }
        for bad in ["", "h15", "H1", "H15.", "H15.2345", "H15..1", "H15.A", "15.23", "H15.1.2.3.4.5"] {
            assert!(!is_identifier_code(bad), "{bad}");
        }
        assert!(is_under("H15.23", "H15"));
        assert!(is_under("H15", "H15"));
        assert!(!is_under("H150.2", "H15"));
        assert!(!is_under("H45.2", "H15"));
        let mut v = vec!["H15.10", "H15.2", "H45.1", "H15.2.1", "H15"];
        v.sort_by_key(|c| sort_key(c));
        assert_eq!(v, ["H15", "H15.2", "H15.2.1", "H15.10", "H45.1"]);
    }
}
