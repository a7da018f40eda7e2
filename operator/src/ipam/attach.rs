//! A Department's zone attachments: a Multus NetworkAttachmentDefinition per zone
//! (bridge CNI on the zone's VLAN, static IPAM: addresses come from AddressClaims),
//! and the zone's reachability as NetworkPolicies. Builders are pure.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Resource, ResourceExt};
use pdc_api::labels as l;
use pdc_api::{Department, NetworkZone, ZonePort};

/// The Multus kind, addressed dynamically: its CRD may be absent.
pub fn nad_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("k8s.cni.cncf.io", "v1", "NetworkAttachmentDefinition"),
        "network-attachment-definitions",
    )
}

/// Name of a zone's attachment and policies in a department namespace.
pub fn zone_object_name(zone: &str) -> String {
    format!("pdc-zone-{zone}")
}

/// The pod label that places a workload (a VM's launcher pod) in a zone.
pub fn member_label(zone: &str) -> String {
    format!("{}{zone}", l::ZONE_MEMBER_PREFIX)
}

fn meta(dept: &Department, name: String, zone: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(dept.name_any()),
        labels: Some(BTreeMap::from([
            (l::MANAGED_BY.to_string(), l::MANAGED_BY_VALUE.to_string()),
            (l::DEPARTMENT.to_string(), dept.name_any()),
            (l::ZONE.to_string(), zone.to_string()),
        ])),
        owner_references: dept.controller_owner_ref(&()).map(|o| vec![o]),
        ..Default::default()
    }
}

/// The zone's NetworkAttachmentDefinition in the department's namespace.
pub fn nad(dept: &Department, zone: &NetworkZone, subnets: &[String]) -> DynamicObject {
    let zname = zone.name_any();
    let bridge = zone.spec.bridge.clone().unwrap_or_else(|| format!("br-{zname}").chars().take(15).collect());
    let config = serde_json::json!({
        "cniVersion": "0.3.1",
        "name": zone_object_name(&zname),
        "type": "bridge",
        "bridge": bridge,
        "vlan": zone.spec.vlan,
        "ipam": {"type": "static"},
        "capabilities": {"ips": true},
    });
    let mut m = meta(dept, zone_object_name(&zname), &zname);
    m.annotations = Some(BTreeMap::from([("pdc.io/subnets".to_string(), subnets.join(","))]));
    let mut obj = DynamicObject::new(&zone_object_name(&zname), &nad_resource()).within(&dept.name_any());
    obj.metadata = m;
    obj.data = serde_json::json!({"spec": {"config": config.to_string()}});
    obj
}

fn ports(p: &[ZonePort]) -> Option<Vec<NetworkPolicyPort>> {
    (!p.is_empty()).then(|| {
        p.iter()
            .map(|x| NetworkPolicyPort { protocol: Some(x.protocol.as_str().to_string()), port: Some(IntOrString::Int(x.port)), end_port: x.end_port })
            .collect()
    })
}

/// Pods of `zone` in any department namespace.
fn zone_peer(zone: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement { key: l::DEPARTMENT.to_string(), operator: "Exists".into(), values: None }]),
            ..Default::default()
        }),
        pod_selector: Some(LabelSelector { match_labels: Some(BTreeMap::from([(member_label(zone), "true".to_string())])), ..Default::default() }),
        ip_block: None,
    }
}

fn internet() -> Vec<NetworkPolicyPeer> {
    ["0.0.0.0/0", "::/0"]
        .iter()
        .map(|c| NetworkPolicyPeer { ip_block: Some(IPBlock { cidr: (*c).to_string(), except: None }), ..Default::default() })
        .collect()
}

