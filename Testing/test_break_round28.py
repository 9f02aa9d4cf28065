"""Break-it review of the scanner-to-simulation path and cohorts (round 28): the defects it found,
each through the face a user meets it on. `Documentation/bad-input.md` has the rows."""

from __future__ import annotations

import pytest

from cardioscar.errors import CardioScarError
from cardioscar.simulation.export import export_model
from conftest import error_lines, run_cli_in_process
from test_simulation_export import _write_prediction


@pytest.mark.parametrize("tags", ["1,2,300000000000", "-1,2,3"])
def test_export_refuses_tag_numbers_the_files_cannot_hold(tmp_path, tags):
    """``export --tags 1,2,300000000000`` wrote the core elements' tag as -647710720 (the ``.elem``
    stores 32-bit integers) and its summary and sidecar said the core was 0 elements, 0.00 ml, exit
    0; a negative tag has no entry in the Slicer colour table. Both are refused before any file."""
    prediction, _ = _write_prediction(tmp_path)
    result = run_cli_in_process("export", "--mesh", prediction, "--output", tmp_path / "heart", "--tags", tags)
    errors = error_lines(result.stderr)
    assert result.returncode != 0 and len(errors) == 1 and "0 to 2147483647" in errors[0], result.stderr
    assert not list(tmp_path.glob("heart*"))


def test_the_api_refuses_a_fractional_tag(tmp_path):
    """``export_model(..., tag_values=(1, 2, 3.5))`` stored the core as 3 and counted it as 0 ml
    (the summary looks for 3.5): refused as the command line refuses a bad ``--tags``."""
    prediction, _ = _write_prediction(tmp_path)
    with pytest.raises(CardioScarError, match="whole numbers"):
        export_model(prediction, tmp_path / "heart", tag_values=(1, 2, 3.5))
    assert not list(tmp_path.glob("heart*"))
