//! Kubernetes events go out in order from one background task. They tell people what
//! happened and decide nothing, so a reconcile hands them over and goes on instead of waiting
//! for the API server (a migration's next OpenStack call comes that much sooner).

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, Recorder};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;

/// Events waiting to go out, at most: past this, a reconcile waits for room (memory stays
/// bounded however many resources change at once).
const QUEUE_LENGTH: usize = 1024;

/// Where reconciles hand their events.
#[derive(Clone)]
pub struct Events {
    queue: mpsc::Sender<(Event, ObjectReference)>,
    metrics: Arc<Metrics>,
}

/// The task that publishes the events; it ends once stopped and every queued event is out.
pub struct Publisher {
    task: JoinHandle<()>,
    stop: CancellationToken,
}

impl Events {
    pub fn start(recorder: Recorder, metrics: Arc<Metrics>) -> (Events, Publisher) {
        let (queue, mut queued) = mpsc::channel::<(Event, ObjectReference)>(QUEUE_LENGTH);
        let stop = CancellationToken::new();
        let stopped = stop.clone();
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
        (Events { queue, metrics }, Publisher { task, stop })
    }

    /// Queues `event` about `on`; it counts as a Kubernetes write from now, so that a write's
    /// events are counted with it.
    pub async fn publish(&self, event: Event, on: ObjectReference) {
        self.metrics.kubernetes_write("Event");
        if self.queue.send((event, on)).await.is_err() {
            tracing::warn!("events are no longer published (shutting down)");
        }
    }
}

impl Publisher {
    /// Publishes what is queued, then ends (giving up after `limit`).
    pub async fn finish(self, limit: std::time::Duration) {
        self.stop.cancel();
        if tokio::time::timeout(limit, self.task).await.is_err() {
            tracing::warn!("gave up publishing the last events");
        }
    }
}
