"""Run the benchmarks in bench/ (the ``make bench`` entry point).

    python bench/run.py [--only NAME ...] [--quick]

Every ``bench/<name>.py`` with a ``main(argv) -> int`` is a benchmark (this file and
``_*.py`` excepted); they run in the order of ``ORDER``, then alphabetically. Each is
imported by path and called with ``--json bench/results/<name>.json``, plus ``--quick``
when asked and the module's ``parse_args`` accepts it. The exit code is 1 when a benchmark
raised or returned non-zero, 2 for an unknown ``--only`` name, else 0.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
ORDER = ("models", "fabric", "raft", "pipeline")


@dataclass(frozen=True)
class Outcome:
    name: str
    seconds: float
    code: int | None  # None: the benchmark raised

    @property
    def ok(self) -> bool:
        return self.code == 0


def discover(bench_dir: Path = BENCH_DIR) -> list[str]:
    """Benchmark names in run order (modules are only imported when run)."""
    names = {
        p.stem
        for p in bench_dir.glob("*.py")
        if p.stem != "run" and not p.stem.startswith("_")
    }
    first = [n for n in ORDER if n in names]
    return first + sorted(names - set(first))


def load(name: str, bench_dir: Path = BENCH_DIR) -> ModuleType:
    """Import ``bench/<name>.py`` by path (registered in sys.modules, as dataclasses need)."""
    path = bench_dir / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def accepts_quick(module: ModuleType) -> bool:
    """True when the module's ``parse_args`` takes ``--quick`` (probed quietly)."""
    parse = getattr(module, "parse_args", None)
    if parse is None:
        return False
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            parse(["--quick"])
        except SystemExit:
            return False
    return True


def bench_argv(name: str, module: ModuleType, quick: bool) -> list[str]:
    argv = ["--json", str(RESULTS_DIR / f"{name}.json")]
    if quick and accepts_quick(module):
        argv.append("--quick")
    return argv


def run_one(name: str, quick: bool) -> Outcome:
    start = time.perf_counter()
    code: int | None
    try:
        module = load(name)
        if not callable(getattr(module, "main", None)):
            raise AttributeError(f"bench/{name}.py has no main(argv)")
        argv = bench_argv(name, module, quick)
        print(f"$ bench/{name}.py {' '.join(argv)}", flush=True)
        code = int(module.main(argv) or 0)
    except SystemExit as exc:  # argparse errors and sys.exit() inside a benchmark
        code = exc.code if isinstance(exc.code, int) else 1
    except Exception:
        traceback.print_exc()
        code = None
    return Outcome(name, time.perf_counter() - start, code)


def header(name: str) -> str:
    title = f"== bench: {name} "
    return "\n" + title + "=" * max(0, 78 - len(title))


def summary(outcomes: Sequence[Outcome]) -> str:
    failed = [o for o in outcomes if not o.ok]
    parts = ", ".join(
        f"{o.name} {'ok' if o.ok else 'FAILED'} {o.seconds:.1f}s" for o in outcomes
    )
    return f"bench: {len(outcomes)} run, {len(failed)} failed ({parts})"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    parser.add_argument("--quick", action="store_true", help="short runs (where supported)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names = discover()
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            print(f"error: unknown benchmark(s) {unknown}; have {names}", file=sys.stderr)
            return 2
        names = [n for n in names if n in args.only]
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    outcomes = []
    for name in names:
        print(header(name), flush=True)
        outcomes.append(run_one(name, args.quick))
    print("\n" + summary(outcomes))
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
