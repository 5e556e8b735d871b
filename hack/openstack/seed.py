"""Seeds osmo's OpenStack test stack over REST (Python standard library only).

    seed.py keystone   service project and users, catalog (RegionOne: every service;
                       RegionTwo: the second Nova and the same Keystone, Glance, Neutron,
                       Placement and Cinder), project 'demo' with user 'demo'
    seed.py resources  flavor m1.tiny in both Novas, image 'base', networks 'private' and
                       'public' (floating IP pool), router 'r1'
    seed.py zones      availability zones havana and icehouse in the first Nova, juno in the
                       second (one aggregate per compute host; needs the hosts mapped to cells)

Every step is idempotent: what exists already is left as it is.
"""
import os
import sys
import time

import ostack

SERVICE_PASSWORD = 'secret'  # same as common.sh
PORTS = {name: os.environ.get('OSMO_%s_PORT' % name.upper(), default) for name, default in
         (('keystone', '5000'), ('nova', '8774'), ('nova2', '8764'), ('placement', '8778'),
          ('glance', '9292'), ('neutron', '9696'), ('cinder', '8766'))}
# (service user and name, type, {region: public URL}): each region has its own Nova; the
# other services are one, registered in both regions.
SHARED = ostack.NOVAS.keys()
SERVICES = [
    ('keystone', 'identity', dict.fromkeys(SHARED, 'http://127.0.0.1:%s/v3' % PORTS['keystone'])),
    ('nova', 'compute', {ostack.REGION_ONE: 'http://127.0.0.1:%s/v2.1' % PORTS['nova'],
                         ostack.REGION_TWO: 'http://127.0.0.1:%s/v2.1' % PORTS['nova2']}),
    ('placement', 'placement', dict.fromkeys(SHARED, 'http://127.0.0.1:%s' % PORTS['placement'])),
    ('glance', 'image', dict.fromkeys(SHARED, 'http://127.0.0.1:%s' % PORTS['glance'])),
    ('neutron', 'network', dict.fromkeys(SHARED, 'http://127.0.0.1:%s' % PORTS['neutron'])),
    # with the project in the URL, as most clouds still register Cinder (keystone fills it in)
    ('cinder', 'block-storage',
     dict.fromkeys(SHARED, 'http://127.0.0.1:%s/v3/$(project_id)s' % PORTS['cinder'])),
]
PRIVATE_CIDR = '198.51.100.0/24'   # documentation ranges: no packet is ever sent on them
PUBLIC_CIDR = '203.0.113.0/24'


def log(*args):
    print('[seed]', *args, file=sys.stderr, flush=True)


def one(items):
    return items[0] if items else None


def keystone():
    c = ostack.admin()

    def ensure(path, key, name, body, query=None):
        found = one(c.get('identity', '%s?name=%s%s' % (path, name, query or ''))[path[1:]])
        if found:
            return found
        log('create %s %s' % (key, name))
        return c.post('identity', path, {key: dict(body, name=name)})[key]

    def grant(project, user, role):
        c.put('identity', '/projects/%s/users/%s/roles/%s' % (project['id'], user['id'], role['id']))

    roles = {r: ensure('/roles', 'role', r, {}) for r in ('admin', 'member', 'reader', 'service')}
    service = ensure('/projects', 'project', 'service', {'domain_id': 'default'})
    regions = {r['id'] for r in c.get('identity', '/regions')['regions']}
    for region in ostack.NOVAS:
        if region not in regions:
            c.post('identity', '/regions', {'region': {'id': region}})
    catalog = {s['type']: s for s in c.get('identity', '/services')['services']}
    for user_name, stype, urls in SERVICES:
        if stype != 'identity':  # keystone's bootstrap made the admin user
            user = ensure('/users', 'user', user_name,
                          {'password': SERVICE_PASSWORD, 'domain_id': 'default'})
            for role in ('admin', 'service'):
                grant(service, user, roles[role])
        svc = catalog.get(stype) or c.post('identity', '/services', {'service': {
            'name': user_name, 'type': stype}})['service']
        have = {(e['region_id'], e['interface']) for e in
                c.get('identity', '/endpoints?service_id=' + svc['id'])['endpoints']}
        for region, url in urls.items():
            for iface in ('public', 'internal', 'admin'):
                if (region, iface) not in have:
                    c.post('identity', '/endpoints', {'endpoint': {
                        'service_id': svc['id'], 'interface': iface, 'url': url,
                        'region_id': region}})
    demo_project = ensure('/projects', 'project', 'demo', {'domain_id': 'default'})
    demo_name, demo_password, _ = ostack.DEMO
    demo_user = ensure('/users', 'user', demo_name,
                       {'password': demo_password, 'domain_id': 'default',
                        'default_project_id': demo_project['id']})
    grant(demo_project, demo_user, roles['member'])
    log('keystone: service users, catalog and project demo ready')


