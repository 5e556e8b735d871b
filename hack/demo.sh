#!/usr/bin/env bash
# A local demonstration: a real control plane, the CRDs, the chart's RBAC, the operator under
# its ServiceAccount, and the example resources with the status the operator gives them.
source "$(dirname "$0")/lib.sh"
cd "$OSMO_ROOT"
export KUBECONFIG
KUBECONFIG=$("$OSMO_ROOT/hack/kube-up.sh")
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

kubectl delete -f examples/ --ignore-not-found --wait=true >/dev/null
step kubectl apply -f examples/
step kubectl wait --for=condition=Accepted im/web-1 cnd/havana-1 --timeout=60s
step kubectl get osmo
step kubectl describe im web-1
step kubectl get cnd havana-1 -o jsonpath='{.status.conditions}'
echo
log "the control plane keeps running; stop it with hack/kube-down.sh"
