"""Do the claims' verdicts replicate? Compares ``studies.claims`` runs made on disjoint seed sets.

    python -m studies.claims --widths 64 --shifts out_of_span --seed 43 --out runs/a
    python -m studies.claims --widths 64 --shifts out_of_span --seed 1043 --out runs/b
    python -m studies.replication runs/a runs/b

Reads each run's ``verdicts.json`` (every cell of its main tables) and prints, for every pair of
runs, the cells both judged, the share on which they give the same verdict, how many are supported
in one and contradicted in the other, each run's share of inconclusive cells and how many cells only
one of them judged (left out); then the mean and the range of the agreement over pairs, how often a
*firm* verdict (nfl.claims.FIRM) agreed with the other run's, how many disagreements each claim
had, and the cells that differed. Runs whose seed sets overlap in a cell are refused: a verdict
repeated on the same seeds says nothing about replication.
"""

from __future__ import annotations

import collections
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nfl import cli
from studies.claims import VERDICTS_FILE

Key = tuple[str, str, int]  # (section, column, claim number)


@dataclass(frozen=True)
class Run:
    name: str
    verdicts: dict[Key, str]
    seeds: dict[Key, frozenset[int]]
    firm: frozenset[Key]  # the cells whose every interval lies at least its half-width from each margin

    def inconclusive(self, keys: Sequence[Key]) -> float:
        return sum(self.verdicts[k] == "inconclusive" for k in keys) / len(keys)

    def seed_counts(self) -> list[int]:
        """How many seeds its cells were judged on (one number unless its sections differ)."""
        return sorted({len(seeds) for seeds in self.seeds.values()})


@dataclass(frozen=True)
class Pair:
    first: Run
    second: Run
    cells: list[Key]
    unpaired: int  # cells only one of the two judged (another width, shift or claim set): not compared

    @property
    def agreement(self) -> float:
        return sum(self.first.verdicts[k] == self.second.verdicts[k] for k in self.cells) / len(self.cells)

    @property
    def opposed(self) -> int:
        """Cells supported in one run and contradicted in the other."""
        return sum({self.first.verdicts[k], self.second.verdicts[k]} == {"supported", "contradicted"}
                   for k in self.cells)

    def differing(self) -> list[Key]:
        return [k for k in self.cells if self.first.verdicts[k] != self.second.verdicts[k]]

    def firm_agreement(self) -> tuple[int, int]:
        """(agreeing, all): the cells firm in one run, each run in turn, against the other run's verdict."""
        firm = [k for run in (self.first, self.second) for k in self.cells if k in run.firm]
        return sum(self.first.verdicts[k] == self.second.verdicts[k] for k in firm), len(firm)


def load(directory: str) -> Run:
    """A run's verdicts from ``<directory>/verdicts.json`` (a ValueError, said in one line, if it cannot be read)."""
    path = Path(directory) / VERDICTS_FILE
    try:
        cells: list[dict[str, Any]] = json.loads(path.read_text())["cells"]
        keys = [(c["section"], c["column"], int(c["claim"])) for c in cells]
        return Run(directory, {k: c["verdict"] for k, c in zip(keys, cells, strict=True)},
                   {k: frozenset(c["seeds"]) for k, c in zip(keys, cells, strict=True)},
                   frozenset(k for k, c in zip(keys, cells, strict=True) if c["firm"]))
    except FileNotFoundError:
        raise ValueError(f"{path}: not found; is {directory} the --out of a studies.claims run?") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a verdicts file ({type(error).__name__}: {error})") from None


def pairs(runs: Sequence[Run]) -> list[Pair]:
    """Every pair of runs on the cells both judged; a ValueError when a pair shares no cell or seeds."""
    out = []
    for first, second in itertools.combinations(runs, 2):
        cells = sorted(set(first.verdicts) & set(second.verdicts))
        if not cells:
            raise ValueError(f"{first.name} and {second.name} judged no cell in common (other widths or shifts?)")
        shared = next((k for k in cells if first.seeds[k] & second.seeds[k]), None)
        if shared is not None:
            seeds = sorted(first.seeds[shared] & second.seeds[shared])
            raise ValueError(f"{first.name} and {second.name} share seeds {seeds[0]}..{seeds[-1]} in "
                             f"'{shared[0]}': replication needs disjoint seed sets (another --seed)")
        out.append(Pair(first, second, cells, len(set(first.verdicts) ^ set(second.verdicts))))
    return out


def report(found: list[Pair]) -> str:
    runs = list({id(run): run for p in found for run in (p.first, p.second)}.values())
    counts = {run.name: run.seed_counts() for run in runs}
    lines = ["seeds a run: " + ", ".join(f"{name} {'/'.join(map(str, n))}" for name, n in counts.items())]
    if len({tuple(n) for n in counts.values()}) > 1:
        lines.append("note: the runs have different numbers of seeds, so a disagreement may be a difference in "
                     "precision as much as in outcome")
    head = "| runs | cells | agree | supported vs contradicted | inconclusive (first, second) | judged by one only |"
    lines += ["", head, "|---|---|---|---|---|---|"]
    for p in found:
        lines.append(f"| {p.first.name} vs {p.second.name} | {len(p.cells)} | {p.agreement:.0%} | {p.opposed} | "
                     f"{p.first.inconclusive(p.cells):.0%}, {p.second.inconclusive(p.cells):.0%} | {p.unpaired} |")
    shares = [p.agreement for p in found]
    agreeing, firm = (sum(counts) for counts in zip(*(p.firm_agreement() for p in found), strict=True))
    lines += ["", f"agreement over {len(found)} pair(s): mean {sum(shares) / len(shares):.1%}, "
                  f"range {min(shares):.0%}-{max(shares):.0%}; supported against contradicted in "
                  f"{sum(p.opposed for p in found)} cell(s)",
              f"firm verdicts (every interval at least its half-width from each margin; nfl.claims.firm), each "
              f"run's against the other's: {agreeing} of {firm} agree" + (f" ({agreeing / firm:.1%})" if firm else "")]
    by_claim = collections.Counter(claim for p in found for _, _, claim in p.differing())
    if by_claim:
        lines.append("disagreements by claim: " + ", ".join(f"{claim}: {n}" for claim, n in sorted(by_claim.items())))
    for p in found:
        for section, column, claim in p.differing():
            key = (section, column, claim)
            lines.append(f"- differs, {p.first.name} vs {p.second.name}: claim {claim}, {section}, {column}: "
                         f"{p.first.verdicts[key]} | {p.second.verdicts[key]}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = cli.Parser(prog="python -m studies.replication", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="DIR", help="the --out of two or more studies.claims runs")
    args = parser.parse_args(argv)
    if len(args.runs) < 2:
        parser.error("DIR: name at least two studies.claims runs to compare")
    try:
        found = pairs([load(d) for d in args.runs])
    except ValueError as error:
        parser.error(str(error))
    print(report(found))


if __name__ == "__main__":
    main()
