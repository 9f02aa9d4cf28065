"""Complete-group batching."""

import numpy as np
import pytest

from cardioscar.fit.batching import ScarReconstructionDataset, create_complete_group_batches
from cardioscar.errors import CardioScarError


def make_dataset(sizes, seed=0):
    rng = np.random.default_rng(seed)
    group_ids = np.repeat(np.arange(len(sizes)) * 3 + 10, sizes)  # sparse labels
    order = rng.permutation(len(group_ids))  # shuffled rows
    coords = rng.random((len(group_ids), 3))
    values = (group_ids % 2).astype(float)
    return ScarReconstructionDataset(coords[order], values[order], group_ids[order], np.asarray(sizes))


def check_batches(dataset, batches, target):
    covered = np.zeros(len(dataset), dtype=int)
    for start, end in batches:
        covered[start:end] += 1
        ids = dataset.group_ids
        # the batch starts and ends on group boundaries
        assert start == 0 or ids[start - 1] != ids[start]
        assert end == len(dataset) or ids[end - 1] != ids[end]
        if end - start > target:
            assert ids[start] == ids[end - 1], "only a single oversize group may exceed the target"
    assert (covered == 1).all()


def test_dataset_sorts_by_group_stably_and_keeps_rows_together():
    ds = make_dataset([3, 5, 2])
    assert (np.diff(ds.group_ids) >= 0).all()
    assert ds.coordinates.dtype == np.float32 and ds.intensities.shape == (10, 1)
    assert np.allclose(ds.intensities[:, 0], ds.group_ids % 2)  # values moved with their rows
    coords, value, group = ds[4]
    assert coords.shape == (3,) and int(group) == ds.group_ids[4]


@pytest.mark.parametrize("target", [1, 7, 10, 25, 1000])
def test_batches_never_split_groups_and_cover_rows(target):
    sizes = np.random.default_rng(3).integers(1, 12, size=60)
    ds = make_dataset(sizes)
    batches = create_complete_group_batches(ds, target)
    check_batches(ds, batches, target)
    if target >= sizes.sum():
        assert batches == [(0, len(ds))]


def test_group_larger_than_target_forms_its_own_batch():
    ds = make_dataset([4, 4, 50, 3, 3])
    batches = create_complete_group_batches(ds, 10)
    assert batches == [(0, 8), (8, 58), (58, 64)]
    check_batches(ds, batches, 10)


def test_invalid_inputs_raise_clear_errors():
    with pytest.raises(CardioScarError, match="batch_size"):
        create_complete_group_batches(make_dataset([2, 2]), 0)
    with pytest.raises(CardioScarError, match="same number of rows"):
        ScarReconstructionDataset(np.zeros((3, 3)), np.zeros(2), np.zeros(3), None)
    with pytest.raises(CardioScarError, match="no rows"):
        ScarReconstructionDataset(np.zeros((0, 3)), np.zeros(0), np.zeros(0), None)
