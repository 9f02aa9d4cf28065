"""Cohorts (issue 17) on a real Dask LocalCluster of 2 worker processes, real phantoms, real training.

One cluster serves the module (starting worker processes that import torch costs ~10-20 s each on
a busy machine). Phantoms are small (2,000 nodes) and fits short (30 epochs of the fast preset):
these tests check the engine (skips, retries, failures, atomic outputs, equality with the CLI
chain), not accuracy. The Slurm path is checked through the job script dask-jobqueue generates;
no Slurm is installed here, so submitting it to a real queue is not tested.
"""

from __future__ import annotations

import csv
import json
import shutil
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from cardioscar.aha import AhaOptions, analyse_mesh
from cardioscar.aha.demo_report import phantom_options
from cardioscar.cli import main as cli_main
from cardioscar.cohort import (CohortOptions, SlurmOptions, cohort_status, local_cluster, read_manifest,
                               run_cohort, slurm_cluster)
from cardioscar.cohort.manifest import PatientSpec, in_manifest_terms, preparation_request
from cardioscar.cohort.tasks import input_hash, run_patient
from cardioscar.errors import CardioScarError
from cardioscar.io.imageio import read_image
from cardioscar.io.meshio import read_mesh
from cardioscar.evaluate.metrics import node_volumes
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, write_phantom

HEADER = "id,mesh,image,slice_thickness_padding,partial_volume_correction,preset,seed,max_epochs,mc_samples,aha,export"
N_GOOD = 3
FIRST_RUN: dict[str, Path] = {}  # the end-to-end run's output, reused by the CLI-chain comparison


def _row(ident: str, seed: int, aha: str = "", export: str = "") -> str:
    return f"{ident},{ident}/phantom_mesh.vtk,{ident}/phantom_lge.nii.gz,4.0,yes,fast,{seed},30,5,{aha},{export}"


def _rv_point(root: Path) -> str:
    """The phantom p0's anterior RV insertion (its mesh is in LPS), quoted for the CSV."""
    return '"' + ",".join(repr(v) for v in json.loads((root / "rv_point.json").read_text(encoding="utf-8"))) + '"'


@pytest.fixture(scope="module")
def cohort_data(tmp_path_factory) -> Path:
    """Three small phantoms and a fourth patient whose mesh file is corrupt (truncated)."""
    root = tmp_path_factory.mktemp("cohort_data")
    for seed in range(N_GOOD):
        phantom = make_phantom(PhantomConfig(target_nodes=2000, seed=seed))
        write_phantom(phantom, root / f"p{seed}")
        if seed == 0:
            rv_point = phantom_options(phantom, "scar_probability").rv_point
            (root / "rv_point.json").write_text(json.dumps([float(v) for v in rv_point]))
    bad = root / "bad"
    bad.mkdir()
    (bad / "phantom_mesh.vtk").write_bytes((root / "p0" / "phantom_mesh.vtk").read_bytes()[:3000])
    rows = [HEADER, _row("p0", 0, _rv_point(root), "opencarp;vtu")]
    rows += [_row(f"p{seed}", seed) for seed in range(1, N_GOOD)]
    rows.append(_row("bad", 0).replace("bad/phantom_lge", "p0/phantom_lge"))
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def cluster():
    """The real engine: a LocalCluster with 2 worker processes (nannies restart a killed one)."""
    from distributed import Client

    cluster = local_cluster(CohortOptions(workers=2, retries=2))
    client = Client(cluster)
    client.wait_for_workers(2, timeout=120)
    yield cluster, client
    client.close()
    cluster.close()


def _summary(out: Path) -> list[dict]:
    with open(out / "cohort_summary.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _mtimes(folder: Path) -> dict[str, float]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


# --------------------------------------------------------------------------- manifest (no cluster)


def test_manifest_lists_every_problem_of_every_row_at_once(tmp_path, cohort_data):
    (tmp_path / "m.vtk").write_bytes((cohort_data / "p0" / "phantom_mesh.vtk").read_bytes())
    image = cohort_data / "p0" / "phantom_lge.nii.gz"
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "id,mesh,image,seed,threshold,tags,colour\n"
        f"a,m.vtk,{image},-1,0.5,,\n"          # seed < 0
        f"a,missing.vtk,{image},1,2,,\n"       # duplicate id, missing mesh, threshold > 1
        f"b,m.vtk,nothere.nii.gz;{image},1,0.5,yes,red\n"  # missing image, planned column, unknown column
    )
    with pytest.raises(CardioScarError) as error:
        read_manifest(manifest)
    lines = str(error.value).splitlines()
    assert "7 problem(s)" in lines[0]
    text = str(error.value)
    for expected in ("row 1 (id a): column 'seed' must be an integer from 0 to 2**63-1 (9223372036854775807; seeds are "
                     "stored as 64-bit integers), got '-1'",
                     "row 2 (id a): id a is also on row 1",
                     "missing.vtk does not exist",
                     "row 2 (id a): column 'threshold' must be a number between 0 and 1 (0 < threshold < 1), got '2'",
                     "nothere.nii.gz does not exist",
                     "column 'tags': the tissue tags come from threshold (border zone) and core_threshold",
                     "unknown column 'colour' (every row)"):
        assert expected in text, expected


def test_yaml_manifest_with_defaults_and_relative_paths(tmp_path, cohort_data):
    manifest = cohort_data / "cohort.yaml"
    manifest.write_text("defaults: {preset: fast, seed: 7, slice_indices: [1, 3]}\n"
                        "patients:\n"
                        "  - {id: p0, mesh: p0/phantom_mesh.vtk, image: [p0/phantom_lge.nii.gz]}\n"
                        "  - {id: p1, mesh: p1/phantom_mesh.vtk, image: p1/phantom_lge.nii.gz, seed: 3}\n")
    first, second = read_manifest(manifest)
    assert first.mesh == (cohort_data / "p0" / "phantom_mesh.vtk").resolve()
    assert first.options["preset"] == "fast" and first.options["slice_indices"] == [1, 3]
    assert (first.options["seed"], second.options["seed"]) == (7, 3)
    assert second.images == ((cohort_data / "p1" / "phantom_lge.nii.gz").resolve(),)


def test_myocardium_columns_reach_prepare_and_the_hash(tmp_path, cohort_data):
    """A mask is a file relative to the manifest whose bytes are part of the input hash (its
    place is not); the library's own option checks run while the manifest is read."""
    study = tmp_path / "study"
    study.mkdir()
    for name in ("phantom_mesh.vtk", "phantom_lge.nii.gz"):
        (study / name).write_bytes((cohort_data / "p0" / name).read_bytes())
    (study / "mask.nii.gz").write_bytes((cohort_data / "p0" / "phantom_lge.nii.gz").read_bytes())
    manifest = tmp_path / "manifest.csv"
    manifest.write_text('id,mesh,image,scar_labels,myocardium_labels,myocardium_mask\n'
                        'a,study/phantom_mesh.vtk,study/phantom_lge.nii.gz,,"1,2",study/mask.nii.gz\n')
    (spec,) = read_manifest(manifest)
    request = preparation_request(spec)
    assert request.myocardium_mask == (study / "mask.nii.gz").resolve() and request.myocardium_labels == [1, 2]
    digest = input_hash(spec)
    moved = tmp_path / "moved"
    study.rename(moved)
    manifest.write_text(manifest.read_text(encoding="utf-8").replace("study/", "moved/"))
    (spec,) = read_manifest(manifest)
    assert input_hash(spec) == digest  # the same files elsewhere: the same patient
    (moved / "mask.nii.gz").write_bytes(b"changed")
    assert input_hash(spec) != digest

    manifest.write_text('id,mesh,image,myocardium_labels\na,moved/phantom_mesh.vtk,moved/phantom_lge.nii.gz,2\n')
    with pytest.raises(CardioScarError, match=r"row 1 \(id a\): myocardium_labels without myocardium_mask"):
        read_manifest(manifest)


def test_slurm_job_script_books_what_the_worker_uses():
    """dask-jobqueue writes the script `sbatch` would get; no Slurm needed to read it."""
    options = CohortOptions(threads_per_worker=4, fits_per_worker=2, gpus_per_worker=1,
                            slurm=SlurmOptions(queue="gpu", account="cardiac", walltime="01:30:00", memory="16GB"))
    cluster = slurm_cluster(options)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    directives = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    assert "#SBATCH -p gpu" in directives and "#SBATCH -A cardiac" in directives
    assert "#SBATCH --cpus-per-task=8" in directives  # 2 fits x 4 threads
    assert "#SBATCH -t 01:30:00" in directives and "#SBATCH --gres=gpu:1" in directives
    assert any(line.startswith("#SBATCH --mem=") for line in directives)
    assert "export OMP_NUM_THREADS=4" in script
    assert "--nthreads 2" in script  # 2 patients at a time per worker
    assert cluster.scheduler_address.split(":")[-1] in script  # workers connect back to this scheduler


def test_myocardium_margin_column_reaches_prepare_and_is_checked(tmp_path, cohort_data):
    """``myocardium_margin`` is prepare's ``--myocardium-margin``: it reaches the request, bad values
    and a margin without a myocardium are listed as the column's problems, and a manifest without
    it hashes as before the column existed (those results are not redone)."""
    mesh, image = cohort_data / "p0" / "phantom_mesh.vtk", cohort_data / "p0" / "phantom_lge.nii.gz"
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("id,mesh,image,myocardium_labels,myocardium_mask,myocardium_margin\n"
                        f'a,{mesh},{image},,{image},2\nb,{mesh},{image},,{image},\n')
    wide, plain = read_manifest(manifest)
    assert preparation_request(wide).myocardium_margin_px == 2 and preparation_request(plain).myocardium_margin_px == 0
    before = PatientSpec(plain.id, plain.row, plain.mesh, plain.images,
                         {k: v for k, v in plain.options.items() if k != "myocardium_margin"})
    assert input_hash(plain) == input_hash(before) != input_hash(wide)

    manifest.write_text("id,mesh,image,myocardium_mask,myocardium_margin\n"
                        f"a,{mesh},{image},{image},-1\nb,{mesh},{image},{image},1.5\nc,{mesh},{image},,1\n")
    with pytest.raises(CardioScarError) as error:
        read_manifest(manifest)
    text = str(error.value)
    assert "3 problem(s)" in text.splitlines()[0]
    for row, value in ((1, "-1"), (2, "1.5")):
        assert (f"row {row} (id {'ab'[row - 1]}): column 'myocardium_margin' must be a whole number of pixels >= 0 "
                f"(0: none), got '{value}'") in text
    assert "row 3 (id c): column 'myocardium_margin' (1) widens a myocardium: give myocardium_labels" in text


