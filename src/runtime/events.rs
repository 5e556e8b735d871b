//! Kubernetes events go out from background tasks, each object's in order. They tell people
//! what happened and decide nothing, so a reconcile hands them over and goes on instead of
//! waiting for the API server (a migration's next OpenStack call comes that much sooner).
//! Several lanes publish side by side: one task, a request at a time, held a thousand
//! migrations back (the scale benchmark saw reconciles wait for room in its queue), and an
//! object's events all take the lane of its name, so they keep their order.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, Recorder};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;

/// Events waiting to go out, at most, in all lanes: past this, a reconcile waits for room
/// (memory stays bounded however many resources change at once).
const QUEUE_LENGTH: usize = 1024;
/// Events published at once, each lane one at a time.
const LANES: usize = 8;

/// Where reconciles hand their events.
#[derive(Clone)]
pub struct Events {
    lanes: Vec<mpsc::Sender<(Event, ObjectReference)>>,
    metrics: Arc<Metrics>,
}

/// The tasks that publish the events; they end once stopped and every queued event is out.
pub struct Publisher {
    tasks: Vec<JoinHandle<()>>,
    stop: CancellationToken,
}

impl Events {
    pub fn start(recorder: Recorder, metrics: Arc<Metrics>) -> (Events, Publisher) {
        let stop = CancellationToken::new();
        let (lanes, tasks) = (0..LANES).map(|_| lane(recorder.clone(), stop.clone())).unzip();
        (Events { lanes, metrics }, Publisher { tasks, stop })
    }

    /// Queues `event` about `on`; it counts as a Kubernetes write from now, so that a write's
    /// events are counted with it.
    pub async fn publish(&self, event: Event, on: ObjectReference) {
        self.metrics.kubernetes_write("Event");
        let lane = &self.lanes[lane_of(&on)];
        if lane.send((event, on)).await.is_err() {
            tracing::warn!("events are no longer published (shutting down)");
        }
    }
}

/// The lane of an object's events: always the same one.
fn lane_of(on: &ObjectReference) -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (&on.namespace, &on.name, &on.uid).hash(&mut hasher);
    (hasher.finish() % LANES as u64) as usize
}

/// One lane: its queue, and the task that publishes what it holds in order.
fn lane(recorder: Recorder, stopped: CancellationToken) -> (mpsc::Sender<(Event, ObjectReference)>, JoinHandle<()>) {
    let (queue, mut queued) = mpsc::channel::<(Event, ObjectReference)>(QUEUE_LENGTH / LANES);
    let task = tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                biased;
                next = queued.recv() => next,
                () = stopped.cancelled() => {
                    // Whatever is queued still goes out; nothing more is taken.
                    queued.close();
                    queued.recv().await
                }
            };
            let Some((event, reference)) = next else { break };
            if let Err(error) = recorder.publish(&event, &reference).await {
                tracing::warn!(%error, object = ?reference.name, reason = %event.reason, "could not publish event");
            }
        }
    });
    (queue, task)
}

impl Publisher {
    /// Publishes what is queued, then ends (giving up after `limit`).
    pub async fn finish(self, limit: std::time::Duration) {
        self.stop.cancel();
        if tokio::time::timeout(limit, futures::future::join_all(self.tasks)).await.is_err() {
            tracing::warn!("gave up publishing the last events");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(name: &str) -> ObjectReference {
        ObjectReference {
            namespace: Some("ns".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        }
    }

    #[test]
    fn an_objects_events_keep_one_lane_and_objects_spread_over_the_lanes() {
        assert_eq!(lane_of(&reference("web-1")), lane_of(&reference("web-1")));
        let used: std::collections::BTreeSet<usize> = (0..64).map(|i| lane_of(&reference(&format!("m{i}")))).collect();
        assert!(used.len() > LANES / 2, "64 objects in lanes {used:?}");
    }
}
