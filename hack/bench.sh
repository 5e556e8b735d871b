#!/usr/bin/env bash
# The migration benchmark on the real stack: hack/bench.sh [N] (default 10 migrations).
source "$(dirname "$0")/lib.sh"
cd "$OSMO_ROOT"
KUBECONFIG_FILE=$("$OSMO_ROOT/hack/kube-up.sh")
"$OSMO_ROOT/hack/openstack/up.sh" >&2
CLOUDS_FILE=$("$OSMO_ROOT/hack/openstack/clouds.sh")
OSMO_BENCH_MIGRATIONS=${1:-10} OSMO_E2E_KUBECONFIG=$KUBECONFIG_FILE OSMO_E2E_CLOUDS=$CLOUDS_FILE \
  cargo bench --locked --features e2e --bench migration