def test_a_bad_aha_value_fails_the_patient_before_its_fit_naming_the_column(tmp_path, cohort_data, monkeypatch):
    """An ``aha`` point off the wall, or a label map the manifest cannot read as an RV map (here
    EMIDEC-like: no RV; the phantom's LGE as a stand-in), fails the patient before the training,
    with the column named and, for a map, what the manifest accepts instead. Why: the frame was
    found after the fit, so such a row cost a whole fit (46 s for EMIDEC P062 on the CPU) and then
    said to give '--rv-label', which a manifest cannot set."""
    import cardioscar.logic

    def no_training(*args, **kwargs):
        raise AssertionError("the patient was trained before its AHA frame was checked")

    monkeypatch.setattr(cardioscar.logic, "train_scar_model", no_training)
    mesh, image = cohort_data / "p0" / "phantom_mesh.vtk", cohort_data / "p0" / "phantom_lge.nii.gz"
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f'id,mesh,image,aha\noff,{mesh},{image},"900,900,900"\nmap,{mesh},{image},{image}\n')
    off, label_map = (run_patient(spec, str(tmp_path / "out"), "hash") for spec in read_manifest(manifest))
    assert off["status"] == label_map["status"] == "failed"
    assert off["error"].startswith("column 'aha': the aha point is ") and "mm from the nearest LV node" in off["error"]
    assert label_map["error"].startswith("column 'aha': ")
    assert label_map["error"].endswith("put the anterior RV insertion X,Y,Z in the aha column instead")
    assert not (tmp_path / "out" / "off").exists() and not (tmp_path / "out" / "map").exists()


def test_bullseye_sheet_draws_each_patients_scar_table_readably(tmp_path):
    """The cohort sheet draws one scar-% disc per patient from its record, on one scale, with each
    segment's number written in it and the patient's burden in the title; patients without a table
    (no aha column, failed) are left out. Why: it pasted each patient's three-disc bullseye.png
    into a 2.6-inch cell, so on a 7-patient EMIDEC cohort a segment's number could not be read."""
    from cardioscar.cohort.summary import bullseye_sheet_figure, write_bullseye_sheet

    table = {str(segment): float(segment * 5) for segment in range(1, 17)} | {"17": None}  # as report.json holds it
    rows = [{"id": "P1", "status": "done", "scar_percent": 12.34, "aha": {"scar_pct_by_segment": table}},
            {"id": "P2", "status": "skipped", "scar_percent": 0.0,
             "aha": {"scar_pct_by_segment": {str(s): 0.0 for s in range(1, 18)}}},
            {"id": "P3", "status": "done", "scar_percent": 3.0, "aha": None},
            {"id": "P4", "status": "failed", "error": "x"}]
    fig = bullseye_sheet_figure(rows)
    titled = [axis for axis in fig.axes if axis.get_title()]
    assert [axis.get_title() for axis in titled] == ["P1: 12.3 % scar", "P2: 0.0 % scar"]
    written = {text.get_text() for text in titled[0].texts}
    assert {"5", "40", "80", "n/a"} <= written  # segments 1, 8 and 16 of P1, and its empty apex
    assert fig.get_size_inches()[0] / 2 >= 3.0  # each disc at least 3 inches wide
    assert write_bullseye_sheet(tmp_path, rows) == tmp_path / "cohort_bullseyes.png"
    assert write_bullseye_sheet(tmp_path, rows[2:]) is None


def test_the_bullseye_sheet_marks_a_segment_no_slice_covered_as_the_patients_figure_does():
    """A segment no slice covered is "nc" on the patient's bullseye.png, with the line under the
    disc saying so; the cohort's sheet wrote "n/a" for it, one fact in two words. The record keeps
    the segments not covered (``uncovered_segments``), the sheet marks them on the scar's disc and the
    border zone's, and no legend line runs into a label; a record from before they were kept cannot
    tell, so its empty segment stays "n/a", with no legend."""
    import itertools

    from cardioscar.aha.bullseye import NOT_COVERED, NOT_COVERED_LEGEND
    from cardioscar.cohort.summary import bullseye_sheet_figure

    empty_apex = {str(s): 40.0 for s in range(1, 17)} | {"17": None}
    rule = {"scar_pct_by_segment": empty_apex, "lv_scar_pct": 40.0, "uncovered_segments": [17],
            "border_zone_pct_by_segment": empty_apex}
    older = {"scar_pct_by_segment": empty_apex, "lv_scar_pct": 40.0}
    sheet = bullseye_sheet_figure([{"id": "P1", "status": "done", "aha": rule},
                                   {"id": "P0", "status": "skipped", "aha": older}])
    sheet.canvas.draw()
    renderer = sheet.canvas.get_renderer()
    discs = [axis for axis in sheet.axes if axis.get_title()]
    assert [axis.get_title() for axis in discs] == ["P1: 40.0 % scar", "P1: border zone", "P0: 40.0 % scar"]
    for disc, mark in zip(discs, (NOT_COVERED, NOT_COVERED, "n/a")):
        assert disc.texts[33].get_text() == mark  # the apex's, under its number
        assert (NOT_COVERED_LEGEND in [text.get_text() for text in disc.texts]) == (mark == NOT_COVERED)
        boxes = [text.get_window_extent(renderer) for text in disc.texts[34:]]  # names, compass words, legend
        assert not any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2)), disc.get_title()


def test_progress_counts_as_running_only_what_the_workers_can_run_at_once():
    """Dask queues more tasks on a worker than its threads run: the progress line's 'running' is
    capped per worker at its slots (EMIDEC, 7 patients, 2 single-fit workers: it said 4 running)."""
    from cardioscar.cohort.runner import running_now

    processing = {"tcp://w1": ("P1", "P2", "P3"), "tcp://w2": ("P4",), "tcp://w3": ()}
    assert running_now(processing, {"tcp://w1": 1, "tcp://w2": 1, "tcp://w3": 1}) == 2
    assert running_now(processing, {"tcp://w1": 2, "tcp://w2": 2, "tcp://w3": 2}) == 3  # --fits-per-worker 2


def test_a_rows_errors_name_the_manifests_columns_not_the_cli_options(tmp_path, cohort_data):
    """A row's error from the library names the manifest's columns: 'scar_labels', not the CLI's
    '--scar-labels', which a manifest's user cannot give (EMIDEC with a mistyped scar label)."""
    mesh, image = cohort_data / "p0" / "phantom_mesh.vtk", cohort_data / "p0" / "phantom_lge.nii.gz"
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f'id,mesh,image,scar_labels,myocardium_labels\nP1,{mesh},{image},"5","2,3,4"\n')
    with pytest.raises(CardioScarError) as error:
        read_manifest(manifest)
    line = str(error.value).splitlines()[1]
    assert line.startswith("  row 1 (id P1): scar_labels 5 not in myocardium_labels 2,3,4") and "--" not in line


def test_aha_column_takes_both_rv_insertions(tmp_path, cohort_data, monkeypatch):
    """``aha`` as ``X,Y,Z;X,Y,Z``: the anterior and the inferior RV insertion reach the AHA analysis
    (an inferior point off the wall is refused as that point, before the fit), as ``aha
    --rv-inferior-point`` does; one point still parses as before. Why: a manifest could give the
    anterior insertion only, so EMIDEC's septum (no RV label: both read off the images) was taken
    as 120 degrees wide whatever it measured."""
    import cardioscar.logic

    monkeypatch.setattr(cardioscar.logic, "train_scar_model", lambda *a, **k: pytest.fail("trained before the check"))
    mesh, image = cohort_data / "p0" / "phantom_mesh.vtk", cohort_data / "p0" / "phantom_lge.nii.gz"
    anterior = _rv_point(cohort_data).strip('"')
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f'id,mesh,image,aha\none,{mesh},{image},"{anterior}"\n'
                        f'two,{mesh},{image},"{anterior};900,900,900"\nbad,{mesh},{image},"1,2,3;4,5"\n')
    with pytest.raises(CardioScarError, match=r"row 3 \(id bad\): column 'aha' must be .* X,Y,Z;X,Y,Z"):
        read_manifest(manifest)
    manifest.write_text("\n".join(manifest.read_text(encoding="utf-8").splitlines()[:3]) + "\n")
    one, two = read_manifest(manifest)
    assert one.options["aha"] == pytest.approx([float(v) for v in anterior.split(",")])
    assert len(two.options["aha"]) == 2 and two.options["aha"][1] == [900.0, 900.0, 900.0]
    record = run_patient(two, str(tmp_path / "out"), "hash")
    assert record["status"] == "failed"
    assert record["error"].startswith("column 'aha': the aha inferior point is "), record["error"]


# --------------------------------------------------------------------------- the scar rule on raw LGE

RULE_HEADER = ("id,mesh,image,slice_thickness_padding,preset,seed,max_epochs,mc_samples,myocardium_mask,"
               "myocardium_labels,blood_pool_labels,scar_rule,export,channels")


