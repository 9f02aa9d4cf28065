"""Leftovers of round 19 of the bad-input review (`Testing/test_bad_inputs_round19.py`): faces the
round's refusals and warnings did not reach in their own words. `Documentation/bad-input.md` has a
row for each (`Testing/test_slicer_bad_inputs_round19_leftovers.py` for the Slicer Logic and panel).
Real parts: meshes and images written to real VTK and NIfTI files, the cohort's own row runner."""

from __future__ import annotations

import numpy as np

import SimpleITK as sitk

from cardioscar.io.meshio import write_mesh


def _cohort_row_with_aha(tmp_path, monkeypatch, with_rv: bool, aha: str, change=lambda wall: wall) -> dict:
    """A cohort row's result, its AHA RV insertion ``aha`` on the test's LV (and RV, ``with_rv``) wall
    (``change``d: a function of the mesh); failed, in one line, before its fit (a training would fail
    the test)."""
    import cardioscar.logic
    from cardioscar.cohort.manifest import read_manifest
    from cardioscar.cohort.tasks import run_patient
    from test_simulation_fibres import _ventricles_mesh

    def no_training(*args, **kwargs):
        raise AssertionError("the patient was trained before its AHA mesh was checked")

    monkeypatch.setattr(cardioscar.logic, "train_scar_model", no_training)
    stack = sitk.Image(16, 16, 4, sitk.sitkFloat32)  # short axis along z, the mesh's long axis; read for its normal
    stack.SetSpacing((4.0, 4.0, 8.0))
    sitk.WriteImage(stack, str(tmp_path / "lge.nii.gz"))
    name = "biv" if with_rv else "lv"
    wall = change(_ventricles_mesh(with_rv=with_rv, rv_cavity_mm=8.0, rv_wall_mm=3.0, rv_centre_x=52.0, slices=24))
    write_mesh(wall, tmp_path / f"{name}.vtk", {"scar_probability": np.zeros(wall.n_points)})
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f'id,mesh,image,aha\n{name},{tmp_path / f"{name}.vtk"},{tmp_path / "lge.nii.gz"},"{aha}"\n')
    [spec] = read_manifest(manifest)
    result = run_patient(spec, str(tmp_path / "out"), "hash")
    assert result["status"] == "failed" and "\n" not in result["error"], result
    return result


def test_a_cohort_row_with_aha_on_a_biventricular_mesh_fails_before_its_fit(tmp_path, monkeypatch):
    """A cohort row's AHA takes its long axis from the image's slice normal, so round 19's test for a
    second ventricle (run where the mesh's shape gives the axis) never ran there: a mesh of both
    ventricles was segmented as one LV, its RV free wall counted as LV myocardium, and the refusal's
    `--lv-mask` advice has no column in a manifest. Now the row fails before its fit, in the manifest's
    words: an LV-only mesh or no `aha`."""
    result = _cohort_row_with_aha(tmp_path, monkeypatch, with_rv=True, aha="48,32,24")
    assert result["error"] == (
        "biv.vtk looks biventricular: 15 of 15 cross-sections across one direction enclose two cavities (an LV's "
        "enclose one); column 'aha' (the AHA segmentation) is the LV's: give an LV-only mesh (a cohort has no LV "
        "mask), or leave the column 'aha' empty"), result["error"]
    assert list((tmp_path / "out").iterdir()) == []


def test_export_writes_inside_out_tetrahedra_positively_oriented(tmp_path, capsys):
    """`export` wrote each tetrahedron's nodes as the mesh listed them: one listed inside out (negative
    signed volume: a writer that keeps no orientation, a mirrored copy) went into the `.elem` inside
    out, where openCARP's own converter (meshtool's `correct_insideOut`, run by every `meshtool
    convert`) lists it as nodes (2, 1, 0, 3). Now the export does the same: the phantom with every
    other tetrahedron reversed writes the `.elem` of the phantom itself, every `Tt` positive in the
    `.pts` written beside it, and says how many it turned."""
    from cardioscar.cli import main
    from cardioscar.io.meshio import cell_layout, read_mesh
    from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, write_phantom
    from test_bad_inputs_round18 import _tetra_mesh

    paths = write_phantom(make_phantom(PhantomConfig(target_nodes=1500, seed=3)), tmp_path / "phantom")
    mesh = read_mesh(paths["mesh"])
    truth = mesh.point_array("scar_truth")
    cells = cell_layout(mesh.dataset)[1].reshape(-1, 4)
    reversed_cells = cells.copy()
    reversed_cells[::2] = reversed_cells[::2][:, [2, 1, 0, 3]]
    for name, tetrahedra in (("as_given", cells), ("every_other_reversed", reversed_cells)):
        write_mesh(_tetra_mesh(mesh, tetrahedra), tmp_path / f"{name}.vtk", {"scar_probability": truth})
        capsys.readouterr()
        assert main(["export", "--mesh", str(tmp_path / f"{name}.vtk"), "--output", str(tmp_path / name)]) == 0
        turned = [line for line in capsys.readouterr().err.splitlines() if "inside out" in line]
        if name == "as_given":
            assert turned == []  # the phantom's own tetrahedra are positive
        else:
            assert len(turned) == 1 and turned[0].endswith(
                f"every_other_reversed.vtk: {(len(cells) + 1) // 2} of {len(cells)} tetrahedra were inside out "
                "(negative volume, their nodes in the other order): written positively oriented, as openCARP's "
                "meshtool converts them"), turned
    given = (tmp_path / "as_given.elem").read_text().splitlines()
    assert (tmp_path / "every_other_reversed.elem").read_text().splitlines() == given
    points = np.loadtxt(tmp_path / "every_other_reversed.pts", skiprows=1)
    elements = np.array([line.split()[1:5] for line in given[1:]], dtype=int)
    corners = points[elements]
    edges = corners[:, 1:] - corners[:, :1]
    assert (np.einsum("ij,ij->i", edges[:, 0], np.cross(edges[:, 1], edges[:, 2])) > 0).all()


