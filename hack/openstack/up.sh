#!/usr/bin/env bash
# Starts a real OpenStack on 127.0.0.1 for osmo's tests, and seeds it.
#
#   Keystone :5000, Nova API :8774, Placement :8778, Glance :9292, Neutron :9696 (uWSGI),
#   nova-conductor, nova-scheduler, nova-compute x2 (fake driver; host havana-1 in zone
#   havana, host icehouse-1 in zone icehouse), a private MariaDB :3306 and RabbitMQ :5672.
#   A second, separate Nova in region RegionTwo sharing Keystone, Glance, Neutron and
#   Placement: API :8764, its own conductor, scheduler, databases and cell, and
#   nova-compute juno-1 in zone juno.
#   Cinder, shared by both Novas: API :8766, cinder-scheduler, cinder-volume (Cinder's fake
#   driver, backend 'fake').
#   Fixtures: flavor m1.tiny (in both Novas), image 'base', networks 'private' and 'public'
#   (floating IP pool), router r1, project 'demo' with user 'demo'. Credentials: clouds.sh.
#
# Installs what is missing first (Debian's rabbitmq-server and mariadb-server, and a venv
# pinned by constraints.txt in $OSMO_CACHE/openstack/venv). When the stack already runs and
# is healthy it is reused as it is; otherwise whatever is left of it is stopped and the
# stack starts afresh with empty databases. PIDs in $OSMO_STATE/openstack/run, logs in
# $OSMO_STATE/openstack/logs (those of the previous start in logs.prev).
#
# Environment: OSMO_OS_TIMEOUT (seconds for each wait, default 600),
# OSMO_OS_KEEP_ON_FAILURE=1 (leave the processes running when start-up fails),
# OSMO_*_PORT (see common.sh). Stop with down.sh.
source "$(dirname "$0")/common.sh"
source "$OS_HACK/config.sh"

TIMEOUT=${OSMO_OS_TIMEOUT:-600}
# one up.sh at a time per state directory
mkdir -p "$OS_STATE"
exec 9>"$OS_STATE/up.lock"
flock -w "$TIMEOUT" 9 || { log "another up.sh holds $OS_STATE/up.lock"; exit 1; }
# The machine sets PYTHONDONTWRITEBYTECODE; let the services cache their bytecode in the
# venv instead, which makes every later start several seconds faster per process.
unset PYTHONDONTWRITEBYTECODE
ALL_NAMES="epmd rabbit mariadb $API_SERVICES $CINDER_SERVICES"
for nova in $NOVAS; do
  ALL_NAMES+=" $nova-conductor $nova-scheduler"
  for h in ${NOVA_HOSTS[$nova]}; do ALL_NAMES+=" $nova-compute-$h"; done
done

# ---------------------------------------------------------------- timing and failure
T0=$EPOCHREALTIME; T_PHASE=$T0; PHASE=""; TIMES=()
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
phase() {
  [ -n "$PHASE" ] && TIMES+=("$(printf '  %-28s %6ss' "$PHASE" "$(elapsed "$T_PHASE")")")
  PHASE=$1; T_PHASE=$EPOCHREALTIME
  [ -n "$PHASE" ] && log "== $PHASE"
  return 0
}

FAIL_LOGS=""
declare -A JOBS=()
# fail MESSAGE [LOG...]: stop here; the named logs ($LOGS/LOG.log) are shown first.
fail() { log "ERROR: $1"; shift; FAIL_LOGS="$*"; exit 1; }