@pytest.fixture(scope="module")
def rule_data(tmp_path_factory) -> Path:
    """Two small phantoms as a scanner gives them (``demo --raw-lge``'s acquisition): raw LGE and a
    label map (1 blood pool, 2 myocardium) on its grid, and a manifest grading them by PSI (the
    demo's rule) into two fields; p0 exports its simulator files and searches its channels."""
    import SimpleITK as sitk

    from cardioscar.phantoms.phantom import raw_lge_acquisition

    root = tmp_path_factory.mktemp("rule_data")
    rows = [RULE_HEADER]
    for seed in range(2):
        phantom = make_phantom(PhantomConfig(target_nodes=1500, seed=seed))
        write_phantom(phantom, root / f"p{seed}")
        for image, name in zip(raw_lge_acquisition(phantom, seed=seed), ("lge.nii.gz", "labels.nii.gz")):
            sitk.WriteImage(image, str(root / f"p{seed}" / name))
        rows.append(f"p{seed},p{seed}/phantom_mesh.vtk,p{seed}/lge.nii.gz,{phantom.slice_half_thickness_mm},fast,"
                    f"{seed + 3},30,5,p{seed}/labels.nii.gz,2,1,psi,{'opencarp;vtu,yes' if seed == 0 else ','}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


def test_rule_columns_are_checked_whole_with_prepares_own_checks(tmp_path, rule_data):
    """The rule columns parse to what ``prepare --scar-rule`` reads (scar and core requests, the
    two-field core threshold); bad values, a rule column without ``scar_rule`` and a missing mask
    are each one line of the manifest's one error, prepare's own refusals with the columns named."""
    p0 = rule_data / "p0"
    mesh, lge, labels = p0 / "phantom_mesh.vtk", p0 / "lge.nii.gz", p0 / "labels.nii.gz"
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("id,mesh,image,myocardium_mask,myocardium_labels,scar_rule,scar_thresholds,blood_pool_labels,"
                        "blood_pool_mask,remote_mask,intensity_offset,expert_scar_labels,expert_core_labels,dark_blood_lge\n"
                        f'a,{mesh},{lge},{labels},"2,3,4",nsd,"2.5,4",1,{labels},{labels},,"3,4",4,yes\n'
                        f'b,{mesh},{lge},{labels},"2,3,4",iir,,1,,,2048,,,\n')  # the offset: ratio rules only
    spec, ratio = read_manifest(manifest)
    assert (preparation_request(ratio).scar_rule.intensity_offset, ratio.options["scar_rule"]) == (2048.0, "iir")
    scar, core = preparation_request(spec).scar_rule, preparation_request(spec, "core").scar_rule
    assert (scar.rule, scar.thresholds, scar.target, core.target) == ("nsd", (2.5, 4.0), "scar", "core")
    assert (scar.blood_pool_path, scar.remote_path) == (labels.resolve(), labels.resolve())
    assert (scar.blood_pool_labels, scar.intensity_offset) == ([1], 0.0)
    assert (scar.expert_scar_labels, scar.expert_core_labels) == ([3, 4], [4])
    assert scar.dark_blood_lge and core.dark_blood_lge
    assert spec.options["core_threshold"] == 0.5  # the core model's field, cut as export --core-mesh cuts it

    manifest.write_text(
        "id,mesh,image,myocardium_mask,myocardium_labels,scar_rule,scar_thresholds,blood_pool_labels,remote_mask,"
        "intensity_offset,expert_scar_labels\n"
        f"a,{mesh},{lge},{labels},2,otsu,,,,,\n"                      # unknown rule
        f'b,{mesh},{lge},{labels},2,nsd,"3",x,,inf,\n'               # one threshold, labels not numbers, offset inf
        f"c,{mesh},{lge},{labels},2,,,1,,,\n"                        # a rule column without scar_rule
        f"d,{mesh},{lge},{labels},2,psi,,,missing.nii.gz,,\n"        # a mask that is not there
        f'e,{mesh},{lge},{labels},2,psi,"0.7,0.3",,,,\n'             # thresholds out of order (the rule's check)
        f"f,{mesh},{lge},{labels},2,psi,,,{labels},,\n"              # a remote mask for a rule without remote
        f'g,{mesh},{lge},{labels},"2,3",nsd,,,,,4\n'                 # experts' scar outside the myocardium labels
        f"h,{mesh},{lge},,,nsd,,,,,\n"                               # a rule without the myocardium mask
        f"i,{mesh},{lge},{labels},2,iir,,,,2048,\n"                  # iir without the blood pool (was refused mid-run)
        f"j,{mesh},{lge},{labels},2,nsd,,,,2048,\n")                  # an offset for an offset-free rule (was ignored)
    with pytest.raises(CardioScarError) as error:
        read_manifest(manifest)
    text = str(error.value)
    assert "12 problem(s)" in text.splitlines()[0], text
    for expected in ("row 1 (id a): column 'scar_rule' must be one of nsd, fwhm, iir, psi",
                     "row 2 (id b): column 'scar_thresholds' must be two numbers BORDER,CORE",
                     "row 2 (id b): column 'blood_pool_labels' must be comma-separated integer labels",
                     "row 2 (id b): column 'intensity_offset' must be a number",
                     "row 3 (id c): blood_pool_labels needs scar_rule {nsd,fwhm,iir,psi}",
                     f"row 4 (id d): column 'remote_mask': {tmp_path / 'missing.nii.gz'} does not exist",
                     "row 5 (id e): scar_thresholds 0.7,0.3 for scar_rule psi",
                     "row 6 (id f): remote_mask is used by scar_rule nsd only",
                     "row 7 (id g): expert_scar_labels 4 not in myocardium_labels 2,3",
                     "row 8 (id h): scar_rule nsd needs myocardium_mask FILE",
                     "row 9 (id i): scar_rule iir needs the blood pool: give blood_pool_mask FILE or blood_pool_labels",
                     "row 10 (id j): intensity_offset 2048 applies to the ratio rules (fwhm, iir); scar_rule nsd is "
                     "offset-free"):
        assert expected in text, expected
    assert all(line.count("row ") == 1 for line in text.splitlines()[1:])  # one line per problem
    manifest.write_text(f"id,mesh,image,myocardium_mask,scar_rule,scar_labels\na,{mesh},{lge},{labels},psi,2\n")
    with pytest.raises(CardioScarError, match=r"row 1 \(id a\): scar_rule needs .* without scar_labels"):
        read_manifest(manifest)  # refused while the manifest is read, not after the patient's images are cut
    manifest.write_text(f"id,mesh,image,dark_blood_lge\na,{mesh},{lge},yes\nb,{mesh},{lge},no\n")
    with pytest.raises(CardioScarError) as error:
        read_manifest(manifest)  # the flag skips a check only a rule runs; "no" without a rule is no problem
    assert "1 problem(s)" in str(error.value) and "row 1 (id a): dark_blood_lge needs scar_rule" in str(error.value)


def test_rule_masks_and_columns_are_in_the_hash(tmp_path, rule_data):
    """The blood-pool mask's bytes and the rule's options are hashed (a changed mask redoes the
    patient); a manifest without rule columns hashes as before they existed."""
    study = tmp_path / "study"
    study.mkdir()
    for name in ("phantom_mesh.vtk", "lge.nii.gz", "labels.nii.gz"):
        (study / name).write_bytes((rule_data / "p0" / name).read_bytes())
    (study / "blood.nii.gz").write_bytes((rule_data / "p0" / "labels.nii.gz").read_bytes())
    manifest = tmp_path / "manifest.csv"
    row = "a,study/phantom_mesh.vtk,study/lge.nii.gz,study/labels.nii.gz,2"
    manifest.write_text(f"id,mesh,image,myocardium_mask,myocardium_labels,scar_rule,blood_pool_mask,blood_pool_labels\n"
                        f"{row},iir,study/blood.nii.gz,1\n{row.replace('a,', 'b,', 1)},,,\n")
    rule, plain = read_manifest(manifest)
    digest = input_hash(rule)
    before = PatientSpec(plain.id, plain.row, plain.mesh, plain.images,
                         {k: v for k, v in plain.options.items() if k not in RULE_COLUMNS})
    assert input_hash(plain) == input_hash(before) != digest
    (study / "blood.nii.gz").write_bytes(b"changed")
    assert input_hash(rule) != digest


RULE_COLUMNS = ("scar_rule", "scar_thresholds", "blood_pool_labels", "blood_pool_mask", "remote_mask",
                "intensity_offset", "expert_scar_labels", "expert_core_labels", "dark_blood_lge")


def test_summary_says_pending_for_a_patient_not_yet_started(tmp_path):
    """While a run is under way the summary says ``running`` only for a patient being fitted (its
    temporary folder exists), ``pending`` for one queued behind it; finished rows are left as they
    are. EMIDEC, 4 patients, one worker: the summary said 3 running while one ran."""
    from cardioscar.cohort.runner import mark_unfinished
    from cardioscar.cohort.tasks import PARTIAL, partial_ids

    (tmp_path / f".P2{PARTIAL}abc").mkdir()
    (tmp_path / "P1").mkdir()
    rows = {"P1": {"id": "P1", "status": "done"}, "P2": {"id": "P2", "status": "failed", "error": "old"},
            "P3": {"id": "P3", "status": "pending"}}
    mark_unfinished(rows, {"P2", "P3"}, partial_ids(tmp_path))
    assert [rows[ident]["status"] for ident in ("P1", "P2", "P3")] == ["done", "running", "pending"]
    assert "error" not in rows["P2"]  # retried: its earlier failure's error is not this attempt's


def test_a_tissue_rows_scar_is_its_border_zone_plus_core(cohort_data):
    """With two fields the summary's scar is what the export tags border zone or core, so
    scar_percent = border_percent + core_percent; a core-model core node where the scar field is
    below threshold is core (EMIDEC P022: scar 42.39 % beside 13.50 + 29.76 %)."""
    from cardioscar.cohort.tasks import _measure, _tissue_tags

    mesh = read_mesh(cohort_data / "p0" / "phantom_mesh.vtk")
    x = mesh.points_lps()[:, 0]
    scar_field = (x < np.quantile(x, 0.5)).astype(float)
    core_field = ((x < np.quantile(x, 0.3)) | ((x > np.quantile(x, 0.5)) & (x < np.quantile(x, 0.51)))).astype(float)
    spec = PatientSpec("P1", 1, cohort_data / "p0" / "phantom_mesh.vtk", (), {"threshold": 0.5, "core_threshold": 0.5})
    measured = _measure(spec, mesh, scar_field, None, _tissue_tags(spec, mesh, scar_field, core_field))
    weights = node_volumes(mesh.dataset)
    tagged = (scar_field >= 0.5) | (core_field >= 0.5)
    assert measured["classes"] == "tissue"
    assert measured["scar_percent"] == pytest.approx(measured["border_percent"] + measured["core_percent"], abs=1e-3)
    assert measured["scar_volume_ml"] == pytest.approx(weights[tagged].sum() / 1000, abs=1e-3)
    assert measured["scar_percent"] > 100 * weights[scar_field >= 0.5].sum() / weights.sum() + 0.2


def test_a_rule_rows_fit_warnings_name_their_model():
    """A scar rule's row fits two models; each fit's kept warnings say which model they are about
    (EMIDEC P047: three retry warnings of the scar model read as the patient's), the others as
    said, each once."""
    import logging

    from cardioscar.cohort.tasks import _KeptWarnings

    log = logging.getLogger("cardioscar.fit.training")
    with _KeptWarnings() as kept:
        with kept.about("scar model"):
            log.warning("the result misses a scar patch; train again with another --seed")
        with kept.about("core model"):
            log.warning("the result misses a scar patch; train again with another --seed")
        log.warning("an export warning")
        log.warning("an export warning")
    assert kept.messages == ["scar model: the result misses a scar patch; train again with another seed",
                             "core model: the result misses a scar patch; train again with another seed",
                             "an export warning"]


def test_a_warning_about_the_mesh_and_then_its_prediction_is_kept_once():
    """The AHA frame is checked on the row's mesh before the fit and found again on its prediction:
    on EMIDEC (P051, P015: an apex the slices never reached) every row's warnings cell held the
    same long warning twice, once naming heart.vtk and once scar_prediction.vtk. A warning about
    the prediction alone is kept."""
    import logging
    from types import SimpleNamespace

    from cardioscar.cohort.tasks import _KeptWarnings, prediction_name

    spec = SimpleNamespace(mesh=Path("heart.vtk"))  # as run_patient maps them
    cap = "segment 17 (apex) is not covered by the slices"
    log = logging.getLogger("cardioscar.aha.analysis")
    with _KeptWarnings(same_file={prediction_name(spec): spec.mesh.name}) as kept:
        log.warning("heart.vtk: %s", cap)
        log.warning("scar_prediction.vtk: %s", cap)
        log.warning("scar_prediction.vtk: its scar_binary was called at 0.3")
    assert kept.messages == [f"heart.vtk: {cap}", "scar_prediction.vtk: its scar_binary was called at 0.3"]


def test_summary_picture_tells_tissue_rows_from_one_field_rows_and_sheet_titles_its_table():
    """A mixed cohort's bars: a scar rule's row stacked as core + border zone, a one-field row as
    its scar, with a legend naming both; the bull's-eye sheet titles a disc with its own table's LV
    burden (the scar field at threshold), not the row's border zone + core."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cardioscar.cohort.summary import _draw_bars, bullseye_sheet_figure

    rows = [{"id": "N1", "status": "done", "classes": "bands", "scar_percent": 5.0, "border_percent": 1.0,
             "core_percent": 4.0},
            {"id": "P1", "status": "done", "classes": "tissue", "scar_percent": 43.3, "border_percent": 13.5,
             "core_percent": 29.8, "aha": {"scar_pct_by_segment": {str(s): 40.0 for s in range(1, 18)},
                                          "lv_scar_pct": 42.4}}]
    fig, axis = plt.subplots()
    _draw_bars(axis, rows)
    spans = sorted((round(p.get_y(), 3), round(p.get_x(), 2), round(p.get_width(), 2)) for p in axis.patches
                   if p.get_width() > 0)
    assert spans == [(-0.4, 0.0, 5.0), (0.6, 0.0, 29.8), (0.6, 29.8, 13.5)]
    labels = [text.get_text() for text in axis.get_legend().get_texts()]
    assert any("one field" in label for label in labels) and any("border zone" in label for label in labels)
    plt.close(fig)
    sheet = bullseye_sheet_figure(rows)
    assert [a.get_title() for a in sheet.axes if a.get_title()] == ["P1: 42.4 % scar"]


def test_manifest_keeps_the_names_the_row_gives_through_links(tmp_path, cohort_data, warnings_of_cardioscar):
    """A row's files reached through links (a study folder of links into shared data) keep the
    names the row gives: errors and report.json named the links' targets (EMIDEC N020's
    ``labels.nii.gz`` refused as ``Case_N020.nii.gz``); two rows whose links reach one mesh and
    image are still named as the same patient twice."""
    patient = tmp_path / "N1"
    patient.mkdir()
    for name, target in (("heart.vtk", "phantom_mesh.vtk"), ("lge.nii.gz", "phantom_lge.nii.gz"),
                         ("labels.nii.gz", "phantom_lge.nii.gz")):
        (patient / name).symlink_to(cohort_data / "p0" / target)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("id,mesh,image,myocardium_mask\nN1,N1/heart.vtk,N1/lge.nii.gz,N1/../N1/labels.nii.gz\n")
    (spec,) = read_manifest(manifest)
    assert spec.mesh == patient / "heart.vtk" and spec.images == (patient / "lge.nii.gz",)
    assert spec.options["myocardium_mask"] == str(patient / "labels.nii.gz")
    assert not warnings_of_cardioscar
    manifest.write_text(f"id,mesh,image\nN1,N1/heart.vtk,N1/lge.nii.gz\n"
                        f"N2,{cohort_data / 'p0' / 'phantom_mesh.vtk'},{cohort_data / 'p0' / 'phantom_lge.nii.gz'}\n")
    read_manifest(manifest)
    assert any("rows 1, 2 (ids N1, N2) have the same mesh and images" in m for m in warnings_of_cardioscar)


def test_a_rule_rows_aha_table_has_each_segments_border_zone(tmp_path, cohort_data):
    """A scar rule's row gives the AHA table its node tags, so ``aha.csv`` has the border zone per
    segment (as ``aha --tags-field tissue_tag --border-zone-tag 2``); a one-field row's has none.
    EMIDEC P022's rule row had only the scar field's % per segment."""
    from cardioscar.cohort.tasks import _aha
    from cardioscar.io.meshio import write_mesh

    p0 = cohort_data / "p0"
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"id,mesh,image,aha\nP1,{p0 / 'phantom_mesh.vtk'},{p0 / 'phantom_lge.nii.gz'},{_rv_point(cohort_data)}\n")
    (spec,) = read_manifest(manifest)
    mesh = read_mesh(p0 / "phantom_mesh.vtk")
    truth = mesh.point_array("scar_truth")
    prediction = tmp_path / "scar_prediction.vtk"
    write_mesh(mesh, prediction, {"scar_probability": truth})
    tags = np.where(truth >= 0.5, 3, 1)
    tags[(truth >= 0.5) & (mesh.points_lps()[:, 2] > np.median(mesh.points_lps()[:, 2]))] = 2  # the basal half
    record = _aha(spec, prediction, tmp_path / "aha", prediction, tags)
    assert "border_zone_pct_by_segment" not in _aha(spec, prediction, tmp_path / "aha_one_field", prediction)
    with open(tmp_path / "aha" / "aha.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    with open(tmp_path / "aha_one_field" / "aha.csv", encoding="utf-8") as handle:
        assert "border_zone_pct" not in next(csv.DictReader(handle))
    border = [float(row["border_zone_pct"]) for row in rows]
    # the segments no slice covered, which the cohort's sheet marks as the patient's bull's-eye does
    assert record["uncovered_segments"] == [int(row["segment"]) for row in rows if row["covered"] == "no"]
    # the record the cohort's bull's-eye sheet draws it from (the CSV rounds percentages to 0.01)
    assert [record["border_zone_pct_by_segment"][int(row["segment"])] for row in rows] == pytest.approx(border, abs=0.005)
    assert max(border) > 5.0 and min(border) == 0.0
    # and the dense core (tag 3) per segment: with the border zone it makes up the scar here
    core = [float(row["core_pct"]) for row in rows]
    assert max(core) > 5.0
    for b, c, row in zip(border, core, rows):
        assert b + c == pytest.approx(float(row["scar_pct"]), abs=0.015)  # three cells rounded to 0.01
    assert all(b <= float(row["scar_pct"]) + 0.01 for b, row in zip(border, rows))  # the border zone is scar here


def test_the_summary_lists_the_cohort_pending_before_the_first_fit(tmp_path, cohort_data, monkeypatch):
    """``cohort_summary.csv`` was written only once the first patient finished: during a long first fit
    a user who opened it found none (or a previous run's, with its errors). It is written as the run
    starts, every patient to run ``pending``; read here at the moment the fits would be submitted."""
    import cardioscar.cohort.runner as runner

    out = tmp_path / "out"
    (out / "_failed").mkdir(parents=True)
    (out / "_failed" / "p1.json").write_text(json.dumps({"id": "p1", "status": "failed", "error": "old error"}))
    (out / "cohort_summary.csv").write_text("id,status\nstale,done\n")
    seen = {}

    def fits_submitted(todo, *args):  # the Dask engine is the end-to-end test's; here what is on disk then
        seen["todo"], seen["rows"] = [spec.id for spec in todo], _summary(out)
        seen["status"] = {row["id"]: row for row in cohort_status(out)}

    monkeypatch.setattr(runner, "_run_on_dask", fits_submitted)
    run_cohort(cohort_data / "manifest.csv", out)
    assert seen["todo"] == ["p0", "p1", "p2", "bad"]
    assert [(row["id"], row["status"], row["error"]) for row in seen["rows"]] == [
        ("p0", "pending", ""), ("p1", "pending", ""), ("p2", "pending", ""), ("bad", "pending", "")]
    # nor does the failure record on disk say otherwise (`cohort status`, another --only run's summary)
    assert seen["status"]["p1"] == {"id": "p1", "status": "pending"}


def test_the_bullseye_sheet_draws_a_rule_rows_border_zone_beside_its_scar():
    """A scar rule's row has each segment's border zone in its AHA table; the sheet drew the scar %
    only. The record keeps the border zone per segment (checked against ``aha.csv`` in
    test_a_rule_rows_aha_table_has_each_segments_border_zone) and the sheet draws it beside the
    scar, with the colour bar and title saying so; a one-field row keeps its one disc."""
    from cardioscar.cohort.summary import bullseye_sheet_figure

    rule = {"scar_pct_by_segment": {str(s): 40.0 for s in range(1, 18)}, "lv_scar_pct": 42.4,
            "border_zone_pct_by_segment": {str(s): float(s) for s in range(1, 17)} | {"17": None}}
    one = {"scar_pct_by_segment": {str(s): 10.0 for s in range(1, 18)}, "lv_scar_pct": 10.0}
    sheet = bullseye_sheet_figure([{"id": "P1", "status": "done", "aha": rule},
                                   {"id": "N1", "status": "done", "aha": one}])
    titles = [axis.get_title() for axis in sheet.axes if axis.get_title()]
    assert titles == ["P1: 42.4 % scar", "P1: border zone", "N1: 10.0 % scar"]
    assert {"1", "16", "n/a"} <= {text.get_text() for text in sheet.axes[1].texts}  # the border zone's own numbers
    assert "border zone" in sheet.axes[-1].get_xlabel() and "border zone" in sheet._suptitle.get_text()
    alone = bullseye_sheet_figure([{"id": "N1", "status": "done", "aha": one}])
    assert "border zone" not in alone.axes[-1].get_xlabel() + alone._suptitle.get_text()


def test_a_rows_aha_points_in_the_wrong_order_are_warned_in_its_record(tmp_path, cohort_data):
    """The AHA step's warning of insertion points numbering mirrored reaches the patient's record in
    the manifest's words (the check before the fit and the step after it say it once), and the
    row's aha.json records it."""
    from cardioscar.cohort.tasks import _aha, _KeptWarnings, check_aha
    from cardioscar.io.meshio import write_mesh

    options = phantom_options(make_phantom(PhantomConfig(target_nodes=2000, seed=0)), "scar_probability")
    swapped = ";".join(",".join(repr(float(v)) for v in point) for point in (options.rv_inferior_point, options.rv_point))
    p0 = cohort_data / "p0"
    manifest = tmp_path / "m.csv"
    manifest.write_text(f'id,mesh,image,aha\nP1,{p0 / "phantom_mesh.vtk"},{p0 / "phantom_lge.nii.gz"},"{swapped}"\n')
    (spec,) = read_manifest(manifest)
    mesh = read_mesh(p0 / "phantom_mesh.vtk")
    prediction = tmp_path / "scar_prediction.vtk"
    write_mesh(mesh, prediction, {"scar_probability": mesh.point_array("scar_truth")})
    with _KeptWarnings() as kept:
        check_aha(spec, mesh)
        _aha(spec, prediction, tmp_path / "aha", prediction)
    mirrored = [message for message in kept.messages if "mirror" in message]
    assert len(mirrored) == 1 and "(the aha point, then the aha inferior point)" in mirrored[0]
    record = json.loads((tmp_path / "aha" / "aha.json").read_text(encoding="utf-8"))["rv_insertion"]
    assert record["sense"] == "mirrored"


def test_a_rows_mirrored_mesh_with_one_aha_point_is_warned_in_its_record(tmp_path):
    """A mesh in a mirrored frame (biv-me's real heart with its short-axis slices' order reversed,
    the header kept) and one aha point: the AHA step numbered it mirrored, silently; the frame
    check's warning reaches the patient's record in the manifest's words."""
    import SimpleITK as sitk

    from conftest import bivme_dicom, bivme_lv_mesh
    from cardioscar.cohort.tasks import _KeptWarnings, check_aha

    image = bivme_dicom("Se1")
    normal = np.asarray(sitk.ReadImage(str(image)).GetDirection()).reshape(3, 3)[:, 2]
    mesh, anterior, _ = bivme_lv_mesh(tmp_path / "mirrored.vtk", normal)
    manifest = tmp_path / "m.csv"
    manifest.write_text(f'id,mesh,image,aha\nP1,{mesh},{image},"{",".join(repr(float(v)) for v in anterior)}"\n')
    (spec,) = read_manifest(manifest)
    with _KeptWarnings() as kept:
        check_aha(spec, read_mesh(mesh))
    (warned,) = [message for message in kept.messages if "mirror" in message]
    assert "(the aha point, then the aha inferior point)" in warned and "--rv-point" not in warned


def test_fibre_columns_are_checked_and_reach_the_export(tmp_path, cohort_data, segmented, warnings_of_cardioscar):
    """``fibres`` rule and ``helix_angles`` are the manifest's ``export --fibres rule --helix-angles``:
    the openCARP rows carried the no-fibres warning. Bad values and either column without what it
    needs are listed at load, one line each; a manifest without them hashes as before they existed;
    the patient's export writes the rule's .lon and the .vtu's fibre vectors at the row's angles."""
    from cardioscar.cohort.tasks import SIMULATION, _export
    from cardioscar.io.meshio import text_field, write_mesh
    from cardioscar.simulation.opencarp import FIBRE_RULE_ARRAY

    mesh, image = cohort_data / "p0" / "phantom_mesh.vtk", cohort_data / "p0" / "phantom_lge.nii.gz"
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("id,mesh,image,export,fibres,helix_angles\n"
                        f'a,{mesh},{image},opencarp,yes,\nb,{mesh},{image},opencarp,rule,"95,-60"\n'
                        f'c,{mesh},{image},,rule,\nd,{mesh},{image},vtu,,"60,-60"\n')
    with pytest.raises(CardioScarError) as error:
        read_manifest(manifest)
    text = str(error.value)
    assert "4 problem(s)" in text.splitlines()[0]
    assert "row 1 (id a): column 'fibres' must be rule (the LV fibre rule, as export --fibres rule) or no, got 'yes'" in text
    assert "row 2 (id b): column 'helix_angles' must be two angles ENDO,EPI in degrees, each within [-90, 90]" in text
    assert "row 3 (id c): column 'fibres' (rule) shapes the simulator files: give export too" in text
    assert "row 4 (id d): column 'helix_angles' is for fibres rule" in text

    segmented_mesh = read_mesh(segmented["mesh"])
    manifest.write_text("id,mesh,image,export,fibres,helix_angles\n"
                        f'a,{segmented["mesh"]},{image},opencarp;vtu,rule,"50,-40"\nb,{mesh},{image},opencarp,,\n')
    ruled, plain = read_manifest(manifest)
    assert (ruled.options["fibres"], ruled.options["helix_angles"]) == ("rule", [50.0, -40.0])
    before = PatientSpec(plain.id, plain.row, plain.mesh, plain.images,
                         {k: v for k, v in plain.options.items() if k not in ("fibres", "helix_angles")})
    assert input_hash(plain) == input_hash(before)
    prediction = tmp_path / "scar_prediction.vtk"
    write_mesh(segmented_mesh, prediction, {"scar_probability": np.zeros(segmented_mesh.n_points)})
    record = _export(ruled, prediction, tmp_path / SIMULATION)
    assert record["files"] == ["heart.elem", "heart.json", "heart.lon", "heart.pts", "heart.vtu"]
    sidecar = json.loads((tmp_path / SIMULATION / "heart.json").read_text(encoding="utf-8"))
    assert (sidecar["fibre_rule"]["helix_endo_deg"], sidecar["fibre_rule"]["helix_epi_deg"]) == (50.0, -40.0)
    vtu = read_mesh(tmp_path / SIMULATION / "heart.vtu").dataset
    assert json.loads(text_field(vtu, FIBRE_RULE_ARRAY))["helix_epi_deg"] == -40.0
    assert vtu.GetCellData().GetArray("fibre") is not None
    assert not any(".lon was written" in message for message in warnings_of_cardioscar)
    _export(plain, prediction, tmp_path / "plain")  # no fibres: the warning's advice in the manifest's words
    [said] = [in_manifest_terms(m) for m in warnings_of_cardioscar if ".lon was written" in m]
    assert "(no fibres)" in said and "give the fibres column rule (the LV fibre rule)" in said
    assert "CELLFIELD" not in said and "--" not in said


def test_channels_column_is_checked_at_load_hashes_as_before_and_writes_the_search(tmp_path, rule_data,
                                                                                   warnings_of_cardioscar):
    """``channels`` yes/no: a bad value or yes without scar_rule is listed at load, one line each; a
    row without the column (or with no) hashes as before it existed; the patient's search on the
    two fields' tags writes the channel files and its count (the painted lattice of test_channels:
    one corridor), and a patient with no core node records 0 channels, warned, and no file."""
    from cardioscar.cohort.tasks import _channels
    from cardioscar.simulation.tags import DEFAULT_TAGS
    from test_channels import Wall, _write

    p0 = rule_data / "p0"
    row = f"{p0 / 'phantom_mesh.vtk'},{p0 / 'lge.nii.gz'},{p0 / 'labels.nii.gz'},2,1"
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("id,mesh,image,myocardium_mask,myocardium_labels,blood_pool_labels,scar_rule,channels\n"
                        f"a,{row},psi,maybe\nb,{row},,yes\n")
    with pytest.raises(CardioScarError) as error:
        read_manifest(manifest)
    text = str(error.value)
    assert "2 problem(s)" in text.splitlines()[0]
    assert "row 1 (id a): column 'channels' must be yes or no" in text
    assert "row 2 (id b): column 'channels' (yes) searches the border zone between a scar rule's two fields" in text
    manifest.write_text("id,mesh,image,myocardium_mask,myocardium_labels,blood_pool_labels,scar_rule,channels\n"
                        f"a,{row},psi,yes\nb,{row},psi,no\n")
    searched, plain = read_manifest(manifest)
    assert (searched.options["channels"], plain.options["channels"]) == (True, False)
    before = PatientSpec(plain.id, plain.row, plain.mesh, plain.images,
                         {k: v for k, v in plain.options.items() if k != "channels"})
    assert input_hash(plain) == input_hash(before) != input_hash(searched)

    wall = Wall(6000)
    tags = wall.tags()
    _write(wall, tmp_path / "scar_prediction.vtu", {"scar_uncertainty": np.full(len(tags), 0.1)}, tag_note=False)
    _write(wall, tmp_path / "core_prediction.vtu", {"scar_uncertainty": np.where(tags == 2, 0.3, 0.0)}, tag_note=False)
    record = _channels(tmp_path / "scar_prediction.vtu", tmp_path / "core_prediction.vtu", tmp_path / "channels",
                       np.choose(tags - 1, DEFAULT_TAGS))
    assert record["files"] == ["channels.csv", "channels.json", "channels_mesh.vtu"] and record["n_channels"] >= 1
    found = json.loads((tmp_path / "channels" / "channels.json").read_text(encoding="utf-8"))
    assert found["n_channels"] == record["n_channels"] and found["channels"][0]["mean_core_uncertainty"] > 0.1
    assert found["channels"][0]["mean_scar_uncertainty"] == pytest.approx(0.1)
    # a result with no core has no channel: 0 in its files, as cardioscar channels and the batch script say it
    # (the cohort wrote none and the others refused the mesh, exit 2)
    none = _channels(tmp_path / "scar_prediction.vtu", tmp_path / "core_prediction.vtu", tmp_path / "none",
                     np.where(tags == 3, 2, tags))
    assert none == {"folder": "none", "files": record["files"], "n_channels": 0, "n_near_open_cut": 0,
                    "core_nodes": 0, "note": ""}
    # with core, the note that a narrow corridor may be hidden in it (tags alone: no per-node flag)
    assert record["core_nodes"] > 0 and "not evidence of none" in record["note"]
    assert "core_marginal" not in read_mesh(tmp_path / "channels" / "channels_mesh.vtu").point_field_names()
    assert json.loads((tmp_path / "none" / "channels.json").read_text(encoding="utf-8"))["n_channels"] == 0
    [said] = [m for m in warnings_of_cardioscar if "no node of the searched layers is core" in m]
    assert in_manifest_terms(said).endswith("(or lower core_threshold)")


def test_the_hidden_corridor_caveat_is_said_once_per_cohort_not_in_each_patients_warnings(
        tmp_path, warnings_of_cardioscar):
    """Every channel search with core warns that a narrow corridor may be hidden in it: the one
    search's log says it (as ``cardioscar channels`` does), a cohort patient's kept warnings do
    not, and the cohort summary's notes say it once, naming the patients whose search found core."""
    from cardioscar.cohort.summary import SUMMARY_CSV, SUMMARY_JSON, write_summary
    from cardioscar.cohort.tasks import _channels, _KeptWarnings
    from cardioscar.simulation.tags import DEFAULT_TAGS
    from test_channels import Wall, _write

    wall = Wall(6000)
    tags = wall.tags()
    for name in ("scar_prediction.vtu", "core_prediction.vtu"):
        _write(wall, tmp_path / name, {"scar_uncertainty": np.full(len(tags), 0.1)}, tag_note=False)
    with _KeptWarnings() as kept:
        record = _channels(tmp_path / "scar_prediction.vtu", tmp_path / "core_prediction.vtu", tmp_path / "channels",
                           np.choose(tags - 1, DEFAULT_TAGS))
    assert record["core_nodes"] > 0
    assert [m for m in warnings_of_cardioscar if "not evidence of none" in m], "the search's own log says it"
    assert not [m for m in kept.messages if "not evidence of none" in m], kept.messages
    rows = [{"id": "a", "status": "done", "channels_core_nodes": record["core_nodes"], "warnings": kept.messages},
            {"id": "b", "status": "done", "channels_core_nodes": 0}, {"id": "c", "status": "done"},
            {"id": "d", "status": "skipped", "channels_core_nodes": 5}]
    write_summary(tmp_path, rows)
    [note] = json.loads((tmp_path / SUMMARY_JSON).read_text(encoding="utf-8"))["notes"]
    assert "not evidence of none" in note and "2 patient(s) whose search found core: a, d;" in note
    assert "not evidence of none" not in (tmp_path / SUMMARY_CSV).read_text(encoding="utf-8")
    write_summary(tmp_path, rows[1:3])
    assert json.loads((tmp_path / SUMMARY_JSON).read_text(encoding="utf-8"))["notes"] == []


def test_a_channels_row_on_a_surface_mesh_fails_before_its_fit(tmp_path, rule_data, monkeypatch):
    """The channel search needs the wall's depth: a rule row asking for channels on a surface mesh
    fails before its two fits (not after them), in the manifest's words."""
    import cardioscar.logic
    import vtk

    from cardioscar.io.meshio import Mesh, write_mesh

    def no_training(*args, **kwargs):
        raise AssertionError("the patient was trained before its channel search's mesh was checked")

    monkeypatch.setattr(cardioscar.logic, "train_scar_model", no_training)
    p0 = rule_data / "p0"
    surface = vtk.vtkDataSetSurfaceFilter()
    surface.SetInputData(read_mesh(p0 / "phantom_mesh.vtk").dataset)
    surface.Update()
    write_mesh(Mesh(dataset=surface.GetOutput(), space="LPS", path=None), tmp_path / "surface.vtp")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("id,mesh,image,myocardium_mask,myocardium_labels,blood_pool_labels,scar_rule,channels\n"
                        f"s,{tmp_path / 'surface.vtp'},{p0 / 'lge.nii.gz'},{p0 / 'labels.nii.gz'},2,1,psi,yes\n")
    [spec] = read_manifest(manifest)
    result = run_patient(spec, str(tmp_path / "out"), "hash")
    assert result["status"] == "failed" and result["error"].startswith("surface.vtp has no volume cells: column "
                                                                       "'channels' (the channel search) needs")
    assert result["error"].endswith("or leave the column 'channels' empty") and not (tmp_path / "out" / "s").exists()


def test_a_bad_channels_value_stops_the_cohort_before_any_patient_is_fitted(tmp_path, rule_data, monkeypatch):
    """The cohort's channel check at load: through ``run_cohort`` itself, a row with ``channels`` not
    yes/no, or yes without the scar rule's two fields, refuses the whole manifest (its path, each
    row's id and column, and what the column takes) before any patient is fitted or any output
    folder made, so the good row beside them is not fitted either."""
    import cardioscar.logic

    def no_training(*args, **kwargs):
        raise AssertionError("a patient was fitted before the manifest's channels column was checked")

    monkeypatch.setattr(cardioscar.logic, "train_scar_model", no_training)
    p0 = rule_data / "p0"
    row = f"{p0 / 'phantom_mesh.vtk'},{p0 / 'lge.nii.gz'},{p0 / 'labels.nii.gz'},2,1"
    manifest, out = tmp_path / "manifest.csv", tmp_path / "cohort"
    manifest.write_text("id,mesh,image,myocardium_mask,myocardium_labels,blood_pool_labels,scar_rule,channels\n"
                        f"good,{row},psi,yes\nodd,{row},psi,0.1\nplain,{row},,yes\n")
    with pytest.raises(CardioScarError) as error:
        run_cohort(manifest, out, CohortOptions(workers=1))
    head, *problems = str(error.value).splitlines()
    assert head == f"the manifest {manifest} has 2 problem(s):"
    assert [p.strip() for p in problems] == [
        "row 2 (id odd): column 'channels' must be yes or no (yes: the conducting channels of the row's tissue tags, "
        "as cardioscar channels), got '0.1'",
        "row 3 (id plain): column 'channels' (yes) searches the border zone between a scar rule's two fields (scar and "
        "core models): give scar_rule too, or leave it empty"]
    assert not out.exists()


def test_a_channels_row_on_an_unmerged_mesh_fails_before_its_fit_writing_nothing(tmp_path, rule_data, monkeypatch):
    """The cohort's per-patient pre-fit channel check (``check_searchable_mesh``, run before the
    two fits as the batch script's ``--channels-dir`` is): a rule row asking for channels on a mesh
    whose cells share no node fails in one line, in the manifest's words, with no fit and no file of
    the patient; the row beside it without channels is not held back by it."""
    import cardioscar.logic

    from cardioscar.io.meshio import write_mesh
    from test_bad_inputs_round10 import _unmerged

    def no_training(*args, **kwargs):
        raise AssertionError("the patient was trained before its channel search's mesh was checked")

    monkeypatch.setattr(cardioscar.logic, "train_scar_model", no_training)
    p0 = rule_data / "p0"
    write_mesh(_unmerged(read_mesh(p0 / "phantom_mesh.vtk")), tmp_path / "apart.vtu")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("id,mesh,image,myocardium_mask,myocardium_labels,blood_pool_labels,scar_rule,channels\n"
                        f"u,{tmp_path / 'apart.vtu'},{p0 / 'lge.nii.gz'},{p0 / 'labels.nii.gz'},2,1,psi,yes\n")
    [spec] = read_manifest(manifest)
    result = run_patient(spec, str(tmp_path / "out"), "hash")
    assert result["status"] == "failed" and "\n" not in result["error"], result
    assert result["error"].startswith("column 'channels': apart.vtu: ") and "lie on another node" in result["error"]
    assert result["error"].endswith("merge the coincident points (e.g. vtkCleanUnstructuredGrid, ParaView's Clean to "
                                    "Grid) and run the channel search again; or leave the column 'channels' empty")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_fibre_rule_row_on_a_biventricular_mesh_fails_before_its_fit(tmp_path, cohort_data, monkeypatch):
    """The rule refuses a mesh of both ventricles; a cohort row asking for it fails before the
    training (not after a whole fit), in the manifest's words."""
    import cardioscar.logic
    from cardioscar.io.meshio import write_mesh
    from test_simulation_fibres import _ventricles_mesh

    def no_training(*args, **kwargs):
        raise AssertionError("the patient was trained before its fibre rule was checked")

    monkeypatch.setattr(cardioscar.logic, "train_scar_model", no_training)
    write_mesh(_ventricles_mesh(with_rv=True), tmp_path / "biv.vtk")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"id,mesh,image,export,fibres\nbiv,{tmp_path / 'biv.vtk'},"
                        f"{cohort_data / 'p0' / 'phantom_lge.nii.gz'},opencarp,rule\n")
    [spec] = read_manifest(manifest)
    result = run_patient(spec, str(tmp_path / "out"), "hash")
    assert result["status"] == "failed" and result["error"].startswith("biv.vtk looks biventricular")
    # the advice in the manifest's words: it takes no cell field (it read "export without fibres rule (or with
    # fibres CELLFIELD)")
    assert result["error"].endswith("or leave the fibres column empty (no fibres)"), result["error"]
    assert not (tmp_path / "out" / "biv").exists()


