//! What each phase of a migration means: where it comes in each strategy's order, the timeout
//! that bounds it, whether the source may still exist during it, and how it is described.

use std::time::Duration;

use crate::api::{MigrationPhase, StepTimeouts, Strategy};

impl MigrationPhase {
    /// The phases of a strategy, in order, after Recording.
    pub fn order(strategy: Strategy) -> &'static [MigrationPhase] {
        use MigrationPhase::*;
        match strategy {
            Strategy::Snapshot => {
                &[Stopping, Snapshotting, DeletingSource, Booting, MovingAddresses, Verifying, CleaningUp]
            }
            Strategy::Redeploy => &[Stopping, Booting, MovingAddresses, Verifying, DeletingSource],
        }
    }

    /// The phase after this one in the strategy's order; none after the last.
    pub fn next(self, strategy: Strategy) -> Option<MigrationPhase> {
        let order = Self::order(strategy);
        match self {
            MigrationPhase::Recording => order.first().copied(),
            phase => order.iter().position(|p| *p == phase).and_then(|i| order.get(i + 1)).copied(),
        }
    }

    /// Whether the source has been deleted by the time of this phase.
    pub fn source_deleted(self, strategy: Strategy) -> bool {
        use MigrationPhase::*;
        strategy == Strategy::Snapshot && matches!(self, Booting | MovingAddresses | Verifying | CleaningUp)
    }

    /// Whether the source may still exist in this phase (so that a failure is rolled back).
    pub fn source_may_exist(self, strategy: Strategy) -> bool {
        use MigrationPhase::*;
        match strategy {
            Strategy::Snapshot => matches!(self, Pending | Recording | Stopping | Snapshotting),
            // Until the addresses have moved, the source keeps them and can be restarted.
            Strategy::Redeploy => matches!(self, Pending | Recording | Stopping | Booting),
        }
    }

    /// How long the step of this phase may take, from the spec or by default.
    pub fn timeout(self, timeouts: &StepTimeouts) -> Duration {
        use MigrationPhase::*;
        let seconds = match self {
            Stopping => timeouts.stop_seconds.unwrap_or(300),
            Snapshotting | CleaningUp => timeouts.snapshot_seconds.unwrap_or(3600),
            DeletingSource | RollingBack => timeouts.delete_seconds.unwrap_or(600),
            Booting => timeouts.boot_seconds.unwrap_or(900),
            _ => timeouts.addresses_seconds.unwrap_or(300),
        };
        Duration::from_secs(u64::from(seconds))
    }

    /// What the migration does in this phase, for people.
    pub fn description(self) -> &'static str {
        use MigrationPhase::*;
        match self {
            Pending => "Waiting to start.",
            Recording => "Recording the source server.",
            Stopping => "Stopping the source server.",
            Snapshotting => "Snapshotting the source server and waiting for Glance to call the image active.",
            DeletingSource => "Deleting the source server.",
            Booting => "Booting the replacement and waiting for it to be ACTIVE.",
            MovingAddresses => "Moving the floating IPs to the replacement.",
            Verifying => "Verifying the replacement and its addresses.",
            CleaningUp => "Deleting the snapshot.",
            RollingBack => "Undoing what was done.",
            Succeeded => "Done.",
            Failed => "Failed.",
        }
    }
}
