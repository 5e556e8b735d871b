//! Decides an InstanceMigration's next status from its spec and current status. Pure.

use crate::api::{InstanceMigrationSpec, InstanceMigrationStatus, MigrationPhase, MigrationTarget};
use crate::runtime::conditions::{self, Validated};
use crate::validation::{self, FieldError};

/// Every problem of the spec that the schema could not catch.
pub fn validate(spec: &InstanceMigrationSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if spec.server.trim() != spec.server {
        validation::error(&mut errors, "spec.server", "must not start or end with white space");
    }
    validation::check_migration_options(&spec.options, &spec.source, "spec", &mut errors);
    errors
}

/// The status the migration should have now.
pub fn plan(
    spec: &InstanceMigrationSpec,
    current: Option<&InstanceMigrationStatus>,
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> InstanceMigrationStatus {
    let mut status = current.cloned().unwrap_or_default();
    status.observed_generation = generation;
    status.target_description = Some(describe_target(&spec.options.target)).filter(|d| !d.is_empty());
    match conditions::apply_validation(&mut status.conditions, &validate(spec), generation, now) {
        Validated::Invalid(message) => {
            status.phase = MigrationPhase::Failed;
            status.last_error = Some(message);
            return status;
        }
        Validated::Corrected => {
            status.phase = MigrationPhase::Pending;
            status.last_error = None;
        }
        Validated::Valid => {}
    }
    conditions::set_not_implemented(&mut status.conditions, "migration", generation, now);
    status
}

/// Where the replacement goes, in one line: `icehouse`, `icehouse/icehouse-1`, `cloud new: icehouse`.
pub fn describe_target(target: &MigrationTarget) -> String {
    let place = [target.availability_zone.as_deref(), target.host.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("/");
    match &target.cloud {
        Some(cloud) if place.is_empty() => format!("cloud {}", cloud.cloud),
        Some(cloud) => format!("cloud {}: {place}", cloud.cloud),
        None => place,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Condition;
    use crate::api::ConditionStatus;

    fn spec(extra: serde_json::Value) -> InstanceMigrationSpec {
        let mut base = serde_json::json!({
            "server": "web-1",
            "source": {"secretName": "clouds", "cloud": "old"},
            "target": {"availabilityZone": "icehouse"},
        });
        base.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    fn at(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(secs).unwrap()
    }

    fn condition<'a>(status: &'a InstanceMigrationStatus, type_: &str) -> &'a Condition {
        conditions::get(&status.conditions, type_).unwrap_or_else(|| panic!("no {type_} condition"))
    }

    #[test]
    fn a_valid_spec_is_accepted_and_says_it_has_not_started() {
        let status = plan(&spec(serde_json::json!({})), None, Some(1), at(0));
        assert_eq!(status.phase, MigrationPhase::Pending);
        assert_eq!(status.observed_generation, Some(1));
        assert_eq!(condition(&status, "Accepted").status, ConditionStatus::True);
        assert_eq!(condition(&status, "Ready").status, ConditionStatus::False);
        assert!(conditions::get(&status.conditions, "Failed").is_none());
        assert_eq!(status.target_description.as_deref(), Some("icehouse"));
    }

    #[test]
    fn an_invalid_spec_fails_naming_the_field() {
        let status = plan(&spec(serde_json::json!({"strategy": "Redeploy"})), None, Some(1), at(0));
        assert_eq!(status.phase, MigrationPhase::Failed);
        let failed = condition(&status, "Failed");
        assert_eq!((failed.status, failed.reason.as_str()), (ConditionStatus::True, "Invalid"));
        assert!(failed.message.starts_with("spec.redeploy.image: "), "{}", failed.message);
        assert_eq!(condition(&status, "Accepted").status, ConditionStatus::False);
    }

    #[test]
    fn a_corrected_spec_is_accepted_again() {
        let failed = plan(&spec(serde_json::json!({"strategy": "Redeploy"})), None, Some(1), at(0));
        let fixed = spec(serde_json::json!({"strategy": "Redeploy", "redeploy": {"image": "cirros"}}));
        let status = plan(&fixed, Some(&failed), Some(2), at(10));
        assert_eq!(status.phase, MigrationPhase::Pending);
        assert_eq!(status.last_error, None);
        assert_eq!(condition(&status, "Failed").status, ConditionStatus::False);
        assert_eq!(condition(&status, "Accepted").observed_generation, Some(2));
    }

    #[test]
    fn planning_twice_changes_nothing() {
        let first = plan(&spec(serde_json::json!({})), None, Some(1), at(0));
        assert_eq!(plan(&spec(serde_json::json!({})), Some(&first), Some(1), at(99)), first);
    }

    #[test]
    fn server_names_with_surrounding_space_are_refused() {
        let mut s = spec(serde_json::json!({}));
        s.server = " web-1".into();
        assert_eq!(validate(&s)[0].field, "spec.server");
    }

    #[test]
    fn targets_are_described_in_one_line() {
        let mut t = MigrationTarget {
            availability_zone: Some("icehouse".into()),
            host: Some("icehouse-1".into()),
            cloud: None,
        };
        assert_eq!(describe_target(&t), "icehouse/icehouse-1");
        t.cloud = Some(crate::validation::tests::cloud("new"));
        assert_eq!(describe_target(&t), "cloud new: icehouse/icehouse-1");
    }
}
