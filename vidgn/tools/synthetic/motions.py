"""The motion-class table and the look of every synthetic video's objects.

Why a table: a class is defined only by how its "actor" object moves (direction, speed, orbiting or
spinning sense, swinging period, pulsing), never by how anything looks, so that a model must use
time. Shapes and colours (SHAPES, PALETTE) are drawn from the same distributions for every class;
STAGE_MARGIN keeps the actor where the training/testing crops still see it.
"""
from __future__ import annotations

import numpy as np

# (name, kind, params). Order matters: `num_classes=k` takes the first k, so the first entries mix
# direction, rotation sense and periodicity, and time-reversed pairs sit next to each other.
# Speeds are in frame sizes per second and periods in seconds, so that the motion looks the same at
# any fps and resolution.
MOTIONS: list[tuple[str, str, dict]] = [
    ("moving right", "translate", {"angle": 0.0, "speed": 0.35}),
    ("moving left", "translate", {"angle": 180.0, "speed": 0.35}),
    ("orbiting (clockwise)", "orbit", {"sign": 1.0, "period": 2.5}),
    ("orbiting (counter-clockwise)", "orbit", {"sign": -1.0, "period": 2.5}),
    ("spinning (clockwise)", "spin", {"sign": 1.0, "period": 2.0}),
    ("spinning (counter-clockwise)", "spin", {"sign": -1.0, "period": 2.0}),
    ("swinging (horizontal)", "swing", {"angle": 0.0, "period": 1.6}),
    ("pulsing (slow)", "pulse", {"period": 1.5}),
    ("moving up", "translate", {"angle": 270.0, "speed": 0.35}),
    ("moving down", "translate", {"angle": 90.0, "speed": 0.35}),
    ("swinging (vertical)", "swing", {"angle": 90.0, "period": 1.6}),
    ("pulsing (fast)", "pulse", {"period": 0.6}),
    ("moving right (fast)", "translate", {"angle": 0.0, "speed": 0.8}),
    ("moving left (fast)", "translate", {"angle": 180.0, "speed": 0.8}),
    ("moving up (fast)", "translate", {"angle": 270.0, "speed": 0.8}),
    ("moving down (fast)", "translate", {"angle": 90.0, "speed": 0.8}),
    ("swinging (horizontal, fast)", "swing", {"angle": 0.0, "period": 0.7}),
    ("swinging (vertical, fast)", "swing", {"angle": 90.0, "period": 0.7}),
    ("orbiting (clockwise, fast)", "orbit", {"sign": 1.0, "period": 1.1}),
    ("orbiting (counter-clockwise, fast)", "orbit", {"sign": -1.0, "period": 1.1}),
    ("spinning (clockwise, fast)", "spin", {"sign": 1.0, "period": 0.8}),
    ("spinning (counter-clockwise, fast)", "spin", {"sign": -1.0, "period": 0.8}),
    ("moving diagonally (up-right)", "translate", {"angle": 315.0, "speed": 0.4}),
    ("moving diagonally (down-left)", "translate", {"angle": 135.0, "speed": 0.4}),
    ("moving diagonally (up-left)", "translate", {"angle": 225.0, "speed": 0.4}),
    ("moving diagonally (down-right)", "translate", {"angle": 45.0, "speed": 0.4}),
]
SHAPES = ("bar", "triangle", "ellipse")  # none is rotationally symmetric, so spinning is visible
PALETTE = np.array([[230, 40, 40], [40, 200, 60], [50, 90, 230], [240, 210, 40], [220, 60, 220],
                    [40, 210, 220], [250, 140, 30], [245, 245, 245], [20, 20, 20]], np.float32)
JITTER_SPEED = 0.06  # std of every object's random velocity, frame sizes per second
DISTRACTOR_SPEED = 0.3  # std of a distractor's wandering velocity, frame sizes per second
# The actor's motion stays inside the frame minus this fraction of the width and height on each
# side. A centre crop of the short side (val/test) cuts 1/8 of a 4:3 frame's width off each side,
# random training crops of a larger short side cut more (but at random places); an actor outside
# the crop leaves a clip without its class cue. Distractors, which carry no cue, roam everywhere.
STAGE_MARGIN = 0.15