def test_aha_on_a_biventricular_surface_mesh_without_an_lv_mask_is_refused(tmp_path, capsys):
    """Round 19 tested volumetric meshes only: the surface of its biventricular ring (what a surface
    mesh file of both ventricles holds) ran, exit 0, its whole surface segmented as the LV (biv-me's:
    997.9 cm^2 of "LV" wall for its LV part's 576.2, `Testing/benchmarks/round19_leftover_surfaces.py`),
    warned only that the shape's axis was uncertain. A closed
    surface is now cut as the volume it encloses: refused, naming `--lv-mask`; the surface of the
    same LV without the RV runs."""
    import vtk

    from cardioscar.aha import AhaOptions, analyse_mesh
    from cardioscar.cli import main
    from cardioscar.io.meshio import Mesh, read_mesh
    from test_simulation_fibres import _ventricles_mesh

    rv = ["--rv-point", "48,32,24", "--rv-inferior-point", "48,48,24"]
    for with_rv in (True, False):
        volume = _ventricles_mesh(with_rv=with_rv, rv_cavity_mm=8.0, rv_wall_mm=3.0, rv_centre_x=52.0, slices=24)
        surface = vtk.vtkDataSetSurfaceFilter()
        surface.SetInputData(volume.dataset)
        surface.Update()
        mesh = Mesh(dataset=surface.GetOutput(), space="LPS", path=None)
        path = tmp_path / f"surface_{'biv' if with_rv else 'lv'}.vtp"
        write_mesh(mesh, path, {"scar_probability": np.zeros(mesh.dataset.GetNumberOfPoints())})
        if not with_rv:  # through the API the command line runs (its bull's-eye alone takes seconds)
            result = analyse_mesh(read_mesh(path), AhaOptions(rv_point=np.array([48.0, 32.0, 24.0]),
                                                              rv_inferior_point=np.array([48.0, 48.0, 24.0])))
            assert len(result.rows) == 17
            continue
        capsys.readouterr()
        code = main(["aha", "--mesh", str(path), "--output-dir", str(tmp_path / path.stem), *rv])
        errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
        assert code == 2 and len(errors) == 1 and errors[0].endswith(
            "surface_biv.vtp looks biventricular: 15 of 15 cross-sections across one direction enclose two cavities "
            "(an LV's enclose one); the AHA segmentation is the LV's: give an LV-only mesh, or mark its LV nodes with "
            "--lv-mask FIELD (and --lv-value for a region label)"), errors
        assert not (tmp_path / path.stem).exists()


def test_a_cohort_row_s_aha_debris_refusal_names_no_lv_mask(tmp_path, monkeypatch):
    """A cohort row's mesh with a stray piece beyond its base was refused with the command line's
    advice, "or mark the LV nodes with --lv-mask": a manifest has no such column. The row's line now
    says a cohort has no LV mask; the rest of the line is the library's."""
    import dataclasses

    import vtk

    def with_debris(wall):
        one = vtk.vtkIdList()
        one.InsertNextId(0)
        first = vtk.vtkExtractCells()  # one element, moved 80 mm along the axis, past the base: a loose piece
        first.SetInputData(wall.dataset)
        first.SetCellList(one)
        moved = vtk.vtkTransformFilter()
        moved.SetTransform(vtk.vtkTransform())
        moved.GetTransform().Translate(0.0, 0.0, 80.0)
        moved.SetInputConnection(first.GetOutputPort())
        joined = vtk.vtkAppendFilter()
        joined.AddInputData(wall.dataset)
        joined.AddInputConnection(moved.GetOutputPort())
        joined.Update()
        return dataclasses.replace(wall, dataset=joined.GetOutput())

    result = _cohort_row_with_aha(tmp_path, monkeypatch, with_rv=False, aha="200,200,24", change=with_debris)
    assert result["error"].startswith("column 'aha': lv.vtk: 8 LV node(s) in 1 small part(s)"), result["error"]
    assert result["error"].endswith("remove them from the mesh (debris of the segmentation?) (a cohort has no LV "
                                    "mask)"), result["error"]