show_logs() {
  local f n errs shown=" "
  for f in "$RUN"/*.pid; do
    [ -f "$f" ] || continue
    n=$(basename "$f" .pid); alive "$n" && continue
    shown+="$n "; echo "----- $n is not running; tail of $LOGS/$n.log"; tail -n 40 "$LOGS/$n.log"
  done
  for n in $FAIL_LOGS; do
    [[ $shown == *" $n "* ]] && continue
    f=$LOGS/$n.log; shown+="$n "
    [ -f "$f" ] && { echo "----- tail of $f"; tail -n 40 "$f"; }
  done
  for f in "$LOGS"/*.log; do
    [ -f "$f" ] || continue
    n=$(basename "$f" .log); [[ $shown == *" $n "* ]] && continue
    # (the missing memcache module is harmless: no memcached is used)
    errs=$(grep -E 'ERROR|CRITICAL|Traceback' "$f" | grep -v "oslo_cache.memcache_pool" | tail -n 3) || true
    [ -n "$errs" ] && { echo "----- last errors in $f"; echo "$errs"; }
  done
  return 0
} >&2

on_exit() {
  local rc=$?
  [ $rc -eq 0 ] && return 0
  log "FAILED in phase '$PHASE' after $(elapsed "$T0")s (exit $rc)"
  stop_jobs
  show_logs
  if [ "${OSMO_OS_KEEP_ON_FAILURE:-}" = 1 ]; then
    log "processes left running (OSMO_OS_KEEP_ON_FAILURE=1); stop them with hack/openstack/down.sh"
  else
    log "stopping what was started (set OSMO_OS_KEEP_ON_FAILURE=1 to keep it running)"
    stop_stack
  fi
  log "logs kept in $LOGS"
  exit $rc
}
trap on_exit EXIT

# ---------------------------------------------------------------- waiting
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_until NAME DESCRIPTION COMMAND...: polls COMMAND until it succeeds; fails at once
# when process NAME dies, or after $TIMEOUT seconds.
wait_until() {
  local name=$1 what=$2 deadline=$((SECONDS + TIMEOUT)); shift 2
  until "$@" >/dev/null 2>&1; do
    alive "$name" || fail "$name died while waiting for $what" "$name"
    [ $SECONDS -lt $deadline ] || fail "timed out after ${TIMEOUT}s waiting for $what" "$name"
    sleep 0.3
  done
}

# wait_http NAME PORT: any HTTP answer from 127.0.0.1:PORT.
wait_http() {
  wait_until "$1" "$1 on :$2" curl -s -o /dev/null -m 10 "http://127.0.0.1:$2/"
  log "$1 answers on :$2 ($(elapsed "$T0")s)"
}

# os_wait WHAT NAMES...: runs ostack.py wait-WHAT, watching the processes NAMES.
os_wait() {
  local what=$1 n watch=""; shift
  for n in "$@"; do watch+=" $RUN/$n.pid"; done
  OSMO_OS_WATCH=$watch os_py "wait-$what" "$TIMEOUT" || fail "waiting for $what failed" "$@"
}

# job NAME FUNCTION...: runs FUNCTION in the background, output in $LOGS/setup-NAME.log.
job() { local name=$1; shift; ( "$@" ) >"$LOGS/setup-$name.log" 2>&1 & JOBS[$name]=$!; }
# stop_jobs: ends the set-up jobs still running (and what they started), so that none
# starts a service after the stack was stopped.
stop_jobs() {
  local pid pids=()
  for pid in "${JOBS[@]}"; do
    kill -0 "$pid" 2>/dev/null && pids+=("$pid" $(descendants "$pid"))
  done
  [ ${#pids[@]} -eq 0 ] && return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${JOBS[@]}" 2>/dev/null || true
}
wait_job() {
  wait "${JOBS[$1]}" || fail "setting up $1 failed" "setup-$1"
  log "$1: database ready, API started ($(elapsed "$T0")s)"
}

# ---------------------------------------------------------------- install
install_packages() {
  apt_install rabbitmq-server mariadb-server python3 python3-venv python3-dev build-essential curl
}

# The venv is rebuilt only when constraints.txt or fakebind/ change.
ensure_venv() {
  local stamp pip
  stamp=$(cat "$OS_HACK/constraints.txt" "$OS_HACK"/fakebind/* | sha256sum | cut -c1-16)
  if [ "$(cat "$VENV/.osmo-stamp" 2>/dev/null)" = "$stamp" ]; then
    log "venv $VENV is up to date"; return 0
  fi
  log "building venv $VENV (a minute or two; log in $LOGS/setup-venv.log)"
  rm -rf "$VENV"; mkdir -p "$OS_CACHE"
  pip=("$VENV/bin/pip" install -q -c "$OS_HACK/constraints.txt")
  {
    "$PY3" -m venv "$VENV" &&
    "${pip[@]}" pip setuptools wheel &&
    "${pip[@]}" keystone nova glance neutron openstack-placement cinder uwsgi PyMySQL &&
    rm -rf "$OS_CACHE/fakebind" && cp -r "$OS_HACK/fakebind" "$OS_CACHE/fakebind" &&
    "${pip[@]}" --no-build-isolation --no-deps "$OS_CACHE/fakebind"
  } >"$LOGS/setup-venv.log" 2>&1 || { rm -rf "$VENV"; fail "building the venv failed" setup-venv; }
  echo "$stamp" > "$VENV/.osmo-stamp"
}

# ---------------------------------------------------------------- brokers
start_rabbit() {
  local r=$DATA/rabbit epmd
  mkdir -p "$r/mnesia" "$r/log"
  cat > "$r/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$OSMO_RABBIT_PORT
loopback_users = none
EOF
  echo '[].' > "$r/enabled_plugins"
  # One virtual host per Nova ('/' for the first), so that neither's conductor, scheduler
  # or computes ever take the other's messages; and Cinder's own. Definitions given at boot replace the
  # default user, which is therefore defined here too (guest/guest, sha256-hashed).
  echo "load_definitions = $r/definitions.json" >> "$r/rabbitmq.conf"
  local vhosts=() nova
  for nova in $NOVAS; do vhosts+=("${NOVA_VHOST[$nova]:-/}"); done
  vhosts+=("$CINDER_VHOST")
  "$PY3" - "$r/definitions.json" "${vhosts[@]}" <<'EOF'
import base64, hashlib, json, os, sys
salt = os.urandom(4)
hashed = base64.b64encode(salt + hashlib.sha256(salt + b'guest').digest()).decode()
vhosts = sys.argv[2:]
all_rights = {'configure': '.*', 'write': '.*', 'read': '.*'}
json.dump({
    'users': [{'name': 'guest', 'password_hash': hashed,
               'hashing_algorithm': 'rabbit_password_hashing_sha256', 'tags': 'administrator'}],
    'vhosts': [{'name': v} for v in vhosts],
    'permissions': [dict(all_rights, user='guest', vhost=v) for v in vhosts],
}, open(sys.argv[1], 'w'))
EOF
  export ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT=$OSMO_EPMD_PORT
  # Our own epmd, so that Erlang does not daemonize one we could not stop. One that
  # already listens on the port (another Erlang node's) is used as it is.
  if ! port_open "$OSMO_EPMD_PORT"; then
    epmd=$(command -v epmd || ls /usr/lib/erlang/erts-*/bin/epmd | head -n 1)
    start epmd "$epmd" -address 127.0.0.1 -port "$OSMO_EPMD_PORT"
    wait_until epmd "epmd on :$OSMO_EPMD_PORT" port_open "$OSMO_EPMD_PORT"
  fi
  HOME=$r RABBITMQ_NODENAME=rabbit@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
  RABBITMQ_NODE_PORT=$OSMO_RABBIT_PORT RABBITMQ_DIST_PORT=$OSMO_RABBIT_DIST_PORT \
  RABBITMQ_MNESIA_BASE=$r/mnesia RABBITMQ_LOG_BASE=$r/log RABBITMQ_CONFIG_FILE=$r/rabbitmq \
  RABBITMQ_ENABLED_PLUGINS_FILE=$r/enabled_plugins RABBITMQ_PID_FILE=$r/rabbit.pidfile \
  RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
  RUNNING_UNDER_SYSTEMD=true \
    start rabbit /usr/lib/rabbitmq/bin/rabbitmq-server
}