def test_a_row_finds_its_mesh_s_wall_once_for_the_fibre_rule_and_the_channels(tmp_path, cohort_data, monkeypatch):
    """With fibres and channels, a row ran the biventricular test and the wall's faces five times on
    one geometry (zstalefibre): the rule's and the channel search's checks before the fit, the rule
    in each export format, the channel search. ``run_patient`` keeps each geometry's wall for the
    row (``walls_kept``), whichever file it is read from; a refusal's words are unchanged."""
    import cardioscar.aha.wall as wall
    from cardioscar.cohort import tasks
    from cardioscar.io.meshio import write_mesh
    from cardioscar.simulation.fibres import rule_wall

    calls = []  # the biventricular test's calls, counted (its refusals are test_simulation_fibres')
    monkeypatch.setattr(wall, "check_one_ventricle", lambda *args: calls.append(args[1]))
    mesh = read_mesh(cohort_data / "p0" / "phantom_mesh.vtk")
    prediction = tmp_path / "scar_prediction.vtk"
    write_mesh(mesh, prediction, {"scar_probability": np.zeros(mesh.n_points)})
    spec = PatientSpec("a", 1, mesh.path, (), {"export": ["opencarp", "vtu"], "fibres": "rule", "helix_angles": None,
                                               "threshold": 0.5, "core_threshold": 0.8})
    with wall.walls_kept():
        rule_wall(mesh)  # the checks before the fit, on the user's mesh
        wall.lv_wall(mesh, "the channel search", "")
        tasks._export(spec, prediction, tmp_path / "simulation")  # the rule in both formats, on the prediction
        wall.lv_wall(read_mesh(prediction), "the channel search", "")
    assert calls == ["phantom_mesh.vtk"], calls  # found on the user's mesh, handed to the prediction's readings
    wall.lv_wall(mesh, "the channel search", "")  # outside a row: found again, as before
    assert len(calls) == 2

    def pipeline(*args):
        assert wall._KEPT_WALLS.get() is not None, "run_patient's row does not keep its walls"
        raise CardioScarError("stop here")

    monkeypatch.setattr(tasks, "_pipeline", pipeline)
    assert tasks.run_patient(spec, str(tmp_path / "out"), "hash")["error"] == "stop here"


