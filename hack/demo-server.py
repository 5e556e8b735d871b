"""Boots server NAME on havana-1 (or on HOST, in the default zone) with a floating IP unless
--no-floating-ip; prints its ID. Uses the test stack's own small REST client
(hack/openstack/ostack.py).
    demo-server.py NAME [HOST] [--no-floating-ip]"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'openstack'))
import ostack  # noqa: E402

args = [a for a in sys.argv[1:] if not a.startswith('--')]
name, host = args[0], (args[1] if len(args) > 1 else None)
c = ostack.admin()
flavor = [f for f in c.get('compute', '/flavors')['flavors'] if f['name'] == 'm1.tiny'][0]['id']
image = c.get('image', '/images?name=base')['images'][0]['id']
private = c.get('network', '/networks?name=private')['networks'][0]['id']
public = c.get('network', '/networks?name=public')['networks'][0]['id']
body = {'name': name, 'imageRef': image, 'flavorRef': flavor, 'networks': [{'uuid': private}],
        'availability_zone': 'nova' if host else 'havana'}
if host:
    body['host'] = host


def boot():
    # A new host takes servers once the scheduler has mapped it to the cell (seconds).
    try:
        return c.post('compute', '/servers', {'server': body})['server']
    except ostack.HTTPError as e:
        if e.status != 400:
            raise
        time.sleep(1)
        return None


server = None
deadline = time.time() + 60
while server is None and time.time() < deadline:
    server = boot()
assert server, 'Nova did not accept a server on %s' % host
ostack.wait('server ACTIVE', lambda: c.get('compute', '/servers/' + server['id'])['server']['status'] == 'ACTIVE', 120)
where = host or 'havana-1'
if '--no-floating-ip' in sys.argv:
    print('server %s %s on %s' % (name, server['id'], where), file=sys.stderr)
else:
    port = c.get('network', '/ports?device_id=' + server['id'])['ports'][0]
    fip = c.post('network', '/floatingips', {'floatingip': {
        'floating_network_id': public, 'port_id': port['id']}})['floatingip']
    print('server %s %s on %s, floating IP %s' % (name, server['id'], where, fip['floating_ip_address']),
          file=sys.stderr)
print(server['id'])
