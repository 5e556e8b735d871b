#!/usr/bin/env bash
# The benchmarks on the real stack:
#   hack/bench.sh [N]          N migrations (default 10), beside a direct client
#   hack/bench.sh memory [N]   the operator's memory with N finished migrations stored (10,000)
source "$(dirname "$0")/lib.sh"
cd "$OSMO_ROOT"
KUBECONFIG_FILE=$("$OSMO_ROOT/hack/kube-up.sh")
if [[ ${1:-} == memory ]]; then
  OSMO_BENCH_STORED=${2:-10000} OSMO_E2E_KUBECONFIG=$KUBECONFIG_FILE cargo bench --locked --features e2e --bench memory
  exit
fi
"$OSMO_ROOT/hack/openstack/up.sh" >&2
CLOUDS_FILE=$("$OSMO_ROOT/hack/openstack/clouds.sh")
OSMO_BENCH_MIGRATIONS=${1:-10} OSMO_E2E_KUBECONFIG=$KUBECONFIG_FILE OSMO_E2E_CLOUDS=$CLOUDS_FILE \
  cargo bench --locked --features e2e --bench migration
