"""A Rivya API v1 simulator over real HTTP, with fault injection, for tests and the demo."""

from rivyahooks.rivya.simulator.config import Faults, SimConfig
from rivyahooks.rivya.simulator.content import iter_result_bytes, result_bytes_sha256
from rivyahooks.rivya.simulator.server import Simulator, create_app

__all__ = [
    "Faults",
    "SimConfig",
    "Simulator",
    "create_app",
    "iter_result_bytes",
    "result_bytes_sha256",
]
