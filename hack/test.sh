#!/usr/bin/env bash
# Runs every test: formatting, lints, unit tests, the CRD drift and Argo CD health checks, the
# chart lint, and the end-to-end tests against a real kube-apiserver with etcd and real
# OpenStack services on 127.0.0.1, started here, or reused when healthy ones already run (what
# is started here is stopped at the end unless OSMO_KEEP_ENV=1). The chart's render, install,
# upgrade and uninstall tests and the image's run with the end-to-end tests: they need the
# helm and hadolint that hack/tools.sh installs.
source "$(dirname "$0")/lib.sh"
cd "$OSMO_ROOT"
started=$SECONDS

log "format and lints"
cargo fmt --check
cargo clippy --all-targets --features e2e --locked -- -D warnings

log "unit tests and CRD drift"
cargo test --locked

# The Dockerfile's own build command (tests/e2e/image.rs keeps both equal), for this machine's
# target: the image's musl target comes from rustup, which CI machines cannot reach.
log "release build, as the Dockerfile builds it"
cargo build --release --locked --bin osmo

# Environments this run starts are stopped at its end; ones already running are left alone.
STOP_AT_EXIT=()
stop_at_exit() { [ "${OSMO_KEEP_ENV:-0}" = 1 ] || STOP_AT_EXIT+=("$1"); }
trap 'for s in "${STOP_AT_EXIT[@]}"; do "$s" >/dev/null 2>&1 || true; done' EXIT

log "control plane"
KUBECONFIG_FILE=$OSMO_STATE/kube/kubeconfig
if "$OSMO_ROOT/hack/tools.sh" && kubectl --kubeconfig "$KUBECONFIG_FILE" get --raw /readyz >/dev/null 2>&1; then
  log "reusing the running control plane"
else
  stop_at_exit "$OSMO_ROOT/hack/kube-down.sh"
  "$OSMO_ROOT/hack/kube-up.sh" >/dev/null
fi

log "OpenStack (Keystone, Nova, Glance, Neutron, Placement on 127.0.0.1)"
[ -f "$OSMO_STATE/openstack/run/keystone.pid" ] || stop_at_exit "$OSMO_ROOT/hack/openstack/down.sh"
"$OSMO_ROOT/hack/openstack/up.sh"
CLOUDS_FILE=$("$OSMO_ROOT/hack/openstack/clouds.sh")

log "chart lint"
helm lint --strict charts/osmo

log "end-to-end tests"
OSMO_E2E_KUBECONFIG=$KUBECONFIG_FILE OSMO_E2E_CLOUDS=$CLOUDS_FILE cargo test --locked --features e2e --test e2e
log "all tests passed in $((SECONDS - started))s"
