"""Border-zone conducting channels on real EMIDEC reconstructions, from the raw files, as a modeller runs them.

Per case, the README's commands (*From LGE to an openCARP model*, *Border-zone conducting channels*):
``mesh-from-labels``; ``prepare`` from the raw LGE with n-SD 2,3 (scar and core targets); ``train
--preset fast`` and ``apply`` of each; the two-field ``export --format vtu`` (``heart.vtu``, its tag
values noted); then ``cardioscar channels --mesh heart.vtu --output-dir channels`` at the default
``--min-length`` (timed), and the same search in memory at ``min_length_mm=0`` to see what the default
drops. A step whose output exists is skipped (the layout is ``modeller_path_emidec.py``'s, so a folder
of that script's serves). One JSON line per case: per layer, the channels kept and dropped as short
(nodes, length in mm, entrances, how far their nodes come to the mesh's base and to its apical end
along the LGE's slice normal: the stacked-slice mesh is open at both; whether the search flags it as
near the mesh's open cut and its nearest entrance's distance to the cut, mm), the CLI's own per-layer
counts beside them, how many of the CLI's channels are flagged, seconds.

    PYTHONPATH=CardioScarLib OMP_NUM_THREADS=1 python Testing/benchmarks/emidec_channels.py OUT_DIR [CASE ...]

(default cases P051 P022 P047, the README's three: a small infarct, one with no-reflow, a large one).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from modeller_path_emidec import cli, rule_fields  # noqa: E402

from cardioscar.aha.wall import lv_wall  # noqa: E402
from cardioscar.io.meshio import read_mesh  # noqa: E402
from cardioscar.simulation.channels import DEFAULT_MIN_LENGTH_MM, ChannelOptions, channels_of_mesh  # noqa: E402


def channel_rows(folder: Path, lge: Path) -> list[dict]:
    """Every channel at ``min_length_mm=0``: its layer, nodes, length, entrances, and how far its nodes
    come to the mesh's basal and apical ends (mm along the LGE's slice normal, the ends' planes; which
    end is the base from the wall's long axis, the channel search's own)."""
    mesh = read_mesh(folder / "heart.vtu")
    result, _ = channels_of_mesh(mesh, ChannelOptions(min_length_mm=0.0))
    points, _, axis, _ = lv_wall(mesh, "the channel search", "")
    normal = np.array(sitk.ReadImage(str(lge)).GetDirection()).reshape(3, 3)[:, 2]
    heights = points @ (normal * np.sign(normal @ axis.base_direction))  # growing towards the base
    base, apex = float(heights.max()), float(heights.min())
    return [{"layer": c.layer, "nodes": int(len(c.nodes)), "length_mm": c.length_mm, "entrances": len(c.entrances_lps),
             "mm_from_base": round(base - float(heights[c.nodes].max()), 1),
             "mm_from_apical_end": round(float(heights[c.nodes].min()) - apex, 1),
             "near_open_cut": c.near_open_cut, "open_cut_mm": None if c.open_cut_mm is None else round(c.open_cut_mm, 1)}
            for c in result.channels]


def brief(row: dict) -> list:
    """A channel as ``[nodes, length mm, entrances, mm from the mesh's base, mm from its apical end,
    near the open cut?, its nearest entrance's mm from the cut]``."""
    return [row["nodes"], round(row["length_mm"], 1), row["entrances"], row["mm_from_base"], row["mm_from_apical_end"],
            row["near_open_cut"], row["open_cut_mm"]]


def per_layer(rows: list[dict], cli_record: dict) -> dict:
    """Per layer: the channels kept (>= the default minimum) and dropped as short, and the CLI's counts."""
    layers = {}
    for counts in cli_record["per_layer"]:
        layer = counts["layer"]
        mine = [r for r in rows if r["layer"] == layer]
        kept = [r for r in mine if r["length_mm"] >= DEFAULT_MIN_LENGTH_MM]
        short = [r for r in mine if r["length_mm"] < DEFAULT_MIN_LENGTH_MM]
        layers[f"{layer:g}"] = {
            "core_nodes": counts["core_nodes"], "border_zone_nodes": counts["border_zone_nodes"],
            "cli_channels": counts["channels"], "cli_dropped_short": counts["dropped_short"],
            "kept": [brief(r) for r in kept], "short": [brief(r) for r in short]}
    return layers


def run_case(case: str, folder: Path) -> dict:
    start = time.perf_counter()
    lge = rule_fields(case, folder)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    cli(folder, "channels/channels.json", "channels", "--mesh", "heart.vtu", "--output-dir", "channels")
    channels_s = time.perf_counter() - start
    record = json.loads((folder / "channels" / "channels.json").read_text(encoding="utf-8"))
    rows = channel_rows(folder, lge)
    kept = [r for r in rows if r["length_mm"] >= DEFAULT_MIN_LENGTH_MM]
    lengths = [round(r["length_mm"], 1) for r in kept]
    sizes = [r["nodes"] for r in kept]
    return {"case": case, "nodes": int(read_mesh(folder / "heart.vtu").dataset.GetNumberOfPoints()),
            "tissue": record["tissue"], "cli_result": record["result"], "cli_channels": record["n_channels"],
            "cli_dropped_short": record["n_dropped_short"], "cli_near_open_cut": record["n_near_open_cut"],
            "open_cut_nodes": record["open_cut_nodes"], "all_channels": len(rows), "kept": len(kept),
            "kept_near_open_cut": sum(r["near_open_cut"] for r in kept),
            "dropped_short": len(rows) - len(kept),
            "kept_nodes": [min(sizes, default=None), max(sizes, default=None)],
            "kept_length_mm": [min(lengths, default=None), max(lengths, default=None)],
            "layers_with_kept": sorted({r["layer"] for r in kept}), "per_layer": per_layer(rows, record),
            "path_s": round(fit_s, 1), "channels_cli_s": round(channels_s, 1)}


def main(out_dir: Path, cases: list[str]) -> None:
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    for case in cases:
        print(json.dumps(run_case(case, out_dir / case)), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:] or ["P051", "P022", "P047"])
