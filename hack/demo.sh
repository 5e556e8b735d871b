#!/usr/bin/env bash
# A local demonstration of a parallel-Nova upgrade: a real control plane and real OpenStack
# services (an old Nova in RegionOne and a new, separate one in RegionTwo, sharing Keystone,
# Glance, Neutron and Placement), the CRDs, the chart's RBAC, the operator under its
# ServiceAccount; one server migrated from the old Nova's havana-1 to the new Nova's juno-1
# with its floating IP; then an extra compute host of the old Nova with three servers drained
# two at a time into the new Nova and its service retired once its nova-compute stops; all
# watched with kubectl.
source "$(dirname "$0")/lib.sh"
cd "$OSMO_ROOT"
export KUBECONFIG OSMO_ROOT
KUBECONFIG=$("$OSMO_ROOT/hack/kube-up.sh")
"$OSMO_ROOT/hack/openstack/up.sh" >/dev/null
CLOUDS_FILE=$("$OSMO_ROOT/hack/openstack/clouds.sh")
cargo build --locked -q
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

step kubectl apply -f crds/
kubectl create namespace osmo-system --dry-run=client -o yaml | kubectl apply -f - >/dev/null
helm template osmo charts/osmo -n osmo-system --show-only templates/serviceaccount.yaml --show-only templates/rbac.yaml \
  | kubectl apply -f - >/dev/null
OPERATOR_KUBECONFIG=$OSMO_STATE/operator.kubeconfig
cp "$KUBECONFIG" "$OPERATOR_KUBECONFIG"
kubectl --kubeconfig "$OPERATOR_KUBECONFIG" config set-credentials osmo --token="$(kubectl -n osmo-system create token osmo)" >/dev/null
kubectl --kubeconfig "$OPERATOR_KUBECONFIG" config set-context --current --user=osmo >/dev/null

log "starting the operator as system:serviceaccount:osmo-system:osmo (logs: $OSMO_STATE/operator.log)"
KUBECONFIG=$OPERATOR_KUBECONFIG POD_NAMESPACE=osmo-system ./target/debug/osmo run --listen 127.0.0.1:18080 \
  > "$OSMO_STATE/operator.log" 2>&1 &
OPERATOR_PID=$!
trap 'kill $OPERATOR_PID 2>/dev/null; wait $OPERATOR_PID 2>/dev/null' EXIT

NS=osmo-demo-$(date +%s)
step kubectl create namespace "$NS"
step kubectl -n "$NS" create secret generic clouds --from-file=clouds.yaml="$CLOUDS_FILE"
SERVER=$(python3 "$OSMO_ROOT/hack/demo-server.py" "web-$(date +%s)")
cat > "$OSMO_STATE/demo-migration.yaml" <<YAML
apiVersion: osmo.dev/v1alpha1
kind: InstanceMigration
metadata: {name: web-1}
spec:
  server: $SERVER
  source: {secretName: clouds, cloud: admin}
  target: {cloud: {secretName: clouds, cloud: admin-nova2}, availabilityZone: juno}
YAML
step kubectl -n "$NS" apply -f "$OSMO_STATE/demo-migration.yaml"
step kubectl -n "$NS" get im -o wide
step kubectl -n "$NS" wait --for=condition=Ready im/web-1 --timeout=300s
step kubectl -n "$NS" get im -o wide
step kubectl -n "$NS" describe im web-1
step kubectl -n "$NS" get im web-1 -o jsonpath='{range .status.steps[*]}{.name}{"\t"}{.result}{"\t"}{.startedAt}{"\n"}{end}'

# A drain: an old compute host (an extra nova-compute) emptied and retired.
HOST=old-$(date +%s)
log "starting nova-compute on $HOST with three servers"
"$OSMO_ROOT/hack/openstack/compute.sh" start "$HOST"
python3 - "$HOST" <<'PY'
import os, sys
sys.path.insert(0, os.path.join(os.environ['OSMO_ROOT'], 'hack', 'openstack'))
import ostack
c = ostack.admin()
ostack.wait('nova-compute on %s up' % sys.argv[1], lambda: any(
    s['state'] == 'up' for s in c.get('compute', '/os-services?binary=nova-compute&host=' + sys.argv[1])['services']), 120)
PY
python3 "$OSMO_ROOT/hack/demo-server.py" "$HOST-db" "$HOST" >/dev/null
python3 "$OSMO_ROOT/hack/demo-server.py" "$HOST-web-1" "$HOST" --no-floating-ip >/dev/null
python3 "$OSMO_ROOT/hack/demo-server.py" "$HOST-web-2" "$HOST" --no-floating-ip >/dev/null
cat > "$OSMO_STATE/demo-drain.yaml" <<YAML
apiVersion: osmo.dev/v1alpha1
kind: ComputeNodeDrain
metadata: {name: $HOST}
spec:
  cloud: {secretName: clouds, cloud: admin}
  host: $HOST
  mode: Migrate
  maxConcurrent: 2
  migrationTemplate:
    target: {cloud: {secretName: clouds, cloud: admin-nova2}, availabilityZone: juno}
  selector:
    priority: [{namePattern: "*-db"}]
  afterDrain: RetireService
YAML
step kubectl -n "$NS" apply -f "$OSMO_STATE/demo-drain.yaml"
step kubectl -n "$NS" wait --for=condition=Ready "cnd/$HOST" --timeout=600s
step kubectl -n "$NS" get cnd,im
step kubectl -n "$NS" get cnd "$HOST" -o jsonpath='{range .status.servers[*]}{.name}{"\t"}{.state}{"\t"}{.migration}{"\n"}{end}'
log "the host is empty; stopping its nova-compute so that the service can be retired"
"$OSMO_ROOT/hack/openstack/compute.sh" stop "$HOST"
step kubectl -n "$NS" wait --for=jsonpath='{.status.phase}'=Retired "cnd/$HOST" --timeout=180s
step kubectl -n "$NS" describe cnd "$HOST"
echo
log "the control plane and OpenStack keep running; stop them with hack/kube-down.sh and hack/openstack/down.sh"
