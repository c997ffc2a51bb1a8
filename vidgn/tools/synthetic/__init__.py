"""Synthetic Kinetics-format dataset: real encoded videos whose class is a MOTION, not an appearance.

Why: the GN paper's Kinetics experiment (Table 8) cannot be re-run here without the dataset, yet the
demo, the tests and the benchmarks need videos laid out exactly like Kinetics (class-name folders with
spaces and parentheses, `{youtube_id}_{start:06d}_{end:06d}.mp4` clips, mostly H.264 mp4 and some VP9
webm, ~340x256, 24/25/30 fps) and a task in which a 3D model must use time:

* every video shows the same kinds of objects (bars, triangles, ellipses in colours drawn from one
  palette) on a random smooth background; the class says only how the "actor" object(s) move:
  direction, speed, orbiting or spinning clockwise vs counter-clockwise, swinging period, pulsing.
  Many classes come in time-reversed pairs (moving right/left, clockwise/counter-clockwise), so one
  frame carries no class information: start positions, orientations, shapes and colours are drawn
  from the same distributions for every class;
* the actor performs its motion inside a central "stage" (see STAGE_MARGIN), so that the crops of
  the training/testing pipeline keep the class cue; translations wrap around the whole frame;
  `object_size` sets how large objects are relative to the frame;
* `distractors` identical-looking objects wander on random smooth paths and spin at random rates;
* `noise` adds camera shake, brightness flicker and pixel grain; `cue_strength` scales the class
  motion (speed, angular rate, swing/pulse amplitude) against the random jitter every object has.

Lower `cue_strength`, more `distractors` and `noise`, more `num_classes` keep models far from 100%
accuracy, the regime in which Kinetics results live.

Modules, by job: `motions` (the class table), `spec` (`SyntheticSpec`, every parameter once),
`dataset` (`make_synthetic`: the Kinetics layout, lists, synthetic.json), `render` (one video's
frames and encoder), `encode` (deterministic encoding in fresh subprocesses), `stamp` (frame-index
stamps), `cli` (`vidgn make-synthetic`, its options generated from `SyntheticSpec`).

Frame-index stamping (`stamp_frame_index=True`) writes each frame's index as a row of large black or
white blocks in the bottom eighth of the frame, which survives H.264/VP9 compression and resizing
(not cropping); `read_frame_index` reads it back, for exact-index tests of samplers and decoders.
"""
from vidgn.tools.synthetic.dataset import SyntheticDataset, make_synthetic
from vidgn.tools.synthetic.motions import MOTIONS
from vidgn.tools.synthetic.spec import SyntheticSpec
from vidgn.tools.synthetic.stamp import read_frame_index

__all__ = ["MOTIONS", "SyntheticDataset", "SyntheticSpec", "make_synthetic", "read_frame_index"]
