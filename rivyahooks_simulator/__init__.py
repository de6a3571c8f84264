"""A Rivya API v1 simulator over real HTTP, with fault injection, for tests and the demo."""

from rivyahooks_simulator.config import Faults, SimConfig
from rivyahooks_simulator.content import iter_result_bytes, result_bytes_sha256
from rivyahooks_simulator.server import Simulator, create_app

__all__ = [
    "Faults",
    "SimConfig",
    "Simulator",
    "create_app",
    "iter_result_bytes",
    "result_bytes_sha256",
]
