#!/usr/bin/env bash
# Runs every test: formatting, lints, unit tests, the CRD drift check, the chart lint, and the
# end-to-end tests against a real kube-apiserver with etcd (started here, or reused when a
# healthy one is already running; one started here is stopped at the end unless
# OSMO_KEEP_ENV=1).
source "$(dirname "$0")/lib.sh"
cd "$OSMO_ROOT"
started=$SECONDS

log "format and lints"
cargo fmt --check
cargo clippy --all-targets --features e2e --locked -- -D warnings

log "unit tests and CRD drift"
cargo test --locked

log "control plane"
KUBECONFIG_FILE=$OSMO_STATE/kube/kubeconfig
if "$OSMO_ROOT/hack/tools.sh" && kubectl --kubeconfig "$KUBECONFIG_FILE" get --raw /readyz >/dev/null 2>&1; then
  log "reusing the running control plane"
else
  [ "${OSMO_KEEP_ENV:-0}" = 1 ] || trap '"$OSMO_ROOT/hack/kube-down.sh"' EXIT
  "$OSMO_ROOT/hack/kube-up.sh" >/dev/null
fi

log "chart lint"
helm lint --strict charts/osmo

log "end-to-end tests"
OSMO_E2E_KUBECONFIG=$KUBECONFIG_FILE cargo test --locked --features e2e --test e2e
log "all tests passed in $((SECONDS - started))s"
