# Shared settings for osmo's environment scripts. Sourced, not run.
# OSMO_CACHE keeps what is built or downloaded once (binaries survive `git clean`);
# OSMO_STATE keeps what a running environment writes (data dirs, logs, PIDs, kubeconfig).
set -euo pipefail
OSMO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OSMO_CACHE=${OSMO_CACHE:-$HOME/.cache/osmo}
OSMO_STATE=${OSMO_STATE:-$OSMO_ROOT/target/osmo-env}
export PATH="$OSMO_CACHE/bin:$PATH"
export DEBIAN_FRONTEND=noninteractive

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

# apt_install PKG...: installs what is missing; runs `apt-get update` once per machine.
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  # Debian packages must not start their system daemons on our ports.
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
  log "apt-get install ${missing[*]}"
  [ -e "$OSMO_CACHE/.apt-updated" ] || { apt-get update -qq; mkdir -p "$OSMO_CACHE"; touch "$OSMO_CACHE/.apt-updated"; }
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND every 0.2 s until it succeeds.
wait_for() {
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then log "timed out after ${secs}s waiting for $what"; return 1; fi
    sleep 0.2
  done
}

# stop_pidfile FILE: SIGTERM the process, wait up to 20 s, then SIGKILL.
stop_pidfile() {
  local f=$1 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}