mysql_root() { mariadb --no-defaults -S "$RUN/mysql.sock" -uroot "$@"; }

start_mariadb() {
  local d=$DATA/mysql
  mkdir -p "$d"
  mariadb-install-db --no-defaults --datadir="$d" --user=root \
    --auth-root-authentication-method=normal --skip-test-db >"$LOGS/setup-mariadb.log" 2>&1 ||
    fail "mariadb-install-db failed" setup-mariadb
  start mariadb /usr/sbin/mariadbd --no-defaults --datadir="$d" --user=root \
    --bind-address=127.0.0.1 --port="$OSMO_MYSQL_PORT" --socket="$RUN/mysql.sock" \
    --pid-file="$DATA/mariadbd.pidfile" --skip-name-resolve --skip-log-bin \
    --innodb-buffer-pool-size=128M --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 \
    --performance-schema=OFF --max-connections=500
}

check_ports() {
  local p
  for p in "$OSMO_MYSQL_PORT" "$OSMO_RABBIT_PORT" "$OSMO_RABBIT_DIST_PORT" "$OSMO_KEYSTONE_PORT" "$OSMO_KEYSTONE_SHORT_PORT" \
           "$OSMO_NOVA_PORT" "$OSMO_NOVA2_PORT" "$OSMO_PLACEMENT_PORT" "$OSMO_GLANCE_PORT" "$OSMO_NEUTRON_PORT" \
           "$OSMO_CINDER_PORT"; do
    if port_open "$p"; then fail "port $p on 127.0.0.1 is taken by a process that is not this stack's"; fi
  done
}

