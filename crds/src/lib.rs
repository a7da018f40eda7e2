//! The pdc API: custom resource types of group `pdc.io`, the labels and names shared
//! by the operator, the CLI and the chart, and `meta/v1` condition helpers.

// kube-derive repeats `printcolumn` attributes, which clippy reads as duplicates.
#![allow(clippy::duplicated_attributes)]

pub mod conditions;
pub mod estate;
pub mod labels;
pub mod report;
pub mod v1alpha1;

pub use v1alpha1::*;

/// The API group of every pdc kind.
pub const GROUP: &str = "pdc.io";
/// The field manager the operator applies with.
pub const OPERATOR_MANAGER: &str = "pdc-operator";

use kube::CustomResourceExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// Every CRD pdc defines, in a stable order (what `crdgen` writes and the chart ships).
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    vec![
        Province::crd(),
        Department::crd(),
        Site::crd(),
        NetworkZone::crd(),
        SubnetAllocation::crd(),
        AddressAllocation::crd(),
        AddressClaim::crd(),
        DnsZone::crd(),
        DnsRecord::crd(),
        SizeClass::crd(),
        TenantVM::crd(),
        TenantVolume::crd(),
        DrPlan::crd(),
        Reorganization::crd(),
    ]
}
