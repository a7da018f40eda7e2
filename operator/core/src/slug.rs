//! Vietnamese unit names → DNS labels.
//!
//! A department's slug is its namespace name and the first label of its subdomain
//! (`soyte` in `soyte.daklak.gov.vn`). Names carry diacritics (`Đắk Lắk`), the letter
//! `đ`, curly and straight apostrophes (`Cư M’gar`), commas and digits (`Phú Hòa 1`).
//! The rule: decompose (NFD), drop combining marks, map `đ`/`Đ` to `d`, lowercase, drop
//! apostrophes inside words, and turn every other run of non-alphanumerics into one
//! separator (`-` for [`SlugStyle::Hyphenated`], nothing for [`SlugStyle::Compact`]).
//! Labels are cut to 63 characters. Two names can give one slug; [`slug_all`] reports it.

use std::collections::BTreeMap;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// The longest DNS label (RFC 1035) and Kubernetes namespace name.
pub const MAX_LABEL_LEN: usize = 63;

/// How words are joined in a slug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum SlugStyle {
    /// `so-y-te`: words joined by `-` (readable, fewer collisions).
    #[default]
    Hyphenated,
    /// `soyte`: words run together, as most `*.gov.vn` hostnames are written.
    Compact,
}

/// The province's naming rule for unit slugs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct SlugRule {
    pub style: SlugStyle,
    /// Drop the unit-type word that starts a name (`Xã`, `Phường`, `Sở`, `Thị trấn`),
    /// so `Xã Ea Súp` becomes `ea-sup` rather than `xa-ea-sup`.
    pub drop_unit_prefix: bool,
}

/// Unit-type words that may start a name, in their slugged form, longest first.
const UNIT_PREFIXES: &[&str] = &["thi-tran", "phuong", "xa", "so"];

/// Why a name gives no slug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlugError {
    #[error("name {name:?} has no letters or digits a DNS label can carry; give the slug explicitly")]
    NoUsableCharacters { name: String },
}

/// A slug and what happened to the name on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slug {
    pub label: String,
    /// The name was longer than a DNS label and was cut.
    pub truncated: bool,
}

/// Map one character after NFD decomposition; `None` drops it.
fn fold_char(c: char) -> Option<Fold> {
    match c {
        'đ' | 'Đ' => Some(Fold::Keep('d')),
        // Apostrophes inside a word vanish: `M’gar` → `mgar`, `Đắk'Lắk` → `daklak`.
        '\'' | '’' | '‘' | 'ʼ' | '`' | '´' | 'ʻ' => None,
        c if is_combining_mark(c) => None,
        c if c.is_ascii_alphanumeric() => Some(Fold::Keep(c.to_ascii_lowercase())),
        _ => Some(Fold::Break),
    }
}

enum Fold {
    Keep(char),
    Break,
}

/// Split a name into lowercase ASCII words.
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in name.nfd() {
        match fold_char(c) {
            Some(Fold::Keep(k)) => cur.push(k),
            Some(Fold::Break) if !cur.is_empty() => out.push(std::mem::take(&mut cur)),
            Some(Fold::Break) | None => {}
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The slug of one name under `rule`.
pub fn slug(name: &str, rule: SlugRule) -> Result<Slug, SlugError> {
    let mut ws = words(name);
    if rule.drop_unit_prefix {
        let joined = ws.join("-");
        for p in UNIT_PREFIXES {
            let n = p.split('-').count();
            // Keep the prefix when it is the whole name (`Sở` alone stays `so`).
            if ws.len() > n && joined.starts_with(&format!("{p}-")) {
                ws.drain(..n);
                break;
            }
        }
    }
    let sep = match rule.style {
        SlugStyle::Hyphenated => "-",
        SlugStyle::Compact => "",
    };
    let full = ws.join(sep);
    if full.is_empty() {
        return Err(SlugError::NoUsableCharacters { name: name.to_string() });
    }
    let truncated = full.len() > MAX_LABEL_LEN;
    // Only ASCII remains, so byte slicing is char slicing.
    let label: String = full.chars().take(MAX_LABEL_LEN).collect();
    let label = label.trim_end_matches('-').to_string();
    Ok(Slug { label, truncated })
}

/// Whether `s` is a DNS label as Kubernetes namespaces need it (RFC 1123 label).
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_LABEL_LEN
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.first().is_some_and(|c| *c != b'-')
        && b.last().is_some_and(|c| *c != b'-')
}

/// Two or more names that give one slug.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    pub label: String,
    pub names: Vec<String>,
}

/// The outcome of slugging a whole list of units at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlugReport {
    /// name → slug, for every name that has one.
    pub slugs: BTreeMap<String, Slug>,
    /// Slugs shared by more than one name; each must be given a slug by hand.
    pub collisions: Vec<Collision>,
    /// Names with no usable characters.
    pub errors: Vec<SlugError>,
}

