#!/usr/bin/env bash
# Regenerates every figure the README and docs/tour.md show. Each study writes its records under
# results/figures/<study>/ (run output: not committed); its PNGs (and claims.md) are copied to
# docs/figures/<study>/; then docs/tour_numbers.py recomputes every number the tour quotes into
# docs/figures/tour_quotes.json and checks that docs/tour.md quotes each one.
# Arguments go to every study, e.g. `docs/make_figures.sh --quick`; NFL_SKIP_CLAIMS=1 skips the claims
# study, the longest (with its GPT column, about 2 h of CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # works with or without `pip install -e .`

python -m studies.adaptability --preset paper --out results/figures/paper "$@"
python -m studies.adaptability --out results/figures/adaptability "$@"
python -m studies.pareto --threads 1 --out results/figures/pareto "$@"
python -m studies.lr --threads 1 --out results/figures/lr "$@"
python -m studies.anatomy --out results/figures/anatomy "$@"
python -m studies.rank --out results/figures/rank "$@"
python -m studies.adaptability --testbed gpt --threads 1 --yes --out results/figures/gpt "$@"  # about 30 min of CPU
studies=(paper adaptability pareto lr anatomy rank gpt)
if [ -z "${NFL_SKIP_CLAIMS:-}" ]; then
  python -m studies.claims --testbeds mlp,gpt --yes --out results/figures/claims "$@"  # the GPT column: about 2 h
  studies+=(claims)
  cp results/figures/claims/claims.md docs/figures/claims/
fi
for study in "${studies[@]}"; do
  mkdir -p "docs/figures/$study"
  cp "results/figures/$study"/*.png "docs/figures/$study/"
done

python docs/tour_numbers.py --records results/figures
