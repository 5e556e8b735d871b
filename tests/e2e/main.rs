//! End-to-end tests: the operator as a process against a real kube-apiserver with etcd.
//! Run them with `hack/test.sh`, which starts the control plane.

mod crds;
mod harness;
mod leader;
mod rbac;
mod schema;
mod status;
