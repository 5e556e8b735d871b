//! The OpenStack client: Keystone v3 authentication and catalog, Nova, Glance, Neutron, Cinder and
//! legacy nova-network, over REST with typed requests, answers and errors.
//!
//! Why a client of its own rather than the `openstack_sdk` crate: see `docs/openstack-client.md`.

pub mod clouds;
pub mod compute;
pub mod error;
pub mod image;
pub mod network;
pub mod nova_network;
pub mod session;
pub mod states;
pub mod volume;

pub use error::{Error, Service};
pub use session::Session;
#[cfg(test)]
mod client_tests;
#[cfg(test)]
pub(crate) mod fake;
