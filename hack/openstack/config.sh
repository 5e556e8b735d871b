# write_configs: writes every service's configuration under $ETC. Sourced by up.sh.
# Everything listens on 127.0.0.1; every database lives in the stack's private MariaDB.

dburl() { echo "mysql+pymysql://os:$DB_PASSWORD@127.0.0.1:$OSMO_MYSQL_PORT/$1?charset=utf8"; }

# [keystone_authtoken] for a service user
authtoken_section() {
  cat <<EOF
[keystone_authtoken]
www_authenticate_uri = $KEYSTONE_URL
auth_url = $KEYSTONE_URL
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $1
password = $SERVICE_PASSWORD
service_token_roles_required = true
EOF
}

# a section with password auth for calls to another service: SECTION USER [REGION]
auth_section() {
  cat <<EOF
[$1]
auth_type = password
auth_url = $KEYSTONE_URL
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $2
password = $SERVICE_PASSWORD
region_name = ${3:-RegionOne}
EOF
}

write_configs() {
  mkdir -p "$ETC"/{keystone,placement,glance,neutron/plugins/ml2} \
    "$DATA"/{keystone,glance/images,glance/staging,glance/tasks,neutron,locks}

  cat > "$ETC/keystone/keystone.conf" <<EOF
[database]
connection = $(dburl keystone)
[identity]
# bcrypt at its cheapest: every token request checks a password (test stack only)
password_hash_rounds = 4
[token]
provider = fernet
[fernet_tokens]
key_repository = $DATA/keystone/fernet-keys
[fernet_receipts]
key_repository = $DATA/keystone/fernet-keys
[credential]
key_repository = $DATA/keystone/credential-keys
EOF
  # keystone-short reads this after keystone.conf: same database and keys, short tokens.
  printf '[token]\nexpiration = 20\n' > "$ETC/keystone/short-token.conf"

  { cat <<EOF
[api]
auth_strategy = keystone
[placement_database]
connection = $(dburl placement)
EOF
    authtoken_section placement
  } > "$ETC/placement/placement.conf"

  { cat <<EOF
[DEFAULT]
enabled_backends = fs:file
[database]
connection = $(dburl glance)
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = $DATA/glance/images/
[os_glance_staging_store]
filesystem_store_datadir = $DATA/glance/staging/
[os_glance_tasks_store]
filesystem_store_datadir = $DATA/glance/tasks/
[paste_deploy]
flavor = keystone
config_file = $VENV/etc/glance/glance-api-paste.ini
[oslo_concurrency]
lock_path = $DATA/locks
EOF
    authtoken_section glance
  } > "$ETC/glance/glance-api.conf"

  local nova
  for nova in $NOVAS; do write_nova_configs "$nova"; done
  write_cinder_configs

  { cat <<EOF
[DEFAULT]
core_plugin = ml2
service_plugins = router
transport_url = $TRANSPORT_URL
auth_strategy = keystone
state_path = $DATA/neutron
api_paste_config = $VENV/etc/neutron/api-paste.ini
notify_nova_on_port_status_changes = true
notify_nova_on_port_data_changes = true
dhcp_agent_notification = false
[database]
connection = $(dburl neutron)
[oslo_concurrency]
lock_path = $DATA/locks
EOF
    authtoken_section neutron
    auth_section nova nova
  } > "$ETC/neutron/neutron.conf"
  # No L2 agent runs: the 'fakebind' mechanism driver (hack/openstack/fakebind) binds
  # every port. 'public' is the flat physical network behind the floating IP pool.
  cat > "$ETC/neutron/plugins/ml2/ml2_conf.ini" <<EOF
[ml2]
type_drivers = flat,local
tenant_network_types = local
mechanism_drivers = fakebind
extension_drivers = port_security
[ml2_type_flat]
flat_networks = public
EOF
}

# write_nova_configs NOVA: the configuration of one of the two Novas, in $ETC/NOVA. Each has
# its own databases, RabbitMQ virtual host (its conductor, scheduler and computes talk only
# among themselves) and state; both use the same Keystone, Glance, Neutron and Placement,
# found in the Nova's own region of the catalog (seed.py registers them in both).
write_nova_configs() {
  local nova=$1 region=${NOVA_REGION[$1]}
  mkdir -p "$ETC/$nova" "$DATA/$nova" "$DATA/locks/$nova"
  # nova.conf has no database: nova-compute reaches the databases only through the
  # conductor. The other nova processes also read nova-db.conf.
  { cat <<EOF
[DEFAULT]
transport_url = $TRANSPORT_URL${NOVA_VHOST[$nova]}
my_ip = 127.0.0.1
state_path = $DATA/$nova
compute_driver = fake.FakeDriver
# Neutron notifies only RegionOne's Nova of port events: no Nova waits for them.
vif_plugging_is_fatal = false
vif_plugging_timeout = 0
# quick start-up and quick detection of a stopped compute
periodic_fuzzy_delay = 0
report_interval = 5
service_down_time = 20
graceful_shutdown_timeout = 5
[api]
auth_strategy = keystone
[wsgi]
api_paste_config = $ETC/$nova/api-paste.ini
[oslo_concurrency]
lock_path = $DATA/locks/$nova
[scheduler]
discover_hosts_in_cells_interval = 5
workers = 1
[conductor]
workers = 1
[vnc]
enabled = false
[glance]
region_name = $region
EOF
    authtoken_section nova
    # Both Novas attach and detach through the one Cinder, found in their own region.
    auth_section cinder nova "$region"
    echo "os_region_name = $region"
    auth_section placement placement "$region"
    auth_section neutron neutron "$region"
    auth_section service_user nova "$region"
    echo "send_service_user_token = true"
  } > "$ETC/$nova/nova.conf"
  cp "$VENV/etc/nova/api-paste.ini" "$ETC/$nova/api-paste.ini"
  cat > "$ETC/$nova/nova-db.conf" <<EOF
[api_database]
connection = $(dburl "${nova}_api")
[database]
connection = $(dburl "${nova}_cell1")
EOF
}

# write_cinder_configs: Cinder's API, scheduler and volume service, in $ETC/cinder. One
# backend, 'fake': Cinder's own FakeLoggingVolumeDriver (the LVM driver with every command
# only logged; see README for why not real LVM). Volumes still pass through Cinder's whole
# state machine, and attachments are real Cinder attachments.
write_cinder_configs() {
  mkdir -p "$ETC/cinder" "$DATA/cinder" "$DATA/locks/cinder"
  { cat <<EOF
[DEFAULT]
transport_url = $TRANSPORT_URL$CINDER_VHOST
my_ip = 127.0.0.1
host = cinder-1
state_path = $DATA/cinder
auth_strategy = keystone
api_paste_config = $VENV/etc/cinder/api-paste.ini
enabled_backends = fake
glance_api_servers = http://127.0.0.1:$OSMO_GLANCE_PORT
report_interval = 5
service_down_time = 20
periodic_fuzzy_delay = 0
osapi_volume_workers = 1
# generous default quotas: the tests that run side by side all make volumes
quota_volumes = 500
quota_gigabytes = 5000
quota_snapshots = 500
[database]
connection = $(dburl cinder)
[oslo_concurrency]
lock_path = $DATA/locks/cinder
[fake]
volume_driver = cinder.tests.fake_driver.FakeLoggingVolumeDriver
volume_backend_name = fake
target_helper = fake
EOF
    authtoken_section cinder
    auth_section nova cinder
    auth_section service_user cinder
    echo "send_service_user_token = true"
  } > "$ETC/cinder/cinder.conf"
}
