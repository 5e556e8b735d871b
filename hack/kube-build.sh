#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager from Debian's `kubernetes` source package
# with Debian's Go, once: the binaries are kept in $OSMO_CACHE/kube/bin and the build is skipped
# when they are there. Also installs etcd (Debian's etcd-server).
source "$(dirname "$0")/lib.sh"
BIN=$OSMO_CACHE/kube/bin
apt_install etcd-server openssl curl
if [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ]; then exit 0; fi

# apt-get source needs deb-src: derive it from the machine's own entry.
if ! grep -rqs '^Types: deb-src' /etc/apt/sources.list.d/; then
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
    > /etc/apt/sources.list.d/debian-src.sources
  rm -f "$OSMO_CACHE/.apt-updated"
fi
apt_install golang-go rsync jq dpkg-dev
W=$OSMO_CACHE/kube/build; mkdir -p "$W"; cd "$W"
[ -e "$OSMO_CACHE/.apt-updated" ] || { apt-get update -qq; touch "$OSMO_CACHE/.apt-updated"; }
ls -d kubernetes-*/ >/dev/null 2>&1 || { log "apt-get source kubernetes"; apt-get source -qq kubernetes >/dev/null 2>&1; }
S=$(ls -d "$W"/kubernetes-*/ | head -1); S=${S%/}

# As shipped, Go 1.19 builds of this tree crash on the first custom-resource write (reflect2 via
# json-iterator): vendor Debian's newer packaged sources of both instead.
mkdir -p debgo
(cd debgo && apt-get download -qq golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev \
  && for f in *.deb; do dpkg-deb -x "$f" x; done)
for m in modern-go/reflect2 json-iterator/go; do
  rm -rf "$S/vendor/github.com/$m"; mkdir -p "$S/vendor/github.com/$m"
  find "debgo/x/usr/share/gocode/src/github.com/$m" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) \
    ! -name '*_test.go' -exec cp {} "$S/vendor/github.com/$m/" \;
done

log "building kube-apiserver and kube-controller-manager (a few minutes, once)"
(cd "$S" && GOPROXY=off CGO_ENABLED=0 make WHAT="cmd/kube-apiserver cmd/kube-controller-manager") \
  > "$W/build.log" 2>&1 || { tail -40 "$W/build.log"; exit 1; }
mkdir -p "$BIN"
cp "$S/_output/bin/kube-apiserver" "$S/_output/bin/kube-controller-manager" "$BIN/"
rm -rf "$S/_output"   # 1.8 GB of intermediate output; the binaries are kept
log "kube binaries in $BIN"
