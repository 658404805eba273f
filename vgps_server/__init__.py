"""vgps_server — serve a policy in its own environment, steer it from ours (docs/serving.md).

Standard library and numpy only, Python 3.8+: this package (not :mod:`vgps`, which needs jax 0.10,
TF 2.21 and numpy 2) is what a policy's environment imports, beside Octo's jax 0.4.20, OpenVLA's
torch or RT-1-X's TF 2.15. :class:`PolicyServer` serves any object with ``sample_actions`` /
``reset``; :class:`PolicyClient` calls one; :mod:`vgps_server.wire` is the message format.
``python -m vgps_server --help`` starts servers for the real policies.
"""
from vgps_server.client import PolicyClient, RemotePolicyError
from vgps_server.server import PolicyServer
from vgps_server.wire import PROTOCOL, ProtocolError

__all__ = ["PolicyClient", "PolicyServer", "RemotePolicyError", "ProtocolError", "PROTOCOL"]
