"""CPU seconds per test file, for two checkouts back to back (the suite's time, file by file).

Why: on the shared 2-core build machine the wall time of a test file moves with whatever else
runs, so a speed-up is judged on CPU seconds (this process and the subprocesses it waited for:
CLI runs, the panel's workers, a cohort's Dask workers once reaped), measured for the checkout
before and after a change in the same minutes. Each file group runs serially (``-n 0``) in a
fresh pytest of each checkout, with this module as a pytest plugin.

    PYTHONPATH=CardioScarLib OMP_NUM_THREADS=1 .venv/bin/python Testing/benchmarks/suite_file_cpu.py \\
        --before /path/to/main --after . --output results.jsonl test_cli.py test_aha.py,test_metrics.py

A comma joins files into one pytest run (their session fixtures are then paid once, as on one
xdist worker). Prints one line per file: CPU seconds before and after, and each run's wall time.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

_CPU: dict[str, float] = collections.defaultdict(float)


def _cpu_seconds() -> float:
    """User and system time of this process and of the children it has waited for."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Setup, call and teardown of each test, charged to its file (a module fixture's teardown,
    such as a Dask cluster's, to the file's last test)."""
    start = _cpu_seconds()
    yield
    _CPU[item.nodeid.split("::")[0]] += _cpu_seconds() - start


def pytest_sessionfinish(session):
    target = os.environ.get("SUITE_FILE_CPU_OUT")
    if target:
        Path(target).write_text(json.dumps({"files": _CPU, "session": _cpu_seconds()}), encoding="utf-8")


def _run(checkout: Path, files: list[str], scratch: Path) -> dict:
    """One serial pytest of ``files`` in ``checkout``: per-file CPU seconds, wall seconds, exit status."""
    record = scratch / "cpu.json"
    env = {**os.environ, "SUITE_FILE_CPU_OUT": str(record), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(checkout / "CardioScarLib"), str(Path(__file__).resolve().parent)])}
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest", *[f"Testing/{name}" for name in files], "-n", "0", "-q",
                           "-p", "no:cacheprovider", "-p", Path(__file__).stem, f"--basetemp={scratch / 'bt'}"],
                          cwd=checkout, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]
    files_cpu = json.loads(record.read_text(encoding="utf-8"))["files"] if record.exists() else {}
    return {"status": done.returncode, "wall_s": round(wall, 1), "summary": summary,
            "cpu_s": {Path(k).name: round(v, 1) for k, v in files_cpu.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="checkout before the change")
    parser.add_argument("--after", type=Path, required=True, help="checkout after the change")
    parser.add_argument("--output", type=Path, help="append one JSON line per file group")
    parser.add_argument("groups", nargs="+", help="test files of Testing/, a comma joining those run together")
    args = parser.parse_args()
    for group in args.groups:
        files = group.split(",")
        runs = {}
        for label, checkout in (("before", args.before), ("after", args.after)):
            with tempfile.TemporaryDirectory(prefix="suite_file_cpu_") as scratch:
                runs[label] = _run(checkout.resolve(), files, Path(scratch))
        for name in files:
            before, after = runs["before"]["cpu_s"].get(name), runs["after"]["cpu_s"].get(name)
            print(f"{name}: {before} -> {after} CPU s", flush=True)
        print(f"  wall {runs['before']['wall_s']} -> {runs['after']['wall_s']} s; before: {runs['before']['summary']}; "
              f"after: {runs['after']['summary']}", flush=True)
        if args.output:
            with open(args.output, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"files": files, **runs, "load_average": os.getloadavg()}) + "\n")


if __name__ == "__main__":
    main()
