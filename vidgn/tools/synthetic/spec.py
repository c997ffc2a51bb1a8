"""`SyntheticSpec`: the one typed description of a synthetic dataset, and its validation.

Why one dataclass: every parameter of `make-synthetic` is spelled out here once, with its type,
default and help text. `make_synthetic` takes a spec (or its fields as keyword arguments), the
`vidgn make-synthetic` parser is generated from the fields (`cli`), and synthetic.json records the
spec (`recorded_params`), so the five places that used to repeat the list cannot drift apart.

Field metadata: `help` (also the CLI help), and optionally `flag` (the CLI option, when it is not
`--` + the field name with dashes), `metavar`, and `recorded=False` for fields left out of
synthetic.json.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from vidgn.tools.synthetic.motions import MOTIONS


def _field(default, help: str, **meta):
    return dataclasses.field(default=default, metadata={"help": help, **meta})


@dataclass(frozen=True)
class SyntheticSpec:
    """A synthetic Kinetics-format dataset of motion-defined classes: everything but where it goes.

    The same spec (with any `workers`) gives the same files, byte for byte. Field order is the
    order of synthetic.json's "params".
    """

    num_classes: int = _field(
        8, f"number of classes, the first ones of the motion table (1..{len(MOTIONS)})",
        flag="--classes")
    train_per_class: int = _field(8, "training videos per class")
    val_per_class: int = _field(4, "validation videos per class")
    width: int = _field(340, "nominal frame width in pixels (Kinetics clips are commonly resized "
                             "to 340x256)")
    height: int = _field(256, "nominal frame height in pixels")
    size_jitter: float = _field(
        0.1, "each video's width and height are scaled independently by a factor drawn from "
             "[1 - size_jitter, 1 + size_jitter] (then rounded to a multiple of 4)")
    seconds: float = _field(2.0, "duration of every video in seconds (frames = round(seconds * fps))")
    fps_choices: tuple[int, ...] = _field(
        (24, 25, 30), "frame rates, spread evenly over the videos in a seeded order", flag="--fps")
    webm_fraction: float = _field(
        0.2, "fraction of videos written as VP9 webm (the rest H.264 mp4), chosen by seed")
    noise: float = _field(
        0.3, "nuisance strength in [0, 1]: camera shake, brightness flicker, pixel grain (std "
             "10 * noise grey levels)")
    distractors: int = _field(2, "objects per video that look like the actor but wander randomly")
    cue_strength: float = _field(
        0.8, "scale of the class motion (speed, angular rate, swing/pulse amplitude); every object "
             "also has a random jitter of fixed size, so small values make classes hard")
    stamp_frame_index: bool = _field(
        False, "write each frame's index into its bottom band (see read_frame_index)")
    seed: int = _field(0, "everything (ids, sizes, fps, content, codecs) is a function of the seed")
    workers: int = _field(
        1, "processes that render/encode videos in parallel (the output does not depend on it)",
        recorded=False)  # not a property of the dataset
    actors: int = _field(1, "objects per video that perform the class motion")
    crf: int = _field(23, "H.264 quality (lower = better and bigger); VP9 uses crf + 10 on its "
                          "own scale")
    object_size: float = _field(
        0.1, "mean object radius (half the length of a bar) as a fraction of the frame's short "
             "side; each object's is drawn from [0.7, 1.2] times this. Small objects at low "
             "resolution carry a weaker motion signal")
    # Recorded: their order decides the random draws, so the dataset is rebuilt from synthetic.json.
    motions: tuple[str, ...] | None = _field(
        None, "class names picked from the motion table (overrides --classes), e.g. 'moving left'; "
              "the four translation directions make an easy task",
        metavar="NAME")

    def validate(self) -> None:
        """Raise ValueError, saying which parameter and what it must be, unless the spec is usable."""
        if self.motions:
            known = [name for name, _, _ in MOTIONS]
            unknown = [m for m in self.motions if m not in known]
            if unknown:
                raise ValueError(f"unknown motions {unknown}; choose from: {', '.join(known)}")
        num_classes = len(self.chosen_motions()) if self.motions else self.num_classes
        if not 1 <= num_classes <= len(MOTIONS):
            raise ValueError(f"num_classes must be in 1..{len(MOTIONS)}, got {num_classes}")
        if self.train_per_class < 0 or self.val_per_class < 0 or \
                self.train_per_class + self.val_per_class == 0:
            raise ValueError("train_per_class and val_per_class must be >= 0 and not both 0")
        if not self.fps_choices or any(int(f) <= 0 for f in self.fps_choices):
            raise ValueError(f"fps_choices must be positive frame rates, got {self.fps_choices}")
        if not 0.0 <= self.webm_fraction <= 1.0 or not 0.0 <= self.size_jitter < 1.0:
            raise ValueError("webm_fraction must be in [0, 1] and size_jitter in [0, 1)")
        if self.seconds <= 0 or self.actors < 1 or self.distractors < 0:
            raise ValueError("seconds must be > 0, actors >= 1, distractors >= 0")
        if not 0.0 < self.object_size <= 0.3:
            raise ValueError("object_size must be in (0, 0.3] (a fraction of the short side), "
                             f"got {self.object_size}")

    def chosen_motions(self) -> list[tuple[str, str, dict]]:
        """The classes' MOTIONS entries: `motions` in the given order (duplicates dropped), else
        the first `num_classes`. Call `validate` first: unknown names raise KeyError here."""
        if self.motions:
            known = {name: (name, kind, params) for name, kind, params in MOTIONS}
            return [known[m] for m in dict.fromkeys(self.motions)]
        return MOTIONS[:self.num_classes]

    def recorded_params(self) -> dict:
        """synthetic.json's "params": `dataclasses.asdict(self)` less the fields marked
        `recorded=False`, with `num_classes` the number of classes made (that of `motions`, if set)."""
        skip = {f.name for f in dataclasses.fields(self) if not f.metadata.get("recorded", True)}
        params = {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}
        params["num_classes"] = len(self.chosen_motions())
        return params
