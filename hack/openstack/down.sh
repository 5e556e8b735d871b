#!/usr/bin/env bash
# Stops the OpenStack test stack started by up.sh: every process by its PID file in
# $OSMO_STATE/openstack/run (SIGTERM, a wait of up to 30 s, then SIGKILL), the OpenStack
# services first, then RabbitMQ and MariaDB, then epmd. Data and logs are kept until the
# next up.sh. Safe to run when nothing runs.
source "$(dirname "$0")/common.sh"
stop_stack
log "OpenStack stack stopped (logs kept in $LOGS)"
