//! Kubernetes NetworkPolicy egress semantics (networking.k8s.io/v1, as the API
//! reference states them), for the players whose pods must reach something: a pod's
//! egress is allowed by default; once any policy with `Egress` in its `policyTypes`
//! selects the pod, only what some egress rule of such a policy allows goes out. A
//! rule with no `to` allows every destination, with no `ports` every port; an
//! `ipBlock` peer matches addresses in its `cidr` and not in its `except`; pod and
//! namespace selector peers match pods inside the cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

/// Where a pod wants to connect.
pub enum Destination<'a> {
    /// An address outside the cluster.
    External(&'a str),
    /// A pod in the cluster: its namespace's labels and its own.
    Pod { namespace_labels: &'a BTreeMap<String, String>, labels: &'a BTreeMap<String, String> },
}

/// Whether `selector` selects `labels` (matchLabels and matchExpressions).
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = selector.match_labels.as_ref().is_none_or(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)));
    let by_exprs = selector.match_expressions.as_ref().is_none_or(|es| {
        es.iter().all(|e| {
            let values = e.values.clone().unwrap_or_default();
            match e.operator.as_str() {
                "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
                "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
                "Exists" => labels.contains_key(&e.key),
                "DoesNotExist" => !labels.contains_key(&e.key),
                _ => false,
            }
        })
    });
    by_labels && by_exprs
}

fn in_cidr(addr: &str, cidr: &str) -> bool {
    let bits = |ip: std::net::IpAddr| match ip {
        std::net::IpAddr::V4(a) => (u128::from(u32::from(a)), 32u32),
        std::net::IpAddr::V6(a) => (u128::from(a), 128u32),
    };
    let Some((net, len)) = cidr.split_once('/') else { return false };
    match (addr.parse::<std::net::IpAddr>(), net.parse::<std::net::IpAddr>(), len.parse::<u32>()) {
        (Ok(a), Ok(n), Ok(len)) => {
            let ((a, wa), (n, wn)) = (bits(a), bits(n));
            if wa != wn || len > wa {
                return false;
            }
            let shift = wa - len;
            shift >= 128 || (a >> shift) == (n >> shift)
        }
        _ => false,
    }
}

fn peer_matches(peer: &NetworkPolicyPeer, policy_ns_labels: &BTreeMap<String, String>, dest: &Destination) -> bool {
    match dest {
        Destination::External(addr) => peer
            .ip_block
            .as_ref()
            .is_some_and(|b| in_cidr(addr, &b.cidr) && !b.except.as_ref().is_some_and(|ex| ex.iter().any(|e| in_cidr(addr, e)))),
        Destination::Pod { namespace_labels, labels } => {
            if peer.ip_block.is_some() {
                return false;
            }
            let ns_ok = match &peer.namespace_selector {
                Some(s) => selects(s, namespace_labels),
                // No namespace selector: the policy's own namespace.
                None => *namespace_labels == policy_ns_labels,
            };
            ns_ok && peer.pod_selector.as_ref().is_none_or(|s| selects(s, labels))
        }
    }
}

fn port_matches(p: &NetworkPolicyPort, protocol: &str, port: i32) -> bool {
    if p.protocol.as_deref().unwrap_or("TCP") != protocol {
        return false;
    }
    match &p.port {
        None => true,
        Some(IntOrString::Int(n)) => *n == port || p.end_port.is_some_and(|end| (*n..=end).contains(&port)),
        // Named ports name a container port of the destination pod; the players'
        // destinations have none.
        Some(IntOrString::String(_)) => false,
    }
}

fn has_egress(np: &NetworkPolicy) -> bool {
    let spec = np.spec.as_ref();
    match spec.and_then(|s| s.policy_types.as_ref()) {
        Some(t) => t.iter().any(|t| t == "Egress"),
        None => spec.and_then(|s| s.egress.as_ref()).is_some(),
    }
}

/// Whether a pod with `pod_labels` in namespace `ns` (whose labels are `ns_labels`)
/// may open a `protocol` connection to `dest` on `port`, under `policies`.
pub fn egress_allowed(
    policies: &[std::sync::Arc<NetworkPolicy>],
    ns: &str,
    ns_labels: &BTreeMap<String, String>,
    pod_labels: &BTreeMap<String, String>,
    dest: &Destination,
    protocol: &str,
    port: i32,
) -> bool {
    let selecting: Vec<_> = policies
        .iter()
        .filter(|p| p.namespace().as_deref() == Some(ns) && has_egress(p))
        .filter(|p| p.spec.as_ref().is_some_and(|s| s.pod_selector.as_ref().is_none_or(|sel| selects(sel, pod_labels))))
        .collect();
    if selecting.is_empty() {
        return true;
    }
    selecting.iter().any(|p| {
        p.spec.as_ref().and_then(|s| s.egress.as_ref()).into_iter().flatten().any(|rule| {
            let to_ok = rule.to.as_ref().is_none_or(|to| to.is_empty() || to.iter().any(|peer| peer_matches(peer, ns_labels, dest)));
            let port_ok = rule.ports.as_ref().is_none_or(|ps| ps.is_empty() || ps.iter().any(|pp| port_matches(pp, protocol, port)));
            to_ok && port_ok
        })
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn np(v: serde_json::Value) -> std::sync::Arc<NetworkPolicy> {
        std::sync::Arc::new(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn default_deny_blocks_and_an_ip_block_rule_opens() {
        let ns_labels = BTreeMap::from([("kubernetes.io/metadata.name".to_string(), "so-y-te".to_string())]);
        let pod = BTreeMap::from([("app".to_string(), "containerized-data-importer".to_string())]);
        let deny = np(serde_json::json!({"metadata": {"name": "deny", "namespace": "so-y-te"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}));
        let ext = Destination::External("203.0.113.10");
        assert!(egress_allowed(&[], "so-y-te", &ns_labels, &pod, &ext, "TCP", 443));
        assert!(!egress_allowed(std::slice::from_ref(&deny), "so-y-te", &ns_labels, &pod, &ext, "TCP", 443));
        let open = np(serde_json::json!({"metadata": {"name": "open", "namespace": "so-y-te"}, "spec": {
            "podSelector": {"matchLabels": {"app": "containerized-data-importer"}}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}], "ports": [{"port": 443}]}]}}));
        let both = [deny.clone(), open];
        assert!(egress_allowed(&both, "so-y-te", &ns_labels, &pod, &ext, "TCP", 443));
        assert!(!egress_allowed(&both, "so-y-te", &ns_labels, &pod, &ext, "TCP", 22));
        assert!(!egress_allowed(&both, "so-y-te", &ns_labels, &pod, &Destination::External("10.1.2.3"), "TCP", 443));
        // Another namespace's policy does not select the pod.
        assert!(egress_allowed(&[deny], "other", &ns_labels, &pod, &ext, "TCP", 443));
    }
}
