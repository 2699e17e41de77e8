"""`--smoke`: a bench's whole code path on the smallest real input, printing the same table.

The figures of a smoke run mean nothing; that it runs means the bench still works (tests/test_bench_smoke.py
runs every bench this way, so none can rot unnoticed).
"""

import argparse


def add_smoke_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--smoke", action="store_true",
                        help="the same code path on the smallest input, in well under a minute (CI)")


def apply_smoke(args: argparse.Namespace, **smallest: object) -> argparse.Namespace:
    """With `--smoke`, replace the named arguments by their smallest values."""
    if args.smoke:
        for name, value in smallest.items():
            setattr(args, name, value)
    return args
