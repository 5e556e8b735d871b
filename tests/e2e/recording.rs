//! What would make the replacement's boot fail once the source is deleted, refused at
//! Recording before anything changes: asserted with what OpenStack itself reports.

use std::time::Duration;

use osmo::migration::planner::UID_KEY;
use osmo::openstack::compute::NetworkAttachment;
use osmo::openstack::session::Request;
use osmo::openstack::{Service, Session};
use reqwest::Method;

use crate::harness::{Env, jsonpath};
use crate::migration::{
    apply_migration, apply_migration_to, assert_untouched, clean_up, server_on_havana, setup, wait_condition,
};
use crate::openstack::{
    KeystoneAdmin, admin_in_project, extra_compute, extra_compute_up, fixtures, server_spec, session, unique, until,
    wait_status,
};

/// Waits for the migration to fail and asserts it was refused with `reason` before anything
/// changed: the source as it was, no snapshot made. Returns the message.
async fn assert_refused(admin: &Session, env: &Env, ns: &str, name: &str, source: &str, reason: &str) -> String {
    wait_condition(env, ns, name, "Failed", 60);
    let failed = |field: &str| {
        jsonpath(env, ns, &format!("im/{name}"), &format!("{{.status.conditions[?(@.type==\"Failed\")].{field}}}"))
    };
    let message = failed("message");
    assert_eq!(failed("reason"), reason, "{message}");
    assert!(message.ends_with("Nothing was changed."), "{message}");
    assert_untouched(admin, source).await;
    let uid = jsonpath(env, ns, &format!("im/{name}"), "{.metadata.uid}");
    assert!(admin.image().images_with_property(UID_KEY, &uid).await.unwrap().is_empty(), "a snapshot was made");
    message
}

#[tokio::test]
async fn a_target_zone_or_host_that_takes_no_servers_is_refused_before_anything_changes() {
    let (env, ns, _op) = setup("im-target-place");
    let admin = session("admin");
    let f = fixtures(&admin).await;
    let id = server_on_havana(&admin, &f, &[]).await;

    // A zone with no compute service: Nova would refuse the boot, after the deletion.
    apply_migration_to(env, &ns, "nowhere", &id, "{availabilityZone: e2e-nowhere}", "");
    let message = assert_refused(&admin, env, &ns, "nowhere", &id, "TargetZoneUnavailable").await;
    assert!(message.contains(r#"zone "e2e-nowhere""#), "{message}");

    // A host of another zone than the one named.
    apply_migration_to(env, &ns, "wrong-zone", &id, "{availabilityZone: icehouse, host: havana-1}", "");
    let message = assert_refused(&admin, env, &ns, "wrong-zone", &id, "TargetHostUnavailable").await;
    assert!(message.contains("havana-1 in zone \"havana\": enabled, up"), "{message}");

    // A disabled host (an extra nova-compute, so that icehouse-1 stays untouched for the others).
    let spare = unique("spare");
    let service = extra_compute_up(&admin, &spare).await;
    let compute = admin.compute();
    compute.disable_service(&service, "osmo e2e: takes no servers").await.unwrap();
    apply_migration_to(env, &ns, "disabled-host", &id, &format!("{{host: {spare}}}"), "");
    let message = assert_refused(&admin, env, &ns, "disabled-host", &id, "TargetHostUnavailable").await;
    assert!(message.contains(&format!("{spare} in zone")) && message.contains("disabled, up"), "{message}");

    extra_compute("stop", &spare);
    compute.force_down_service(&service, true).await.unwrap();
    compute.delete_service(&service).await.unwrap();
    clean_up(&admin, &[&id], &[]).await;
}

/// Makes a security group in the session's project; its ID.
async fn security_group(s: &Session, name: &str) -> String {
    let body = serde_json::json!({"security_group": {"name": name}});
    let made = s.send(Request::new(Service::Network, Method::POST, "/v2.0/security-groups").json(body)).await.unwrap();
    made.json::<serde_json::Value>().unwrap()["security_group"]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_role_quota_or_security_group_the_boot_would_fail_on_is_refused_before_anything_changes() {
    let (env, ns, _op) = setup("im-project-limits");
    let admin = session("admin");
    let f = fixtures(&admin).await;
    // A project where the admin user is only a member: the migration acts in it with that role.
    let keystone = KeystoneAdmin::login().await;
    let project = keystone.project_with_admin_as(&unique("e2e-limits"), "member").await;
    let member = admin_in_project(&project);
    let group_name = unique("e2e-sg");
    let group = security_group(&member, &group_name).await;
    let mut spec = server_spec(
        &unique("vm"),
        &f,
        "havana",
        vec![NetworkAttachment::Network { id: f.private.clone(), fixed_ip: None }],
    );
    spec.security_groups = vec![group.clone()];
    let id = member.compute().create_server(&spec).await.unwrap();
    wait_status(&member, &id, "ACTIVE").await;

    // A MAC address set on a port: admin only by Neutron's default policy.
    apply_migration(env, &ns, "mac", &id, ", addresses: {preserveFixedIPs: true}");
    let message = assert_refused(&admin, env, &ns, "mac", &id, "NotAllowed").await;
    assert!(message.contains("spec.addresses.preserveFixedIPs") && message.contains("[member"), "{message}");

    // No room for one more server in the project's quota.
    let quota = |instances: i64| serde_json::json!({"quota_set": {"instances": instances}});
    let set_quota = |instances| {
        let path = format!("/os-quota-sets/{project}");
        admin.send(Request::new(Service::Compute, Method::PUT, path).json(quota(instances)))
    };
    set_quota(1).await.unwrap();
    apply_migration(env, &ns, "quota", &id, "");
    let message = assert_refused(&admin, env, &ns, "quota", &id, "QuotaExceeded").await;
    assert!(message.contains("instances (maxTotalInstances)") && message.contains("is 1 with 1 used"), "{message}");

    // Room again, but a second group of the source's group's name.
    set_quota(10).await.unwrap();
    let twin = security_group(&member, &group_name).await;
    apply_migration(env, &ns, "twin-group", &id, "");
    let message = assert_refused(&admin, env, &ns, "twin-group", &id, "SecurityGroupAmbiguous").await;
    assert!(message.contains(&group) && message.contains(&twin), "{message}");

    clean_up(&admin, &[&id], &[]).await;
    // Neutron refuses to delete a group while the deleted server's port still holds it.
    for sg in [&group, &twin] {
        let path = format!("/v2.0/security-groups/{sg}");
        until(Duration::from_secs(60), "the security group to be deleted", || async {
            member.send(Request::new(Service::Network, Method::DELETE, path.clone())).await.ok()
        })
        .await;
    }
    keystone.delete_project(&project).await;
}
