#!/usr/bin/env bash
# Starts or stops an extra nova-compute (fake driver) beside the running stack, for tests
# that disable, force down or retire a compute service without disturbing havana-1 and
# icehouse-1. Its service lands in the default zone and takes no servers (it is not mapped
# to the cell). down.sh stops it with the rest.
#   compute.sh start HOST | compute.sh stop HOST
source "$(dirname "$0")/common.sh"
action=${1:?usage: compute.sh start|stop HOST}; host=${2:?usage: compute.sh start|stop HOST}
case $action in
  start)
    mkdir -p "$DATA/nova-$host"
    printf '[DEFAULT]\nhost = %s\nstate_path = %s\n' "$host" "$DATA/nova-$host" > "$ETC/nova/compute-$host.conf"
    unset PYTHONDONTWRITEBYTECODE
    start "nova-compute-$host" "$VENV/bin/python" "$OS_HACK/run-compute.py" \
      --config-file "$ETC/nova/nova.conf" --config-file "$ETC/nova/compute-$host.conf"
    ;;
  stop) stop_names "nova-compute-$host" ;;
  *) echo "usage: compute.sh start|stop HOST" >&2; exit 2 ;;
esac