start_brokers() {
  start_mariadb
  start_rabbit
  wait_until mariadb "MariaDB" mysql_root -e 'select 1'
  mysql_root <<EOF
CREATE USER IF NOT EXISTS 'os'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
GRANT ALL ON *.* TO 'os'@'127.0.0.1';
CREATE DATABASE IF NOT EXISTS keystone; CREATE DATABASE IF NOT EXISTS placement;
CREATE DATABASE IF NOT EXISTS glance; CREATE DATABASE IF NOT EXISTS neutron;
CREATE DATABASE IF NOT EXISTS cinder;
$(for nova in $NOVAS; do for db in api cell0 cell1; do echo "CREATE DATABASE IF NOT EXISTS ${nova}_$db;"; done; done)
EOF
  log "mariadb ready on :$OSMO_MYSQL_PORT ($(elapsed "$T0")s)"
}

# RabbitMQ boots (a few seconds) while the databases are set up; only nova and cinder need it.
wait_rabbit() {
  wait_until rabbit "RabbitMQ on :$OSMO_RABBIT_PORT" port_open "$OSMO_RABBIT_PORT"
  log "rabbitmq ready on :$OSMO_RABBIT_PORT ($(elapsed "$T0")s)"
}

# ---------------------------------------------------------------- OpenStack services
# start_uwsgi NAME PORT MODULE [UWSGI ARGS...]
start_uwsgi() {
  local name=$1 port=$2 module=$3; shift 3
  start "$name" "$VENV/bin/uwsgi" --http-socket "127.0.0.1:$port" --module "$module" \
    --home "$VENV" --master --processes 1 --threads 4 --enable-threads --lazy-apps \
    --die-on-term --need-app --buffer-size 65535 --add-header "Connection: close" \
    --hook-master-start "unix_signal:15 gracefully_kill_them_all" \
    --procname-prefix-spaced "osmo-$name" "$@"
}

export OS_KEYSTONE_CONFIG_FILES=$ETC/keystone/keystone.conf
export OS_PLACEMENT_CONFIG_DIR=$ETC/placement
export OS_GLANCE_CONFIG_DIR=$ETC/glance
export OS_NOVA_CONFIG_FILES="api-paste.ini;nova.conf;nova-db.conf"  # in OS_NOVA_CONFIG_DIR, per Nova
export OS_NEUTRON_CONFIG_DIR=$ETC/neutron

