"""``python -m adapters.check FILE_OR_METHOD ...``: the adapter contract on your own adapter.

Each argument is a Python file registering methods (``@adapters.register``) or a registered
method's name. Prints one PASS/FAIL line per property and method; exits 0 only if all pass.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from adapters.contract import CHECKS, run_checks
from adapters.plugins import load_module
from adapters.registry import get


def methods_of(argument: str) -> list[str]:
    """The methods a file registers, or ``[argument]`` for a registered name."""
    if not argument.endswith(".py") and not Path(argument).exists():
        get(argument)
        return [argument]
    return load_module(argument)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adapters.check", description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="+", metavar="FILE_OR_METHOD", help="an adapter file or a method name")
    args = parser.parse_args(argv)
    try:
        methods = [method for argument in args.targets for method in methods_of(argument)]
    except ValueError as error:  # a missing, broken or empty file, or an unknown name
        print(f"adapters.check: {error}", file=sys.stderr)
        return 2
    failed = 0
    for method in methods:
        for verdict in run_checks(method):
            failed += not verdict.passed
            print(f"{'PASS' if verdict.passed else 'FAIL'}  {method}: {verdict.check} ({verdict.detail})")
    total = len(methods) * len(CHECKS)
    print(f"{failed} of {total} checks failed" if failed else f"all checks passed for {', '.join(methods)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
