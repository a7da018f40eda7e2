//! A Department's zone attachments: a Multus NetworkAttachmentDefinition per zone
//! (bridge CNI on the zone's VLAN, static IPAM: addresses come from AddressClaims),
//! and the zone's reachability twice: as NetworkPolicies for pod traffic, and as
//! MultiNetworkPolicies for the VM NICs on the zone's bridge, which NetworkPolicy
//! does not govern. Both come from the province's one reachability matrix
//! ([`pdc_core::zonerules`]). Builders are pure.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Resource, ResourceExt};
use pdc_api::labels as l;
use pdc_api::{Department, NetworkZone};

/// The Multus kind, addressed dynamically: its CRD may be absent.
pub fn nad_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("k8s.cni.cncf.io", "v1", "NetworkAttachmentDefinition"),
        "network-attachment-definitions",
    )
}

/// The multi-networkpolicy project's kind, addressed dynamically: its CRD may be absent.
pub fn multi_policy_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("k8s.cni.cncf.io", "v1beta1", "MultiNetworkPolicy"), "multi-networkpolicies")
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
        // Frames from a VM NIC must carry that NIC's MAC (CNI bridge ≥ 1.1, nftables):
        // no department can speak with another's address on the shared bridge.
        "macspoofchk": true,
        "capabilities": {"ips": true},
    });
    let mut m = meta(dept, zone_object_name(&zname), &zname);
    m.annotations = Some(BTreeMap::from([("pdc.io/subnets".to_string(), subnets.join(","))]));
    let mut obj = DynamicObject::new(&zone_object_name(&zname), &nad_resource()).within(&dept.name_any());
    obj.metadata = m;
    obj.data = serde_json::json!({"spec": {"config": config.to_string()}});
    obj
}

