"""A small OpenStack REST client for osmo's test stack, Python standard library only.

Used as a module by seed.py and smoke.py, and as a command by up.sh:

    ostack.py health                  exit 0 when the stack is up and seeded (quick)
    ostack.py wait-computes SECS      wait until every seeded nova-compute service is up
    ostack.py wait-hypervisors SECS   wait until every seeded hypervisor is listed and up
    ostack.py wait-volume-service SECS  wait until Cinder's volume service is up

Every wait gives up early when a process named in OSMO_OS_WATCH (PID file paths,
separated by spaces) has died, so a crash is reported at once, not after the deadline.

Settings come from the environment, with the same defaults as common.sh.
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request

HOST = '127.0.0.1'
AUTH_URL = 'http://%s:%s/v3' % (HOST, os.environ.get('OSMO_KEYSTONE_PORT', '5000'))
ADMIN = ('admin', os.environ.get('OSMO_OS_ADMIN_PASSWORD', 'secret'), 'admin')
DEMO = ('demo', os.environ.get('OSMO_OS_DEMO_PASSWORD', 'demo-secret'), 'demo')
# The two separate Novas, by region: each one's seeded compute hosts and their zones (the
# hosts of common.sh's NOVA_HOSTS).
REGION_ONE = 'RegionOne'
REGION_TWO = 'RegionTwo'
NOVAS = {
    REGION_ONE: {'havana-1': 'havana', 'icehouse-1': 'icehouse'},
    REGION_TWO: {'juno-1': 'juno'},
}
NOVA_MICROVERSION = '2.95'


class Error(Exception):
    pass


class HTTPError(Error):
    def __init__(self, method, url, status, body):
        super().__init__('%s %s -> %s %s' % (method, url, status, body[:500]))
        self.status = status
        self.body = body


def http(method, url, body=None, headers=None, data=None, timeout=60):
    """One request; returns (status, headers, parsed JSON body or None)."""
    hdrs = {'Accept': 'application/json'}
    if body is not None:
        data = json.dumps(body).encode()
        hdrs['Content-Type'] = 'application/json'
    hdrs.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            status, rh = resp.status, resp.headers
    except urllib.error.HTTPError as e:
        raise HTTPError(method, url, e.code, e.read().decode(errors='replace')) from None
    parsed = None
    if raw and 'json' in (rh.get('Content-Type') or ''):
        parsed = json.loads(raw)
    return status, rh, parsed


class Cloud:
    """A token scoped to one project plus the public endpoints of one region of its catalog."""

    def __init__(self, user, password, project, auth_url=AUTH_URL, region=REGION_ONE):
        body = {'auth': {
            'identity': {'methods': ['password'], 'password': {'user': {
                'name': user, 'domain': {'id': 'default'}, 'password': password}}},
            'scope': {'project': {'name': project, 'domain': {'id': 'default'}}}}}
        _, headers, tok = http('POST', auth_url + '/auth/tokens', body, timeout=30)
        self.token = headers['X-Subject-Token']
        self.project_id = tok['token']['project']['id']
        self.user_id = tok['token']['user']['id']
        self.roles = [r['name'] for r in tok['token']['roles']]
        self.endpoints = {}
        for svc in tok['token'].get('catalog', []):
            for ep in svc['endpoints']:
                if ep['interface'] == 'public' and ep['region_id'] == region:
                    self.endpoints[svc['type']] = ep['url'].rstrip('/')
        self.endpoints.setdefault('identity', auth_url)

    def url(self, service, path):
        base = self.endpoints[service]
        if service == 'image' and not base.endswith('/v2'):
            base += '/v2'
        if service == 'network' and not base.endswith('/v2.0'):
            base += '/v2.0'
        return base + path

    def call(self, method, service, path, body=None, headers=None, data=None, timeout=60):
        hdrs = {'X-Auth-Token': self.token}
        if service == 'compute':
            hdrs['OpenStack-API-Version'] = 'compute ' + NOVA_MICROVERSION
        hdrs.update(headers or {})
        # A service just started may fail to validate tokens with Keystone for a moment (its
        # auth middleware answers 503 before the request reaches the service: any method is
        # safe to send again). Seen once on a loaded CI machine; later requests passed.
        deadline = time.monotonic() + 60
        while True:
            try:
                return http(method, self.url(service, path), body, hdrs, data, timeout)[2]
            except HTTPError as e:
                unvalidated = e.status == 503 and 'Keystone service is temporarily unavailable' in e.body
                if not unvalidated or time.monotonic() > deadline:
                    raise
                time.sleep(2)

    def get(self, service, path):
        return self.call('GET', service, path)

    def post(self, service, path, body=None):
        return self.call('POST', service, path, body)

    def put(self, service, path, body=None):
        return self.call('PUT', service, path, body)

    def delete(self, service, path, missing_ok=True):
        try:
            self.call('DELETE', service, path)
        except HTTPError as e:
            if not (missing_ok and e.status == 404):
                raise

    def status(self, method, service, path):
        """HTTP status of a request (404 and other errors included)."""
        try:
            self.call(method, service, path)
            return 200
        except HTTPError as e:
            return e.status


def admin(region=REGION_ONE):
    return Cloud(*ADMIN, region=region)


def demo(region=REGION_ONE):
    return Cloud(*DEMO, region=region)


def dead_watched():
    """Names of watched processes (OSMO_OS_WATCH, PID file paths) that no longer run."""
    dead = []
    for pidfile in os.environ.get('OSMO_OS_WATCH', '').split():
        try:
            pid = int(open(pidfile).read().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            dead.append(os.path.basename(pidfile)[:-4])
    return dead


def wait(desc, fn, timeout, interval=0.5):
    """Poll fn() until it returns something true; errors count as 'not yet'."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = fn()
            if value:
                return value
        except (Error, OSError, KeyError, ValueError) as e:
            last = e
        dead = dead_watched()
        if dead:
            raise Error('%s died while waiting for %s' % (', '.join(dead), desc))
        if time.monotonic() >= deadline:
            raise Error('timed out after %ss waiting for %s (last error: %s)' % (timeout, desc, last))
        time.sleep(interval)