def test_a_channels_row_on_an_lv_in_two_halves_is_warned_before_its_fit(tmp_path, rule_data, monkeypatch):
    """A cohort row's channel search on an LV in two halves (2 mm apart) was warned of only after its
    two fits, of scar_prediction.vtk (a name the user never chose), where a row's `aha` was warned of
    before its fit, of the user's mesh (and again after it). Now the channel search's piece warning
    comes with the row's other pre-fit channel checks, naming the user's mesh; after the fits the
    same pieces are not said again of the prediction (:class:`cardioscar.simulation.opencarp.SaidBeforeTraining`)."""
    import re

    import cardioscar.logic
    from cardioscar.io.meshio import write_mesh
    from test_bad_inputs_round26 import APART, split_across

    def stop(*args, **kwargs):
        raise CardioScarError("stopped before the training (the test reads the row's checks only)")

    monkeypatch.setattr(cardioscar.logic, "train_scar_model", stop)
    p0 = rule_data / "p0"
    mesh = read_mesh(p0 / "phantom_mesh.vtk")
    points = mesh.points_lps()
    axis = np.linalg.svd(points - points.mean(axis=0))[2][0]  # the phantom's longest extent: its long axis
    write_mesh(split_across(mesh, axis, 2.0), tmp_path / "halves.vtk")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("id,mesh,image,myocardium_mask,myocardium_labels,blood_pool_labels,scar_rule,channels\n"
                        f"h,{tmp_path / 'halves.vtk'},{p0 / 'lge.nii.gz'},{p0 / 'labels.nii.gz'},2,1,psi,yes\n")
    [spec] = read_manifest(manifest)
    result = run_patient(spec, str(tmp_path / "out"), "hash")
    assert result["error"].startswith("stopped before the training"), result
    warned = [w for w in result["warnings"] if "falls apart" in w]
    assert len(warned) == 1 and re.fullmatch(APART + "the channel search finds no path .*",
                                             warned[0]) and warned[0].startswith("halves.vtk"), result["warnings"]


