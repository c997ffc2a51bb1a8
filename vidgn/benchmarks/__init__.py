"""`vidgn bench WHAT`: speed benchmarks, one module per WHAT.

Each module in BENCHMARKS has `add_parser(subparsers)`, which registers its `vidgn bench WHAT` parser
with the sub-subparsers of `vidgn bench` and `set_defaults(func=run)`, `run(args) -> int` returning
the exit status. A new benchmark is one more module and one more line here.
"""
from __future__ import annotations

import importlib

BENCHMARKS = {
    "data": "vidgn.benchmarks.data",
    "model": "vidgn.benchmarks.model",
    "fit": "vidgn.benchmarks.fit",
    "decoders": "vidgn.benchmarks.decoders",
}


def add_parser(subparsers) -> None:
    """Register `vidgn bench` and, under it, every benchmark of BENCHMARKS."""
    listed = ", ".join(f"`vidgn bench {name}`" for name in BENCHMARKS)
    p = subparsers.add_parser("bench", help=f"speed benchmarks ({listed})")
    sub = p.add_subparsers(dest="bench", metavar="WHAT", required=True)
    for module_name in BENCHMARKS.values():
        importlib.import_module(module_name).add_parser(sub)
