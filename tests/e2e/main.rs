//! End-to-end tests: the operator as a process against a real kube-apiserver with etcd.
//! Run them with `hack/test.sh`, which starts the control plane.

mod chaos;
mod crds;
mod fault_proxy;
mod harness;
mod leader;
mod migration;
mod openstack;
mod openstack_faults;
mod rbac;
mod schema;
mod status;
