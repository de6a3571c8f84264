"""Run the simulator: `python -m rivyahooks.rivya.simulator --help`."""

from rivyahooks.rivya.simulator.cli import simulate

simulate()
