"""A command refused for its arguments alone (a wrong extension, a missing input, a value out of
range, an option that needs another) answers before torch, VTK or SimpleITK load.

Why: the imports cost about 4 CPU seconds, which a refused name paid in full (``cardioscar
train --output x.npz`` took 3.9 s where ``--help`` takes 0.2 s). The refusals run in one child
process, so that modules imported by this test session cannot hide an import; every message is
the one the command gave before the checks moved, but the training options', which since
2026-12-08 name the option typed (``--max-epochs``), not the API's field (``training option max_epochs``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

#: (arguments, the one-line error) of refusals that need no heavy module; ``afile`` is a file.
REFUSALS = (
    ("train --training-data d.npz --output x.npz", "cardioscar train: error: --output must end in .pth, got 'x.npz'"),
    ("train --training-data missing.npz --output m.pth",
     "cardioscar train: error: Training data file not found: missing.npz"),
    ("fine-tune --model m.pth --training-data d.npz --output x.npz",
     "cardioscar fine-tune: error: --output must end in .pth, got 'x.npz'"),
    ("prepare --mesh m.vtk --image i.nii --output x.pth", "cardioscar prepare: error: --output must end in .npz, got 'x.pth'"),
    ("apply --model m.pth --mesh missing.vtk --output o.vtk", "cardioscar apply: error: File not found: missing.vtk"),
    ("apply --model m.pth --mesh m.vtk --output o.vtk --seed -1",
     "cardioscar apply: error: --seed must be in 0..2**63-1 (9223372036854775807), got -1"),
    ("apply --model m.pth --mesh m.vtk --output o.txt",
     "cardioscar apply: error: --output must end in .vtk or .vtp or .vtu, got 'o.txt'"),
    ("apply --model m.pth --mesh ./m.vtk --output m.vtk",
     "cardioscar apply: error: --output m.vtk is also an input: choose another file name"),
    ("export --format vtu --mesh m.vtu --output m.vtu",
     "cardioscar export: error: --output m.vtu is also an input: choose another file name"),
    ("export --format vtu --mesh m.vtk --core-mesh m.vtu --output m.vtu",
     "cardioscar export: error: --output m.vtu is also an input: choose another file name"),
    ("evaluate --prediction p.vtk --truth t.vtk --json x.txt", "cardioscar evaluate: error: --json must end in .json, got 'x.txt'"),
    ("evaluate --prediction p.vtk --truth t.vtk --scar-labels 3",
     "cardioscar evaluate: error: --scar-labels read a --truth-image; with --truth (a mesh) leave them out"),
    ("phantom --output-dir afile",
     "cardioscar phantom: error: --output-dir afile is a file, not a folder; give a folder (it is created if missing)"),
    ("phantom --output-dir o --family segmented --long-axis",
     "cardioscar phantom: error: phantom --long-axis is for the demo family; drop it or use --family demo"),
    ("demo --max-epochs 0", "cardioscar demo: error: demo --max-epochs 0: use 1 to 100000"),
    ("aha --mesh m.vtk --output-dir o --rv-inferior-point 1,2,3",
     "cardioscar aha: error: --rv-inferior-point needs --rv-point (it would be ignored without it)"),
    ("aha --mesh missing.vtk --output-dir o", "cardioscar aha: error: File not found: missing.vtk"),
    ("mesh-from-labels --labels l.nii --output x.nii",
     "cardioscar mesh-from-labels: error: --output must end in .vtu or .vtk (a volumetric mesh), got 'x.nii'"),
    ("cohort run manifest.csv --output-dir o --queue q",
     "cardioscar cohort: error: --queue need --slurm (they would be ignored without it)"),
    ("export --mesh m.vtk --output heart.pts",
     "cardioscar export: error: --output heart.pts names a file, but the openCARP files take a prefix: give heart (it "
     "writes heart.pts, heart.elem and heart.json)"),
    ("export --mesh m.vtk --output o --scar-field scar_uncertainty",
     "cardioscar export: error: --scar-field 'scar_uncertainty' is the MC-dropout spread of the scar probability, not a "
     "scar probability: give scar_probability (or the field holding the scar probability)"),
    ("export --mesh missing.vtk --output o", "cardioscar export: error: File not found: missing.vtk"),
    ("train --training-data d.npz --output m.pth --batch-size 0",
     "cardioscar train: error: --batch-size must be a positive integer, got 0"),
    ("train --training-data d.npz --output m.pth --max-epochs -1",
     "cardioscar train: error: --max-epochs must be a positive integer, got -1"),
    ("train --training-data d.npz --output m.pth --dropout-rate 1.5",
     "cardioscar train: error: --dropout-rate must be in [0, 1), got 1.5"),
    ("train --training-data d.npz --output m.pth --base-lr 0",
     "cardioscar train: error: --base-lr must be a positive number, got 0.0"),
    ("train --training-data d.npz --output m.pth --base-lr 0.5 --max-lr 0.1",
     "cardioscar train: error: --base-lr (0.5) must be <= --max-lr (0.1)"),
    ("train --training-data d.npz --output m.pth --convergence-tolerance 1",
     "cardioscar train: error: --convergence-tolerance must be in [0, 1) (0: no test), got 1.0"),
    ("train --training-data d.npz --output m.pth --seed -1",
     "cardioscar train: error: --seed must be in 0..2**63-1 (9223372036854775807), got -1"),
    ("fine-tune --model m.pth --training-data d.npz --output o.pth --mc-samples 0",
     "cardioscar fine-tune: error: --mc-samples must be a positive integer, got 0"),
    # the rules between an option and the preset's values (documented: max_lr 1e-2, the cyclical schedule)
    ("train --training-data d.npz --output m.pth --base-lr 0.05",
     "cardioscar train: error: --base-lr (0.05) must be <= --max-lr (0.01)"),
    ("train --training-data d.npz --output m.pth --preset fast --base-lr 0.05",
     "cardioscar train: error: --base-lr (0.05) must be <= --max-lr (0.01)"),
    ("train --training-data d.npz --output m.pth --convergence-tolerance 0.01",
     "cardioscar train: error: --convergence-tolerance needs schedule 'onecycle' (the cyclical "
     "schedule ends on its patience); leave it out (or set it to 0), or give --preset fast (its schedule is one-cycle)"),
    ("fine-tune --model m.pth --training-data missing.npz --output o.pth",
     "cardioscar fine-tune: error: Training data file not found: missing.npz"),
    # Order: an option's error before a missing input's. A user fixes one thing at a time, and the
    # argument-only error is the cheaper to find; it is also the order of the command line before
    # the light checks (daca0a4: the config was built before the data was read) and fine-tune's.
    ("train --training-data missing.npz --output m.pth --batch-size 0",
     "cardioscar train: error: --batch-size must be a positive integer, got 0"),
    ("fine-tune --model missing.pth --training-data missing.npz --output o.pth --base-lr 0.05",
     "cardioscar fine-tune: error: --base-lr (0.05) must be <= --max-lr (0.01)"),
    ("fine-tune --model missing.pth --training-data missing.npz --output o.pth",
     "cardioscar fine-tune: error: checkpoint file missing.pth does not exist: give the .pth written by "
     "'cardioscar train'"),
    ("fine-tune --model missing.pth --training-data d.npz --output o.pth",
     "cardioscar fine-tune: error: checkpoint file missing.pth does not exist: give the .pth written by "
     "'cardioscar train'"),
    ("prepare --mesh m.vtk --image missing.nii --output x.npz", "cardioscar prepare: error: Image not found: missing.nii"),
    ("prepare --mesh missing.vtk --image missing.nii --output x.npz",
     "cardioscar prepare: error: File not found: missing.vtk"),
    ("channels --mesh m.vtk --output-dir o --layer-width 2",
     "cardioscar channels: error: --layer-width 2 must lie in (0, 1] (a share of the wall)"),
    ("channels --mesh m.vtk --output-dir o --layers 0.1,0.1",
     "cardioscar channels: error: --layers 0.1,0.1: depth 0.1 is given twice; give each depth once"),
    ("channels --mesh m.vtk --output-dir o --max-width 50",
     "cardioscar channels: error: --max-width 50: give a width in (0, 30] mm (conducting channels are a few mm to "
     "10-20 mm wide; a wider closing turns the border zone between any two core patches into a corridor)"),
    ("channels --mesh m.vtk --output-dir o --min-length -1",
     "cardioscar channels: error: --min-length -1 must be a length in mm >= 0 (0 keeps every channel)"),
    ("channels --mesh missing.vtk --output-dir o", "cardioscar channels: error: File not found: missing.vtk"),
    ("attrivae predict --model missing.pth --image i.nii --labels l.nii",
     "cardioscar attrivae: error: --model missing.pth not found: give a model from `cardioscar attrivae train`"),
    ("attrivae predict --model m.pth --image missing.nii --labels l.nii",
     "cardioscar attrivae: error: Image not found: missing.nii"),
    ("attrivae explain --model missing.pth --image i.nii --labels l.nii --output-dir o",
     "cardioscar attrivae: error: --model missing.pth not found: give a model from `cardioscar attrivae train`"),
    ("attrivae train --data d --clinical c.csv --output x.npz", "cardioscar attrivae: error: --output must end in .pth, got 'x.npz'"),
    ("attrivae explain --model m --image i --labels l --output-dir afile",
     "cardioscar attrivae: error: --output-dir afile is a file, not a folder; give a folder (it is created if missing)"),
)
HEAVY = ("torch", "vtk", "SimpleITK", "scipy")

#: The child: each refusal through ``cli.main``, its exit code, its stderr and the heavy modules then loaded.
CHILD = """
import contextlib, io, json, sys
from cardioscar.cli import main
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv.split())
    print(json.dumps([code, err.getvalue().strip(), [m for m in json.loads(sys.argv[2]) if m in sys.modules]]))
