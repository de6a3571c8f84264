"""`python -m tests.soak --minutes M --seed S [--rate R]`: exit 0 all held, 1 broken, 2 usage."""

from __future__ import annotations

import argparse
import logging
import sys

from tests.soak import tools


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=5.0, help="length of the load and chaos")
    parser.add_argument("--seed", type=int, default=2026, help="seed of the schedule and load")
    parser.add_argument("--rate", type=float, default=5.0, help="new generations per second")
    parser.add_argument(
        "--pool-mode",
        choices=("transaction", "session"),
        default="transaction",
        help="PgBouncer's pool mode (transaction, as production; session only to tell "
        "findings that come from transaction pooling from the others)",
    )
    args = parser.parse_args(argv)  # exits 2 on bad usage
    if args.minutes <= 0 or args.rate <= 0:
        parser.error("--minutes and --rate must be positive")
    missing = tools.missing()
    if missing:
        for line in missing:
            print(f"soak: {line}", file=sys.stderr)
        return 2
    from tests.soak import hosts
    from tests.soak.main import soak

    others = hosts.live_runs()
    if others:
        # Every run uses the same addresses: two at once would route into each other.
        print(
            f"soak: another soak is running ({', '.join(others)}); one at a time", file=sys.stderr
        )
        return 2

    # The load's client logs every retry of Rivya's injected errors; the figures count them.
    logging.getLogger("rivyahooks_protocol").setLevel(logging.ERROR)

    def say(line: str) -> None:
        print(line, flush=True)

    try:
        return soak(args.minutes, args.seed, args.rate, say, args.pool_mode)
    except KeyboardInterrupt:
        print("soak: interrupted; everything it started is stopped and removed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
