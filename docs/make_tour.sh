#!/usr/bin/env bash
# Regenerates every figure docs/tour.md shows, with the records it quotes, under docs/img/<study>/,
# then prints the numbers the tour quotes and checks that the text quotes exactly those.
# Arguments go to every study, e.g. `docs/make_tour.sh --quick` (one seed, fewer timing repeats).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # works with or without `pip install -e .`

rm -rf docs/img  # no stale figures, no .bak records from an earlier run
python -m studies.adaptability --preset paper --out docs/img/paper "$@"
python -m studies.adaptability --out docs/img/adaptability "$@"
python -m studies.pareto --out docs/img/pareto "$@"
python -m studies.anatomy --out docs/img/anatomy "$@"
python -m studies.rank --out docs/img/rank "$@"
find docs/img -name '*.pdf' -delete  # the tour shows the PNGs; the studies also write PDFs

python docs/tour_numbers.py
