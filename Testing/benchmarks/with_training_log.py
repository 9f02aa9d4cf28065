"""Run a benchmark script with the training loop's INFO log on stderr.

Each training run then logs its best epoch and its longest rise (the most epochs in a row its loss
stayed above its best so far by ``training.DIVERGED_FRACTION`` of the targets' variance), the
figure ``training.DIVERGED_EPOCHS`` was chosen against, and any run stopped as dead or diverged.
The script's own output (its JSON lines on stdout) is unchanged. ``--no-diverged-stop`` (first)
switches the early stop of diverged runs off, so every run takes the course it took before that
stop existed and its longest rise is measured over all its epochs.

Usage:
  PYTHONPATH=CardioScarLib OMP_NUM_THREADS=1 python Testing/benchmarks/with_training_log.py
      [--no-diverged-stop] Testing/benchmarks/bench_unseen.py --seeds 0-11 --input labels --shape-prior off \
      2> training.log
  grep -o "longest rise above the best: [0-9]* epochs" training.log | sort | uniq -c
"""

import logging
import runpy
import sys

from cardioscar.fit import training

if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: with_training_log.py BENCHMARK_SCRIPT [ITS ARGUMENTS...]")
    # configured before the script's own basicConfig, which then leaves this handler as it is
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("cardioscar.fit.training").setLevel(logging.INFO)
    sys.argv = sys.argv[1:]
    if sys.argv[0] == "--no-diverged-stop":
        training.DIVERGED_EPOCHS = sys.maxsize
        sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
