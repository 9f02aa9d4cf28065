"""CPU seconds that a refused ``cardioscar`` command costs, against ``--help``.

Each command runs as a user runs it (``python -m cardioscar ...`` in a fresh process, in a
scratch folder holding an empty ``d.npz`` and ``m.vtk``), 5 times; the figure is the median of
the child's user + system CPU seconds. Run it with ``PYTHONPATH`` naming the library to measure
(a checkout before a change, then after it); it prints one line per command and, with OUT, appends
one JSON line per command there.

    PYTHONPATH=CardioScarLib OMP_NUM_THREADS=1 python Testing/benchmarks/cli_refusal_cost.py [LABEL] [OUT.jsonl]
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

COMMANDS = (
    "--help",
    "train --training-data d.npz --output x.npz",
    "train --training-data missing.npz --output m.pth",
    "apply --model m.pth --mesh missing.vtk --output o.vtk",
    "prepare --mesh m.vtk --image i.nii --output x.pth",
    "aha --mesh m.vtk --output-dir o --rv-inferior-point 1,2,3",
    "attrivae train --data d --clinical c.csv --output x.npz",
    "export --mesh m.vtk --output heart.pts",
    "train --training-data d.npz --output m.pth --batch-size 0",
    "fine-tune --model missing.pth --training-data d.npz --output o.pth",
    "prepare --mesh m.vtk --image missing.nii --output x.npz",
    "channels --mesh m.vtk --output-dir o --layer-width 2",
    "attrivae predict --model missing.pth --image i.nii --labels l.nii",
)
REPEATS = 5


def cpu_seconds(argv: list[str], folder: Path) -> tuple[float, int]:
    """The child's user + system CPU seconds, and its exit code."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-m", "cardioscar", *argv], cwd=folder, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), done.returncode


def main() -> None:
    label = sys.argv[1] if len(sys.argv) > 1 else "current"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "d.npz").write_bytes(b"")
        (folder / "m.vtk").write_text("")
        for command in COMMANDS:
            runs = [cpu_seconds(command.split(), folder) for _ in range(REPEATS)]
            median = statistics.median(seconds for seconds, _ in runs)
            code = runs[0][1]
            print(f"{label:8s} {median:5.2f} CPU s  exit {code}  cardioscar {command}")
            if out is not None:
                with out.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps({"label": label, "command": command, "exit": code,
                                             "median_cpu_s": round(median, 3), "repeats": REPEATS}) + "\n")


if __name__ == "__main__":
    main()
