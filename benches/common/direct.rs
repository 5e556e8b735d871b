//! What the benchmarks that compare the operator with a direct REST client share: the servers
//! both move, the direct client's moves, and the operator's counters.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use osmo::openstack::compute::{NetworkAttachment, Server, ServerCreate};
use osmo::openstack::{Session, clouds};

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// A session of the cloud `admin` in `clouds_file`, and the count of the requests it makes.
pub fn counted_session(clouds_file: &str) -> (Session, Arc<AtomicUsize>) {
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    let session = Session::new(clouds::parse(&std::fs::read_to_string(clouds_file).unwrap(), "admin").unwrap(), None)
        .unwrap()
        .with_observer(Arc::new(move |_, _| {
            counter.fetch_add(1, Ordering::Relaxed);
        }));
    (session, requests)
}

/// Deletes what a run left: the replacement servers and the floating IPs.
pub async fn delete_servers_and_floating_ips(admin: &Session, servers: &[String], fips: &[String]) {
    for id in servers {
        admin.compute().delete_server(id).await.unwrap();
    }
    for fip in fips {
        admin.network().delete_floating_ip(fip).await.unwrap();
    }
}

/// How often the direct client looks at OpenStack.
pub const DIRECT_POLL: Duration = Duration::from_millis(50);

/// Polls `done` every [`DIRECT_POLL`] until it holds.
pub async fn direct_wait<F: std::future::Future<Output = bool>>(mut done: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done().await {
        assert!(Instant::now() < deadline, "the direct migration is stuck");
        tokio::time::sleep(DIRECT_POLL).await;
    }
}

/// Servers named `names`, booted in the availability zone `zone` or on the host `host`, each
/// with a floating IP (untimed preparation); returns their IDs and the floating IPs'.
pub async fn servers_with_floating_ips(
    admin: &Session,
    names: &[String],
    zone: Option<&str>,
    host: Option<&str>,
) -> (Vec<String>, Vec<String>) {
    let flavor = admin.compute().find_flavor("m1.tiny").await.unwrap().unwrap().id;
    let image = admin.image().images_named("base").await.unwrap().pop().unwrap().id;
    let private = admin.network().find_network("private").await.unwrap().unwrap().id;
    let public = admin.network().find_network("public").await.unwrap().unwrap().id;
    let mut servers = Vec::new();
    for name in names {
        let spec = ServerCreate {
            name: name.clone(),
            image_id: image.clone(),
            flavor_id: flavor.clone(),
            metadata: BTreeMap::from([("bench".to_string(), name.clone())]),
            idempotency_key: "bench".into(),
            availability_zone: zone.map(str::to_string),
            host: host.map(str::to_string),
            networks: vec![NetworkAttachment::Network { id: private.clone(), fixed_ip: None }],
            ..Default::default()
        };
        servers.push(admin.compute().create_server(&spec).await.unwrap());
    }
    let mut fips = Vec::new();
    for id in &servers {
        let deadline = Instant::now() + Duration::from_secs(120);
        while admin.compute().server(id).await.unwrap().is_none_or(|s| s.status != "ACTIVE") {
            assert!(Instant::now() < deadline, "server {id} did not boot");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let port = admin.network().ports(&[("device_id", id)]).await.unwrap().pop().unwrap();
        let fip = admin.network().create_floating_ip(&public, None).await.unwrap();
        admin.network().update_floating_ip(&fip.id, Some(&port.id), None).await.unwrap();
        fips.push(fip.id);
    }
    (servers, fips)
}

/// Moves `server` (with one floating IP) to icehouse as a minimal REST client would: record,
/// stop, snapshot, delete, boot from the snapshot, move the floating IP, delete the snapshot.
/// Returns the wall time and the replacement's id.
pub async fn direct_migration(os: &Session, server: &str, name: &str) -> (f64, String) {
    let start = Instant::now();
    let (compute, network, image) = (os.compute(), os.network(), os.image());
    let source = compute.server(server).await.unwrap().unwrap();
    let port = network.ports(&[("device_id", server)]).await.unwrap().pop().unwrap();
    let fip = network.floating_ips(&[("port_id", &port.id)]).await.unwrap().pop().unwrap();
    let wanted_flavor = source.flavor.original_name.or(source.flavor.id).unwrap();
    let flavor = compute.find_flavor(&wanted_flavor).await.unwrap().unwrap().id;
    let settled = |s: Option<Server>, wanted: &str| s.is_some_and(|s| s.status == wanted && s.task_state.is_none());
    compute.stop_server(server).await.unwrap();
    direct_wait(|| async { settled(compute.server(server).await.unwrap(), "SHUTOFF") }).await;
    let metadata = BTreeMap::from([("bench".to_string(), name.to_string())]);
    let snapshot = compute.create_image(server, name, &metadata, "bench").await.unwrap();
    direct_wait(|| async { image.get(&snapshot).await.unwrap().is_some_and(|i| i.status == "active") }).await;
    compute.delete_server(server).await.unwrap();
    direct_wait(|| async { compute.server(server).await.unwrap().is_none_or(|s| s.status == "DELETED") }).await;
    let spec = ServerCreate {
        name: name.to_string(),
        image_id: snapshot.clone(),
        flavor_id: flavor,
        security_groups: vec!["default".into()],
        metadata,
        idempotency_key: "bench".into(),
        availability_zone: Some("icehouse".into()),
        networks: vec![NetworkAttachment::Network { id: port.network_id.clone(), fixed_ip: None }],
        ..Default::default()
    };
    let replacement = compute.create_server(&spec).await.unwrap();
    direct_wait(|| async { settled(compute.server(&replacement).await.unwrap(), "ACTIVE") }).await;
    let new_port = network.ports(&[("device_id", &replacement)]).await.unwrap().pop().unwrap();
    network.update_floating_ip(&fip.id, Some(&new_port.id), None).await.unwrap();
    image.delete(&snapshot).await.unwrap();
    (start.elapsed().as_secs_f64(), replacement)
}