/// The zone's reachability for the department's machines in it: who may connect in
/// (ingress), and where they may connect to (egress: the zones whose rules admit
/// this one). `all` is every NetworkZone.
pub fn policy(dept: &Department, zone: &NetworkZone, all: &[std::sync::Arc<NetworkZone>]) -> NetworkPolicy {
    let zname = zone.name_any();
    let mut ingress: Vec<NetworkPolicyIngressRule> = zone
        .spec
        .reachability
        .iter()
        .map(|r| NetworkPolicyIngressRule { from: Some(r.from_zones.iter().map(|z| zone_peer(z)).collect()), ports: ports(&r.ports) })
        .collect();
    if zone.spec.internet_facing {
        let all_ports: Vec<ZonePort> = zone.spec.reachability.iter().flat_map(|r| r.ports.iter().cloned()).collect();
        ingress.push(NetworkPolicyIngressRule { from: Some(internet()), ports: ports(&all_ports) });
    }
    let mut egress = Vec::new();
    let mut targets: Vec<&std::sync::Arc<NetworkZone>> = all.iter().collect();
    targets.sort_by_key(|z| z.name_any());
    for target in targets {
        for r in target.spec.reachability.iter().filter(|r| r.from_zones.contains(&zname)) {
            egress.push(NetworkPolicyEgressRule { to: Some(vec![zone_peer(&target.name_any())]), ports: ports(&r.ports) });
        }
    }
    NetworkPolicy {
        metadata: meta(dept, zone_object_name(&zname), &zname),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector { match_labels: Some(BTreeMap::from([(member_label(&zname), "true".to_string())])), ..Default::default() }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(ingress),
            egress: Some(egress),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pdc_api::{DepartmentSpec, NetworkZoneSpec, ReachRule, ZoneSite};
    use std::sync::Arc;

    fn zone(name: &str, reach: Vec<ReachRule>, internet: bool) -> NetworkZone {
        let mut z = NetworkZone::new(
            name,
            NetworkZoneSpec {
                display_name: None,
                vlan: 110,
                sites: vec![ZoneSite { site: "daklak".into(), ipv4: Some("10.20.0.0/20".into()), ipv6: None }],
                subnet_sizes: Default::default(),
                reserved_hosts: 3,
                internet_facing: internet,
                reachability: reach,
                resolvers: vec![],
                bridge: None,
            },
        );
        z.metadata.uid = Some(format!("uid-{name}"));
        z
    }

    fn dept() -> Department {
        let mut d: Department = serde_json::from_value(serde_json::json!({
            "apiVersion": "pdc.io/v1alpha1", "kind": "Department",
            "metadata": {"name": "so-y-te", "uid": "u1"},
            "spec": {"displayName": "Sở Y tế", "code": "H15.23", "zones": ["dmz", "app"]}
        }))
        .unwrap();
        d.spec = DepartmentSpec { ..d.spec };
        d
    }

    #[test]
    fn dmz_admits_the_internet_and_app_reaches_data_only_on_its_port() {
        let tcp = |port| ZonePort { protocol: Default::default(), port, end_port: None };
        let dmz = zone("dmz", vec![ReachRule { from_zones: vec!["app".into()], ports: vec![tcp(443)] }], true);
        let app = zone("app", vec![ReachRule { from_zones: vec!["dmz".into()], ports: vec![tcp(8080)] }], false);
        let data = zone("data", vec![ReachRule { from_zones: vec!["app".into()], ports: vec![tcp(5432)] }], false);
        let all = vec![Arc::new(dmz.clone()), Arc::new(app.clone()), Arc::new(data)];
        let p = policy(&dept(), &app, &all);
        let spec = p.spec.unwrap();
        assert_eq!(spec.pod_selector.unwrap().match_labels.unwrap()["pdc.io/zone-app"], "true");
        let ing = spec.ingress.unwrap();
        assert_eq!(ing.len(), 1, "app is not internet-facing");
        let egress = spec.egress.unwrap();
        let to: Vec<(String, i32)> = egress
            .iter()
            .map(|e| {
                let peer = &e.to.as_ref().unwrap()[0];
                let zone = peer.pod_selector.as_ref().unwrap().match_labels.as_ref().unwrap().keys().next().unwrap().clone();
                let port = match e.ports.as_ref().unwrap()[0].port.as_ref().unwrap() {
                    IntOrString::Int(p) => *p,
                    IntOrString::String(_) => 0,
                };
                (zone, port)
            })
            .collect();
        assert_eq!(to, vec![("pdc.io/zone-data".to_string(), 5432), ("pdc.io/zone-dmz".to_string(), 443)]);
        let pd = policy(&dept(), &dmz, &all).spec.unwrap();
        let internet_rule = pd.ingress.unwrap().pop().unwrap();
        assert_eq!(internet_rule.from.unwrap()[0].ip_block.as_ref().unwrap().cidr, "0.0.0.0/0");
        let n = nad(&dept(), &dmz, &["10.20.0.0/26".into()]);
        let cfg: serde_json::Value = serde_json::from_str(n.data["spec"]["config"].as_str().unwrap()).unwrap();
        assert_eq!(cfg["vlan"], 110);
        assert_eq!(cfg["bridge"], "br-dmz");
        assert_eq!(cfg["ipam"]["type"], "static");
    }
}
