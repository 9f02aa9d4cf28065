"""The LV fibre rule's frame on real and phantom meshes, with each transmural direction
(``transmural="nearest"``, the nearest endocardial to the nearest epicardial node, and
``"laplace"``, the gradient of the wall's Laplace solve, the default): on how many elements it is
undefined and falls back (``RuleFrame.no_transmural``, ``RuleFrame.along_axis``), whether every
fibre and sheet has unit length, how smooth the frame is (the angle between each element's sheet,
its transmural direction, and those of its 6 nearest elements by centre, and the same of the
fibres, which also turn with the helix through the wall: median and 95th percentile), and how far the
fibres move when the rule stands on a reference long axis instead of the one it takes from the
mesh's shape (``export --fibres rule`` has no axis options). With ``--timing`` instead: the
Laplace coordinate's seconds (assembly, solve, gradients) on 150,000-node phantoms.

Reference axes: EMIDEC, the label map's slice normal (the short-axis stack's, which the scan plans
across the long axis); the phantoms, their known long axis. biv-me's LV part and the test suite's
open LV ring (the rule's zero-length fibres before the fallback) have none given here.

Meshes: the test suite's open LV ring (``_ventricles_mesh(with_rv=False)``), biv-me's LV part at
1.5 mm (``fibre_one_ventricle.bivme_meshes``), the demo and segmented phantoms (seeds 0-1, 12,000
nodes), EMIDEC's label maps through ``mesh-from-labels`` (the first N cases, default 10). Prints
one JSON line per mesh and transmural direction, then a summary of each.

    PYTHONPATH=CardioScarLib:Testing OMP_NUM_THREADS=1 .venv/bin/python Testing/benchmarks/fibre_rule_fallback.py [N_EMIDEC]
    PYTHONPATH=CardioScarLib:Testing OMP_NUM_THREADS=1 .venv/bin/python Testing/benchmarks/fibre_rule_fallback.py --timing
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import SimpleITK as sitk
from scipy.spatial import cKDTree

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_robust import DATA  # noqa: E402
from fibre_one_ventricle import bivme_meshes  # noqa: E402
from cardioscar.aha.segments import LongAxis  # noqa: E402
from cardioscar.aha.wall import cell_centres, wall_faces  # noqa: E402
from cardioscar.io.meshio import Mesh  # noqa: E402
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom  # noqa: E402
from cardioscar.phantoms.phantom_segmented import SegmentedConfig  # noqa: E402
from cardioscar.prepare.mesh_from_labels import MYOCARDIUM_LABELS, myocardium_mesh_from_labels  # noqa: E402
from cardioscar.simulation.fibres import DEFAULT_HELIX_DEG, TRANSMURAL, rule_fibres, rule_frame, rule_wall  # noqa: E402
from cardioscar.simulation.transmural import laplace_transmural  # noqa: E402


def meshes(n_emidec: int) -> Iterator[tuple[str, Mesh, Optional[np.ndarray]]]:
    """(name, mesh, reference long-axis direction in LPS or None) of each mesh in the docstring."""
    from test_simulation_fibres import _ventricles_mesh

    yield "test_lv_ring", _ventricles_mesh(with_rv=False), None
    for name, mesh in bivme_meshes(1.5):
        if "lv_part" in name:
            yield name, mesh, None
    for seed in range(2):
        phantom = make_phantom(PhantomConfig(seed=seed, target_nodes=12000))
        yield f"demo_s{seed}", Mesh(dataset=phantom.mesh, space="LPS"), phantom.geometry.rotation[:, 2]
        kind = "tet" if seed == 0 else "hex"
        phantom = make_phantom(SegmentedConfig(seed=seed, target_nodes=12000, mesh_type=kind))
        yield f"segmented_s{seed}_{kind}", Mesh(dataset=phantom.mesh, space="LPS"), phantom.geometry.rotation[:, 2]
    cases = sorted(p for p in (DATA / "emidec").glob("Case_*") if p.is_dir())
    for case in cases[:n_emidec]:
        image = sitk.ReadImage(str(case / "Contours" / f"{case.name}.nii.gz"))
        normal = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)[:, 2]
        yield f"emidec_{case.name[5:]}", myocardium_mesh_from_labels(image, MYOCARDIUM_LABELS), normal


def _fibres_about(mesh: Mesh, direction: np.ndarray, transmural: str) -> np.ndarray:
    """The rule's fibres (LPS) with its wall faces and frame on the axis ``direction`` (signed as the
    shape's axis, through the shape's origin) in place of the shape's."""
    _, (points, lps, axis, _) = rule_wall(mesh)
    sign = 1.0 if float(direction @ axis.base_direction) >= 0 else -1.0
    reference = LongAxis(origin=axis.origin, base_direction=sign * direction / np.linalg.norm(direction),
                         source="reference")
    faces = wall_faces(lps, np.ones(len(points), dtype=bool), reference)
    frame = rule_frame(points, lps, faces, reference, transmural)
    endo_deg, epi_deg = DEFAULT_HELIX_DEG
    helix = np.radians(endo_deg + (epi_deg - endo_deg) * frame.depth)
    return np.cos(helix)[:, None] * frame.e_c + np.sin(helix)[:, None] * frame.e_l


