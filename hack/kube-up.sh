#!/usr/bin/env bash
# Starts a real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver and
# kube-controller-manager (garbage collection of owned objects, service accounts, namespace
# deletion). No scheduler or kubelet: the operator runs as a process. Writes an admin
# kubeconfig to $OSMO_STATE/kube/kubeconfig and prints its path. Reuses a healthy control plane
# that is already running; `hack/kube-down.sh` stops it.
source "$(dirname "$0")/lib.sh"
"$OSMO_ROOT/hack/kube-build.sh"
"$OSMO_ROOT/hack/tools.sh"
BIN=$OSMO_CACHE/kube/bin
S=$OSMO_STATE/kube; P=$S/pki; RUN=$S/run; LOGS=$S/logs
ETCD_PORT=${OSMO_ETCD_PORT:-23790}
API_PORT=${OSMO_API_PORT:-16443}
KUBECONFIG_FILE=$S/kubeconfig
mkdir -p "$P" "$RUN" "$LOGS"

healthy() {
  [ -f "$KUBECONFIG_FILE" ] && kill -0 "$(cat "$RUN/kube-apiserver.pid" 2>/dev/null)" 2>/dev/null \
    && kill -0 "$(cat "$RUN/kube-controller-manager.pid" 2>/dev/null)" 2>/dev/null \
    && kubectl --kubeconfig "$KUBECONFIG_FILE" get --raw /readyz >/dev/null 2>&1
}
if healthy; then log "reusing the running control plane"; echo "$KUBECONFIG_FILE"; exit 0; fi
"$OSMO_ROOT/hack/kube-down.sh" >/dev/null 2>&1 || true
started=$SECONDS

# PKI: a CA, the serving certificate, an admin client certificate (system:masters) and the
# service-account signing key pair.
if [ ! -f "$P/sa.pub" ]; then
  o() { openssl "$@" 2>/dev/null; }
  o req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=osmo-test-ca -keyout "$P/ca.key" -out "$P/ca.crt"
  o req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver -keyout "$P/srv.key" -out "$P/srv.csr"
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > "$P/srv.ext"
  o x509 -req -in "$P/srv.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial -days 3650 -extfile "$P/srv.ext" -out "$P/srv.crt"
  printf 'extendedKeyUsage=clientAuth\n' > "$P/cli.ext"
  for who in admin:system:masters kube-controller-manager:system:kube-controller-manager; do
    cn=${who%%:*}; org=${who#*:}
    [ "$cn" = admin ] && subj="/O=$org/CN=admin" || subj="/CN=$org"
    o req -newkey rsa:2048 -nodes -subj "$subj" -keyout "$P/$cn.key" -out "$P/$cn.csr"
    o x509 -req -in "$P/$cn.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial -days 3650 -extfile "$P/cli.ext" -out "$P/$cn.crt"
  done
  o genrsa -out "$P/sa.key" 2048; o rsa -in "$P/sa.key" -pubout -out "$P/sa.pub"
fi

write_kubeconfig() { # FILE USER
  KUBECONFIG=$1 kubectl config set-cluster osmo-test --server="https://127.0.0.1:$API_PORT" --certificate-authority="$P/ca.crt" --embed-certs >/dev/null
  KUBECONFIG=$1 kubectl config set-credentials "$2" --client-certificate="$P/$2.crt" --client-key="$P/$2.key" --embed-certs >/dev/null
  KUBECONFIG=$1 kubectl config set-context osmo-test --cluster=osmo-test --user="$2" --namespace=default >/dev/null
  KUBECONFIG=$1 kubectl config use-context osmo-test >/dev/null
}
rm -f "$KUBECONFIG_FILE" "$S/kcm.kubeconfig"
write_kubeconfig "$KUBECONFIG_FILE" admin
write_kubeconfig "$S/kcm.kubeconfig" kube-controller-manager

rm -rf "$S/etcd-data"
etcd --name osmo --data-dir "$S/etcd-data" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 10))" --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 10))" \
  --initial-cluster "osmo=http://127.0.0.1:$((ETCD_PORT + 10))" --listen-metrics-urls "http://127.0.0.1:$((ETCD_PORT + 20))" \
  --unsafe-no-fsync > "$LOGS/etcd.log" 2>&1 &
echo $! > "$RUN/etcd.pid"
wait_for etcd 60 curl -sf "http://127.0.0.1:$ETCD_PORT/health" || { tail -20 "$LOGS/etcd.log"; exit 1; }

"$BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$ETCD_PORT" --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
  --secure-port="$API_PORT" --tls-cert-file="$P/srv.crt" --tls-private-key-file="$P/srv.key" --client-ca-file="$P/ca.crt" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local --service-account-key-file="$P/sa.pub" \
  --service-account-signing-key-file="$P/sa.key" --service-cluster-ip-range=10.0.0.0/24 \
  --authorization-mode=RBAC --endpoint-reconciler-type=none > "$LOGS/kube-apiserver.log" 2>&1 &
echo $! > "$RUN/kube-apiserver.pid"
wait_for kube-apiserver 120 kubectl --kubeconfig "$KUBECONFIG_FILE" get --raw /readyz || { tail -30 "$LOGS/kube-apiserver.log"; exit 1; }

"$BIN/kube-controller-manager" --kubeconfig="$S/kcm.kubeconfig" --authentication-kubeconfig="$S/kcm.kubeconfig" \
  --authorization-kubeconfig="$S/kcm.kubeconfig" --bind-address=127.0.0.1 --port=0 --secure-port=0 \
  --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" --use-service-account-credentials \
  --controllers='*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-route,-service,-persistentvolume-binder,-attachdetach' \
  --leader-elect=false > "$LOGS/kube-controller-manager.log" 2>&1 &
echo $! > "$RUN/kube-controller-manager.pid"
# Ready when it has created the default ServiceAccount of a namespace.
wait_for "kube-controller-manager" 120 kubectl --kubeconfig "$KUBECONFIG_FILE" -n default get serviceaccount default \
  || { tail -30 "$LOGS/kube-controller-manager.log"; exit 1; }
log "control plane ready in $((SECONDS - started))s"
echo "$KUBECONFIG_FILE"
