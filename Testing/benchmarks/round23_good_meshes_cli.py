"""Round 19's checks on good meshes of every kind, through the real command line (zbreak23).

Each mesh (with a transmural sector of scar_probability) is written as .vtu and run through
``cardioscar aha`` (the anterior RV insertion at a mesh node), ``cardioscar export`` and
``cardioscar channels``; per run the exit status, the time (a subprocess each, on a loaded 2-core
machine) and every line on stderr that is no progress report. Meshes: voxel LVs (2 mm hexahedra,
and cut into tetrahedra), with a papillary block hung on one element, cut open and joined by one
element, its halves a voxel apart; blocks sharing a node or an edge; a mouse's (18 mm across) and a
fetal LV (30 mm) in mm; EMIDEC N020 (``mesh-from-labels``, 3 mm) in mm, m, um and cm; the demo
and segmented phantoms (tet, hex); ACDC 101's myocardium (ED); biv-me's LV part (3 mm).

Usage: PYTHONPATH=CardioScarLib OMP_NUM_THREADS=1 python Testing/benchmarks/round23_good_meshes_cli.py [NAME ...]
(its output: results/round23_good_meshes_cli.txt)
"""
import subprocess
import sys
import tempfile
import time
from pathlib import Path
import numpy as np, SimpleITK as sitk, vtk
from vtk.util.numpy_support import numpy_to_vtk
sys.path[:0] = ["Testing", "Testing/benchmarks"]
from test_good_meshes_round23 import lv_mask, voxel_mesh as voxels  # noqa: E402
from round23_good_meshes import tetrahedra as tets  # noqa: E402
from cardioscar.io.meshio import Mesh, write_mesh
from cardioscar.prepare.mesh_from_labels import MYOCARDIUM_LABELS, myocardium_mesh_from_labels
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom
from cardioscar.phantoms.phantom_segmented import SegmentedConfig

OUT = Path(tempfile.mkdtemp(prefix="round23_"))
PY = sys.executable

def scaled(mesh, s):
    pts = mesh.points_lps() * s
    g = vtk.vtkUnstructuredGrid(); g.DeepCopy(mesh.dataset); p = vtk.vtkPoints(); p.SetData(numpy_to_vtk(pts, deep=True)); g.SetPoints(p)
    return Mesh(dataset=g, space="LPS")

def with_scar(mesh):
    pts = mesh.points_lps(); c = pts.mean(0)
    d = pts - c; ang = np.arctan2(d[:, 1], d[:, 0])
    prob = np.clip(1.2 - 1.5 * np.abs(ang), 0, 1)  # a transmural sector with a border zone
    arr = numpy_to_vtk(prob, deep=True); arr.SetName("scar_probability")
    mesh.dataset.GetPointData().AddArray(arr)
    return mesh

def cli(*args):
    t = time.perf_counter()
    r = subprocess.run([PY, "-m", "cardioscar", *args], capture_output=True, text=True)
    skip = ("Read mesh", "Wrote", "healthy", "border_zone ", "core ", "AHA scar", "LV scar", "no ", "Channels", "channel")
    lines = [l for l in r.stderr.splitlines() if l.strip() and not l.startswith(skip) and "sform" not in l and "itkNifti" not in l and "NiftiImageIO" not in l]
    return r.returncode, time.perf_counter() - t, lines

def run(name, mesh):
    mesh = with_scar(mesh)
    path = OUT / f"{name}.vtu"; write_mesh(mesh, path)
    pts = mesh.points_lps(); diag = float(np.linalg.norm(np.ptp(pts, 0)))
    rv = pts[int(np.argmax(pts[:, 0] + pts[:, 1]))]
    res = [f"== {name}: {mesh.n_points} nodes, {mesh.dataset.GetNumberOfCells()} cells, {diag:.1f} mm across"]
    for what, args in [("aha", ["aha", "--mesh", str(path), "--output-dir", str(OUT / f"{name}_aha"), "--rv-point", ",".join(f"{v:.4g}" for v in rv)]),
                       ("export", ["export", "--mesh", str(path), "--output", str(OUT / f"{name}_carp")]),
                       ("channels", ["channels", "--mesh", str(path), "--output-dir", str(OUT / f"{name}_ch")])]:
        rc, s, lines = cli(*args)
        res.append(f"  {what}: exit {rc} in {s:.1f} s; " + (" | ".join(l[:260] for l in lines) or "no warning"))
    print("\n".join(res), flush=True)

