"""nova-compute with nova's FakeDriver, patched for osmo's tests.

- snapshot(): the stock FakeDriver only sets the task state, so the image created by
  createImage would stay 'queued' in Glance forever. Upload a few bytes through nova's
  own Glance client so that the snapshot becomes 'active' and can be booted from.
- Test hooks, by server metadata: `osmo_test_snapshot_fails` makes the snapshot fail (as a
  broken hypervisor would), `osmo_test_snapshot_delay` (seconds) makes it slow, so that
  tests can fail or interrupt a migration at that step deterministically;
  `osmo_test_spawn_fails_while` (a file path) makes a boot fail while that file exists, so
  that a replacement (which carries its source's metadata) fails to boot until a test says.
- get_host_uptime(): GET /os-hypervisors at microversion 2.88+ asks every compute for
  its uptime; the stock FakeDriver raises NotImplementedError there.
- Detaching a tagged volume: nova-compute then removes the volume's entry from the
  server's device metadata, which libvirt builds from the tags but the FakeDriver never
  does; without the metadata the detach fails after Cinder's attachment is gone, and
  Nova keeps listing the volume. The removal is skipped when there is no metadata.

Arguments are nova-compute's own (--config-file ...). The nova package is not modified.
"""
from nova import monkey_patch
monkey_patch.patch(backend='threading')  # noqa: E402  (must precede other nova imports)

import io  # noqa: E402
import sys  # noqa: E402

from nova.virt import fake  # noqa: E402

_stock_snapshot = fake.FakeDriver.snapshot


def snapshot(self, context, instance, image_id, update_task_state):
    metadata = instance.metadata or {}
    if 'osmo_test_snapshot_fails' in metadata:
        raise RuntimeError('osmo test hook: this snapshot fails')
    if 'osmo_test_snapshot_delay' in metadata:
        import time
        time.sleep(float(metadata['osmo_test_snapshot_delay']))
    _stock_snapshot(self, context, instance, image_id, update_task_state)
    from nova.image import glance
    api = glance.API()
    current = api.get(context, image_id)
    meta = {'disk_format': current.get('disk_format') or 'raw',
            'container_format': current.get('container_format') or 'bare'}
    api.update(context, image_id, meta,
               data=io.BytesIO(b'fake snapshot of ' + instance.uuid.encode()))


_stock_spawn = fake.FakeDriver.spawn


def spawn(self, context, instance, image_meta, *args, **kwargs):
    import os
    flag = (instance.metadata or {}).get('osmo_test_spawn_fails_while')
    if flag and os.path.exists(flag):
        raise RuntimeError('osmo test hook: this boot fails while %s exists' % flag)
    return _stock_spawn(self, context, instance, image_meta, *args, **kwargs)


def get_host_uptime(self):
    return ' 00:00:00 up 1 day,  0 users,  load average: 0.00, 0.00, 0.00'


from nova.compute import manager  # noqa: E402

_stock_delete_disk_metadata = manager.ComputeManager._delete_disk_metadata


def delete_disk_metadata(self, instance, bdm):
    if instance.device_metadata is None:
        return
    _stock_delete_disk_metadata(self, instance, bdm)


manager.ComputeManager._delete_disk_metadata = delete_disk_metadata
fake.FakeDriver.snapshot = snapshot
fake.FakeDriver.spawn = spawn
fake.FakeDriver.get_host_uptime = get_host_uptime

from nova.cmd.compute import main  # noqa: E402

sys.exit(main())
