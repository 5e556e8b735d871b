//! What the replacement keeps of the source: server attributes, the server group, the power
//! state; and what Recording refuses when it could not be kept.

use super::*;
use crate::api::{NotKept, RecordedServerGroup};
use crate::openstack::compute::{BOOT_WITH_HOSTNAME, NEWEST_SUPPORTED};
use crate::openstack::session::Microversion;

/// `web-1` with every server attribute set, in a group, seen through the newest microversion.
fn attributed_cloud(status: &str, policy: &str, others: &[&str]) -> Cloud {
    let mut record = web_server(status);
    record.description = Some("front end".into());
    record.tags = vec!["blue".into(), "web".into()];
    record.config_drive = true;
    record.hostname = Some("web-one".into());
    record.server_group = Some(RecordedServerGroup {
        id: "group-1".into(),
        name: "web".into(),
        policy: policy.into(),
        other_members: others.iter().map(|m| m.to_string()).collect(),
    });
    let mut cloud = Cloud::new(record);
    cloud.boot = Ok(BootBase { server_group_id: Some("group-1".into()), ..cloud.boot.unwrap() });
    cloud.target_view.microversion = Some(NEWEST_SUPPORTED);
    cloud
}

fn boots(run: &Run) -> Vec<Replacement> {
    run.actions()
        .into_iter()
        .filter_map(|a| match a {
            Action::Boot(r) => Some(*r),
            _ => None,
        })
        .collect()
}

#[test]
fn the_replacement_boots_with_the_sources_attributes_and_in_its_group() {
    let mut run = Run::new(snapshot_spec(), attributed_cloud("ACTIVE", "anti-affinity", &["web-2"]));
    assert_succeeded(run.finish());
    let [replacement] = boots(&run).try_into().unwrap();
    assert_eq!(replacement.description.as_deref(), Some("front end"));
    assert_eq!(replacement.tags, ["blue", "web"]);
    assert!(replacement.config_drive);
    assert_eq!(replacement.hostname.as_deref(), Some("web-one"));
    assert_eq!(replacement.server_group.as_deref(), Some("group-1"));
    assert_eq!(run.status().not_kept, []);
}

#[test]
fn a_source_that_was_off_comes_back_off() {
    for (case, spec, cloud) in
        [("Snapshot", snapshot_spec(), web_cloud("SHUTOFF")), ("Redeploy", redeploy_spec(), redeploy_cloud("SHUTOFF"))]
    {
        let mut run = Run::new(spec, cloud);
        let done = run.finish().clone();
        assert_succeeded(&done);
        assert_eq!(done.target.as_ref().map(|t| t.status.as_str()), Some("SHUTOFF"), "{case}");
        let actions = run.actions();
        let stop = actions.iter().position(|a| matches!(a, Action::StopTarget { .. }));
        let moved = actions.iter().position(|a| matches!(a, Action::AssociateFloatingIp { .. }));
        assert!(stop.is_some() && moved < stop, "{case}: stopped once its addresses moved: {:?}", run.log);
        if case == "Redeploy" {
            // The source goes only once its replacement is verified, off.
            assert!(actions.iter().position(|a| matches!(a, Action::DeleteSource { .. })) > stop, "{:?}", run.log);
        }
    }
    // A running source's replacement is not stopped.
    let mut running = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    assert_succeeded(running.finish());
    assert!(!running.actions().iter().any(|a| matches!(a, Action::StopTarget { .. })));
}

#[test]
fn a_replacement_stopping_is_waited_for_and_one_that_runs_on_is_stopped_once() {
    let mut run = Run::new(snapshot_spec(), web_cloud("SHUTOFF"));
    run.until(Verifying);
    // Nova is still powering it off: no second stop, another look.
    let target = run.cloud.target.as_mut().unwrap();
    target.status = "ACTIVE".into();
    target.task_state = Some("powering-off".into());
    let waiting = run.decide();
    assert_eq!((waiting.status.phase, waiting.action), (Verifying, None));
    assert!(waiting.requeue.is_some());
}

