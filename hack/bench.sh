#!/usr/bin/env bash
# The benchmarks on the real stack:
#   hack/bench.sh [N]          N migrations (default 10), beside a direct client
#   hack/bench.sh memory [N]   the operator's memory with N finished migrations stored (10,000)
#   hack/bench.sh scale [N]    N migrations at once (1,000), 10 at once, and a drain of 50 hosts
#                              of 20 servers, against the OpenStack simulator (benches/scale.rs)
#   hack/bench.sh drain [N] [C]  a drain of a host of N servers (6), C at a time (2), beside a direct client
source "$(dirname "$0")/lib.sh"
cd "$OSMO_ROOT"
KUBECONFIG_FILE=$("$OSMO_ROOT/hack/kube-up.sh")
if [[ ${1:-} == memory ]]; then
  OSMO_BENCH_STORED=${2:-10000} OSMO_E2E_KUBECONFIG=$KUBECONFIG_FILE cargo bench --locked --features e2e --bench memory
  exit
fi
if [[ ${1:-} == scale ]]; then
  OSMO_BENCH_SCALE_N=${2:-${OSMO_BENCH_SCALE_N:-1000}} OSMO_E2E_KUBECONFIG=$KUBECONFIG_FILE \
    cargo bench --locked --features e2e --bench scale
  exit
fi
"$OSMO_ROOT/hack/openstack/up.sh" >&2
CLOUDS_FILE=$("$OSMO_ROOT/hack/openstack/clouds.sh")
if [[ ${1:-} == drain ]]; then
  OSMO_BENCH_DRAIN_SERVERS=${2:-6} OSMO_BENCH_DRAIN_CONCURRENT=${3:-2} OSMO_E2E_KUBECONFIG=$KUBECONFIG_FILE \
    OSMO_E2E_CLOUDS=$CLOUDS_FILE cargo bench --locked --features e2e --bench drain
  exit
fi
OSMO_BENCH_MIGRATIONS=${1:-10} OSMO_E2E_KUBECONFIG=$KUBECONFIG_FILE OSMO_E2E_CLOUDS=$CLOUDS_FILE \
  cargo bench --locked --features e2e --bench migration
