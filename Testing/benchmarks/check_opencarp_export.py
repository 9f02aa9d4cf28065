"""Read back what ``cardioscar export --format opencarp`` wrote and check it against the meshes it
came from: header counts, 0-based indices, element nodes, units, tags by the documented rule.

    PYTHONPATH=CardioScarLib python Testing/benchmarks/check_opencarp_export.py PREFIX SCAR_PRED.vtk [CORE_PRED.vtk]

Prints one line per check and exits 1 on the first mismatch. The readers here are our own (a few
lines of text parsing), not the writer's code, so a shared mistake cannot hide.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import vtk

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "CardioScarLib"))

from cardioscar.io.meshio import read_mesh  # noqa: E402

NODES_PER_CODE = {"Tt": 4, "Hx": 8, "Pr": 6, "Py": 5, "Tr": 3, "Qd": 4}


def check(condition: bool, text: str) -> None:
    print(("ok   " if condition else "FAIL ") + text)
    if not condition:
        sys.exit(1)


def main(prefix: str, scar_path: str, core_path: str | None = None) -> None:
    sidecar = json.loads(Path(prefix + ".json").read_text(encoding="utf-8"))
    scale = 1000.0 if sidecar["units"] == "um" else 1.0
    mesh = read_mesh(scar_path)
    points = mesh.points_lps() if sidecar["coordinate_frame"] == "LPS" else mesh.points_lps() * [-1, -1, 1]
    pts_lines = Path(prefix + ".pts").read_text(encoding="utf-8").split("\n")
    count = int(pts_lines[0])
    check(count == mesh.n_points, f".pts header {count} = mesh nodes {mesh.n_points} (not 3N)")
    written = np.array([[float(v) for v in line.split()] for line in pts_lines[1:1 + count]])
    check(written.shape == (count, 3), f".pts has {len(written)} lines of x y z")
    error = float(np.abs(written / scale - points).max())
    check(error < 1e-3, f".pts in {sidecar['units']} ({sidecar['coordinate_frame']}): max |x/{scale:g} - mesh| = "
                        f"{error:.2e} mm")
    elem_lines = [line.split() for line in Path(prefix + ".elem").read_text(encoding="utf-8").split("\n") if line]
    n_cells = int(elem_lines[0][0])
    check(n_cells == mesh.dataset.GetNumberOfCells(), f".elem header {n_cells} = mesh cells")
    elements = elem_lines[1:]
    check(len(elements) == n_cells, f".elem has {len(elements)} element lines")
    ids = vtk.vtkIdList()
    scar = mesh.point_array("scar_probability")
    core = read_mesh(core_path).point_array("scar_probability") if core_path else scar
    rule, tags = sidecar["tag_rule"], sidecar["tags"]
    low, high = np.inf, -np.inf
    for c, fields in enumerate(elements):
        code, nodes, tag = fields[0], [int(v) for v in fields[1:-1]], int(fields[-1])
        if len(nodes) != NODES_PER_CODE.get(code, -1):
            check(False, f"element {c}: {code} with {len(nodes)} nodes")
        mesh.dataset.GetCellPoints(c, ids)
        cell = sorted(ids.GetId(i) for i in range(ids.GetNumberOfIds()))
        if sorted(nodes) != cell:
            check(False, f"element {c} nodes {nodes} are the mesh cell's {cell} (0-based)")
        mean_core, mean_scar = core[nodes].mean(), scar[nodes].mean()
        expected = (tags["core"] if mean_core >= rule["core"] else tags["border_zone"]
                    if mean_scar >= rule["border_zone"] else tags["healthy"])
        if tag != expected:
            check(False, f"element {c} tag {tag} = rule's {expected}")
        low, high = min(low, min(nodes)), max(high, max(nodes))
    check(low == 0 and high == mesh.n_points - 1, f"indices 0-based: {low}..{high} of {mesh.n_points} nodes")
    counts = {name: int(sum(int(f[-1]) == tag for f in elements)) for name, tag in tags.items()}
    codes = sorted({f[0] for f in elements})
    check(True, f"every element has its code's node count ({', '.join(codes)})")
    check(counts == {name: row["elements"] for name, row in sidecar["classes"].items()},
          f"every element's nodes and tag by the rule; tags per class {counts} = the sidecar's")
    print("scar rule in the sidecar:", (sidecar.get("scar_rule") or {}).get("rule"))


if __name__ == "__main__":
    main(*sys.argv[1:])
