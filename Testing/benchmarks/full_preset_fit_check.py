"""One run of the full fast preset (600 epochs, no retry) on a prepared ``.npz``: how much of its targets'
variance the fit explains and what it ignores, the figures the preset's failed-fit and missed-patch tests
read. Written for the EMIDEC sweep (``ROBUSTNESS.md``, *The modeller's path across EMIDEC*), whose
shortened fits (``--max-epochs 150``) of n-SD targets were warned about and retried.

    PYTHONPATH=CardioScarLib OMP_NUM_THREADS=1 python Testing/benchmarks/full_preset_fit_check.py SCAR.npz
"""

import json
import logging
import sys
import time
from pathlib import Path

import torch

from cardioscar.fit.training import TrainingConfig
from cardioscar.logic import train_scar_model

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    torch.set_num_threads(1)
    start = time.perf_counter()
    history = train_scar_model(Path(sys.argv[1]), TrainingConfig.fast(retry_failed_fit=False),
                               torch.device("cpu"))["history"]
    keys = ("best_loss", "target_variance", "ignored_share", "ignored_scar_groups", "epochs_run")
    print(json.dumps({**{k: history.get(k) for k in keys},
                      "explained": round(1.0 - history["best_loss"] / history["target_variance"], 3),
                      "seconds": round(time.perf_counter() - start)}))
