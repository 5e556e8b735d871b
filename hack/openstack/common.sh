# Settings and helpers shared by hack/openstack/{up,down,clouds}.sh. Sourced, not run.
#
# Layout:
#   $OSMO_CACHE/openstack/venv      Python venv with the OpenStack services (built once)
#   $OSMO_STATE/openstack/etc       generated config files
#   $OSMO_STATE/openstack/data      MariaDB, RabbitMQ, Glance images, fernet keys, ...
#   $OSMO_STATE/openstack/run       one PID file per process we started (NAME.pid)
#   $OSMO_STATE/openstack/logs      one log per process (NAME.log) plus setup logs
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

OS_HACK=$OSMO_ROOT/hack/openstack
OS_CACHE=$OSMO_CACHE/openstack
VENV=$OS_CACHE/venv
OS_STATE=$OSMO_STATE/openstack
RUN=$OS_STATE/run
LOGS=$OS_STATE/logs
ETC=$OS_STATE/etc
DATA=$OS_STATE/data

# Ports on 127.0.0.1 (the defaults are OpenStack's and the brokers' usual ones).
export OSMO_KEYSTONE_PORT=${OSMO_KEYSTONE_PORT:-5000}
# A second Keystone on the same database that issues 20-second tokens, for token-renewal tests.
export OSMO_KEYSTONE_SHORT_PORT=${OSMO_KEYSTONE_SHORT_PORT:-5001}
export OSMO_NOVA_PORT=${OSMO_NOVA_PORT:-8774}
# The second, separate Nova (region RegionTwo): its API only; the rest of it listens nowhere.
export OSMO_NOVA2_PORT=${OSMO_NOVA2_PORT:-8764}
export OSMO_PLACEMENT_PORT=${OSMO_PLACEMENT_PORT:-8778}
export OSMO_GLANCE_PORT=${OSMO_GLANCE_PORT:-9292}
export OSMO_NEUTRON_PORT=${OSMO_NEUTRON_PORT:-9696}
# Cinder's API (one Cinder, shared by both Novas)
export OSMO_CINDER_PORT=${OSMO_CINDER_PORT:-8766}
export OSMO_MYSQL_PORT=${OSMO_MYSQL_PORT:-3306}
export OSMO_RABBIT_PORT=${OSMO_RABBIT_PORT:-5672}
export OSMO_RABBIT_DIST_PORT=${OSMO_RABBIT_DIST_PORT:-25672}
export OSMO_EPMD_PORT=${OSMO_EPMD_PORT:-4369}

# Test-only credentials. ostack.py has the same defaults and reads the same variables.
export OSMO_OS_ADMIN_PASSWORD=${OSMO_OS_ADMIN_PASSWORD:-secret}
export OSMO_OS_DEMO_PASSWORD=${OSMO_OS_DEMO_PASSWORD:-demo-secret}
SERVICE_PASSWORD=secret   # nova/glance/neutron/placement/cinder service users
DB_PASSWORD=secret        # MariaDB user 'os'@'127.0.0.1'

KEYSTONE_URL=http://127.0.0.1:$OSMO_KEYSTONE_PORT
TRANSPORT_URL=rabbit://guest:guest@127.0.0.1:$OSMO_RABBIT_PORT/
# Two separate Novas, each named by its config directory ($ETC/NOVA), database prefix
# (NOVA_api, NOVA_cell0, NOVA_cell1), process names (NOVA-api, NOVA-conductor, ...) and
# RabbitMQ virtual host: 'nova' (RegionOne, the old one) and 'nova2' (RegionTwo, the new one).
NOVAS="nova nova2"
declare -A NOVA_REGION=([nova]=RegionOne [nova2]=RegionTwo)
declare -A NOVA_PORT=([nova]=$OSMO_NOVA_PORT [nova2]=$OSMO_NOVA2_PORT)
declare -A NOVA_VHOST=([nova]="" [nova2]=nova2)
# compute hosts (fake driver) of each; host names are unique across both (they share Placement)
declare -A NOVA_HOSTS=([nova]="havana-1 icehouse-1" [nova2]="juno-1")
API_SERVICES="keystone keystone-short placement glance nova-api nova2-api neutron cinder-api"
# Cinder's other processes: its scheduler and its volume service (fake driver, see README)
CINDER_SERVICES="cinder-scheduler cinder-volume"
# Cinder's own RabbitMQ virtual host
CINDER_VHOST=cinder

# A PID file is only trusted while its process still has the start time recorded beside
# it (NAME.stime): a PID file left stale by a reboot or a crash can then never make us
# signal another process that happens to reuse the number.
proc_stime() { sed -e 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}'; }