"""


def test_argument_refusals_load_no_heavy_module(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("a file, not a folder")
    (tmp_path / "d.npz").write_bytes(b"")
    (tmp_path / "m.vtk").write_text("")
    (tmp_path / "m.pth").write_bytes(b"")
    (tmp_path / "m.vtu").write_text("")
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps([argv for argv, _ in REFUSALS]), json.dumps(HEAVY)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(answers) == len(REFUSALS)
    for (argv, message), (code, stderr, heavy) in zip(REFUSALS, answers):
        assert (code, stderr) == (2, message), argv
        assert heavy == [], f"{argv} imported {heavy} before refusing"
    assert not (tmp_path / "o").exists()  # nothing was written by a refusal


def test_the_api_keeps_its_field_names_for_training_options() -> None:
    """Only the command line words the training options as its flags: the API's TrainingConfig (and
    the faces that pass its words on: the Logic, the batch script) name its fields."""
    from cardioscar.errors import CardioScarError
    from cardioscar.fit.config import TrainingConfig

    for values, expected in (({"max_epochs": 0}, "training option max_epochs must be a positive integer, got 0"),
                             ({"base_lr": 0.5, "max_lr": 0.1}, "training option base_lr (0.5) must be <= max_lr (0.1)"),
                             ({"convergence_tolerance": 0.01}, "; set it to 0 or choose onecycle")):
        try:
            TrainingConfig(**values)
        except CardioScarError as error:
            assert expected in str(error), str(error)
        else:
            raise AssertionError(f"{values} was not refused")
