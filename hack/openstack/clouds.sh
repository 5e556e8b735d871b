#!/usr/bin/env bash
# Writes $OSMO_STATE/openstack/clouds.yaml for the stack of up.sh and prints its path.
# Clouds: 'admin' (user admin, project admin) and 'demo' (user demo with role member in
# project demo) in RegionOne, the first Nova; 'admin-nova2' and 'demo-nova2', the same in
# RegionTwo, the second Nova; 'admin-short', admin through the short-token Keystone. Use
# with OS_CLIENT_CONFIG_FILE=<path> OS_CLOUD=admin.
source "$(dirname "$0")/common.sh"
mkdir -p "$OS_STATE"
cloud() { # NAME USER PASSWORD PROJECT [REGION [KEYSTONE URL]]
  cat <<YAML
  $1:
    auth:
      auth_url: ${6:-$KEYSTONE_URL}/v3
      username: $2
      password: $3
      project_name: $4
      user_domain_name: Default
      project_domain_name: Default
    region_name: ${5:-RegionOne}
    interface: public
    identity_api_version: 3
YAML
}
{
  echo "# written by hack/openstack/clouds.sh"
  echo "clouds:"
  cloud admin admin "$OSMO_OS_ADMIN_PASSWORD" admin
  cloud demo demo "$OSMO_OS_DEMO_PASSWORD" demo
  cloud admin-nova2 admin "$OSMO_OS_ADMIN_PASSWORD" admin "${NOVA_REGION[nova2]}"
  cloud demo-nova2 demo "$OSMO_OS_DEMO_PASSWORD" demo "${NOVA_REGION[nova2]}"
  cloud admin-short admin "$OSMO_OS_ADMIN_PASSWORD" admin RegionOne "http://127.0.0.1:$OSMO_KEYSTONE_SHORT_PORT"
} > "$OS_STATE/clouds.yaml"
echo "$OS_STATE/clouds.yaml"