# alive NAME: the process of $RUN/NAME.pid runs.
alive() {
  local pid
  [ -f "$RUN/$1.pid" ] && [ -f "$RUN/$1.stime" ] || return 1
  pid=$(cat "$RUN/$1.pid")
  [ -n "$pid" ] && [ "$(proc_stime "$pid")" = "$(cat "$RUN/$1.stime")" ]
}

# descendants PID: every descendant of PID (uWSGI workers, oslo.service workers, ...).
descendants() {
  local kid
  for kid in $(ps -o pid= --ppid "$1" 2>/dev/null); do echo "$kid"; descendants "$kid"; done
}

# stop_names NAME...: SIGTERM each named process and its descendants at once, wait up to
# 30 s for all of them, then SIGKILL what is left. Removes the PID files.
stop_names() {
  local n pid pids=() left p
  for n in "$@"; do
    [ -f "$RUN/$n.pid" ] || continue
    pid=$(cat "$RUN/$n.pid")
    if alive "$n"; then
      pids+=("$pid" $(descendants "$pid"))
      kill -TERM "$pid" 2>/dev/null || true
      log "stopping $n ($pid)"
    fi
    rm -f "$RUN/$n.pid" "$RUN/$n.stime"
  done
  [ ${#pids[@]} -eq 0 ] && return 0
  for _ in $(seq 150); do
    left=""
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && left+=" $p"; done
    [ -z "$left" ] && return 0
    sleep 0.2
  done
  log "SIGKILL to$left"
  for p in $left; do kill -KILL "$p" 2>/dev/null || true; done
}

# start NAME CMD...: runs CMD in the background with its output in $LOGS/NAME.log and
# its PID in $RUN/NAME.pid. (fd 9 is up.sh's lock: the services must not inherit it.)
start() {
  local name=$1; shift
  mkdir -p "$RUN" "$LOGS"
  if alive "$name"; then log "$name already runs"; return 0; fi
  nohup "$@" >>"$LOGS/$name.log" 2>&1 </dev/null 9>&- &
  echo $! > "$RUN/$name.pid"
  proc_stime $! > "$RUN/$name.stime"
}

# stack_pids: every running process of the stack (PID files and their descendants).
stack_pids() {
  local f n
  for f in "$RUN"/*.pid; do
    [ -f "$f" ] || continue
    n=$(basename "$f" .pid); alive "$n" || continue
    cat "$f"; descendants "$(cat "$f")"
  done
}

# memory_report: summed RSS of every process of the stack, biggest first.
memory_report() {
  local pids
  pids=$(stack_pids | sort -un | paste -sd, -)
  [ -n "$pids" ] || { log "no process of the stack runs"; return 0; }
  ps -o rss=,pid=,args= -p "$pids" | sort -rn | awk '
    { t += $1; n += 1; printf "  %6.0f MB  %-7s %s\n", $1/1024, $2, substr($3 " " $4 " " $5, 1, 70) }
    END { printf "  total RSS %.0f MB in %d processes\n", t/1024, n }' >&2
}

# nova_args NOVA: the config files of every process of that Nova but its computes.
nova_args() { echo --config-file "$ETC/$1/nova.conf" --config-file "$ETC/$1/nova-db.conf"; }

# start_compute NOVA HOST: a nova-compute (fake driver) of that Nova, process NOVA-compute-HOST.
start_compute() {
  local nova=$1 host=$2
  mkdir -p "$DATA/$nova-$host"
  printf '[DEFAULT]\nhost = %s\nstate_path = %s\n' "$host" "$DATA/$nova-$host" > "$ETC/$nova/compute-$host.conf"
  start "$nova-compute-$host" "$VENV/bin/python" "$OS_HACK/run-compute.py" \
    --config-file "$ETC/$nova/nova.conf" --config-file "$ETC/$nova/compute-$host.conf"
}

# os_py ARGS...: runs the stdlib-only helper ostack.py (any python3 will do).
PY3=/usr/bin/python3
os_py() { "$PY3" "$OS_HACK/ostack.py" "$@"; }

# stop_stack: stops every process of the stack, the OpenStack services first, then the
# brokers and the databases they use, then epmd.
stop_stack() {
  local f n names=()
  for f in "$RUN"/*.pid; do
    [ -f "$f" ] || continue
    n=$(basename "$f" .pid)
    case $n in rabbit|mariadb|epmd) ;; *) names+=("$n") ;; esac
  done
  [ ${#names[@]} -eq 0 ] || stop_names "${names[@]}"
  stop_names rabbit mariadb
  stop_names epmd
}