def resources():
    c = ostack.admin()
    novas = [ostack.admin(region) for region in ostack.NOVAS]

    # the same flavor in each Nova (by name: its ID differs)
    for nova in novas:
        if not any(f['name'] == 'm1.tiny' for f in nova.get('compute', '/flavors')['flavors']):
            nova.post('compute', '/flavors', {'flavor': {'name': 'm1.tiny', 'ram': 512, 'vcpus': 1, 'disk': 1}})
            log('flavor m1.tiny in %s' % nova.endpoints['compute'])

    # image 'base': 1 KiB of raw zeros
    image = one(c.get('image', '/images?name=base')['images'])
    if not image:
        image = c.post('image', '/images', {'name': 'base', 'disk_format': 'raw',
                                            'container_format': 'bare', 'visibility': 'public'})
    if image['status'] == 'queued':
        c.call('PUT', 'image', '/images/%s/file' % image['id'], data=bytes(1024),
               headers={'Content-Type': 'application/octet-stream'})
    ostack.wait("image 'base' active",
                lambda: c.get('image', '/images/' + image['id'])['status'] == 'active', 120)
    log('image base active')

    # networks, subnets, router
    def network(name, body):
        return one(c.get('network', '/networks?name=' + name)['networks']) or \
            c.post('network', '/networks', {'network': dict(body, name=name)})['network']

    def subnet(name, net, cidr, **extra):
        return one(c.get('network', '/subnets?name=' + name)['subnets']) or \
            c.post('network', '/subnets', {'subnet': dict(
                extra, name=name, network_id=net['id'], ip_version=4, cidr=cidr)})['subnet']

    private = network('private', {'shared': True})
    private_subnet = subnet('private-subnet', private, PRIVATE_CIDR)
    public = network('public', {'router:external': True, 'provider:network_type': 'flat',
                                'provider:physical_network': 'public'})
    subnet('public-subnet', public, PUBLIC_CIDR, enable_dhcp=False)
    router = one(c.get('network', '/routers?name=r1')['routers']) or \
        c.post('network', '/routers', {'router': {
            'name': 'r1', 'external_gateway_info': {'network_id': public['id']}}})['router']
    ports = c.get('network', '/ports?device_id=%s&network_id=%s' % (router['id'], private['id']))['ports']
    if not ports:
        c.put('network', '/routers/%s/add_router_interface' % router['id'],
              {'subnet_id': private_subnet['id']})
    log('networks private %s, public %s (floating IP pool), router r1' % (PRIVATE_CIDR, PUBLIC_CIDR))

    # quotas large enough for the tests that run side by side (the chaos test alone boots 20)
    projects = c.get('identity', '/projects')['projects']
    for project in (p for p in projects if p['name'] in ('admin', 'demo')):
        for nova in novas:
            nova.put('compute', '/os-quota-sets/' + project['id'],
                     {'quota_set': {'instances': 500, 'cores': 1000, 'ram': 512000}})
        c.put('network', '/quotas/' + project['id'],
              {'quota': {'floatingip': 500, 'port': 2000, 'network': 100, 'subnet': 100}})
    log('quotas raised for projects admin and demo')


def zones():
    # one aggregate and availability zone per compute host, in its Nova
    for region, hosts in ostack.NOVAS.items():
        c = ostack.admin(region)
        aggregates = {a['name']: a for a in c.get('compute', '/os-aggregates')['aggregates']}
        for host, zone in hosts.items():
            name = 'agg-' + zone
            agg = aggregates.get(name) or c.post('compute', '/os-aggregates', {'aggregate': {
                'name': name, 'availability_zone': zone}})['aggregate']
            if host not in (agg.get('hosts') or []):
                c.post('compute', '/os-aggregates/%s/action' % agg['id'], {'add_host': {'host': host}})
            log('availability zone %s: %s (%s)' % (zone, host, region))


def main(argv):
    steps = {'keystone': keystone, 'resources': resources, 'zones': zones}
    if len(argv) != 2 or argv[1] not in steps:
        print(__doc__, file=sys.stderr)
        return 2
    t0 = time.monotonic()
    try:
        steps[argv[1]]()
    except ostack.Error as e:
        log('FAILED: %s' % e)
        return 1
    log('%s done in %.1fs' % (argv[1], time.monotonic() - t0))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
