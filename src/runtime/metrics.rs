//! Prometheus metrics of the operator, served on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: String,
    pub error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub service: String,
    /// The HTTP status, or `error` when no answer came.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    pub step: String,
}

/// Every metric the operator exports, registered once at start-up.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<KindLabels, Counter>,
    reconcile_errors: Family<ErrorLabels, Counter>,
    reconcile_duration: Family<KindLabels, Histogram>,
    leader: Gauge,
    openstack_requests: Family<RequestLabels, Counter>,
    migrations: Family<ResultLabels, Counter>,
    step_duration: Family<StepLabels, Histogram>,
    downtime: Histogram,
    kubernetes_writes: Family<KindLabels, Counter>,
    drains: Family<PhaseLabels, Counter>,
    drain_migrations: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("osmo");
        let reconciles = Family::<KindLabels, Counter>::default();
        registry.register("reconciles", "Reconciliations run, by kind", reconciles.clone());
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Reconciliations that returned an error, by kind and error",
            reconcile_errors.clone(),
        );
        let reconcile_duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconciliation, by kind",
            reconcile_duration.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader lease and runs the controllers",
            leader.clone(),
        );
        let openstack_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "openstack_requests",
            "OpenStack API requests, by service and HTTP status",
            openstack_requests.clone(),
        );
        let migrations = Family::<ResultLabels, Counter>::default();
        registry.register("migrations", "InstanceMigrations ended, by result", migrations.clone());
        let step_duration = Family::<StepLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.05, 2.0, 16))
        });
        registry.register(
            "migration_step_duration_seconds",
            "Time a migration step took, by step",
            step_duration.clone(),
        );
        let downtime = Histogram::new(exponential_buckets(0.25, 2.0, 14));
        registry.register(
            "migration_downtime_seconds",
            "Time from a source's stop to its replacement verified with its addresses",
            downtime.clone(),
        );
        let kubernetes_writes = Family::<KindLabels, Counter>::default();
        registry.register(
            "kubernetes_writes",
            "Writes to the Kubernetes API (status, finalizers, events), by kind of object",
            kubernetes_writes.clone(),
        );
        let drains = Family::<PhaseLabels, Counter>::default();
        registry.register(
            "drains",
            "ComputeNodeDrains that reached Drained, Retired, Blocked or Failed, by phase",
            drains.clone(),
        );
        let drain_migrations = Counter::default();
        registry.register("drain_migrations_created", "InstanceMigrations created by drains", drain_migrations.clone());
        Self {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            leader,
            openstack_requests,
            migrations,
            step_duration,
            downtime,
            kubernetes_writes,
            drains,
            drain_migrations,
        }
    }
}

impl Metrics {
    /// Counts a reconciliation and measures it until the returned guard is dropped.
    pub fn reconcile_started(&self, kind: &str) -> ReconcileTimer<'_> {
        let labels = KindLabels { kind: kind.to_string() };
        self.reconciles.get_or_create(&labels).inc();
        ReconcileTimer { metrics: self, labels, start: Instant::now() }
    }

    pub fn reconcile_failed(&self, kind: String, error: &'static str) {
        self.reconcile_errors.get_or_create(&ErrorLabels { kind, error }).inc();
    }

    pub fn openstack_request(&self, service: &str, status: u16) {
        let status = if status == 0 { "error".to_string() } else { status.to_string() };
        self.openstack_requests.get_or_create(&RequestLabels { service: service.to_string(), status }).inc();
    }

    pub fn drain_reached(&self, phase: &str) {
        self.drains.get_or_create(&PhaseLabels { phase: phase.to_string() }).inc();
    }

    pub fn drain_migration_created(&self) {
        self.drain_migrations.inc();
    }

    pub fn kubernetes_write(&self, kind: &str) {
        self.kubernetes_writes.get_or_create(&KindLabels { kind: kind.to_string() }).inc();
    }

    pub fn migration_ended(&self, result: &str) {
        self.migrations.get_or_create(&ResultLabels { result: result.to_string() }).inc();
    }

    pub fn migration_step(&self, step: &str, seconds: f64) {
        self.step_duration.get_or_create(&StepLabels { step: step.to_string() }).observe(seconds);
    }

    pub fn migration_downtime(&self, seconds: f64) {
        self.downtime.observe(seconds);
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// Records the duration of one reconciliation when dropped.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    labels: KindLabels,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics.reconcile_duration.get_or_create(&self.labels).observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_counts_errors_and_durations_per_kind() {
        let m = Metrics::default();
        drop(m.reconcile_started("InstanceMigration"));
        m.reconcile_failed("InstanceMigration".into(), "kube");
        m.set_leader(true);
        let text = m.encode();
        assert!(text.contains(r#"osmo_reconciles_total{kind="InstanceMigration"} 1"#), "{text}");
        assert!(text.contains(r#"osmo_reconcile_errors_total{kind="InstanceMigration",error="kube"} 1"#), "{text}");
        assert!(text.contains(r#"osmo_reconcile_duration_seconds_count{kind="InstanceMigration"} 1"#), "{text}");
        assert!(text.contains("osmo_leader 1"), "{text}");
    }
}
