#!/usr/bin/env bash
# Starts or stops an extra nova-compute (fake driver) beside the running stack, for tests
# that disable, force down or retire a compute service without disturbing the seeded hosts.
# It belongs to NOVA ('nova', the default, in RegionOne; or 'nova2', in RegionTwo); its
# service lands in the default zone and takes servers once that Nova's scheduler maps it to
# the cell (within 5 s). down.sh stops it with the rest.
#   compute.sh start HOST [NOVA] | compute.sh stop HOST [NOVA]
source "$(dirname "$0")/common.sh"
usage="usage: compute.sh start|stop HOST [nova|nova2]"
action=${1:?$usage}; host=${2:?$usage}; nova=${3:-nova}
[[ " $NOVAS " == *" $nova "* ]] || { echo "$usage" >&2; exit 2; }
case $action in
  start)
    unset PYTHONDONTWRITEBYTECODE
    start_compute "$nova" "$host"
    ;;
  stop) stop_names "$nova-compute-$host" ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
