//! When a failed reconcile is tried again: soon after one failure, later after each failure in
//! a row, so that a resource that keeps failing (a cloud down, a Secret gone) costs little, and
//! at once back to soon after a success.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The retry delays of failed reconciles, per resource.
#[derive(Debug, Default)]
pub struct Backoff {
    /// Failures in a row, by resource.
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// The wait after the first failure; it doubles with each failure in a row.
    const FIRST: Duration = Duration::from_secs(1);
    /// The wait never grows past this: a resource that recovers on its own is seen soon enough.
    const MAX: Duration = Duration::from_secs(60);

    /// Counts a failure of `resource`; how long to wait before trying it again.
    pub fn failed(&self, resource: &str) -> Duration {
        let mut failures = self.failures.lock().expect("never poisoned");
        let count = failures.entry(resource.to_string()).or_default();
        *count = count.saturating_add(1);
        let factor = 2u32.saturating_pow(*count - 1);
        Self::FIRST.saturating_mul(factor).min(Self::MAX)
    }

    /// `resource` was reconciled: its next failure waits as little as a first one.
    pub fn succeeded(&self, resource: &str) {
        self.failures.lock().expect("never poisoned").remove(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_in_a_row_wait_longer_up_to_a_cap_and_a_success_starts_over() {
        let backoff = Backoff::default();
        let s = Duration::from_secs;
        let waits: Vec<Duration> = (0..8).map(|_| backoff.failed("a")).collect();
        assert_eq!(waits, [s(1), s(2), s(4), s(8), s(16), s(32), s(60), s(60)]);
        for _ in 0..100 {
            assert_eq!(backoff.failed("a"), s(60), "capped, however many failures");
        }
        // Each resource backs off on its own.
        assert_eq!(backoff.failed("b"), s(1));
        backoff.succeeded("a");
        assert_eq!(backoff.failed("a"), s(1));
        assert_eq!(backoff.failed("b"), s(2));
    }
}
