//! The client through a fault-injecting proxy in front of the real services: reads survive
//! 5xx, cut connections and delays; a create whose answer is lost finds what it made, and one
//! that made nothing is left to its caller to send again.

use std::time::Duration;

use osmo::openstack::Session;
use osmo::openstack::clouds;
use osmo::openstack::compute::NetworkAttachment;

use crate::fault_proxy::{FaultProxy, FaultRates};
use crate::openstack::{MARK, clouds_yaml, fixtures, port, server_spec, unique, until, wait_gone, wait_status};

/// Keystone, Nova, Glance and Neutron behind the proxy, and an admin session through it.
fn through_proxy(seed: u64) -> (FaultProxy, Session) {
    let ports = [
        ("OSMO_KEYSTONE_PORT", 5000),
        ("OSMO_NOVA_PORT", 8774),
        ("OSMO_GLANCE_PORT", 9292),
        ("OSMO_NEUTRON_PORT", 9696),
    ]
    .map(|(variable, default)| port(variable, default));
    let proxy = FaultProxy::start(&ports, seed);
    let yaml = proxy.url_for(&clouds_yaml());
    let session = Session::new(clouds::parse(&yaml, "admin").unwrap(), None).unwrap();
    (proxy, session)
}

#[tokio::test]
async fn reads_succeed_through_errors_resets_and_delays() {
    let (proxy, s) = through_proxy(7);
    proxy.set_rates(FaultRates {
        unavailable: 0.2,
        reset: 0.1,
        delayed: 0.1,
        delay: Duration::from_millis(300),
        lost_answer: 0.0,
    });
    for _ in 0..15 {
        assert!(s.compute().find_flavor("m1.tiny").await.unwrap().is_some());
        assert!(!s.image().images_named("base").await.unwrap().is_empty());
        assert!(s.network().find_network("private").await.unwrap().is_some());
        let hosts: Vec<String> =
            s.compute().compute_services(None).await.unwrap().into_iter().map(|s| s.host).collect();
        assert!(hosts.iter().any(|h| h == "havana-1") && hosts.iter().any(|h| h == "icehouse-1"), "{hosts:?}");
    }
    let counts = proxy.counts();
    assert!(counts.unavailable > 0 && counts.reset > 0 && counts.delayed > 0, "no faults were injected: {counts:?}");
}

/// Sends a create again after each transient failure, as a migration does (each resend its own
/// decision): the client itself never sends a create twice.
async fn sent_until_answered<T>(mut create: impl AsyncFnMut() -> Result<T, osmo::openstack::Error>) -> T {
    for _ in 0..20 {
        match create().await {
            Ok(made) => return made,
            Err(e) if e.is_transient() => continue,
            Err(e) => panic!("create failed for good: {e}"),
        }
    }
    panic!("create failed 20 times in a row")
}

#[tokio::test]
async fn creates_whose_answer_is_lost_make_no_twins() {
    let (proxy, s) = through_proxy(11);
    let f = fixtures(&s).await;
    proxy.set_rates(FaultRates { lost_answer: 0.35, unavailable: 0.1, ..Default::default() });
    let mut made = Vec::new();
    for _ in 0..4 {
        let name = unique("twin");
        let spec = server_spec(
            &name,
            &f,
            "havana",
            vec![NetworkAttachment::Network { id: f.private.clone(), fixed_ip: None }],
        );
        made.push((name, sent_until_answered(async || s.compute().create_server(&spec).await).await));
    }
    let mut images = Vec::new();
    for (name, id) in &made[..2] {
        wait_status(&s, id, "ACTIVE").await;
        let meta = [(MARK.to_string(), name.clone())].into();
        images.push((
            name.clone(),
            sent_until_answered(async || s.compute().create_image(id, name, &meta, MARK).await).await,
        ));
    }
    let lost = proxy.counts().lost_answer;
    proxy.set_rates(FaultRates::default());
    assert!(lost > 0, "no answer was lost: {:?}", proxy.counts());

    for (name, id) in &made {
        let servers = s.compute().servers_named(name).await.unwrap();
        let ids: Vec<_> = servers.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, [id.as_str()], "server {name}: twins or a wrong id");
    }
    for (name, image) in &images {
        let found = until(Duration::from_secs(60), "snapshots to be listed", || async {
            let all = s.image().images_with_property(MARK, name).await.unwrap();
            (!all.is_empty()).then_some(all)
        })
        .await;
        let ids: Vec<_> = found.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, [image.as_str()], "snapshot of {name}: twins or a wrong id");
    }
    for (_, id) in &made {
        s.compute().delete_server(id).await.unwrap();
    }
    for (_, id) in &made {
        wait_gone(&s, id).await;
    }
    for (_, image) in &images {
        s.image().delete(image).await.unwrap();
    }
}
