"""EMIDEC leave-one-slice-out with the myocardium margin 0 or 1 on named cases (targets patched to nearest_within; usage: python emidec_margin_check.py 1 P003,P011)."""
import dataclasses, json, sys
import numpy as np
import bench_emidec_loso as be
from cardioscar.prepare.myocardium import nearest_within
from cardioscar.fit.training import TrainingConfig

plain = be.myocardium_targets
def with_margin(layer):
    out = plain(layer)
    inside = np.isin(layer.values, be.MYOCARDIUM_LABELS)
    if not inside.any():
        return out
    return dataclasses.replace(out, values=nearest_within(out.values, inside, 1))

margin = int(sys.argv[1]); names = sys.argv[2].split(',')
if margin:
    be.myocardium_targets = with_margin
cases = be.case_dirs(be.DEFAULT_DATA, names)
be.run_cases(cases, TrainingConfig.fast(), jobs=1, echo=lambda r: print(json.dumps(r), flush=True))
