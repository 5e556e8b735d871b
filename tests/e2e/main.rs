//! End-to-end tests: the operator as a process against a real kube-apiserver with etcd.
//! Run them with `hack/test.sh`, which starts the control plane.

mod argocd;
#[path = "../support/argocd.rs"]
mod argocd_customizations;
mod chaos;
mod chart;
mod claim;
mod crds;
mod drain;
mod fault_proxy;
mod fidelity;
mod harness;
mod image;
mod leader;
mod migration;
mod openstack;
mod openstack_faults;
mod parallel_nova;
mod ports;
mod rbac;
mod recording;
mod recovery;
mod schema;
mod secrets;
mod simulator;
mod status;
mod volumes;
mod volumes_api;