#[test]
fn a_member_of_an_affinity_group_is_refused_while_others_stay_behind() {
    let refused = Run::new(snapshot_spec(), attributed_cloud("ACTIVE", "affinity", &["web-2"])).step();
    assert_eq!(refused.action, None);
    assert_failed(&refused.status, "ServerGroupAffinity");
    assert!(failure_message(&refused.status).contains("other members (web-2)"), "{}", failure_message(&refused.status));
    // Alone in its group, it moves (a snapshot deletes the source before the boot)...
    assert_succeeded(Run::new(snapshot_spec(), attributed_cloud("ACTIVE", "affinity", &[])).finish());
    // ... but a redeploy boots while the source still holds the group to its host.
    let mut redeploy = attributed_cloud("ACTIVE", "affinity", &[]);
    redeploy.boot = Ok(BootBase { image_id: Some(REDEPLOY_IMAGE_ID.into()), ..redeploy.boot.unwrap() });
    assert_failed(&Run::new(redeploy_spec(), redeploy).step().status, "ServerGroupAffinity");
}

#[test]
fn what_the_targets_microversion_cannot_take_is_refused_or_listed_as_not_kept() {
    // Tags need 2.52 to boot with: refused before anything changes.
    let mut old = attributed_cloud("ACTIVE", "anti-affinity", &[]);
    old.target_view.microversion = Some(Microversion(2, 47));
    let refused = Run::new(snapshot_spec(), old.clone()).step();
    assert_failed(&refused.status, "AttributeNotKept");
    assert!(failure_message(&refused.status).contains("tags"), "{}", failure_message(&refused.status));

    // A hostname before 2.90 is derived from the name: listed, and not sent.
    old.target_view.microversion = Some(Microversion(BOOT_WITH_HOSTNAME.0, BOOT_WITH_HOSTNAME.1 - 1));
    let mut run = Run::new(snapshot_spec(), old);
    assert_succeeded(run.finish());
    assert_eq!(run.status().not_kept.iter().map(|n: &NotKept| n.attribute.as_str()).collect::<Vec<_>>(), ["hostname"]);
    assert_eq!(boots(&run)[0].hostname, None);
    assert_eq!(boots(&run)[0].tags, ["blue", "web"]);
}

#[test]
fn user_data_the_credentials_cannot_read_is_refused_unless_its_loss_is_accepted() {
    let mut cloud = web_cloud("ACTIVE");
    cloud.recording.as_mut().unwrap().user_data_unreadable = true;
    let refused = Run::new(snapshot_spec(), cloud.clone()).step();
    assert_failed(&refused.status, "UserDataUnknown");
    let message = failure_message(&refused.status);
    assert!(message.contains("spec.acceptUnreadableUserData") && message.contains("Nothing was changed"), "{message}");

    let mut run = Run::new(spec(json!({"acceptUnreadableUserData": true})), cloud);
    assert_succeeded(run.finish());
    let not_kept: Vec<&str> = run.status().not_kept.iter().map(|n: &NotKept| n.attribute.as_str()).collect();
    assert_eq!(not_kept, ["user_data"]);
    // Nothing to boot with: no Secret is named.
    assert_eq!(run.status().source.as_ref().unwrap().user_data_secret, None);
}

#[test]
fn a_target_flavor_of_the_same_name_but_other_sizes_is_refused_unless_mapped() {
    let mut cloud = web_cloud("ACTIVE");
    let size = cloud.recording.as_mut().unwrap().flavor_size.as_mut().unwrap();
    size.vcpus = Some(2);
    size.swap_mb = Some(0);
    size.extra_specs = Some(BTreeMap::from([("hw:cpu_policy".into(), "dedicated".into())]));
    cloud.target_view.flavor_vcpus = 2;
    cloud.target_view.flavor_extra_specs = Some(BTreeMap::new());
    let refused = Run::new(snapshot_spec(), cloud.clone()).step();
    assert_failed(&refused.status, "FlavorDiffers");
    let message = failure_message(&refused.status);
    assert!(
        message.contains("extra specs differ (hw:cpu_policy)") && message.contains("spec.mappings.flavors"),
        "{message}"
    );
    // Extra specs the target does not show are not compared.
    let mut hidden = cloud.clone();
    hidden.target_view.flavor_extra_specs = None;
    assert_succeeded(Run::new(snapshot_spec(), hidden).finish());
    // Mapped explicitly: the user's choice.
    let mapped = spec(json!({"mappings": {"flavors": {"m1.small": "m1.small"}}}));
    assert_succeeded(Run::new(mapped, cloud).finish());
}
