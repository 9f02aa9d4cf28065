"""Break-it review of round 26 (zleft26): the training data's warned-once logic, the seed bound on
every face, the pieces warning on the batch script and a cohort row's channel search, the panel's
AHA wording of a field outside [0, 1]. Real parts: real ``.npz`` files, the real command line and
batch script in process, the cohort's own row runner, real VTK meshes.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from cardioscar.fit.config import TrainingConfig
from cardioscar.logic import load_preprocessing_result, train_scar_model
from test_bad_inputs_round22 import _reference_tool_rows

MIXED = "groups hold rows with different targets"


def test_reference_data_loaded_without_a_warning_is_warned_when_its_groups_are_mixed_later(tmp_path, caplog):
    """The loader marked every reference-layout file's targets as warned about
    (``PreprocessingResult.warned_targets``), also one whose groups were all clean, so nothing had
    been said: a script that then joined two such files' rows (colliding group ids: two pixels' blend
    per group) trained them without a word. Only a load that warned marks its targets now."""
    rows = _reference_tool_rows(n_nodes=300)
    rows.update(group_ids=np.arange(300), group_sizes=np.ones(300, dtype=np.int64))  # a pixel per row: clean
    np.savez(tmp_path / "clean.npz", **rows)
    one_epoch = TrainingConfig.fast(max_epochs=1, retry_failed_fit=False)
    with caplog.at_level("WARNING", logger="cardioscar.logic"):
        result = load_preprocessing_result(tmp_path / "clean.npz")
        assert MIXED not in caplog.text
        train_scar_model(replace(result, group_ids=result.group_ids // 2), one_epoch)  # two rows a group
    assert caplog.text.count("The PreprocessingResult: ") == 1 and caplog.text.count(MIXED) == 1, caplog.text


def test_a_seed_out_of_range_is_named_as_each_face_takes_it(tmp_path, capsys):
    """The seed's range (0..2**63-1) was the same on every face, but ``phantom --seed`` and ``demo
    --seed`` were refused as "phantom seed" (the phantom's own field), ``demo`` only after making its
    output folder and announcing its first step, and the batch script's ``--seed`` as "seed" (the
    Logic's field). Each now names ``--seed`` before any work; the cohort's column check is round 26's."""
    import subprocess
    import sys

    from cardioscar.cli import main
    from cardioscar.io.checks import MAX_SEED
    from test_batch_script import SCRIPT

    expected = f"--seed must be in 0..2**63-1 ({MAX_SEED}), got {MAX_SEED + 1}"
    for verb in ("phantom", "demo"):
        assert main([verb, "--output-dir", str(tmp_path / verb), "--seed", str(MAX_SEED + 1)]) != 0
        err = capsys.readouterr().err
        assert err.strip() == f"cardioscar {verb}: error: {expected}", err
        assert not (tmp_path / verb).exists()
    ran = subprocess.run([sys.executable, str(SCRIPT), "--volume", str(tmp_path / "lge.nii.gz"), "--mesh",
                          str(tmp_path / "heart.vtk"), "--output", str(tmp_path / "out.vtk"), "--seed",
                          str(MAX_SEED + 1)], capture_output=True, text=True)
    assert ran.returncode != 0 and ran.stderr.strip().splitlines()[-1] == f"cardioscar_batch: error: {expected}", \
        ran.stderr


def test_the_panels_aha_names_no_field_option_when_the_field_is_no_probability(tmp_path):
    """The panel's AHA reads the model's scar_probability (it has no field box), yet its refusal of a
    field outside [0, 1] still said "(--field)", an option its user cannot give. The library's real
    refusal, worded by the panel's AHA section (:func:`in_panel_words` with ``aha``), names no option."""
    import pytest

    from CardioScarLogic.wording import PANEL_NAMES, in_panel_words, library_words
    from cardioscar.aha import analyse_mesh
    from cardioscar.aha.demo_report import phantom_options
    from cardioscar.errors import CardioScarError
    from cardioscar.io.meshio import read_mesh, write_mesh
    from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, write_phantom

    made = make_phantom(PhantomConfig(target_nodes=1500, seed=3))
    mesh = read_mesh(write_phantom(made, tmp_path)["mesh"])
    write_mesh(mesh, tmp_path / "percent.vtk", {"scar_probability": 100.0 * mesh.point_array("scar_truth")})
    with pytest.raises(CardioScarError) as refused:
        analyse_mesh(read_mesh(tmp_path / "percent.vtk"), phantom_options(made, "scar_probability"),
                     name="The model 'heart'")
    worded = in_panel_words(library_words(refused.value), PANEL_NAMES, aha=True)
    assert re.match(re.escape("The model 'heart': field 'scar_probability' (the field the panel's AHA reads), cut at "
                              "the AHA's threshold (0.5 in the panel, not 'Threshold'), ranges 0..") + r"\d+\.\d+, outside",
                    worded), worded
    assert "--" not in worded, worded


def test_aha_and_channels_of_halves_joined_only_at_unmerged_nodes_are_warned(tmp_path, capsys,
                                                                             warnings_of_cardioscar):
    """Round 26 warned of an LV in two halves a gap apart, but halves that touch only at coincident
    nodes (parts appended without merging their points: 93 of the phantom's 1,584 nodes, under the
    share ``aha`` and ``channels`` refuse) were measured as one without a word, although no element
    joins them: the channel search's edges do not cross the seam and segment 13's mean transmurality
    read 76 % for the whole mesh's 68 %. Only the export, whose coincident-node check runs, said so.
    Now `aha` (its API) and `channels` (the command line) say it falls apart at a seam, with what the
    seam does to each and how to merge; a 0.3 mm gap keeps round 26's words."""
    from cardioscar.aha import analyse_mesh
    from cardioscar.aha.demo_report import phantom_options
    from cardioscar.cli import main
    from cardioscar.io.meshio import coincident_nodes, read_mesh, write_mesh
    from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, write_phantom
    from test_bad_inputs_round26 import split_across

    made = make_phantom(PhantomConfig(target_nodes=1500, seed=3))
    whole = read_mesh(write_phantom(made, tmp_path)["mesh"])
    options = phantom_options(made, "scar_probability")
    axis = np.asarray(options.base) - np.asarray(options.apex)
    write_mesh(whole, tmp_path / "whole.vtk", {"scar_probability": whole.point_array("scar_truth")})
    write_mesh(split_across(read_mesh(tmp_path / "whole.vtk"), axis / np.linalg.norm(axis), 0.0),
               tmp_path / "seam.vtk")
    seam = read_mesh(tmp_path / "seam.vtk")
    assert coincident_nodes(seam)[0] == 93
    analyse_mesh(seam, options)
    assert main(["channels", "--mesh", str(tmp_path / "seam.vtk"), "--output-dir",
                 str(tmp_path / "channels"), "--layers", "0.5"]) == 0
    said = [m for m in warnings_of_cardioscar if "falls apart" in m]
    said += [line for line in capsys.readouterr().err.splitlines() if "falls apart" in line]
    start = ("seam.vtk falls apart at a seam: 778 of its 1584 nodes lie in 1 piece(s) that no element joins to the "
             "largest, touching it only at nodes that lie on its own (points not merged): ")
    end = ("; merge the coincident points (e.g. vtkCleanUnstructuredGrid, ParaView's Clean to Grid), or remesh the "
           "heart in one piece")
    assert said == [start + "the AHA analysis reads the seam's faces as wall faces, so transmurality near it is off"
                    + end, start + "the channel search finds no path across the seam, so a corridor through it is "
                    "cut or missed" + end], said
