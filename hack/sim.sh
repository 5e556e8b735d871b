#!/usr/bin/env bash
# The OpenStack client's contract tests (tests/e2e/openstack.rs and volumes_api.rs) against the
# OpenStack simulator (sim/) instead of the real services: starts the simulator on a free loopback port,
# writes its clouds.yaml, runs the tests, stops it. The tests that need what the simulator does
# not do are skipped by name; tests/e2e/simulator.rs says why for each. No other environment
# is needed. Extra arguments go to the test binary (e.g. a name filter after `--`).
source "$(dirname "$0")/lib.sh"
cd "$OSMO_ROOT"
SKIPPED=(
  application_credentials_authenticate
  a_fixed_ip_is_kept_by_recreating_its_port
  this_nova_has_no_nova_network
  a_long_operation_outlives_short_lived_tokens
  tls_is_verified_with_the_clouds_ca_bundle
  compute_services_are_disabled_enabled_forced_down_and_retired
)
cargo build --locked -q -p osmo-openstack-sim
dir=$(mktemp -d)
"${CARGO_TARGET_DIR:-$OSMO_ROOT/target}/debug/osmo-openstack-sim" 127.0.0.1:0 "$dir/clouds.yaml" 2>"$dir/sim.log" &
sim=$!
trap 'kill "$sim" 2>/dev/null; rm -rf "$dir"' EXIT
wait_for "the simulator" 30 grep -q "listening on" "$dir/sim.log"
log "simulator $(cat "$dir/sim.log"); clouds.yaml in $dir"
skips=()
for t in "${SKIPPED[@]}"; do skips+=(--skip "$t"); done
OSMO_E2E_CLOUDS=$dir/clouds.yaml cargo test --locked --features e2e --test e2e -- openstack:: volumes_api:: "${skips[@]}" "$@"
