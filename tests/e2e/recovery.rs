//! A migration that fails after its source was deleted: its deletion is held, and a retry in
//! place finishes the move from the kept snapshot.

use std::time::Duration;

use osmo::migration::planner::UID_KEY;

use crate::harness::{eventually, jsonpath, kubectl, kubectl_ok};
use crate::migration::{apply_migration, assert_floating_ip_on, clean_up, server_with_floating_ip, setup};
use crate::openstack::{deleted, fixtures, session, unique};

/// What Nova's boots of servers carrying this metadata do while the file it names exists:
/// fail (a test hook of `hack/openstack/run-compute.py`).
pub(crate) const SPAWN_FAILS_WHILE: &str = "osmo_test_spawn_fails_while";

#[tokio::test]
async fn a_boot_failure_after_deletion_holds_the_resource_and_a_retry_finishes_the_move() {
    let (env, ns, _op) = setup("im-retry");
    let admin = session("admin");
    let f = fixtures(&admin).await;
    let flag = std::env::temp_dir().join(unique("osmo-e2e-boot-fails"));
    let flag_path = flag.to_str().unwrap().to_string();
    // The source boots before the flag exists; its replacement, which carries its metadata,
    // fails to boot while it does.
    let (id, fip, _) = server_with_floating_ip(&admin, &f, &[(SPAWN_FAILS_WHILE, &flag_path)]).await;
    std::fs::write(&flag, b"").unwrap();
    apply_migration(env, &ns, "web", &id, "");
    let im = |path: &str| jsonpath(env, &ns, "im/web", path);
    let failed = "{.status.conditions[?(@.type==\"Failed\")].status}";
    eventually(Duration::from_secs(240), "the migration to fail", || (im(failed) == "True").then_some(()));

    // Failed past the point of no return: the source is gone, the snapshot kept and protected,
    // the replacement in ERROR, and the status says so and how to go on.
    assert_eq!(im("{.status.conditions[?(@.type==\"Failed\")].reason}"), "BootFailed");
    assert!(deleted(&admin, &id).await, "the source still exists");
    let snapshot_id = im("{.status.snapshot.imageId}");
    let snapshot = admin.image().get(&snapshot_id).await.unwrap().expect("the snapshot is kept");
    assert_eq!((snapshot.status.as_str(), snapshot.protected), ("active", true));
    let failed_target = im("{.status.recovery.failedTarget}");
    let target = admin.compute().server(&failed_target).await.unwrap().expect("the failed replacement");
    assert_eq!(target.status, "ERROR");
    let message = im("{.status.conditions[?(@.type==\"Failed\")].message}");
    assert!(message.contains("osmo.dev/retry") && message.contains("osmo.dev/accept-loss"), "{message}");

    // Deleting it is held: its status is the only record of the snapshot and the addresses.
    kubectl_ok(env, &["-n", &ns, "delete", "im", "web", "--wait=false"]);
    let held = "{.status.conditions[?(@.type==\"DeletionHeld\")].status}";
    eventually(Duration::from_secs(60), "the deletion to be held", || (im(held) == "True").then_some(()));
    assert_eq!(im("{.status.conditions[?(@.type==\"DeletionHeld\")].reason}"), "LossNotAccepted");
    assert!(!im("{.metadata.deletionTimestamp}").is_empty());

    // The cause fixed, a retry boots a replacement from the kept snapshot and ends the move;
    // the resource then goes.
    std::fs::remove_file(&flag).unwrap();
    kubectl_ok(env, &["-n", &ns, "annotate", "im", "web", "osmo.dev/retry=1"]);
    eventually(Duration::from_secs(240), "the retried migration to end and go", || {
        (!kubectl(env, &["-n", &ns, "get", "im", "web"]).status.success()).then_some(())
    });
    let named = admin.compute().servers_named(&target.name).await.unwrap();
    let replacements: Vec<_> = named.iter().filter(|s| s.status != "DELETED").collect();
    assert_eq!(replacements.len(), 1, "{named:?}");
    let replacement = replacements[0];
    assert_ne!(replacement.id, failed_target);
    assert_eq!((replacement.status.as_str(), replacement.host.as_deref()), ("ACTIVE", Some("icehouse-1")));
    assert_eq!(replacement.image_id.as_deref(), Some(snapshot_id.as_str()), "not booted from the kept snapshot");
    assert!(replacement.metadata.contains_key(UID_KEY));
    assert_floating_ip_on(&admin, &fip, &replacement.id).await;
    assert!(deleted(&admin, &failed_target).await, "the failed replacement is left");
    assert!(
        admin.image().get(&snapshot_id).await.unwrap().is_none_or(|i| i.status == "deleted"),
        "the snapshot was not cleaned up"
    );
    clean_up(&admin, &[&replacement.id], &[&fip]).await;
}
