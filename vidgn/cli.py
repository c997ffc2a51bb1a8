"""The `vidgn` command: one entry point for the whole pipeline.

Tool subcommands (data preparation, checks, benchmarks) are plain argparse parsers registered by the
module that implements them; `fit|validate|test|predict` are handed to LightningCLI untouched, so
they take YAML configs (`--config`, repeatable), dotted overrides and `--print_config`.
"""
from __future__ import annotations

import argparse
import importlib
import signal
import sys

# Module that implements each tool subcommand. Each module has `add_parser(subparsers)`, which
# registers its parser with `set_defaults(func=run)`, `run(args) -> int` returning the exit status.
TOOL_MODULES = {
    "make-synthetic": "vidgn.tools.synthetic.cli",
    "prepare-kinetics": "vidgn.tools.kinetics",
    "check-videos": "vidgn.tools.check_videos",
    "bench": "vidgn.benchmarks",
    "summarize": "vidgn.evaluation.runs_table",
}
LIGHTNING_SUBCOMMANDS = {
    "fit": "train a model (LightningCLI)",
    "validate": "one validation pass (LightningCLI)",
    "test": "clip- and video-level evaluation (LightningCLI)",
    "predict": "predictions for a list of videos (LightningCLI)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidgn",
        description="Video classification with BN/GN I3D ResNets (GN paper, Table 8).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in LIGHTNING_SUBCOMMANDS.items():
        # Listed here so that `vidgn --help` shows them; main() hands them to LightningCLI.
        sub.add_parser(name, help=help_text + "; see `vidgn " + name + " --help`", add_help=False)
    for module_name in TOOL_MODULES.values():
        importlib.import_module(module_name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in LIGHTNING_SUBCOMMANDS:
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        from vidgn.training.cli import run_lightning_cli

        try:
            run_lightning_cli(argv)  # None: LightningCLI reads sys.argv itself
        except SIGTERMException:
            # Preempted (SIGTERM/SIGUSR1): checkpoints/last.ckpt was saved; exit as a killed process
            # would, so that job scripts can tell an interrupted run from a finished one.
            return 128 + signal.SIGTERM
        return 0
    args = build_parser().parse_args(args_list)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
