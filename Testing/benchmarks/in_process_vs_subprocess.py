"""Every in-process command run of some test files, run again in a new interpreter and compared.

Why: most command-line tests call ``cardioscar``'s entry function in the pytest process
(``conftest.run_cli_in_process``). A state one run leaves behind (a log level, a handler, a note
said once per process, torch's thread count) or a stream it reads differently would let such a test
pass on what a user's shell run does not say or write. This runs the given test files serially
(``-n 0``) with itself as a pytest plugin that wraps ``run_cli_in_process``: each call runs as the
test asks, then the same arguments as ``python -m cardioscar`` (after it: the in-process run's
outputs are in place, as a user's second run would find them). A pair differs when the exit status,
stdout or the stderr lines differ (durations and epoch counts of training read as one).

    PYTHONPATH=CardioScarLib OMP_NUM_THREADS=1 .venv/bin/python \\
        Testing/benchmarks/in_process_vs_subprocess.py --output results.jsonl test_cli.py test_aha.py

Prints each pair that differs, the lines only one of them said, and the count of pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

TESTING = Path(__file__).resolve().parents[1]
#: Where the plugin appends one JSON line per pair (set by :func:`main` for its pytest run).
PAIRS_ENV = "IN_PROCESS_PAIRS_OUT"


def _normalised(stderr: str) -> list[str]:
    """Lines as compared: a run's seconds and the epochs a timed stop reached vary run to run."""
    text = re.sub(r"\d+(\.\d+)? s\b", "T s", stderr)
    return re.sub(r"epoch \d+ of \d+", "epoch E", text).splitlines()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    """Wrap conftest's helper before collection imports the test modules (which import it by name,
    some of them inside a test: those read the wrapped one too)."""
    import conftest

    in_process, run_cli = conftest.run_cli_in_process, conftest.run_cli

    def paired(*args):
        done = in_process(*args)
        alone = run_cli(*args)
        with open(os.environ[PAIRS_ENV], "a", encoding="utf-8") as log:
            log.write(json.dumps({"argv": [str(a) for a in args], "in_process": [done.returncode, done.stdout,
                                  done.stderr], "subprocess": [alone.returncode, alone.stdout, alone.stderr]}) + "\n")
        return done

    conftest.run_cli_in_process = paired  # before the test modules import it by name


def _differences(pairs_file: Path) -> tuple[int, list[str]]:
    """(pairs, report lines of those that differ)."""
    report, count = [], 0
    for line in pairs_file.read_text(encoding="utf-8").splitlines():
        pair, count = json.loads(line), count + 1
        (status_in, out_in, err_in), (status_sub, out_sub, err_sub) = pair["in_process"], pair["subprocess"]
        lines_in, lines_sub = _normalised(err_in), _normalised(err_sub)
        if (status_in, out_in, lines_in) == (status_sub, out_sub, lines_sub):
            continue
        report.append(f"cardioscar {' '.join(pair['argv'])[:300]}")
        stdout = "same" if out_in == out_sub else "differs"
        report.append(f"  exit {status_in} in process, {status_sub} alone; stdout {stdout}")
        report += [f"  only in process: {text}" for text in lines_in if text not in lines_sub]
        report += [f"  only alone:      {text}" for text in lines_sub if text not in lines_in]
    return count, report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="test files under Testing/")
    parser.add_argument("--output", type=Path, help="JSON lines of every pair (argv, status, stdout, stderr)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        pairs = Path(args.output or Path(scratch) / "pairs.jsonl")
        pairs.write_text("", encoding="utf-8")
        env = {**os.environ, PAIRS_ENV: str(pairs), "OMP_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join([os.environ.get("PYTHONPATH", ""), str(Path(__file__).resolve().parent)])}
        status = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "-p",
                                 Path(__file__).stem, *[str(TESTING / name) for name in args.files]],
                                env=env, cwd=TESTING.parent).returncode
        count, report = _differences(pairs)
    differing = sum(line.startswith("cardioscar ") for line in report)
    print("\n".join(report))
    print(f"{count} in-process runs paired with a new interpreter's: {differing} differ (pytest exit {status})")
    return status


if __name__ == "__main__":
    sys.exit(main())
