"""Known-truth cases: the LV phantom and its segmented family, the one-command demo that runs
the whole pipeline on one, and the demo's report (``cardioscar phantom``, ``cardioscar demo``)."""
