"""The simulator is tested over real HTTP, its documents against the contract's schemas."""

from tests.support.simulated_rivya import receiver, rivya, sim

__all__ = ["receiver", "rivya", "sim"]
