"""The `vidgn` command: one entry point for the whole pipeline.

Tool subcommands (data preparation, checks, benchmarks) are plain argparse parsers registered by the
module that implements them; `fit|validate|test|predict` are handed to LightningCLI untouched, so
they take YAML configs (`--config`, repeatable), dotted overrides and `--print_config`.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from pathlib import Path

# Module that implements each tool subcommand. Each module has `add_parser(subparsers)`, which
# registers its parser with `set_defaults(func=run)`, `run(args) -> int` returning the exit status.
TOOL_MODULES = {
    "make-synthetic": "vidgn.tools.synthetic.cli",
    "prepare-kinetics": "vidgn.tools.kinetics",
    "check-videos": "vidgn.tools.check_videos",
    "resize-videos": "vidgn.tools.resize",
    "convert-2d": "vidgn.tools.convert_2d",
    "bench": "vidgn.benchmarks",
    "summarize": "vidgn.evaluation.runs_table",
    "compare": "vidgn.comparison",
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
        return _run_lightning(args_list, argv)
    args = build_parser().parse_args(args_list)
    return int(args.func(args) or 0)


class _StderrHandler(logging.StreamHandler):
    """Writes to the current sys.stderr (as logging's own last-resort handler does), so that a
    replaced stderr (a test's capture, a redirect) is honoured."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _show_vidgn_info() -> None:
    """Show vidgn's INFO messages (a few per run: the inflation summary, precise BN) on stderr.

    Unconfigured, Python shows warnings only (logging's last resort), while Lightning gives its own
    logger an INFO handler; vidgn's logger gets the same here, leaving Lightning's as it is. A caller
    that configured logging itself (handlers on the root or vidgn logger) keeps its setup."""
    logger = logging.getLogger("vidgn")
    if logging.getLogger().handlers or logger.handlers:
        return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))  # as Lightning's and the last-resort lines
    logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


def _run_lightning(args_list: list[str], argv: list[str] | None) -> int:
    from lightning.fabric.utilities.exceptions import MisconfigurationException as FabricMisconfiguration
    from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException

    from vidgn.data.datamodule import TooManyBadVideos
    from vidgn.training.cli import run_lightning_cli
    from vidgn.training.module import NonFiniteLossError, NoValidationScores

    # Mistakes in the input (config, lists, videos, checkpoints) get a short message naming the
    # file/line/setting and the fix; the traceback is for VIDGN_DEBUG=1.
    # Lightning's MisconfigurationException (the same class in lightning.pytorch and .fabric today;
    # both named in case they part) is a trainer setting that cannot work here, e.g. accelerator gpu
    # on a machine without one.
    user_errors = (ValueError, OSError, TooManyBadVideos, NonFiniteLossError, NoValidationScores,
                   MisconfigurationException, FabricMisconfiguration)
    _show_vidgn_info()
    try:
        _check_config_files(args_list)
        cli = run_lightning_cli(argv)  # None: LightningCLI reads sys.argv itself
    except SIGTERMException:
        # Preempted (SIGTERM/SIGUSR1/Ctrl-C): checkpoints/last.ckpt was saved; exit as a killed process
        # would, so that job scripts can tell an interrupted run from a finished one.
        return 128 + signal.SIGTERM
    except user_errors as e:
        if os.environ.get("VIDGN_DEBUG"):
            raise
        hint = ""
        if isinstance(e, (MisconfigurationException, FabricMisconfiguration)) and any(
                w in str(e).lower() for w in ("gpu", "cuda", "accelerator", "device")):
            hint = ("\nThe config's trainer.accelerator/devices do not exist on this machine: run on a "
                    "machine that has them, or override them, e.g. --trainer.accelerator cpu --trainer.devices 1")
        print(f"vidgn {args_list[0]}: error: {e}{hint}\n(VIDGN_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2
    return cli.exit_status


def _check_config_files(args: list[str]) -> None:
    """Parse every `--config FILE` first, so that a YAML mistake names its file (LightningCLI's
    message names no file)."""
    import yaml

    for flag, value in zip(args, args[1:]):
        if flag != "--config":
            continue
        path = Path(value)
        if not path.is_file():
            is_dir = " (it is a directory)" if path.is_dir() else ""
            raise FileNotFoundError(f"config file {value} not found{is_dir}")
        try:
            yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            where = getattr(e, "problem_mark", None)
            at = f" line {where.line + 1}, column {where.column + 1}" if where else ""
            problem = getattr(e, "problem", None) or e
            raise ValueError(f"config file {value} is not valid YAML:{at}: {problem}") from None


if __name__ == "__main__":
    sys.exit(main())
