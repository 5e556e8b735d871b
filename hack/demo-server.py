"""Boots server NAME on havana-1 with a floating IP, for the demo; prints its ID.
Uses the test stack's own small REST client (hack/openstack/ostack.py)."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'openstack'))
import ostack  # noqa: E402

name = sys.argv[1]
c = ostack.admin()
flavor = [f for f in c.get('compute', '/flavors')['flavors'] if f['name'] == 'm1.tiny'][0]['id']
image = c.get('image', '/images?name=base')['images'][0]['id']
private = c.get('network', '/networks?name=private')['networks'][0]['id']
public = c.get('network', '/networks?name=public')['networks'][0]['id']
server = c.post('compute', '/servers', {'server': {
    'name': name, 'imageRef': image, 'flavorRef': flavor, 'availability_zone': 'havana',
    'networks': [{'uuid': private}]}})['server']
ostack.wait('server ACTIVE', lambda: c.get('compute', '/servers/' + server['id'])['server']['status'] == 'ACTIVE', 120)
port = c.get('network', '/ports?device_id=' + server['id'])['ports'][0]
fip = c.post('network', '/floatingips', {'floatingip': {'floating_network_id': public, 'port_id': port['id']}})['floatingip']
print(server['id'])
print('server %s %s on havana-1, floating IP %s' % (name, server['id'], fip['floating_ip_address']), file=sys.stderr)
