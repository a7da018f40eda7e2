//! The chart ships CRDs generated from the Rust types; this fails when they drift.

#[test]
fn chart_crds_match_the_rust_types() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/pdc/crds");
    let mut names = Vec::new();
    for crd in pdc_api::all_crds() {
        let name = crd.metadata.name.clone().expect("CRD name");
        let want = serde_yaml::to_string(&crd).expect("serialise");
        let path = format!("{dir}/{name}.yaml");
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(have == want, "{path} differs from the Rust types: run `cargo run -p pdc-api --bin crdgen -- charts/pdc/crds`");
        names.push(format!("{name}.yaml"));
    }
    let mut files: Vec<String> = std::fs::read_dir(dir).expect("crds dir").flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    files.sort();
    names.sort();
    assert_eq!(files, names, "charts/pdc/crds holds files no Rust type generates");
}

#[test]
fn every_field_is_documented() {
    fn walk(path: &str, v: &serde_json::Value, missing: &mut Vec<String>) {
        if let Some(props) = v.get("properties").and_then(|p| p.as_object()) {
            for (k, child) in props {
                let p = format!("{path}.{k}");
                // metadata and apiVersion/kind are Kubernetes' own.
                if !["apiVersion", "kind", "metadata"].contains(&k.as_str()) && child.get("description").is_none() {
                    missing.push(p.clone());
                }
                walk(&p, child, missing);
            }
        }
        if let Some(items) = v.get("items") {
            walk(&format!("{path}[]"), items, missing);
        }
    }
    let mut missing = Vec::new();
    for crd in pdc_api::all_crds() {
        let v = serde_json::to_value(&crd.spec.versions[0].schema).expect("schema");
        walk(&crd.spec.names.kind, &v["openAPIV3Schema"], &mut missing);
    }
    assert!(missing.is_empty(), "fields without a description: {missing:?}");
}
