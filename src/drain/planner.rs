//! Decides a ComputeNodeDrain's next status from its spec and current status. Pure.

use crate::api::{AfterDrain, ComputeNodeDrainSpec, ComputeNodeDrainStatus, DrainMode, DrainPhase, ServerSelector};
use crate::runtime::conditions::{self, Validated};
use crate::validation::{self, FieldError};

/// Every problem of the spec that the schema could not catch.
pub fn validate(spec: &ComputeNodeDrainSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if spec.host.chars().any(char::is_whitespace) {
        validation::error(&mut errors, "spec.host", "must not contain white space");
    }
    match (spec.mode, &spec.migration_template) {
        (DrainMode::Migrate, None) => {
            validation::error(&mut errors, "spec.migrationTemplate", "required when mode is Migrate")
        }
        (DrainMode::Migrate, Some(template)) => {
            validation::check_migration_options(template, &spec.cloud, "spec.migrationTemplate", &mut errors);
        }
        (DrainMode::Wait, Some(_)) => {
            validation::error(&mut errors, "spec.migrationTemplate", "only used when mode is Migrate")
        }
        (DrainMode::Wait, None) => {}
    }
    if spec.mode == DrainMode::Migrate && spec.wait_deadline_seconds.is_some() {
        validation::error(&mut errors, "spec.waitDeadlineSeconds", "only used when mode is Wait");
    }
    if spec.force_down && spec.after_drain != AfterDrain::RetireService {
        validation::error(&mut errors, "spec.forceDown", "only used when afterDrain is RetireService");
    }
    let selection = &spec.selector;
    for (list, selectors) in
        [("include", &selection.include), ("exclude", &selection.exclude), ("priority", &selection.priority)]
    {
        for (i, selector) in selectors.iter().enumerate() {
            check_selector(selector, &format!("spec.selector.{list}[{i}]"), &mut errors);
        }
    }
    errors
}

fn check_selector(selector: &ServerSelector, at: &str, errors: &mut Vec<FieldError>) {
    if selector.ids.is_empty()
        && selector.name_pattern.is_none()
        && selector.project_id.is_none()
        && selector.metadata.is_empty()
    {
        validation::error(
            errors,
            at,
            "is empty and would match every server: give ids, namePattern, projectId or metadata",
        );
    }
    if selector.ids.iter().any(|id| id.trim().is_empty()) {
        validation::error(errors, format!("{at}.ids"), "must not contain empty IDs");
    }
}

/// The status the drain should have now.
pub fn plan(
    spec: &ComputeNodeDrainSpec,
    current: Option<&ComputeNodeDrainStatus>,
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> ComputeNodeDrainStatus {
    let mut status = current.cloned().unwrap_or_default();
    status.observed_generation = generation;
    match conditions::apply_validation(&mut status.conditions, &validate(spec), generation, now) {
        Validated::Invalid(message) => {
            status.phase = DrainPhase::Failed;
            status.last_error = Some(message);
            return status;
        }
        Validated::Corrected => {
            status.phase = DrainPhase::Pending;
            status.last_error = None;
        }
        Validated::Valid => {}
    }
    conditions::set_not_implemented(&mut status.conditions, "drain", generation, now);
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ConditionStatus;

    fn spec(extra: serde_json::Value) -> ComputeNodeDrainSpec {
        let mut base = serde_json::json!({
            "cloud": {"secretName": "clouds", "cloud": "old"},
            "host": "havana-1",
            "mode": "Migrate",
            "migrationTemplate": {"target": {"availabilityZone": "icehouse"}},
        });
        base.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    fn fields(spec: &ComputeNodeDrainSpec) -> Vec<String> {
        validate(spec).into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn defaults_are_valid() {
        let s = spec(serde_json::json!({}));
        assert_eq!(s.max_concurrent, 1);
        assert_eq!(s.disable_reason, "osmo: draining for redeployment");
        assert!(fields(&s).is_empty());
    }

    #[test]
    fn migrate_needs_a_template_and_wait_refuses_one() {
        assert_eq!(fields(&spec(serde_json::json!({"migrationTemplate": null}))), ["spec.migrationTemplate"]);
        assert_eq!(fields(&spec(serde_json::json!({"mode": "Wait"}))), ["spec.migrationTemplate"]);
        assert!(
            fields(&spec(serde_json::json!({"mode": "Wait", "migrationTemplate": null, "waitDeadlineSeconds": 60})))
                .is_empty()
        );
    }

    #[test]
    fn the_template_is_checked_like_a_migration() {
        let s = spec(serde_json::json!({"migrationTemplate": {"target": {}}}));
        assert_eq!(fields(&s), ["spec.migrationTemplate.target"]);
    }

    #[test]
    fn options_that_do_not_apply_are_named() {
        assert_eq!(fields(&spec(serde_json::json!({"waitDeadlineSeconds": 60}))), ["spec.waitDeadlineSeconds"]);
        assert_eq!(fields(&spec(serde_json::json!({"forceDown": true}))), ["spec.forceDown"]);
        assert!(fields(&spec(serde_json::json!({"forceDown": true, "afterDrain": "RetireService"}))).is_empty());
    }

    #[test]
    fn an_empty_selector_would_match_everything() {
        let s = spec(serde_json::json!({"selector": {"exclude": [{"namePattern": "db-*"}, {}]}}));
        assert_eq!(fields(&s), ["spec.selector.exclude[1]"]);
    }

    #[test]
    fn an_invalid_drain_fails_and_a_valid_one_is_accepted() {
        let now = jiff::Timestamp::from_second(0).unwrap();
        let failed = plan(&spec(serde_json::json!({"host": "havana 1"})), None, Some(1), now);
        assert_eq!(failed.phase, DrainPhase::Failed);
        let reason = conditions::get(&failed.conditions, "Failed").unwrap();
        assert_eq!(reason.message, "spec.host: must not contain white space");
        let ok = plan(&spec(serde_json::json!({})), Some(&failed), Some(2), now);
        assert_eq!(ok.phase, DrainPhase::Pending);
        assert_eq!(conditions::get(&ok.conditions, "Accepted").unwrap().status, ConditionStatus::True);
        assert_eq!(conditions::get(&ok.conditions, "Failed").unwrap().status, ConditionStatus::False);
    }
}
