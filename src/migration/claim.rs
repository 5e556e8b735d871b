//! When a migration needs its cluster-wide claim on the server (see `runtime::claim`). Pure:
//! the controller claims and releases.

use crate::api::{InstanceMigrationStatus, MigrationPhase};
use crate::runtime::claim::Key;

use crate::openstack::states::ImageStatus;

/// The claim on a server of `project_id`, made with credentials of the Keystone at `auth_url`.
pub fn server_key(auth_url: &str, project_id: Option<&str>, server_id: &str) -> Key {
    Key::server(auth_url, project_id.unwrap_or_default(), server_id)
}

/// Whether a migration still needs its claim on the server: until it ends, and after it failed
/// while something of it may remain in OpenStack (the source deleted or being deleted, a
/// snapshot or a replacement kept), since it may be retried in place.
pub fn needs_claim(status: &InstanceMigrationStatus) -> bool {
    match status.phase {
        MigrationPhase::Succeeded => false,
        MigrationPhase::Failed => !nothing_remains(status),
        _ => true,
    }
}

/// The source was never asked to go, and nothing the migration made is kept.
fn nothing_remains(status: &InstanceMigrationStatus) -> bool {
    let source_deletion_started = status.steps.iter().any(|s| s.name == MigrationPhase::DeletingSource);
    let snapshot_kept = status.snapshot.as_ref().is_some_and(|s| !ImageStatus::from(s.status.as_str()).is_gone());
    !source_deletion_started && !snapshot_kept && status.target.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{SnapshotStatus, StepRecord, StepResult, TargetServerStatus};

    fn status(phase: MigrationPhase) -> InstanceMigrationStatus {
        InstanceMigrationStatus { phase, ..Default::default() }
    }

    fn step(name: MigrationPhase) -> StepRecord {
        StepRecord {
            name,
            started_at: "2026-01-01T00:00:00Z".into(),
            finished_at: None,
            result: StepResult::Running,
            ..Default::default()
        }
    }

    #[test]
    fn a_running_migration_needs_its_claim_and_a_succeeded_one_does_not() {
        for phase in [MigrationPhase::Recording, MigrationPhase::Snapshotting, MigrationPhase::RollingBack] {
            assert!(needs_claim(&status(phase)), "{phase:?}");
        }
        assert!(!needs_claim(&status(MigrationPhase::Succeeded)));
    }

    #[test]
    fn a_failed_migration_keeps_its_claim_while_something_of_it_remains() {
        // Refused before anything changed, or rolled back with the snapshot deleted.
        assert!(!needs_claim(&status(MigrationPhase::Failed)));
        let snapshot = |s: &str| SnapshotStatus { image_id: "i".into(), status: s.into(), ..Default::default() };
        let rolled_back =
            InstanceMigrationStatus { snapshot: Some(snapshot("deleted")), ..status(MigrationPhase::Failed) };
        assert!(!needs_claim(&rolled_back));

        // The snapshot kept, the source's deletion asked for, a replacement made: it may be retried.
        let kept = InstanceMigrationStatus { snapshot: Some(snapshot("active")), ..status(MigrationPhase::Failed) };
        assert!(needs_claim(&kept));
        let deleting = InstanceMigrationStatus {
            steps: vec![step(MigrationPhase::DeletingSource)],
            ..status(MigrationPhase::Failed)
        };
        assert!(needs_claim(&deleting));
        let target = TargetServerStatus { server_id: "t".into(), ..Default::default() };
        let booted = InstanceMigrationStatus { target: Some(target), ..status(MigrationPhase::Failed) };
        assert!(needs_claim(&booted));
    }

    #[test]
    fn the_server_key_names_the_server_its_project_and_keystone() {
        assert_eq!(server_key("http://k:5000/v3/", Some("p1"), "s1"), Key::server("http://k:5000", "p1", "s1"));
    }
}