def _axis_angles(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Degrees between rows taken as axes (a fibre's sign means nothing)."""
    return np.degrees(np.arccos(np.clip(np.abs(np.einsum("ij,ij->i", first, second)), 0.0, 1.0)))


def _neighbour_spread(mesh: Mesh, fibres: np.ndarray) -> np.ndarray:
    """The angle between each element's fibre and those of its 6 nearest elements (by centre)."""
    centres = cell_centres(mesh.dataset)
    _, near = cKDTree(centres).query(centres, k=7)
    return _axis_angles(np.repeat(fibres, 6, axis=0), fibres[near[:, 1:]].reshape(-1, 3))


def row_of(name: str, mesh: Mesh, reference: Optional[np.ndarray], transmural: str) -> dict:
    """One mesh's figures with one transmural direction (see the module docstring)."""
    start = time.perf_counter()
    field, record = rule_fibres(mesh, transmural=transmural)
    lengths = np.linalg.norm(field.reshape(len(field), 2, 3), axis=2)
    fallback = record["frame_fallback"]
    spread, sheet_spread = _neighbour_spread(mesh, field[:, :3]), _neighbour_spread(mesh, field[:, 3:])
    row = {"mesh": name, "transmural": transmural, "cells": len(field),
           "no_transmural": fallback["no_transmural"]["elements"], "along_axis": fallback["along_axis"]["elements"],
           "length_min": round(float(lengths.min()), 6), "length_max": round(float(lengths.max()), 6),
           "neighbour_median_deg": round(float(np.median(spread)), 1),
           "neighbour_p95_deg": round(float(np.percentile(spread, 95)), 1),
           "sheet_neighbour_median_deg": round(float(np.median(sheet_spread)), 1),
           "sheet_neighbour_p95_deg": round(float(np.percentile(sheet_spread, 95)), 1)}
    if reference is not None:
        shape_direction = np.asarray(record["long_axis"]["base_direction_lps"])
        cosine = abs(float(shape_direction @ reference)) / np.linalg.norm(shape_direction) / np.linalg.norm(reference)
        fibres = field[:, :3] * (1.0 if mesh.space == "LPS" else np.array([-1.0, -1.0, 1.0]))
        turn = _axis_angles(fibres, _fibres_about(mesh, reference, transmural))
        row.update({"shape_axis_from_reference_deg": round(float(np.degrees(np.arccos(min(1.0, cosine)))), 1),
                    "fibre_turn_median_deg": round(float(np.median(turn)), 1),
                    "fibre_turn_p95_deg": round(float(np.percentile(turn, 95)), 1)})
    row["seconds_under_load"] = round(time.perf_counter() - start, 2)
    return row


def summary_of(family: str, transmural: str, chosen: list[dict]) -> dict:
    """The worst of one family's rows with one transmural direction."""
    summary = {"summary": family, "transmural": transmural, "meshes": len(chosen),
               "fallback_max": max(r["no_transmural"] + r["along_axis"] for r in chosen),
               "fallback_share_max": max((r["no_transmural"] + r["along_axis"]) / r["cells"] for r in chosen),
               "length_min": min(r["length_min"] for r in chosen), "length_max": max(r["length_max"] for r in chosen),
               **{f"{key}_range": [min(r[key] for r in chosen), max(r[key] for r in chosen)]
                  for key in ("neighbour_median_deg", "neighbour_p95_deg", "sheet_neighbour_median_deg",
                              "sheet_neighbour_p95_deg")}}
    turned = [r for r in chosen if "fibre_turn_median_deg" in r]
    if turned:
        summary.update({"shape_axis_from_reference_deg_max": max(r["shape_axis_from_reference_deg"] for r in turned),
                        **{f"{key}_range": [min(r[key] for r in turned), max(r[key] for r in turned)]
                           for key in ("fibre_turn_median_deg", "fibre_turn_p95_deg")}})
    return summary


def timing() -> None:
    """The Laplace coordinate's seconds on 150,000-node phantoms (a tetrahedral demo, a hexahedral
    segmented one): one JSON line each."""
    for name, config in (("demo_tet", PhantomConfig(seed=0, target_nodes=150000)),
                         ("segmented_hex", SegmentedConfig(seed=1, target_nodes=150000, mesh_type="hex"))):
        mesh = Mesh(dataset=make_phantom(config).mesh, space="LPS")
        _, (points, lps, axis, faces) = rule_wall(mesh)
        start = time.perf_counter()
        coordinate = laplace_transmural(points, lps, faces, axis)
        print(json.dumps({"mesh": name, "nodes": len(points), "cells": lps.GetNumberOfCells(),
                          "cg_iterations": coordinate.iterations,
                          "laplace_seconds_under_load": round(time.perf_counter() - start, 2)}), flush=True)


def main() -> None:
    if sys.argv[1:] == ["--timing"]:
        timing()
        return
    n_emidec = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    rows = []
    for name, mesh, reference in meshes(n_emidec):
        for transmural in TRANSMURAL:
            rows.append(row_of(name, mesh, reference, transmural))
            print(json.dumps(rows[-1]), flush=True)
    for family in ("test_lv_ring", "bivme_lv", "demo", "segmented", "emidec"):
        for transmural in TRANSMURAL:
            chosen = [r for r in rows if r["mesh"].startswith(family) and r["transmural"] == transmural]
            if chosen:
                print(json.dumps(summary_of(family, transmural, chosen)))


if __name__ == "__main__":
    main()
