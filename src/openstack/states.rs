//! Nova's, Glance's and Cinder's states, as osmo tells them apart: parsed once from OpenStack's
//! strings, and written back as OpenStack spelled them.

use std::fmt;

/// An enum of the states OpenStack names with these strings, plus any other it may report:
/// each string is written once, for parsing and for writing back.
macro_rules! openstack_states {
    ($(#[$doc:meta])* $name:ident { $($(#[$variant_doc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum $name {
            $($(#[$variant_doc])* $variant,)*
            /// Any other, as OpenStack wrote it.
            Other(String),
        }

        impl Default for $name {
            fn default() -> Self {
                $name::Other(String::new())
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                match text {
                    $($text => $name::$variant,)*
                    other => $name::Other(other.to_string()),
                }
            }
        }

        impl $name {
            /// As OpenStack spells it.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)*
                    $name::Other(other) => other,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

openstack_states!(
    /// A server's status in Nova.
    ServerStatus {
        Active = "ACTIVE",
        Shutoff = "SHUTOFF",
        Build = "BUILD",
        Error = "ERROR",
        /// Deleted, though still listed for a moment.
        Deleted = "DELETED",
        /// Listed partly, from a cell that does not answer (microversion 2.69 or newer).
        Unknown = "UNKNOWN",
    }
);

openstack_states!(
    /// An image's status in Glance.
    ImageStatus {
        Queued = "queued",
        Active = "active",
        Killed = "killed",
        Deleted = "deleted",
        PendingDelete = "pending_delete",
    }
);

openstack_states!(
    /// Whether a nova-compute service takes new servers (`os-services`' `status`).
    ServiceStatus {
        Enabled = "enabled",
        Disabled = "disabled",
        /// Listed from a cell that does not answer (microversion 2.69 or newer).
        Unknown = "UNKNOWN",
    }
);

openstack_states!(
    /// Whether a nova-compute service reports to Nova (`os-services`' `state`).
    ServiceState {
        Up = "up",
        Down = "down",
    }
);

openstack_states!(
    /// A volume's status in Cinder. A volume passes `reserved` (an attachment is made),
    /// `attaching` and `in-use` on its way onto a server, and `detaching` back to `available`.
    VolumeStatus {
        Creating = "creating",
        Available = "available",
        Reserved = "reserved",
        Attaching = "attaching",
        InUse = "in-use",
        Detaching = "detaching",
        Maintenance = "maintenance",
        Deleting = "deleting",
        AwaitingTransfer = "awaiting-transfer",
        Error = "error",
        ErrorDeleting = "error_deleting",
        BackingUp = "backing-up",
        RestoringBackup = "restoring-backup",
        ErrorBackingUp = "error_backing-up",
        ErrorRestoring = "error_restoring",
        ErrorExtending = "error_extending",
        Downloading = "downloading",
        Uploading = "uploading",
        Retyping = "retyping",
        Extending = "extending",
    }
);

impl ImageStatus {
    /// Deleted, or about to be.
    pub fn is_gone(&self) -> bool {
        matches!(self, ImageStatus::Deleted | ImageStatus::PendingDelete)
    }
}

/// Nova's task state of a server that is being deleted.
const DELETING: &str = "deleting";

/// Whether a task state says the server is being deleted.
pub fn is_deleting(task_state: Option<&str>) -> bool {
    task_state == Some(DELETING)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_written_back_as_openstack_spelled_them() {
        for status in ["ACTIVE", "SHUTOFF", "BUILD", "ERROR", "DELETED", "UNKNOWN", "REBOOT"] {
            assert_eq!(ServerStatus::from(status).to_string(), status);
        }
        for status in ["queued", "saving", "active", "killed", "deleted", "pending_delete"] {
            assert_eq!(ImageStatus::from(status).to_string(), status);
        }
        for status in ["enabled", "disabled", "UNKNOWN"] {
            assert_eq!(ServiceStatus::from(status).to_string(), status);
        }
        for status in ["available", "in-use", "reserved", "attaching", "detaching", "error_deleting", "migrating"] {
            assert_eq!(VolumeStatus::from(status).to_string(), status);
        }
        assert_eq!(VolumeStatus::from("in-use"), VolumeStatus::InUse);
        for state in ["up", "down"] {
            assert_eq!(ServiceState::from(state).to_string(), state);
        }
    }
}
