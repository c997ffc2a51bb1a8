"""Offline tools, each run once by hand before training: `vidgn prepare-kinetics` (official Kinetics
annotation CSVs + downloaded clips -> list files, `kinetics`), `vidgn check-videos` (find the videos
of a list that do not decode, `check_videos`), `vidgn resize-videos` (re-encode videos at a short
side, `resize`) and `vidgn make-synthetic` (a synthetic Kinetics-format dataset of motion-defined
classes, `synthetic`). They sit apart from `vidgn.data`, which is the input pipeline that training
runs every step, and use only its list and video code.

Each command module holds its user-facing docstring and its command line; the pieces they use are
modules of one job each: `pool` (the crash-safe process pool of check-videos and resize-videos),
`progress` (their progress line), `truncation` (when a video counts as truncated), `check_results`
(check-videos' resumable results file), `transcode` (one video of resize-videos), `walk` (folders of
videos, links followed once), `files` (the "can a file be created here" probe and the
whole-or-untouched text writer), `kinetics_inputs`, `kinetics_labels` and `kinetics_clips` (what
prepare-kinetics reads, its class lists, and the matching of annotated clips to files).

Import-light on purpose: importing a tool module must not import torch or Lightning (the `vidgn`
command imports every tool module to build its parser, and `vidgn --help` stays fast); torch is
imported only where a tool decodes videos, inside its worker processes.
"""
