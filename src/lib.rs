//! osmo, the OpenStack Migration Operator: moves OpenStack servers from an old compute
//! environment to a new one and drains old compute nodes, driven by Kubernetes resources.

pub mod api;
pub mod controllers;
pub mod drain;
pub mod migration;
pub mod openstack;
pub mod runtime;
pub mod validation;