# --------------------------------------------------------------------------- on the cluster
# last in the module: the cluster (a scheduler thread in this process, two worker processes and their
# nannies, about 0.15 CPU s a second when idle) lives from its first test to the module's end


def test_cohort_end_to_end_then_skip_then_rerun_one(cluster, cohort_data, tmp_path, capsys):
    _, client = cluster
    out = tmp_path / "out"
    manifest = cohort_data / "manifest.csv"
    run = run_cohort(manifest, out, CohortOptions(scheduler=client.scheduler.address))
    FIRST_RUN["out"] = out

    rows = _summary(out)
    assert [r["id"] for r in rows] == ["p0", "p1", "p2", "bad"]
    assert [r["status"] for r in rows] == ["done"] * 3 + ["failed"]
    # one-field rows: their two cuts in the band columns, not as a border zone and core
    assert all(r["classes"] == "bands" and r["top_band_percent"] and not r["core_percent"] for r in rows[:3])
    bad = rows[3]
    assert "bad" in bad["error"] and "phantom_mesh.vtk" in bad["error"] and "\n" not in bad["error"]
    assert not (out / "bad").exists() and (out / "_failed" / "bad.json").exists()
    assert run.counts == {"done": 3, "failed": 1}
    assert (out / "cohort_summary.png").stat().st_size > 10_000
    assert run.files["bullseyes"] == out / "cohort_bullseyes.png"  # p0's bull's-eye (the only one asked for)
    assert out.joinpath("cohort_bullseyes.png").read_bytes()[:4] == b"\x89PNG"
    # p0 asked for the AHA analysis: the same table `analyse_mesh` gives for its prediction, RV point and stack
    with open(out / "p0" / "aha" / "aha.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    stack = read_image(cohort_data / "p0" / "phantom_lge.nii.gz")
    direct = analyse_mesh(read_mesh(out / "p0" / "scar_prediction.vtk"), AhaOptions(
        rv_point=json.loads((cohort_data / "rv_point.json").read_text(encoding="utf-8")),
        slice_normal=np.asarray(stack.GetDirection()).reshape(3, 3)[:, 2]))
    assert [float(r["scar_pct"] or 0) for r in table] == pytest.approx([r["scar_pct"] or 0 for r in direct.rows], abs=0.005)
    assert (out / "p0" / "aha" / "bullseye.png").exists() and not (out / "p1" / "aha").exists()
    report = json.loads((out / "p0" / "report.json").read_text(encoding="utf-8"))
    assert report["aha"]["folder"] == "aha"
    # p0 asked for the simulator files: tagged at threshold 0.5 / core_threshold 0.8, as `cardioscar export`
    simulation = out / "p0" / "simulation"
    assert report["export"]["files"] == ["heart.elem", "heart.json", "heart.pts", "heart.vtu"]
    prediction = read_mesh(out / "p0" / "scar_prediction.vtk")
    assert int((simulation / "heart.pts").read_text(encoding="utf-8").split("\n")[0]) == prediction.n_points
    assert int((simulation / "heart.elem").read_text(encoding="utf-8").split("\n")[0]) == \
        prediction.dataset.GetNumberOfCells()
    p = prediction.point_array("scar_probability")
    np.testing.assert_array_equal(read_mesh(simulation / "heart.vtu").point_array("tissue_tag"),
                                  np.where(p >= 0.8, 3, np.where(p >= 0.5, 2, 1)))
    assert not (out / "p1" / "simulation").exists()
    for row in rows[:3]:
        folder = out / row["id"]
        assert sorted(p.name for p in folder.iterdir() if p.is_file()) == ["model.pth", "report.json",
                                                                           "scar_prediction.vtk"]
        mesh = read_mesh(folder / "scar_prediction.vtk")
        probability = mesh.point_array("scar_probability")
        weights = node_volumes(mesh.dataset)
        scar = probability >= 0.5
        assert float(row["scar_volume_ml"]) == pytest.approx(weights[scar].sum() / 1000, rel=1e-4)
        assert float(row["scar_percent"]) == pytest.approx(100 * weights[scar].sum() / weights.sum(), rel=1e-4)
        truth = mesh.point_array("scar_truth")
        assert float(row["dice"]) > 0.3  # 30 epochs on 2,000 nodes: a real, if rough, reconstruction
        assert float(row["dice"]) == pytest.approx(
            2 * np.sum(scar & (truth >= 0.5)) / (scar.sum() + (truth >= 0.5).sum()), abs=1e-4)
        # the manifest's 30 epochs, and any lower-rate phases the convergence test added (at most two of 15)
        assert int(row["epochs"]) in (30, 45, 60) and row["device"].startswith("cpu")
        # the fast preset's auto on the phantoms' fractions: no prior, and the row says which way it went
        assert row["shape_prior"] == "off"
    assert not list(out.glob(".*partial*"))

    # second run, through the CLI: nothing re-runs; the bad patient still fails, so exit code 2
    before = {ident: _mtimes(out / ident) for ident in ("p0", "p1", "p2")}
    code = cli_main(["cohort", "run", str(manifest), "--output-dir", str(out), "--scheduler", client.scheduler.address])
    assert code == 2
    assert "1 of 4 patients failed" in capsys.readouterr().err
    assert [r["status"] for r in _summary(out)] == ["skipped"] * 3 + ["failed"]
    assert {ident: _mtimes(out / ident) for ident in before} == before

    # one patient's seed changes: only that patient runs again
    changed = cohort_data / "manifest_changed.csv"
    changed.write_text(manifest.read_text(encoding="utf-8").replace(_row("p1", 1), _row("p1", 11)))
    old_model = (out / "p1" / "model.pth").read_bytes()
    run_cohort(changed, out, CohortOptions(scheduler=client.scheduler.address))
    rows = _summary(out)
    assert [r["status"] for r in rows] == ["skipped", "done", "skipped", "failed"]
    assert {ident: _mtimes(out / ident) for ident in ("p0", "p2")} == {k: before[k] for k in ("p0", "p2")}
    assert (out / "p1" / "model.pth").read_bytes() != old_model
    assert json.loads((out / "p1" / "report.json").read_text(encoding="utf-8"))["options"]["seed"] == 11

    # a Slurm array task's --only: that patient only, the summary still lists everyone
    only = run_cohort(changed, out, CohortOptions(scheduler=client.scheduler.address, only=["p2"]))
    assert only.counts == {"skipped": 1}
    assert [r["status"] for r in _summary(out)] == ["done", "done", "skipped", "failed"]
    with pytest.raises(CardioScarError, match="--only p9: not in the manifest"):
        run_cohort(changed, out, CohortOptions(only=["p9"]))

    assert cli_main(["cohort", "status", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == "4 patients: 3 done, 1 failed"
    assert "bad: failed:" in printed


def test_patient_in_cohort_equals_the_cli_chain(cluster, cohort_data, tmp_path):
    """prepare -> train -> apply by the CLI with the same seed gives the cohort's field (the
    end-to-end test's p2, computed on a worker process)."""
    cohort_out = FIRST_RUN.get("out", Path("missing")) / "p2" / "scar_prediction.vtk"
    if not cohort_out.exists():
        _, client = cluster  # this test alone: run p2 on the cluster here
        run_cohort(cohort_data / "manifest.csv", tmp_path / "cohort",
                   CohortOptions(scheduler=client.scheduler.address, only=["p2"]))
        cohort_out = tmp_path / "cohort" / "p2" / "scar_prediction.vtk"
    chain = tmp_path / "chain"
    p = cohort_data / "p2"
    assert cli_main(["prepare", "--mesh", str(p / "phantom_mesh.vtk"), "--image", str(p / "phantom_lge.nii.gz"),
                     "--slice-thickness-padding", "4.0", "--partial-volume-correction",
                     "--output", str(chain / "data.npz")]) == 0
    assert cli_main(["train", "--training-data", str(chain / "data.npz"), "--output", str(chain / "model.pth"),
                     "--preset", "fast", "--max-epochs", "30", "--seed", "2", "--cpu", "--no-progress"]) == 0
    assert cli_main(["apply", "--model", str(chain / "model.pth"), "--mesh", str(p / "phantom_mesh.vtk"),
                     "--output", str(chain / "pred.vtk"), "--mc-samples", "5", "--seed", "2", "--threshold", "0.5",
                     "--cpu"]) == 0
    ours, theirs = read_mesh(cohort_out), read_mesh(chain / "pred.vtk")
    for name in ("scar_probability", "scar_uncertainty", "scar_binary"):
        np.testing.assert_allclose(ours.point_array(name), theirs.point_array(name), rtol=0, atol=1e-6, err_msg=name)


def test_an_output_folder_reused_with_another_manifest_warns_of_the_patients_it_leaves_out(
        cluster, cohort_data, tmp_path, warnings_of_cardioscar):
    """Round 18: ``cohort run`` of another manifest into a folder that holds an earlier cohort's
    results kept the earlier patients' folders beside the new ones without a word (the new summary
    leaves them out, a script globbing ``out/*/`` mixes the two cohorts). Now a warning names them
    and the earlier manifest; up-to-date patients are still skipped (no patient runs here)."""
    out = tmp_path / "out"
    earlier = FIRST_RUN.get("out", Path("missing"))
    if earlier.is_dir():
        shutil.copytree(earlier, out)
    else:  # this test alone: an earlier cohort of p1 and p2
        _, client = cluster
        (cohort_data / "manifest_p1_p2.csv").write_text("\n".join([HEADER, _row("p1", 1), _row("p2", 2)]) + "\n")
        run_cohort(cohort_data / "manifest_p1_p2.csv", out, CohortOptions(scheduler=client.scheduler.address))
    subset = cohort_data / "manifest_p2.csv"
    subset.write_text("\n".join([HEADER, _row("p2", 2)]) + "\n")
    warnings_of_cardioscar.clear()
    run = run_cohort(subset, out)
    assert run.counts == {"skipped": 1}
    [warning] = [w for w in warnings_of_cardioscar if "does not list" in w]
    assert "of another manifest" in warning and "that manifest_p2.csv does not list (" in warning and "p1" in warning
    assert "p2" not in warning.split("does not list")[1]
    warnings_of_cardioscar.clear()
    run_cohort(subset, out)  # the same manifest again: the folders are still there, said again
    [warning] = [w for w in warnings_of_cardioscar if "does not list" in w]
    assert "p1" in warning and "of another manifest" not in warning


def test_the_reused_folder_warning_names_another_cohorts_failed_patients_too(tmp_path, warnings_of_cardioscar):
    """A patient of the earlier cohort that failed leaves a failure record (``_failed/ID.json``) and
    no folder; the warning above counted folders with a ``report.json`` only, so it was left out (or
    no warning given when every earlier patient had failed). Now named, marked failed; this cohort's
    own patients, an interrupted attempt's temporary folder and a folder of the user's are not. The
    folders are built here as a run leaves them (no run)."""
    from cardioscar.cohort.runner import _warn_other_cohort
    from cardioscar.cohort.summary import FAILED_DIR

    out = tmp_path / "out"
    for ident in ("p1", "p2"):
        (out / ident).mkdir(parents=True)
        (out / ident / "report.json").write_text(json.dumps({"id": ident, "status": "done"}))
    (out / FAILED_DIR).mkdir()
    for ident in ("p2", "p8"):
        (out / FAILED_DIR / f"{ident}.json").write_text(json.dumps({"id": ident, "status": "failed"}))
    (out / ".p7.partial-abc").mkdir()
    (out / "notes").mkdir()
    manifest = tmp_path / "manifest_p2.csv"
    manifest.write_text(HEADER + "\n")
    _warn_other_cohort(out, manifest, {"p2"})
    [warning] = [w for w in warnings_of_cardioscar if "does not list" in w]
    assert "holds 2 patient(s) that manifest_p2.csv does not list (p1, p8 (failed))" in warning
    shutil.rmtree(out / "p1")
    warnings_of_cardioscar.clear()
    _warn_other_cohort(out, manifest, {"p2"})  # the earlier cohort's only patient failed
    [warning] = [w for w in warnings_of_cardioscar if "does not list" in w]
    assert "holds 1 patient(s) that manifest_p2.csv does not list (p8 (failed))" in warning


def test_status_of_a_folder_that_is_no_cohort(tmp_path):
    with pytest.raises(CardioScarError, match="cohort_manifest.json is missing"):
        cohort_status(tmp_path)


def test_killed_worker_mid_run_loses_and_duplicates_nothing(cluster, cohort_data, tmp_path):
    """SIGKILL the worker process that is running a patient: Dask reschedules it, the cohort completes."""
    _, client = cluster
    client.wait_for_workers(2, timeout=120)
    pids = client.run(os.getpid)
    out = tmp_path / "out"
    manifest = cohort_data / "manifest_good.csv"
    manifest.write_text("\n".join([HEADER] + [_row(f"p{s}", s) for s in range(N_GOOD)]) + "\n")
    killed: list[tuple[str, int]] = []

    def kill_first_busy_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for address, keys in client.processing().items():
                if keys and list(out.glob(".*partial*")):  # a patient is being written right now
                    os.kill(pids[address], signal.SIGKILL)
                    killed.append((keys[0], pids[address]))
                    return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_first_busy_worker)
    killer.start()
    run = run_cohort(manifest, out, CohortOptions(scheduler=client.scheduler.address))
    killer.join()

    assert killed, "no worker was killed while a patient ran"
    assert run.counts == {"done": N_GOOD}
    summary = _summary(out)
    assert sorted(r["id"] for r in summary) == [f"p{s}" for s in range(N_GOOD)]  # each once
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [f"p{s}" for s in range(N_GOOD)]
    assert not list(out.glob(".*")), "a temporary folder of the killed attempt was left behind"
    key, dead_pid = killed[0]
    victim = key.split("-")[1]
    assert json.loads((out / victim / "report.json").read_text(encoding="utf-8"))["pid"] != dead_pid  # redone by a live worker
    for s in range(N_GOOD):
        assert read_mesh(out / f"p{s}" / "scar_prediction.vtk").point_array("scar_probability").shape == (
            read_mesh(cohort_data / f"p{s}" / "phantom_mesh.vtk").n_points,)


def _cli_rule_chain(patient: Path, out: Path, seed: int) -> None:
    """The README's two-model path by the command line: prepare scar and core, train and apply
    both with one seed, export the two fields with the rule's record."""
    common = ["--mesh", str(patient / "phantom_mesh.vtk"), "--image", str(patient / "lge.nii.gz"),
              "--scar-rule", "psi", "--myocardium-mask", str(patient / "labels.nii.gz"), "--myocardium-labels", "2",
              "--blood-pool-labels", "1", "--slice-thickness-padding", "4.0"]
    for target in ("scar", "core"):
        assert cli_main(["prepare", *common, "--scar-target", target, "--output", str(out / f"{target}.npz")]) == 0
        assert cli_main(["train", "--training-data", str(out / f"{target}.npz"), "--output", str(out / f"{target}.pth"),
                         "--preset", "fast", "--max-epochs", "30", "--seed", str(seed), "--cpu", "--no-progress"]) == 0
        assert cli_main(["apply", "--model", str(out / f"{target}.pth"), "--mesh", str(patient / "phantom_mesh.vtk"),
                         "--output", str(out / f"{target}_pred.vtk"), "--mc-samples", "5", "--seed", str(seed),
                         "--cpu"]) == 0
    tagged = ["export", "--mesh", str(out / "scar_pred.vtk"), "--core-mesh", str(out / "core_pred.vtk")]
    assert cli_main([*tagged, "--rule-from", str(out / "scar.npz"), "--output", str(out / "heart")]) == 0
    assert cli_main([*tagged, "--format", "vtu", "--output", str(out / "heart.vtu")]) == 0


def test_rule_cohort_trains_two_fields_tagged_as_the_cli_chain(cluster, rule_data, tmp_path):
    """Two raw-LGE patients with a rule on the cluster: each gets a scar and a core model, the
    summary's border zone and core are the two fields' tissue tags, and p0's simulator files are
    byte for byte those of prepare x2 -> train x2 -> apply x2 -> export --core-mesh --rule-from."""
    _, client = cluster
    out = tmp_path / "out"
    run = run_cohort(rule_data / "manifest.csv", out, CohortOptions(scheduler=client.scheduler.address))
    assert run.counts == {"done": 2}
    rows = _summary(out)
    for row in rows:
        folder = out / row["id"]
        assert sorted(p.name for p in folder.iterdir() if p.is_file()) == [
            "core_model.pth", "core_prediction.vtk", "model.pth", "report.json", "scar_prediction.vtk"]
        scar = read_mesh(folder / "scar_prediction.vtk")
        p, c = scar.point_array("scar_probability"), read_mesh(folder / "core_prediction.vtk").point_array(
            "scar_probability")
        weights = node_volumes(scar.dataset)
        core, border = c >= 0.5, (c < 0.5) & (p >= 0.5)  # the two-field rule, as export tags it
        assert row["classes"] == "tissue"
        assert float(row["core_percent"]) == pytest.approx(100 * weights[core].sum() / weights.sum(), abs=1e-3)
        assert float(row["border_percent"]) == pytest.approx(100 * weights[border].sum() / weights.sum(), abs=1e-3)
        assert core.any() and border.any()
        report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        assert set(report["models"]) == {"scar", "core"} and report["models"]["core"]["model"] == "core_model.pth"
        assert report["scar_rule"]["rule"] == "psi" and report["scar_rule"]["target"] == "scar"
        np.testing.assert_array_equal(read_mesh(folder / "core_prediction.vtk").point_array("scar_binary"), core)
        if row["id"] == "p0":  # channels yes: the search's files beside the others, its count in the summary
            record = json.loads((folder / "channels" / "channels.json").read_text(encoding="utf-8"))
            assert row["channels"] == str(record["n_channels"]) == str(report["channel_search"]["n_channels"])
            assert row["channels_near_open_cut"] == str(record["n_near_open_cut"]) == str(
                report["channel_search"]["n_near_open_cut"])
            assert report["channel_search"]["files"] == ["channels.csv", "channels.json", "channels_mesh.vtk"]
            assert record["tissue"].endswith("field 'tissue_tag'")
            # the note that a narrow corridor may be hidden in the core: in the report, and once in the
            # cohort summary's notes instead of in every patient's warnings
            assert "not evidence of none" in report["channel_search"]["note"]
            assert "not evidence of none" not in row["warnings"] and report["channels_core_nodes"] > 0
            [note] = json.loads((out / "cohort_summary.json").read_text(encoding="utf-8"))["notes"]
            assert "not evidence of none" in note and "1 patient(s) whose search found core: p0;" in note
        else:
            assert row["channels"] == "" and not (folder / "channels").exists()

    chain = tmp_path / "chain"
    _cli_rule_chain(rule_data / "p0", chain, seed=3)
    ours = out / "p0" / "simulation"
    for name in ("heart.pts", "heart.elem", "heart.json"):
        assert (ours / name).read_bytes() == (chain / name).read_bytes(), name
    np.testing.assert_array_equal(read_mesh(ours / "heart.vtu").point_array("tissue_tag"),
                                  read_mesh(chain / "heart.vtu").point_array("tissue_tag"))
    assert json.loads((ours / "heart.json").read_text(encoding="utf-8"))["scar_rule"]["rule"] == "psi"

    # resuming: nothing changed, nothing runs; a deleted core model redoes only that patient
    (out / "p1" / "core_model.pth").unlink()
    again = run_cohort(rule_data / "manifest.csv", out, CohortOptions(scheduler=client.scheduler.address))
    assert [r["status"] for r in _summary(out)] == ["skipped", "done"] and again.counts == {"skipped": 1, "done": 1}
