"""Smoke check of osmo's OpenStack test stack (hack/openstack/up.sh); Python stdlib only.

Walks the migration path that osmo automates, with the 'demo' user owning the servers
and 'admin' checking where they run:

  tokens for both clouds; both nova-compute services up in their zones; boot in zone
  havana on 'private'; floating IP from 'public'; stop; createImage and wait for Glance
  'active'; delete; boot from the snapshot in zone icehouse (on icehouse-1); move the
  floating IP to the new server; clean up.

Exit status 0 only when every step passed. Leftovers of an interrupted run are removed
first, so it can run again and again.  Usage: python3 hack/openstack/smoke.py
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ostack  # noqa: E402

PREFIX = 'osmo-smoke'
T0 = time.monotonic()


def log(*args):
    print('[%6.1fs]' % (time.monotonic() - T0), *args, flush=True)


def wait(desc, fn, timeout=180):
    t = time.monotonic()
    value = ostack.wait(desc, fn, timeout, interval=0.25)
    log('   %s after %.1fs' % (desc, time.monotonic() - t))
    return value


def server_status(cloud, sid):
    server = cloud.get('compute', '/servers/' + sid)['server']
    if server['status'] == 'ERROR':
        raise SystemExit('server %s went to ERROR: %s' % (sid, server.get('fault')))
    return server


def cleanup(admin, demo):
    """Deletes the servers, floating IPs and snapshots of earlier runs."""
    servers = admin.get('compute', '/servers?all_tenants=1&name=%%5E%s' % PREFIX)['servers']
    for s in servers:
        admin.delete('compute', '/servers/' + s['id'])
    for s in servers:
        wait('server %s gone' % s['name'],
             lambda s=s: admin.status('GET', 'compute', '/servers/' + s['id']) == 404)
    for fip in demo.get('network', '/floatingips')['floatingips']:
        if fip['description'] == PREFIX:
            demo.delete('network', '/floatingips/' + fip['id'])
    for image in admin.get('image', '/images?owner=%s' % demo.project_id)['images']:
        if image['name'].startswith(PREFIX):
            admin.delete('image', '/images/' + image['id'])


def main():
    # tokens for both clouds
    admin, demo = ostack.admin(), ostack.demo()
    log('tokens: admin (roles %s), demo (roles %s); catalog: %s' % (
        ','.join(admin.roles), ','.join(demo.roles), ', '.join(sorted(admin.endpoints))))
    assert 'admin' not in demo.roles, 'demo must not be an admin'

    # compute services
    svcs = admin.get('compute', '/os-services?binary=nova-compute')['services']
    state = {s['host']: (s['zone'], s['status'], s['state']) for s in svcs}
    log('compute services:', state)
    for host, zone in ostack.NOVAS[ostack.REGION_ONE].items():
        assert state.get(host) == (zone, 'enabled', 'up'), 'compute %s: %s' % (host, state.get(host))

    cleanup(admin, demo)
    flavor = [f for f in demo.get('compute', '/flavors')['flavors'] if f['name'] == 'm1.tiny'][0]['id']
    base = demo.get('image', '/images?name=base')['images'][0]['id']
    private = demo.get('network', '/networks?name=private')['networks'][0]['id']
    public = demo.get('network', '/networks?name=public')['networks'][0]['id']

    def boot(name, image, zone, host):
        sid = demo.post('compute', '/servers', {'server': {
            'name': name, 'imageRef': image, 'flavorRef': flavor,
            'networks': [{'uuid': private}], 'availability_zone': zone}})['server']['id']
        wait('%s ACTIVE' % name, lambda: server_status(demo, sid)['status'] == 'ACTIVE')
        seen = admin.get('compute', '/servers/' + sid)['server']
        assert seen['OS-EXT-SRV-ATTR:host'] == host, 'on %s' % seen['OS-EXT-SRV-ATTR:host']
        assert seen['OS-EXT-AZ:availability_zone'] == zone
        port = demo.get('network', '/ports?device_id=' + sid)['ports'][0]
        assert port['status'] == 'ACTIVE', port['status']
        log('%s %s on %s in zone %s, port %s, fixed IP %s' % (
            name, sid, host, zone, port['id'], port['fixed_ips'][0]['ip_address']))
        return sid, port

    # boot in zone havana on 'private'
    old, old_port = boot(PREFIX + '-old', base, 'havana', 'havana-1')

    # floating IP from 'public'
    fip = demo.post('network', '/floatingips', {'floatingip': {
        'floating_network_id': public, 'port_id': old_port['id'], 'description': PREFIX}})['floatingip']
    assert fip['port_id'] == old_port['id'], fip
    log('floating IP %s -> %s' % (fip['floating_ip_address'], fip['fixed_ip_address']))

    # stop, snapshot, wait for Glance
    demo.post('compute', '/servers/%s/action' % old, {'os-stop': None})
    wait('SHUTOFF', lambda: server_status(demo, old)['status'] == 'SHUTOFF')
    snap = demo.post('compute', '/servers/%s/action' % old,
                     {'createImage': {'name': PREFIX + '-snap'}})['image_id']
    wait('snapshot %s active in Glance' % snap,
         lambda: demo.get('image', '/images/' + snap)['status'] == 'active')
    wait('task_state of old server cleared',
         lambda: server_status(demo, old)['OS-EXT-STS:task_state'] is None)

    # delete the old server, boot from the snapshot in zone icehouse
    demo.delete('compute', '/servers/' + old)
    wait('old server deleted', lambda: demo.status('GET', 'compute', '/servers/' + old) == 404)
    new, new_port = boot(PREFIX + '-new', snap, 'icehouse', 'icehouse-1')

    # move the floating IP
    fip = demo.put('network', '/floatingips/' + fip['id'],
                   {'floatingip': {'port_id': new_port['id']}})['floatingip']
    assert fip['port_id'] == new_port['id'], fip
    assert fip['fixed_ip_address'] == new_port['fixed_ips'][0]['ip_address'], fip
    log('floating IP %s moved -> %s' % (fip['floating_ip_address'], fip['fixed_ip_address']))

    # clean up
    cleanup(admin, demo)
    log('cleaned up')


if __name__ == '__main__':
    try:
        main()
    except (ostack.Error, AssertionError, KeyError, IndexError, OSError) as e:
        log('FAILED: %s: %s' % (type(e).__name__, e))
        sys.exit(1)
    log('SMOKE OK: all steps passed')
