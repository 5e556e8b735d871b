#!/usr/bin/env bash
# Stops the control plane that hack/kube-up.sh started, by PID.
source "$(dirname "$0")/lib.sh"
RUN=$OSMO_STATE/kube/run
for p in kube-controller-manager kube-apiserver etcd; do stop_pidfile "$RUN/$p.pid"; done