fn ports(p: &[pdc_core::zonerules::Port]) -> Option<Vec<NetworkPolicyPort>> {
    (!p.is_empty()).then(|| {
        p.iter()
            .map(|x| NetworkPolicyPort {
                protocol: Some(x.protocol.clone()),
                port: Some(IntOrString::Int(i32::from(x.port))),
                end_port: x.end_port.map(i32::from),
            })
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

/// The zone's reachability for the department's pods in it, from the province's
/// matrix (`flows`, [`pdc_core::zonerules::flows`]): who may connect in (ingress: the
/// source zones' pods, or the Internet), and where they may connect to (egress: the
/// zones that admit this one).
pub fn policy(dept: &Department, zone: &NetworkZone, flows: &[pdc_core::zonerules::Flow]) -> NetworkPolicy {
    let zname = zone.name_any();
    let ingress = flows
        .iter()
        .filter(|f| f.to == zname)
        .map(|f| {
            let from = if f.from == pdc_core::zonerules::INTERNET { internet() } else { vec![zone_peer(&f.from)] };
            NetworkPolicyIngressRule { from: Some(from), ports: ports(&f.ports) }
        })
        .collect();
    let egress = flows
        .iter()
        .filter(|f| f.from == zname)
        .map(|f| NetworkPolicyEgressRule { to: Some(vec![zone_peer(&f.to)]), ports: ports(&f.ports) })
        .collect();
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

fn ip_peers(prefixes: &[String]) -> Vec<serde_json::Value> {
    prefixes.iter().map(|c| serde_json::json!({"ipBlock": {"cidr": c}})).collect()
}

fn multi_ports(ports: &[pdc_core::zonerules::Port]) -> Option<Vec<serde_json::Value>> {
    (!ports.is_empty()).then(|| {
        ports
            .iter()
            .map(|p| {
                let mut v = serde_json::json!({"protocol": p.protocol, "port": p.port});
                if let (Some(e), Some(m)) = (p.end_port, v.as_object_mut()) {
                    m.insert("endPort".into(), e.into());
                }
                v
            })
            .collect()
    })
}

fn rule(key: &str, prefixes: &[String], ports: &[pdc_core::zonerules::Port]) -> serde_json::Value {
    let mut r = serde_json::json!({ key: ip_peers(prefixes) });
    if let (Some(p), Some(m)) = (multi_ports(ports), r.as_object_mut()) {
        m.insert("ports".into(), p.into());
    }
    r
}

/// The zone's reachability on the department's VM NICs in it: a MultiNetworkPolicy
/// bound to the zone's NetworkAttachmentDefinition (`k8s.v1.cni.cncf.io/policy-for`).
/// Peers are prefixes (VM addresses are static): in, the flows of the matrix into
/// the zone; out, its flows out of the zone and the zone's resolvers on port 53; both
/// ways, the department's own subnets of the zone (as its pods talk inside their
/// namespace).
pub fn multi_policy(dept: &Department, zone: &NetworkZone, flows: &[pdc_core::zonerules::Flow], own: &[String]) -> DynamicObject {
    let zname = zone.name_any();
    let name = zone_object_name(&zname);
    let mut ingress: Vec<serde_json::Value> = flows.iter().filter(|f| f.to == zname).map(|f| rule("from", &f.from_prefixes, &f.ports)).collect();
    let mut egress: Vec<serde_json::Value> = flows.iter().filter(|f| f.from == zname).map(|f| rule("to", &f.to_prefixes, &f.ports)).collect();
    if !own.is_empty() {
        ingress.push(rule("from", own, &[]));
        egress.push(rule("to", own, &[]));
    }
    let resolvers: Vec<String> =
        zone.spec.resolvers.iter().map(|r| if r.contains(':') { format!("{r}/128") } else { format!("{r}/32") }).collect();
    if !resolvers.is_empty() {
        let dns: Vec<pdc_core::zonerules::Port> =
            ["UDP", "TCP"].iter().map(|p| pdc_core::zonerules::Port { protocol: (*p).into(), port: 53, end_port: None }).collect();
        egress.push(rule("to", &resolvers, &dns));
    }
    let mut m = meta(dept, name.clone(), &zname);
    m.annotations = Some(BTreeMap::from([("k8s.v1.cni.cncf.io/policy-for".to_string(), format!("{}/{name}", dept.name_any()))]));
    let mut obj = DynamicObject::new(&name, &multi_policy_resource()).within(&dept.name_any());
    obj.metadata = m;
    obj.data = serde_json::json!({"spec": {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": ingress,
        "egress": egress,
    }});
    obj
}

#[cfg(test)]
mod tests {
    use super::*;
    use pdc_api::{DepartmentSpec, NetworkZoneSpec, ReachRule, ZonePort, ZoneSite};

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
                externally_assigned: false,
                internet_ports: vec![],
                reachability: reach,
                resolvers: vec![],
                bridge: None,
                ipv4_phase: Default::default(),
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
        let all = [dmz.clone(), app.clone(), data];
        let flows = pdc_api::zone_flows(all.iter());
        let p = policy(&dept(), &app, &flows);
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
        let pd = policy(&dept(), &dmz, &flows).spec.unwrap();
        let internet_rule = pd.ingress.unwrap().pop().unwrap();
        assert_eq!(internet_rule.from.unwrap()[0].ip_block.as_ref().unwrap().cidr, "0.0.0.0/0");
        let n = nad(&dept(), &dmz, &["10.20.0.0/26".into()]);
        let cfg: serde_json::Value = serde_json::from_str(n.data["spec"]["config"].as_str().unwrap()).unwrap();
        assert_eq!(cfg["vlan"], 110);
        assert_eq!(cfg["bridge"], "br-dmz");
        assert_eq!(cfg["ipam"]["type"], "static");
    }

    #[test]
    fn vm_nic_rules_are_the_matrix_as_prefixes_bound_to_the_zone_attachment() {
        let tcp = |port| ZonePort { protocol: Default::default(), port, end_port: None };
        let mut dmz = zone("dmz", vec![ReachRule { from_zones: vec!["app".into()], ports: vec![tcp(443)] }], true);
        dmz.spec.resolvers = vec!["10.20.255.53".into(), "2001:db8:20::53".into()];
        let app = zone("app", vec![ReachRule { from_zones: vec!["dmz".into()], ports: vec![tcp(8080)] }], false);
        let all = [dmz.clone(), app];
        let flows = pdc_api::zone_flows(all.iter());
        let p = multi_policy(&dept(), &dmz, &flows, &["10.20.0.64/26".into()]);
        assert_eq!(p.metadata.annotations.as_ref().unwrap()["k8s.v1.cni.cncf.io/policy-for"], "so-y-te/pdc-zone-dmz");
        let spec = &p.data["spec"];
        assert_eq!(spec["podSelector"], serde_json::json!({}));
        let ingress = spec["ingress"].as_array().unwrap();
        assert_eq!(ingress[0], serde_json::json!({"from": [{"ipBlock": {"cidr": "10.20.0.0/20"}}], "ports": [{"protocol": "TCP", "port": 443}]}), "app");
        assert_eq!(ingress[1]["from"][0]["ipBlock"]["cidr"], "0.0.0.0/0");
        assert_eq!(ingress[2], serde_json::json!({"from": [{"ipBlock": {"cidr": "10.20.0.64/26"}}]}), "its own subnet, any port");
        let egress = spec["egress"].as_array().unwrap();
        assert_eq!(egress[0], serde_json::json!({"to": [{"ipBlock": {"cidr": "10.20.0.0/20"}}], "ports": [{"protocol": "TCP", "port": 8080}]}), "to app");
        assert_eq!(
            egress[2],
            serde_json::json!({"to": [{"ipBlock": {"cidr": "10.20.255.53/32"}}, {"ipBlock": {"cidr": "2001:db8:20::53/128"}}],
                               "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]})
        );
        let n = nad(&dept(), &dmz, &[]);
        let cfg: serde_json::Value = serde_json::from_str(n.data["spec"]["config"].as_str().unwrap()).unwrap();
        assert_eq!(cfg["macspoofchk"], true);
    }
}
