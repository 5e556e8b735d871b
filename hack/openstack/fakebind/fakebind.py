"""ML2 mechanism driver for osmo's test stack: binds every port that has a host.

No L2 agent runs on the test stack, and ML2 fails a binding that no mechanism driver
claims, which would put the server in ERROR. This driver claims any segment with
vif_type 'ovs' and marks the port ACTIVE. Nothing is plugged anywhere.
"""
from neutron_lib.api.definitions import portbindings
from neutron_lib import constants as const
from neutron_lib.plugins.ml2 import api


class FakeBindMechanismDriver(api.MechanismDriver):
    def initialize(self):
        pass

    @property
    def connectivity(self):
        return portbindings.CONNECTIVITY_L2

    def bind_port(self, context):
        if not context.host:
            return
        for segment in context.segments_to_bind:
            context.set_binding(segment[api.ID], portbindings.VIF_TYPE_OVS,
                                {portbindings.CAP_PORT_FILTER: False},
                                status=const.PORT_STATUS_ACTIVE)
            return
