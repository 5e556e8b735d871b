//! Checks of a spec that the CRD schema cannot express (the API server here predates CEL
//! rules), each naming the field at fault. Pure: no Kubernetes or OpenStack calls.

use std::fmt;

use crate::api::{AddressMode, CloudRef, MigrationOptions, Strategy};

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the field, e.g. `spec.redeploy.image`.
    pub field: String,
    pub problem: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

/// All problems of a spec, in one message.
pub fn describe(errors: &[FieldError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

pub(crate) fn error(errors: &mut Vec<FieldError>, field: impl Into<String>, problem: impl Into<String>) {
    errors.push(FieldError { field: field.into(), problem: problem.into() });
}

/// Checks how and where a server moves; `at` is the path of the options (`spec` for an
/// InstanceMigration, `spec.migrationTemplate` for a drain).
pub fn check_migration_options(options: &MigrationOptions, source: &CloudRef, at: &str, errors: &mut Vec<FieldError>) {
    let target = &options.target;
    let other_cloud = target.cloud.as_ref().is_some_and(|c| c != source);
    if target.availability_zone.is_none() && target.host.is_none() && !other_cloud {
        error(
            errors,
            format!("{at}.target"),
            "names no destination: set availabilityZone, host, or a cloud other than the source, so the new server cannot land in the old environment",
        );
    }
    match (options.strategy, &options.redeploy) {
        (Strategy::Redeploy, None) => {
            error(errors, format!("{at}.redeploy.image"), "required when strategy is Redeploy")
        }
        (Strategy::Snapshot, Some(_)) => error(errors, format!("{at}.redeploy"), "only used when strategy is Redeploy"),
        _ => {}
    }
    if options.addresses.preserve_fixed_ips && options.addresses.mode != AddressMode::Neutron {
        error(errors, format!("{at}.addresses.preserveFixedIPs"), "only supported with addresses.mode Neutron");
    }
    if options.addresses.preserve_fixed_ips && options.strategy == Strategy::Redeploy {
        // Redeploy boots the replacement while the source still holds its addresses.
        error(
            errors,
            format!("{at}.addresses.preserveFixedIPs"),
            "not possible with strategy Redeploy, whose replacement boots while the source still holds its fixed IPs and MACs",
        );
    }
    for (kind, map) in [("flavors", &options.mappings.flavors), ("networks", &options.mappings.networks)] {
        for (from, to) in map {
            if from.trim().is_empty() || to.trim().is_empty() {
                error(errors, format!("{at}.mappings.{kind}[{from:?}]"), "keys and values must not be empty");
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::{AddressSpec, MigrationTarget, RedeploySpec};

    pub fn cloud(name: &str) -> CloudRef {
        CloudRef { secret_name: "clouds".into(), cloud: name.into() }
    }

    pub fn options_to_zone(zone: &str) -> MigrationOptions {
        serde_json::from_value(serde_json::json!({"target": {"availabilityZone": zone}})).unwrap()
    }

    fn check(options: &MigrationOptions) -> Vec<String> {
        let mut errors = Vec::new();
        check_migration_options(options, &cloud("old"), "spec", &mut errors);
        errors.iter().map(|e| e.field.clone()).collect()
    }

    #[test]
    fn defaults_with_a_zone_are_valid() {
        let options = options_to_zone("icehouse");
        assert_eq!(options.strategy, Strategy::Snapshot);
        assert!(options.stop_source);
        assert!(check(&options).is_empty());
    }

    #[test]
    fn a_target_must_leave_the_old_environment() {
        let mut options = options_to_zone("x");
        options.target = MigrationTarget::default();
        assert_eq!(check(&options), ["spec.target"]);
        options.target.cloud = Some(cloud("old"));
        assert_eq!(check(&options), ["spec.target"], "the source cloud itself is no destination");
        options.target.cloud = Some(cloud("new"));
        assert!(check(&options).is_empty());
    }

    #[test]
    fn redeploy_needs_an_image_and_snapshot_refuses_one() {
        let mut options = options_to_zone("icehouse");
        options.strategy = Strategy::Redeploy;
        assert_eq!(check(&options), ["spec.redeploy.image"]);
        options.redeploy = Some(RedeploySpec { image: "cirros".into() });
        assert!(check(&options).is_empty());
        options.strategy = Strategy::Snapshot;
        assert_eq!(check(&options), ["spec.redeploy"]);
    }

    #[test]
    fn fixed_ips_are_kept_only_with_neutron_and_a_snapshot() {
        let mut options = options_to_zone("icehouse");
        options.addresses = AddressSpec { mode: AddressMode::NovaNetwork, preserve_fixed_ips: true };
        assert_eq!(check(&options), ["spec.addresses.preserveFixedIPs"]);
        options.addresses = AddressSpec { mode: AddressMode::Neutron, preserve_fixed_ips: true };
        options.strategy = Strategy::Redeploy;
        options.redeploy = Some(RedeploySpec { image: "cirros".into() });
        assert_eq!(check(&options), ["spec.addresses.preserveFixedIPs"]);
    }

    #[test]
    fn empty_mappings_are_named() {
        let mut options = options_to_zone("icehouse");
        options.mappings.networks.insert("private".into(), " ".into());
        assert_eq!(check(&options), [r#"spec.mappings.networks["private"]"#]);
    }

    #[test]
    fn all_problems_are_reported_together() {
        let mut options = options_to_zone("icehouse");
        options.target = MigrationTarget::default();
        options.strategy = Strategy::Redeploy;
        let mut errors = Vec::new();
        check_migration_options(&options, &cloud("old"), "spec.migrationTemplate", &mut errors);
        assert_eq!(
            describe(&errors),
            "spec.migrationTemplate.target: names no destination: set availabilityZone, host, or a cloud other than the source, so the new server cannot land in the old environment; spec.migrationTemplate.redeploy.image: required when strategy is Redeploy"
        );
    }
}
