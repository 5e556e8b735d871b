//! Pure helpers that keep a status's conditions list the way Kubernetes conventions want it,
//! shared by both planners.

use crate::api::{Condition, ConditionStatus, condition_type, timestamp};
use crate::validation::FieldError;

/// What a condition should say now; [`set`] fills in the bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired<'a> {
    pub type_: &'a str,
    pub status: ConditionStatus,
    pub reason: &'a str,
    pub message: String,
}

/// Sets a condition, keeping its `lastTransitionTime` when its status does not change, and
/// keeping the list ordered by type so that repeated writes are identical.
pub fn set(conditions: &mut Vec<Condition>, desired: Desired<'_>, generation: Option<i64>, now: jiff::Timestamp) {
    let last_transition_time = conditions
        .iter()
        .find(|c| c.type_ == desired.type_ && c.status == desired.status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| timestamp(now));
    conditions.retain(|c| c.type_ != desired.type_);
    conditions.push(Condition {
        type_: desired.type_.to_string(),
        status: desired.status,
        reason: desired.reason.to_string(),
        message: desired.message,
        last_transition_time,
        observed_generation: generation,
    });
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

/// Sets the conditions of one decision: each with the decision's generation and time.
#[derive(Clone, Copy, Debug)]
pub struct Setter {
    pub generation: Option<i64>,
    pub now: jiff::Timestamp,
}

impl Setter {
    pub fn set(
        self,
        conditions: &mut Vec<Condition>,
        type_: &str,
        status: ConditionStatus,
        reason: &str,
        message: &str,
    ) {
        set(conditions, Desired { type_, status, reason, message: message.to_string() }, self.generation, self.now);
    }

    /// Sets whether the resource is `Progressing`, `Ready` and `Failed`, with one reason and
    /// message.
    pub fn report(
        self,
        conditions: &mut Vec<Condition>,
        [progressing, ready, failed]: [bool; 3],
        reason: &str,
        message: &str,
    ) {
        let status = |on| if on { ConditionStatus::True } else { ConditionStatus::False };
        for (type_, on) in [
            (condition_type::PROGRESSING, progressing),
            (condition_type::READY, ready),
            (condition_type::FAILED, failed),
        ] {
            self.set(conditions, type_, status(on), reason, message);
        }
    }
}

/// Why a resource is refused before anything changed for it: its `Failed` reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

/// The condition of a type, if present.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// The condition changes of `new` over `old` worth an event: a status that changes (or a
/// condition that appears True), and each new step or phase on `Progressing`. A condition that
/// stays False with another reason is no news. When the resource has just failed, only the
/// failure is reported: the other conditions merely follow from it.
pub fn transitions<'a>(old: &[Condition], new: &'a [Condition]) -> Vec<&'a Condition> {
    let changed: Vec<&Condition> = new
        .iter()
        .filter(|n| match get(old, &n.type_) {
            Some(o) => o.status != n.status || (n.type_ == condition_type::PROGRESSING && o.reason != n.reason),
            None => n.status == ConditionStatus::True,
        })
        .collect();
    match changed.iter().find(|c| c.type_ == condition_type::FAILED && c.status == ConditionStatus::True) {
        Some(failure) => vec![*failure],
        None => changed,
    }
}

/// What validation concluded, once its conditions are set.
#[derive(Debug, PartialEq, Eq)]
pub enum Validated {
    /// The spec is refused; the message names every field at fault.
    Invalid(String),
    /// The spec was refused before and is valid now: the resource starts over.
    Corrected,
    Valid,
}

/// Sets `Accepted` (and, for a refused spec, `Failed`, `Progressing` and `Ready`) from the
/// problems validation found.
pub fn apply_validation(
    conditions: &mut Vec<Condition>,
    errors: &[FieldError],
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> Validated {
    use ConditionStatus::{False, True};
    if !errors.is_empty() {
        let message = crate::validation::describe(errors);
        for (type_, status) in [
            (condition_type::ACCEPTED, False),
            (condition_type::PROGRESSING, False),
            (condition_type::READY, False),
            (condition_type::FAILED, True),
        ] {
            set(conditions, Desired { type_, status, reason: "Invalid", message: message.clone() }, generation, now);
        }
        return Validated::Invalid(message);
    }
    let was_refused = get(conditions, condition_type::ACCEPTED).is_some_and(|c| c.status == False);
    let valid = |type_, status| Desired { type_, status, reason: "Valid", message: "The spec is valid.".to_string() };
    set(conditions, valid(condition_type::ACCEPTED, True), generation, now);
    if was_refused {
        set(conditions, valid(condition_type::FAILED, False), generation, now);
        return Validated::Corrected;
    }
    Validated::Valid
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(secs).unwrap()
    }

    fn desired(status: ConditionStatus, reason: &str) -> Desired<'_> {
        Desired { type_: "Ready", status, reason, message: format!("because {reason}") }
    }

    #[test]
    fn transition_time_changes_only_with_status() {
        let mut conds = Vec::new();
        set(&mut conds, desired(ConditionStatus::False, "Pending"), Some(1), at(100));
        set(&mut conds, desired(ConditionStatus::False, "Waiting"), Some(2), at(200));
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0].last_transition_time, "1970-01-01T00:01:40Z");
        assert_eq!(conds[0].reason, "Waiting");
        assert_eq!(conds[0].observed_generation, Some(2));
        set(&mut conds, desired(ConditionStatus::True, "Succeeded"), Some(2), at(300));
        assert_eq!(conds[0].last_transition_time, "1970-01-01T00:05:00Z");
    }

    #[test]
    fn conditions_are_kept_sorted_by_type() {
        let mut conds = Vec::new();
        for t in ["Ready", "Accepted", "Failed"] {
            set(
                &mut conds,
                Desired { type_: t, status: ConditionStatus::False, reason: "X", message: String::new() },
                None,
                at(0),
            );
        }
        let types: Vec<_> = conds.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Accepted", "Failed", "Ready"]);
    }

    #[test]
    fn each_change_is_a_transition_but_a_failure_stands_alone() {
        let mut old = Vec::new();
        set(&mut old, desired(ConditionStatus::False, "Pending"), None, at(0));
        assert!(transitions(&old, &old).is_empty());
        let mut accepted = old.clone();
        set(
            &mut accepted,
            Desired { type_: "Accepted", status: ConditionStatus::True, reason: "Valid", message: String::new() },
            None,
            at(1),
        );
        set(&mut accepted, desired(ConditionStatus::False, "Waiting"), None, at(1));
        let types: Vec<_> = transitions(&old, &accepted).iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Accepted"], "Ready stayed False: no news");
        let progressing =
            |reason| Desired { type_: "Progressing", status: ConditionStatus::True, reason, message: String::new() };
        let mut stepping = accepted.clone();
        set(&mut stepping, progressing("Stopping"), None, at(2));
        let mut next = stepping.clone();
        set(&mut next, progressing("Snapshotting"), None, at(3));
        let types: Vec<_> = transitions(&stepping, &next).iter().map(|c| c.reason.as_str()).collect();
        assert_eq!(types, ["Snapshotting"], "each step is news");
        let mut invalid = Vec::new();
        let error = FieldError { field: "spec.x".into(), problem: "bad".into() };
        assert_eq!(apply_validation(&mut invalid, &[error], None, at(1)), Validated::Invalid("spec.x: bad".into()));
        let failed = transitions(&old, &invalid);
        assert_eq!(failed.len(), 1);
        assert_eq!((failed[0].type_.as_str(), failed[0].status), ("Failed", ConditionStatus::True));
    }
}