def services_up(cloud, binary):
    """{host: True/False (up and enabled)} for a nova binary."""
    svcs = cloud.get('compute', '/os-services?binary=' + binary)['services']
    return {s['host']: s['state'] == 'up' and s['status'] == 'enabled' for s in svcs}


def computes_up(clouds):
    """Whether every Nova's seeded compute services are up; clouds: {region: Cloud}."""
    for region, cloud in clouds.items():
        up = services_up(cloud, 'nova-compute')
        if not all(up.get(h) for h in NOVAS[region]):
            return False
    return True


def hypervisors_up(clouds):
    for region, cloud in clouds.items():
        hvs = cloud.get('compute', '/os-hypervisors/detail')['hypervisors']
        up = {h['service']['host'] for h in hvs if h['state'] == 'up' and h['status'] == 'enabled'}
        if not all(h in up for h in NOVAS[region]):
            return False
    return True


def volume_service_up(cloud):
    """Whether Cinder's volume service (backend 'fake') is up and enabled."""
    svcs = cloud.get('block-storage', '/os-services?binary=cinder-volume')['services']
    return any(s['state'] == 'up' and s['status'] == 'enabled' for s in svcs)


def admins():
    """An admin token for each Nova's region."""
    return {region: admin(region) for region in NOVAS}


def health():
    """Quick check that a running stack can be reused as it is."""
    clouds = admins()
    demo()
    if not hypervisors_up(clouds):
        raise Error('hypervisors not up')
    if not volume_service_up(clouds[REGION_ONE]):
        raise Error('cinder-volume not up')
    cloud = clouds[REGION_ONE]
    images = cloud.get('image', '/images?name=base')['images']
    if not images or images[0]['status'] != 'active':
        raise Error("image 'base' not active")
    for name in ('private', 'public'):
        if not cloud.get('network', '/networks?name=' + name)['networks']:
            raise Error('network %r missing' % name)


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ''
    secs = float(argv[2]) if len(argv) > 2 else 600
    t0 = time.monotonic()
    clouds = []

    def cloud():  # one token per region for the whole wait, taken once keystone answers
        if not clouds:
            clouds.append(admins())
        return clouds[0]
    try:
        if cmd == 'health':
            health()
        elif cmd == 'wait-computes':
            wait('the seeded nova-compute services', lambda: computes_up(cloud()), secs)
        elif cmd == 'wait-hypervisors':
            wait('the seeded hypervisors', lambda: hypervisors_up(cloud()), secs)
        elif cmd == 'wait-volume-service':
            wait("Cinder's volume service", lambda: volume_service_up(cloud()[REGION_ONE]), secs)
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except Exception as e:  # noqa: BLE001 - the shell only needs a message and a status
        print('%s: %s' % (cmd, e), file=sys.stderr)
        return 1
    if cmd != 'health':
        print('%s: ok after %.1fs' % (cmd, time.monotonic() - t0), file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
