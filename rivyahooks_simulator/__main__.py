"""Run the simulator: `python -m rivyahooks_simulator --help`."""

from rivyahooks_simulator.cli import simulate

simulate()
