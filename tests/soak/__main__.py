"""`python -m tests.soak [--duration SECONDS] [--seed N] [--logs DIR]`: exit 1 when a
must-be-zero check found something."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.soak.run import Options, soak
from tests.support.real_cluster import KubeWorld


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__)
    parser.add_argument("--duration", type=float, default=900.0, help="seconds of faults")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--targets", type=int, default=6, help="routes rolled out at once")
    parser.add_argument("--replicas", type=int, default=3, help="serve replicas")
    parser.add_argument("--logs", type=Path, default=None, metavar="DIR",
                        help="keep each process's log here (replica-N.log, scheduler.log)")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.targets < 1 or args.replicas < 1:
        parser.error("--duration, --targets and --replicas must be positive")
    if args.logs is not None and args.logs.exists() and (
            not args.logs.is_dir() or any(args.logs.iterdir())):
        # a run's logs mixed into another's, and its Redis started on the other's files
        parser.error(f"--logs {args.logs}: give a new or empty directory")
    world = KubeWorld()
    try:
        report = soak(Options(duration=args.duration, seed=args.seed, targets=args.targets,
                              replicas=args.replicas, logs=args.logs), world)
    finally:
        world.close()
    print("\n".join(report.lines()))
    if args.logs is not None:
        print(f"logs kept in {args.logs}: replica-N.log (N as above), scheduler.log")
    if report.failed:
        print(f"soak FAILED: {', '.join(report.failed)}")
        return 1
    print("soak passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