/// Slug every name and report collisions, so a whole province can be checked before
/// anything is created.
pub fn slug_all<'a>(names: impl IntoIterator<Item = &'a str>, rule: SlugRule) -> SlugReport {
    let mut report = SlugReport::default();
    let mut by_label: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in names {
        match slug(name, rule) {
            Ok(s) => {
                by_label.entry(s.label.clone()).or_default().push(name.to_string());
                report.slugs.insert(name.to_string(), s);
            }
            Err(e) => report.errors.push(e),
        }
    }
    report.collisions = by_label
        .into_iter()
        .filter(|(_, names)| names.len() > 1)
        .map(|(label, names)| Collision { label, names })
        .collect();
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const H: SlugRule = SlugRule { style: SlugStyle::Hyphenated, drop_unit_prefix: false };
    const C: SlugRule = SlugRule { style: SlugStyle::Compact, drop_unit_prefix: false };

    fn label(name: &str, rule: SlugRule) -> String {
        slug(name, rule).map(|s| s.label).unwrap_or_default()
    }

    #[test]
    fn vietnamese_names_fold_to_labels() {
        let table = [
            ("Sở Y tế", H, "so-y-te"),
            ("Sở Y tế", C, "soyte"),
            ("Xã Cư M’gar", H, "xa-cu-mgar"),
            ("Xã M’Drắk", H, "xa-mdrak"),
            ("Xã M'Drắk", H, "xa-mdrak"),
            ("Xã Phú Hòa 1", H, "xa-phu-hoa-1"),
            ("Đắk Lắk", C, "daklak"),
            ("ĐẮK LẮK", H, "dak-lak"),
            ("Sở Văn hóa, Thể thao và Du lịch", H, "so-van-hoa-the-thao-va-du-lich"),
            ("Phường Buôn Ma Thuột", C, "phuongbuonmathuot"),
            ("Xã Ea Ô", H, "xa-ea-o"),
            ("Xã Dliêya", H, "xa-dlieya"),
            ("Xã Ea Knuếc", H, "xa-ea-knuec"),
            ("  Xã  Ea -- Súp  ", H, "xa-ea-sup"),
        ];
        for (name, rule, want) in table {
            assert_eq!(label(name, rule), want, "{name} under {rule:?}");
        }
    }

    #[test]
    fn unit_prefix_is_dropped_only_when_asked_and_never_to_empty() {
        let r = SlugRule { style: SlugStyle::Hyphenated, drop_unit_prefix: true };
        assert_eq!(label("Xã Ea Súp", r), "ea-sup");
        assert_eq!(label("Phường Tân An", r), "tan-an");
        assert_eq!(label("Thị trấn Phước An", r), "phuoc-an");
        assert_eq!(label("Sở Tư pháp", r), "tu-phap");
        assert_eq!(label("Sở", r), "so");
        assert_eq!(label("Xã Sơn Thành", H), "xa-son-thanh");
    }

    #[test]
    fn names_without_letters_are_errors() {
        assert!(matches!(slug("’ , –", H), Err(SlugError::NoUsableCharacters { .. })));
        assert!(slug("", C).is_err());
    }

    #[test]
    fn long_names_are_cut_to_a_label() {
        let name = "Ban quản lý các dự án đầu tư xây dựng công trình dân dụng và công nghiệp tỉnh Đắk Lắk";
        let s = slug(name, H).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(s.truncated);
        assert!(is_dns_label(&s.label), "{}", s.label);
    }

    #[test]
    fn collisions_are_reported_with_every_name() {
        let r = slug_all(["Xã Hòa Phú", "Xã Hoà Phú", "Xã Ea Na"], C);
        assert_eq!(r.collisions.len(), 1);
        assert_eq!(r.collisions[0].label, "xahoaphu");
        assert_eq!(r.collisions[0].names.len(), 2);
    }

    proptest! {
        #[test]
        fn any_name_gives_a_dns_label_or_a_clear_error(name in "\\PC{0,120}", compact in any::<bool>(), drop in any::<bool>()) {
            let rule = SlugRule { style: if compact { SlugStyle::Compact } else { SlugStyle::Hyphenated }, drop_unit_prefix: drop };
            match slug(&name, rule) {
                Ok(s) => prop_assert!(is_dns_label(&s.label), "{:?} -> {:?}", name, s.label),
                Err(SlugError::NoUsableCharacters { .. }) => prop_assert!(name.nfd().all(|c| !c.is_ascii_alphanumeric() && c != 'đ' && c != 'Đ')),
            }
        }

        #[test]
        fn slug_is_idempotent(name in "[a-zA-Zà-ỹĐđ0-9 ’',.-]{1,80}") {
            if let Ok(s) = slug(&name, H) {
                let again = slug(&s.label, H);
                prop_assert_eq!(again.map(|a| a.label).ok(), Some(s.label));
            }
        }

        #[test]
        fn diacritics_do_not_matter(word in "[a-z]{1,12}") {
            // Adding tone marks and hooks to a plain word never changes its slug.
            let marked: String = word.chars().map(|c| match c { 'a' => 'ắ', 'o' => 'ơ', 'u' => 'ư', 'e' => 'ế', 'd' => 'đ', c => c }).collect();
            prop_assert_eq!(label(&marked, H), label(&word, H));
        }
    }
}
