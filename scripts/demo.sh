#!/usr/bin/env bash
# The main job, on CPU: set up .venv, generate a synthetic Kinetics-format dataset, then run the
# comparison grid configs/compare/synthetic_demo.yaml (BN vs GN at 8, 4, 2, 1 clips per GPU), which
# prints the report table and writes it with its plots to demo/compare/. Everything it writes is
# under demo/; it starts demo/compare afresh. About 10 minutes on 2 cores after the install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
vidgn=.venv/bin/vidgn

if [ ! -f demo/synthetic/synthetic.json ] || ! grep -q '"orbiting (clockwise)"' demo/synthetic/synthetic.json; then
    echo "[demo] generating synthetic videos into demo/synthetic"
    rm -rf demo/synthetic
    # 6 motion classes (4 translation directions, 2 orbit senses), 480 + 120 small videos.
    $vidgn make-synthetic demo/synthetic --motions "moving right" "moving left" "moving up" "moving down" \
        "orbiting (clockwise)" "orbiting (counter-clockwise)" --train-per-class 80 --val-per-class 20 \
        --width 64 --height 48 --noise 0.1 --distractors 0 --cue-strength 1.0 --object-size 0.2 --workers 2
fi
rm -rf demo/compare
$vidgn compare configs/compare/synthetic_demo.yaml
