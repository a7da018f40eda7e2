//! Every name in the province's real tenant list slugs to a DNS label, and the
//! collisions the list has are the ones we know of.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pdc_core::slug::{SlugRule, SlugStyle, is_dns_label, slug_all};
use serde::Deserialize;

#[derive(Deserialize)]
struct TenantList {
    departments: Vec<String>,
    communes: Vec<Commune>,
}

#[derive(Deserialize)]
struct Commune {
    name: String,
}

fn names() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/samples/daklak-tenants.yaml");
    let text = std::fs::read_to_string(path).expect("tenant list");
    let list: TenantList = serde_yaml::from_str(&text).expect("tenant list parses");
    list.departments.into_iter().chain(list.communes.into_iter().map(|c| c.name)).collect()
}

#[test]
fn every_tenant_slugs_to_a_dns_label() {
    let names = names();
    assert_eq!(names.len(), 13 + 96, "13 departments and 96 named communes");
    for style in [SlugStyle::Hyphenated, SlugStyle::Compact] {
        for drop_unit_prefix in [false, true] {
            let rule = SlugRule { style, drop_unit_prefix };
            let r = slug_all(names.iter().map(String::as_str), rule);
            assert!(r.errors.is_empty(), "{:?}", r.errors);
            assert_eq!(r.slugs.len(), names.len());
            for (name, s) in &r.slugs {
                assert!(is_dns_label(&s.label), "{name} -> {}", s.label);
                assert!(!s.label.contains(['’', '\'']), "{name}");
            }
            // With the unit prefix kept, every tenant of the merged province has its own slug.
            if !drop_unit_prefix {
                assert!(r.collisions.is_empty(), "{rule:?}: {:?}", r.collisions);
            }
        }
    }
}

#[test]
fn known_names_from_the_list() {
    let rule = SlugRule::default();
    let r = slug_all(names().iter().map(String::as_str), rule);
    let get = |n: &str| r.slugs.get(n).map(|s| s.label.clone()).unwrap_or_default();
    assert_eq!(get("Xã M’Drắk"), "xa-mdrak");
    assert_eq!(get("Sở Y tế"), "so-y-te");
    assert_eq!(get("Phường Phú Yên"), "phuong-phu-yen");
    assert_eq!(get("Xã Đắk Liêng"), "xa-dak-lieng");
}
