"""`vidgn make-synthetic OUT_DIR [options]`: the command line of `make_synthetic`.

Why generated: every option is a `SyntheticSpec` field, with the field's type, default and help
(`--` + the field name with dashes unless the field names its `flag`; tuples take one or more
values, booleans are switches), so a new parameter is one new field and nothing here.
"""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing

import vidgn.tools.synthetic as synthetic
from vidgn.tools.synthetic.dataset import make_synthetic
from vidgn.tools.synthetic.spec import SyntheticSpec


def spec_options() -> list[tuple[str, dict]]:
    """(option string, `add_argument` keywords) of every `SyntheticSpec` field, in field order."""
    hints = typing.get_type_hints(SyntheticSpec)
    options = []
    for f in dataclasses.fields(SyntheticSpec):
        tp = hints[f.name]
        if typing.get_origin(tp) in (typing.Union, types.UnionType):  # `X | None`: optional X
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        kw = {"dest": f.name, "default": f.default, "help": f.metadata["help"].replace("%", "%%")}
        if tp is bool:
            if f.default is not False:
                raise TypeError(f"SyntheticSpec.{f.name}: a switch must default to False")
            kw["action"] = "store_true"
        elif typing.get_origin(tp) is tuple:
            kw.update(type=typing.get_args(tp)[0], nargs="+")
        else:
            kw["type"] = tp
        if f.default is not None and tp is not bool:
            shown = " ".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
            kw["help"] += f" (default: {shown})"
        if "metavar" in f.metadata:
            kw["metavar"] = f.metadata["metavar"]
        options.append((f.metadata.get("flag", "--" + f.name.replace("_", "-")), kw))
    return options


def spec_from_args(args: argparse.Namespace) -> SyntheticSpec:
    """The `SyntheticSpec` that parsed arguments describe (lists of values become tuples)."""
    values = {}
    for f in dataclasses.fields(SyntheticSpec):
        value = getattr(args, f.name)
        values[f.name] = tuple(value) if isinstance(value, list) else value
    return SyntheticSpec(**values)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "make-synthetic", help="write a synthetic Kinetics-format dataset (motion-defined classes)",
        description=synthetic.__doc__.split("\n\n")[0])
    p.add_argument("out_dir", help="output folder")
    for flag, kw in spec_options():
        p.add_argument(flag, **kw)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        ds = make_synthetic(args.out_dir, spec_from_args(args))
    except ValueError as e:
        print(f"vidgn make-synthetic: error: {e}")
        return 2
    n_train = sum(1 for _ in open(ds.train_list, encoding="utf-8"))
    n_val = sum(1 for _ in open(ds.val_list, encoding="utf-8"))
    print(f"wrote {n_train} train + {n_val} val videos, {len(ds.classes)} classes, to {ds.root}")
    print(f"  lists: {ds.train_list}, {ds.val_list}; classes: {ds.classes_file}")
    return 0
