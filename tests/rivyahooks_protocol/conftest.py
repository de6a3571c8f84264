"""The protocol is tested against the simulator over real HTTP."""

from tests.support.simulated_rivya import receiver, rivya, sim

__all__ = ["receiver", "rivya", "sim"]
