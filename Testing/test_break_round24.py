"""Break-it review of round 26 (zleft26): the training data's warned-once logic, the seed bound on
every face, the pieces warning on the batch script and a cohort row's channel search, the panel's
AHA wording of a field outside [0, 1]. Real parts: real ``.npz`` files, the real command line and
batch script in process, the cohort's own row runner, real VTK meshes.
"""

from __future__ import annotations

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