# Schema cache: the databases as the real migrations (and keystone's bootstrap) left them
# are dumped once to $OS_CACHE/schemas/KEY and loaded from there on later starts, which
# saves most of a minute. KEY changes with anything that shapes them (pinned packages,
# these scripts, ports, passwords). OSMO_OS_NO_SCHEMA_CACHE=1 forces the migrations.
SCHEMA_KEY=$(cat "$OS_HACK/constraints.txt" "$OS_HACK"/fakebind/* "$OS_HACK/up.sh" "$OS_HACK/config.sh" \
  "$OS_HACK/seed.py" "$OS_HACK/common.sh" <(env | grep -E '^OSMO_(OS_ADMIN_PASSWORD|OS_DEMO_PASSWORD|[A-Z_]*_PORT)=' | sort) |
  sha256sum | cut -c1-16)
SCHEMAS=$OS_CACHE/schemas/$SCHEMA_KEY

# cached NAME: the dump of NAME's databases can be loaded.
cached() { [ "${OSMO_OS_NO_SCHEMA_CACHE:-}" != 1 ] && [ -f "$SCHEMAS/$1.sql" ]; }
# keystone's dump also needs its keys, which are saved first
keystone_cached() { cached keystone && [ -d "$SCHEMAS/keystone-keys" ]; }
# restore NAME: loads the dump of NAME's databases.
restore() { mysql_root < "$SCHEMAS/$1.sql"; echo "databases of $1 loaded from $SCHEMAS"; }
# save NAME DB...: dumps the databases (atomically: a later start sees all or nothing).
save() {
  local name=$1; shift
  mkdir -p "$SCHEMAS"
  mariadb-dump --no-defaults -S "$RUN/mysql.sock" -uroot --single-transaction --skip-comments \
    --databases "$@" > "$SCHEMAS/$name.sql.$$"
  mv "$SCHEMAS/$name.sql.$$" "$SCHEMAS/$name.sql"
}

start_keystone() {
  local k=("$VENV/bin/keystone-manage" --config-file "$ETC/keystone/keystone.conf")
  if keystone_cached; then
    restore keystone
    cp -a "$SCHEMAS/keystone-keys/." "$DATA/keystone/"
  else
    "${k[@]}" db_sync
    "${k[@]}" fernet_setup --keystone-user root --keystone-group root
    "${k[@]}" credential_setup --keystone-user root --keystone-group root
    "${k[@]}" bootstrap --bootstrap-password "$OSMO_OS_ADMIN_PASSWORD" \
      --bootstrap-region-id RegionOne --bootstrap-admin-url "$KEYSTONE_URL/v3" \
      --bootstrap-internal-url "$KEYSTONE_URL/v3" --bootstrap-public-url "$KEYSTONE_URL/v3"
  fi
  start_uwsgi keystone "$OSMO_KEYSTONE_PORT" keystone.wsgi.api:application
  OS_KEYSTONE_CONFIG_FILES="$ETC/keystone/keystone.conf;$ETC/keystone/short-token.conf" \
    start_uwsgi keystone-short "$OSMO_KEYSTONE_SHORT_PORT" keystone.wsgi.api:application
}

# after 'seed.py keystone': the keystone dump includes the service users and the catalog
save_keystone() {
  keystone_cached && return 0
  rm -rf "$SCHEMAS/keystone-keys.$$"; mkdir -p "$SCHEMAS/keystone-keys.$$"
  cp -a "$DATA/keystone/fernet-keys" "$DATA/keystone/credential-keys" "$SCHEMAS/keystone-keys.$$/"
  rm -rf "$SCHEMAS/keystone-keys"; mv "$SCHEMAS/keystone-keys.$$" "$SCHEMAS/keystone-keys"
  save keystone keystone
}

setup_placement() {
  if cached placement; then restore placement; else
    "$VENV/bin/placement-manage" --config-file "$ETC/placement/placement.conf" db sync
    save placement placement
  fi
  start_uwsgi placement "$OSMO_PLACEMENT_PORT" placement.wsgi.api:application
}

setup_glance() {
  if cached glance; then restore glance; else
    "$VENV/bin/glance-manage" --config-dir "$ETC/glance" db_sync
    save glance glance
  fi
  start_uwsgi glance "$OSMO_GLANCE_PORT" glance.wsgi.api:application \
    --http-chunked-input --http-raw-body --chunked-input-limit 4096000 --http-auto-chunked
}

# setup_nova NOVA: its databases and its API.
setup_nova() {
  local nova=$1 m
  read -ra m <<< "$VENV/bin/nova-manage $(nova_args "$nova")"
  if cached "$nova"; then restore "$nova"; else
    "${m[@]}" api_db sync
    "${m[@]}" cell_v2 map_cell0 --database_connection "$(dburl "${nova}_cell0")"
    "${m[@]}" cell_v2 create_cell --name cell1 --verbose
    "${m[@]}" db sync
    save "$nova" "${nova}_api" "${nova}_cell0" "${nova}_cell1"
  fi
  OS_NOVA_CONFIG_DIR=$ETC/$nova start_uwsgi "$nova-api" "${NOVA_PORT[$nova]}" nova.wsgi.osapi_compute:application
}

setup_neutron() {
  if cached neutron; then restore neutron; else
    "$VENV/bin/neutron-db-manage" --config-file "$ETC/neutron/neutron.conf" \
      --config-file "$ETC/neutron/plugins/ml2/ml2_conf.ini" upgrade heads
    save neutron neutron
  fi
  start_uwsgi neutron "$OSMO_NEUTRON_PORT" neutron.wsgi.api:application
}

# Cinder's API reads its configuration from its command line (uWSGI's --pyargv).
setup_cinder() {
  if cached cinder; then restore cinder; else
    "$VENV/bin/cinder-manage" --config-file "$ETC/cinder/cinder.conf" db sync
    save cinder cinder
  fi
  start_uwsgi cinder-api "$OSMO_CINDER_PORT" cinder.wsgi.api:application \
    --pyargv "--config-file $ETC/cinder/cinder.conf"
}

seed() { "$VENV/bin/python" -B "$OS_HACK/seed.py" "$1" >>"$LOGS/setup-seed.log" 2>&1 || fail "seed.py $1 failed" setup-seed; }

# conductor_registered NOVA: its conductor has registered its service record: computes
# started now find it answering (started earlier, each loses 10 s or more per retry).
conductor_registered() {
  [ "$(mysql_root -N -e "SELECT COUNT(*) FROM ${1}_cell1.services
        WHERE \`binary\` = 'nova-conductor' AND deleted = 0")" -gt 0 ]
}

# discover_hosts NOVA: maps that Nova's new compute hosts to its cell.
discover_hosts() {
  "$VENV/bin/nova-manage" $(nova_args "$1") cell_v2 discover_hosts --by-service --verbose
}

# ---------------------------------------------------------------- main
all_alive() { local n; for n in $ALL_NAMES; do [ "$n" = epmd ] || alive "$n" || return 1; done; }

if all_alive && os_py health 2>/dev/null; then
  log "the OpenStack stack already runs and is healthy: reusing it"
  memory_report
  "$OS_HACK/clouds.sh" >/dev/null
  exit 0
fi
stop_stack   # whatever is left of an earlier stack
rm -rf "$ETC" "$DATA" "$RUN" "$LOGS.prev"
[ -d "$LOGS" ] && mv "$LOGS" "$LOGS.prev"
mkdir -p "$ETC" "$DATA" "$RUN" "$LOGS"
# keep the dumps of the three most recently used keys
[ -d "$SCHEMAS" ] && touch "$SCHEMAS"
if [ -d "$OS_CACHE/schemas" ]; then
  ls -1t "$OS_CACHE/schemas" | tail -n +4 | while read -r d; do rm -rf "${OS_CACHE:?}/schemas/$d"; done
fi
log "starting OpenStack on 127.0.0.1 (state in $OS_STATE)"
check_ports

phase "install (skipped if present)"
install_packages >"$LOGS/setup-apt.log" 2>&1 || fail "apt-get install failed" setup-apt
ensure_venv

phase "mariadb (rabbitmq boots)"
write_configs
start_brokers

phase "schemas, APIs, keystone"
job placement setup_placement
for nova in $NOVAS; do job "$nova" setup_nova "$nova"; done
job neutron setup_neutron
job glance setup_glance
job cinder setup_cinder
start_keystone >"$LOGS/setup-keystone.log" 2>&1 || fail "setting up keystone failed" setup-keystone
wait_http keystone "$OSMO_KEYSTONE_PORT"
wait_http keystone-short "$OSMO_KEYSTONE_SHORT_PORT"
if ! keystone_cached; then
  seed keystone
  save_keystone >>"$LOGS/setup-keystone.log" 2>&1 || fail "saving keystone's database failed" setup-keystone
fi

phase "conductor, scheduler"
wait_rabbit
for nova in $NOVAS; do
  wait_job "$nova"
  start "$nova-conductor" "$VENV/bin/nova-conductor" $(nova_args "$nova")
  start "$nova-scheduler" "$VENV/bin/nova-scheduler" $(nova_args "$nova")
done
wait_job cinder
for c in $CINDER_SERVICES; do start "$c" "$VENV/bin/$c" --config-file "$ETC/cinder/cinder.conf"; done
wait_job placement
wait_http placement "$OSMO_PLACEMENT_PORT"   # computes report to placement at start
for nova in $NOVAS; do
  wait_until "$nova-conductor" "$nova-conductor to register" conductor_registered "$nova"
done

phase "computes, APIs, resources"
WATCHED=""
for nova in $NOVAS; do
  for h in ${NOVA_HOSTS[$nova]}; do
    start_compute "$nova" "$h"
    WATCHED+=" $nova-compute-$h"
  done
  WATCHED+=" $nova-api $nova-conductor $nova-scheduler"
done
WATCHED+=" cinder-api $CINDER_SERVICES"
wait_job glance
wait_job neutron
for nova in $NOVAS; do wait_http "$nova-api" "${NOVA_PORT[$nova]}"; done
wait_http glance "$OSMO_GLANCE_PORT"
wait_http neutron "$OSMO_NEUTRON_PORT"
wait_http cinder-api "$OSMO_CINDER_PORT"
# flavor, image, networks while the computes register
job resources seed resources
os_wait computes $WATCHED
# map the new hosts to each cell1 now instead of at the scheduler's next periodic discovery
for nova in $NOVAS; do job "discover-$nova" discover_hosts "$nova"; done
for nova in $NOVAS; do
  wait "${JOBS[discover-$nova]}" || fail "nova-manage cell_v2 discover_hosts ($nova) failed" "setup-discover-$nova"
done
os_wait hypervisors $WATCHED
os_wait volume-service $WATCHED
wait "${JOBS[resources]}" || fail "seed.py resources failed" setup-seed

phase "availability zones"
seed zones
os_py health || fail "the stack is up but not healthy" setup-seed

phase ""
log "OpenStack is up after $(elapsed "$T0")s:"
printf '%s\n' "${TIMES[@]}" >&2
memory_report
"$OS_HACK/clouds.sh" >/dev/null
log "clouds.yaml: $OS_STATE/clouds.yaml (clouds 'admin' and 'demo', and 'admin-nova2' and 'demo-nova2' for RegionTwo); stop with hack/openstack/down.sh"
