#!/usr/bin/env bash
# Runs every test: formatting, lints, unit tests, the CRD drift and Argo CD health checks, the
# chart lint, and the end-to-end tests against a real kube-apiserver with etcd and real
# OpenStack services on 127.0.0.1, started here, or reused when healthy ones already run (what
# is started here is stopped at the end unless OSMO_KEEP_ENV=1). The chart's render, install,
# upgrade and uninstall tests and the image's run with the end-to-end tests: they need the
# helm and hadolint that hack/tools.sh installs.
#
# The environment comes up in the background while the code is linted and built (its log:
# $OSMO_STATE/env-up.log), and one test build serves the unit and the end-to-end tests. The
# time each stage took is printed at the end, passed or failed.
source "$(dirname "$0")/lib.sh"
cd "$OSMO_ROOT"
started=$SECONDS

STAGES=()
stage_started=$SECONDS; stage_name=""
# stage NAME: ends the stage before (its time is kept) and starts NAME.
stage() {
  [ -n "$stage_name" ] && STAGES+=("$(printf '  %-44s %5ss' "$stage_name" "$((SECONDS - stage_started))")")
  stage_name=$1; stage_started=$SECONDS
  [ -n "$stage_name" ] && log "$stage_name"
  return 0
}

# Environments this run starts are stopped at its end; ones already running are left alone.
STOP_AT_EXIT=()
stop_at_exit() { [ "${OSMO_KEEP_ENV:-0}" = 1 ] || STOP_AT_EXIT+=("$1"); }
ENV_PID=""
at_exit() {
  local rc=$?
  stage ""
  [ -n "$ENV_PID" ] && kill -- -"$ENV_PID" 2>/dev/null
  for s in "${STOP_AT_EXIT[@]}"; do "$s" >/dev/null 2>&1 || true; done
  printf 'Time per stage:\n' >&2; printf '%s\n' "${STAGES[@]}" >&2
  if [ $rc -eq 0 ]; then log "all tests passed in $((SECONDS - started))s"; else log "FAILED after $((SECONDS - started))s"; fi
}
trap at_exit EXIT

stage "tools (kubectl, helm, hadolint)"
"$OSMO_ROOT/hack/tools.sh"

# The control plane and OpenStack start in their own process group (so that a failed run stops
# them whole), while the code builds.
KUBECONFIG_FILE=$OSMO_STATE/kube/kubeconfig
CLOUDS_FILE=$OSMO_STATE/openstack/clouds.yaml
ENV_LOG=$OSMO_STATE/env-up.log
mkdir -p "$OSMO_STATE"
if kubectl --kubeconfig "$KUBECONFIG_FILE" get --raw /readyz >/dev/null 2>&1; then
  log "reusing the running control plane"
else
  stop_at_exit "$OSMO_ROOT/hack/kube-down.sh"
fi
[ -f "$OSMO_STATE/openstack/run/keystone.pid" ] || stop_at_exit "$OSMO_ROOT/hack/openstack/down.sh"
log "starting the environment in the background (log: $ENV_LOG)"
setsid bash -c '
  set -e
  t=$SECONDS; "$0/hack/kube-up.sh" >/dev/null; echo "control plane ready after $((SECONDS - t))s"
  t=$SECONDS; "$0/hack/openstack/up.sh"; "$0/hack/openstack/clouds.sh" >/dev/null
  echo "OpenStack ready after $((SECONDS - t))s"
' "$OSMO_ROOT" > "$ENV_LOG" 2>&1 &
ENV_PID=$!

stage "format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --features e2e --locked -- -D warnings

# One build, with the end-to-end feature, for every test binary.
stage "test build"
cargo test --locked --features e2e --no-run

stage "unit tests"
cargo test --locked --features e2e --lib --bins
cargo test --locked --features e2e --doc

# The Dockerfile's own build command (tests/e2e/image.rs keeps both equal), for this machine's
# target: the image's musl target comes from rustup, which CI machines cannot reach.
stage "release build, as the Dockerfile builds it"
cargo build --release --locked --bin osmo

stage "waiting for the environment"
if ! wait "$ENV_PID"; then
  ENV_PID=""
  tail -n 60 "$ENV_LOG" >&2
  log "the environment did not come up (log: $ENV_LOG)"
  exit 1
fi
ENV_PID=""
sed 's/^/  /' "$ENV_LOG" | grep -E 'ready after|reusing|== ' >&2 || true

stage "chart lint"
helm lint --strict charts/osmo

# Every integration test binary: the CRD drift and Argo CD health checks, then end to end.
stage "integration and end-to-end tests"
OSMO_E2E_KUBECONFIG=$KUBECONFIG_FILE OSMO_E2E_CLOUDS=$CLOUDS_FILE cargo test --locked --features e2e --tests
stage ""