which = sys.argv[1:]
pixel = 2.0
mask = lv_mask(pixel, 20.0, 30.0, 70.0, 8.0)
cases = {}
cases["voxel_lv"] = lambda: voxels(mask, pixel)
def papillary():
    m = mask.copy(); n = m.shape[0]; c = n // 2
    # a 4x4 voxel column inside the cavity, 8 mm tall, joined to the wall through one voxel
    r_in_vox = int(20 / pixel)
    i0 = c + r_in_vox - 6
    m[i0:i0+4, c-2:c+2, 12:16] = True
    m[i0+4:c + r_in_vox + 1, c, 14] = True  # a one-voxel bridge row to the wall
    return voxels(m, pixel)
cases["papillary_one_voxel"] = papillary
def node_touch():
    m = np.zeros((12, 12, 12), bool); m[:6, :6, :6] = True; m[6:, 6:, 6:] = True
    return voxels(m, pixel)
def edge_touch():
    m = np.zeros((12, 12, 12), bool); m[:6, :6, :] = True; m[6:, 6:, :] = True
    return voxels(m, pixel)
cases["blocks_node_touch"] = node_touch
cases["blocks_edge_touch"] = edge_touch
def lv_node_touch():  # the LV ring split in two halves that touch at a node line? use LV with apex cap attached at a node
    m = mask.copy(); n = m.shape[0]
    piece = np.zeros_like(m); piece[: n // 2, :, :] = m[: n // 2]
    other = np.zeros_like(m); other[n // 2 + 1:, :, :] = m[n // 2 + 1:]  # a 1-voxel slit: apart
    return voxels(piece | other, pixel)
cases["lv_two_halves_apart"] = lv_node_touch
def thin_bridge():  # a C-shaped LV cut open along its length, joined by a one-voxel bridge
    m = mask.copy(); n = m.shape[0]; c = n // 2
    m[c:, c - 1:c + 1, :] = False
    m[c + int(24 / pixel), c - 1:c + 1, 20] = True
    return voxels(m, pixel)
cases["lv_thin_bridge"] = thin_bridge
cases["voxel_lv_tet"] = lambda: tets(voxels(mask, pixel))
small = lv_mask(0.3, 3.0, 5.0, 12.0, 1.5)
cases["mouse_lv_12mm"] = lambda: voxels(small, 0.3)
fetal = lv_mask(0.5, 5.0, 8.0, 20.0, 2.5)
cases["fetal_lv_20mm"] = lambda: voxels(fetal, 0.5)
def emidec(s=1.0, cut=None):
    img = sitk.ReadImage("/work/shared/data/emidec/Case_N020/Contours/Case_N020.nii.gz")
    m = myocardium_mesh_from_labels(img, MYOCARDIUM_LABELS, spacing_mm=3.0)
    return scaled(m, s)
cases["emidec_N020_mm"] = lambda: emidec()
cases["emidec_N020_m"] = lambda: emidec(0.001)
cases["emidec_N020_um"] = lambda: emidec(1000.0)
cases["emidec_N020_cm"] = lambda: emidec(0.1)
cases["demo_tet"] = lambda: Mesh(dataset=make_phantom(PhantomConfig(seed=0, target_nodes=6000)).mesh, space="LPS")
cases["segmented_tet"] = lambda: Mesh(dataset=make_phantom(SegmentedConfig(seed=0, target_nodes=6000, mesh_type="tet")).mesh, space="LPS")
cases["segmented_hex"] = lambda: Mesh(dataset=make_phantom(SegmentedConfig(seed=2, target_nodes=6000, mesh_type="hex")).mesh, space="LPS")
def acdc():
    img = sitk.ReadImage("/work/shared/data/acdc_patient101/patient101_frame01_gt.nii.gz")
    return myocardium_mesh_from_labels(img, (2,), spacing_mm=3.0)
cases["acdc101_ed"] = acdc
def bivme_lv():
    from fibre_one_ventricle import bivme_meshes
    for name, m in bivme_meshes(3.0):
        if "lv" in name:
            return m
cases["bivme_lv_part"] = bivme_lv
for name in (which or cases):
    try:
        run(name, cases[name]())
    except Exception as e:
        print(f"== {name}: script error {type(e).__name__}: {e}", flush=True)
