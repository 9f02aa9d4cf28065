"""A Laplace transmural coordinate through the LV wall, for the fibre rule's frame.

Why: the fibre rule's transmural direction from each element's nearest endocardial node to its
nearest epicardial node jumps where the nearest node changes (a stair step of a ``mesh-from-labels``
mesh, a face node that changes side with a few degrees of axis) and is undefined where one node is
nearest to both faces (an open end). The rule-based methods' standard (Bayer et al. 2012, Ann
Biomed Eng 40:2243) solves Laplace's equation in the wall, ``phi = 0`` on the endocardium and
``1`` on the epicardium (nodes on both faces and the base: natural boundary, no flux), and takes
the transmural direction as ``grad phi``: smooth, and defined inside the whole wall.

An open end (a stack of slices that stops short of the apex, a cut wall) is no face of either
kind, though :func:`cardioscar.aha.wall.wall_faces` splits it between them (its nearest
across-axis face's): held at 0 on its inner half and 1 on its outer half, phi would turn along
the axis there (55 degrees from radial in a tube's last element layer). Its nodes are left free
as the base's are (:func:`cardioscar.simulation.open_cut.open_end_nodes`, read for this solve): the
faces turning along the axis whose part of the surface holds a node of both faces, less the nodes
also on an across-axis face. An apical cap's faces turn along the axis too, but each part lies on
one face, and keeps its value (the transmural direction runs along the axis there).

Discretisation: the linear finite-element stiffness matrix on the mesh's own cells, which is
consistent on both kinds of mesh here (edge weights such as the graph Laplacian are not: on a
hexahedral voxel mesh they ignore the cells' diagonals, on a tetrahedral one they depend on the
angles). Tetrahedra: P1 (exact); hexahedra and voxels: trilinear Q1 with 2x2x2 Gauss points
(the hex voxel meshes of ``mesh-from-labels`` and the segmented phantom); wedges and pyramids:
P1 on a split into tetrahedra; cells of lower dimension carry no stiffness. The free nodes'
system is solved by conjugate gradients with a Jacobi preconditioner, started from 0.5 (from the
nearest-face depth it took 10 % fewer iterations, and the nearest-node search cost as much as they
saved). Each element's direction is the
least-squares gradient of phi over its nodes (exact on a tetrahedron), its depth phi's mean
over them (phi at the centre of a tetrahedron or a hexahedron).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import vtk
from scipy.sparse import coo_matrix, csr_matrix, diags
from scipy.sparse.linalg import cg

from ..aha.segments import LongAxis
from ..aha.wall import WallFaces
from ..errors import CardioScarError
from .open_cut import OpenEndUse, open_end_nodes

logger = logging.getLogger(__name__)

#: Relative residual at which the conjugate gradients stop: far below what a fibre angle resolves.
SOLVE_RTOL = 1e-8
#: VTK voxel node order as hexahedron order (a voxel's nodes run x fastest, a hexahedron's around).
_VOXEL_AS_HEX = np.array([0, 1, 3, 2, 4, 5, 7, 6])
#: Tetrahedra splitting a wedge and a pyramid (VTK node order).
_SPLITS = {vtk.VTK_WEDGE: np.array([[0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5]]),
           vtk.VTK_PYRAMID: np.array([[0, 1, 2, 4], [0, 2, 3, 4]])}
#: Hexahedron corners in reference coordinates, VTK order.
_HEX_CORNERS = np.array([[-1, -1, -1], [1, -1, -1], [1, 1, -1], [-1, 1, -1],
                         [-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1]], dtype=float)


@dataclass(frozen=True)
class TransmuralCoordinate:
    """phi at each node (0 endocardium, 1 epicardium), each element's depth (phi's mean over its
    nodes) and unit-or-zero direction (``grad phi``; zero where phi does not change over it), and
    the solve's conjugate-gradient iterations."""

    phi: np.ndarray
    depth: np.ndarray
    direction: np.ndarray
    iterations: int


def _tet_stiffness(points: np.ndarray, tets: np.ndarray) -> np.ndarray:
    """(n, 4, 4) P1 stiffness of each tetrahedron: volume x grad N_a . grad N_b (the barycentric
    gradients in closed form: the opposite edges' cross products over the determinant)."""
    corners = points[tets]
    e1, e2, e3 = (corners[:, k] - corners[:, 0] for k in (1, 2, 3))
    across = np.stack([np.cross(e2, e3), np.cross(e3, e1), np.cross(e1, e2)], axis=1)
    det = np.einsum("ij,ij->i", e1, across[:, 0])
    scale = np.maximum(np.abs(np.stack([e1, e2, e3], axis=1)).max(axis=(1, 2)), 1e-12) ** 3
    inverse = np.divide(1.0, det, out=np.zeros_like(det), where=np.abs(det) > 1e-12 * scale)  # flat: no stiffness
    grads = np.empty((len(tets), 4, 3))
    grads[:, 1:] = across * inverse[:, None, None]
    grads[:, 0] = -grads[:, 1:].sum(axis=1)
    return np.abs(det)[:, None, None] / 6.0 * np.einsum("cak,cbk->cab", grads, grads)  # 3x faster than matmul here


def _hex_stiffness(points: np.ndarray, hexes: np.ndarray) -> np.ndarray:
    """(n, 8, 8) trilinear stiffness of each hexahedron, by 2x2x2 Gauss points (exact for a
    parallelepiped, as the voxel meshes' cells are)."""
    gauss = _HEX_CORNERS / np.sqrt(3.0)
    # dN_a/dxi_k at each Gauss point g: (g, a, k)
    factors = 1.0 + gauss[:, None, :] * _HEX_CORNERS[None, :, :]
    d_shape = np.empty((8, 8, 3))
    for k in range(3):
        others = [j for j in range(3) if j != k]
        d_shape[:, :, k] = _HEX_CORNERS[None, :, k] * factors[:, :, others[0]] * factors[:, :, others[1]] / 8.0
    corners = points[hexes]
    weighted = np.zeros((len(hexes), 8, 3 * 8))  # each Gauss point's sqrt(|det J|) grad N, side by side
    for g in range(8):
        jacobian = np.einsum("ak,caj->ckj", d_shape[g], corners)  # dx_j / dxi_k
        det = np.linalg.det(jacobian)
        keep = np.abs(det) > 1e-12
        grads = np.linalg.solve(jacobian[keep], np.broadcast_to(d_shape[g].T, (int(keep.sum()), 3, 8)))
        weighted[keep, :, 3 * g:3 * g + 3] = np.sqrt(np.abs(det[keep]))[:, None, None] * grads.transpose(0, 2, 1)
    return weighted @ weighted.transpose(0, 2, 1)  # the sum over Gauss points in one stacked product


def _element_blocks(points: np.ndarray, types: np.ndarray, offsets: np.ndarray, connectivity: np.ndarray
                    ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(node ids (n, k), stiffness (n, k, k)) for each kind of volume cell in the mesh."""
    blocks = []
    for kind in np.unique(types):
        cells = np.flatnonzero(types == kind)
        size = {vtk.VTK_TETRA: 4, vtk.VTK_HEXAHEDRON: 8, vtk.VTK_VOXEL: 8, vtk.VTK_WEDGE: 6,
                vtk.VTK_PYRAMID: 5}.get(int(kind))
        if size is None:
            continue  # no volume: no stiffness
        nodes = connectivity[offsets[cells][:, None] + np.arange(size)]
        if kind == vtk.VTK_TETRA:
            blocks.append((nodes, _tet_stiffness(points, nodes)))
        elif kind in (vtk.VTK_HEXAHEDRON, vtk.VTK_VOXEL):
            nodes = nodes[:, _VOXEL_AS_HEX] if kind == vtk.VTK_VOXEL else nodes
            blocks.append((nodes, _hex_stiffness(points, nodes)))
        else:
            tets = nodes[:, _SPLITS[int(kind)]].reshape(-1, 4)
            blocks.append((tets, _tet_stiffness(points, tets)))
    return blocks


def stiffness_matrix(points: np.ndarray, types: np.ndarray, offsets: np.ndarray, connectivity: np.ndarray
                     ) -> csr_matrix:
    """The assembled (n_points, n_points) linear finite-element Laplacian (see the module docstring)."""
    rows, cols, values = [], [], []
    for nodes, block in _element_blocks(points, types, offsets, connectivity):
        k = nodes.shape[1]
        rows.append(np.repeat(nodes, k, axis=1).ravel())
        cols.append(np.tile(nodes, (1, k)).ravel())
        values.append(block.ravel())
    if not rows:
        raise CardioScarError("the mesh has no volume cells (tetrahedra, hexahedra, wedges, pyramids) to solve the "
                              "transmural coordinate on; give a volumetric LV mesh")
    n = len(points)
    return coo_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)).tocsr()


def solve_phi(stiffness: csr_matrix, endo_ids: np.ndarray, epi_ids: np.ndarray) -> tuple[np.ndarray, int]:
    """phi at every node: 0 on ``endo_ids``, 1 on ``epi_ids`` (a node on both is left free), the
    rest solved (nodes in no volume cell keep 0.5); and the iterations taken."""
    phi = np.full(stiffness.shape[0], 0.5)
    both = np.intersect1d(endo_ids, epi_ids)
    fixed = np.zeros(len(phi), dtype=bool)
    fixed[np.setdiff1d(endo_ids, both)] = True
    fixed[np.setdiff1d(epi_ids, both)] = True
    phi[endo_ids] = 0.0
    phi[epi_ids] = 1.0
    phi[both] = 0.5
    diagonal = stiffness.diagonal()
    free = ~fixed & (diagonal > 0)
    if not free.any():
        return phi, 0
    system = stiffness[free][:, free]
    rhs = -(stiffness[free][:, fixed] @ phi[fixed])
    counter = {"iterations": 0}

    def count(_: np.ndarray) -> None:
        counter["iterations"] += 1

    solution, info = cg(system, rhs, x0=phi[free], rtol=SOLVE_RTOL, maxiter=10 * int(free.sum()),
                        M=diags(1.0 / diagonal[free]), callback=count)
    if info != 0:
        logger.warning("the transmural Laplace solve stopped before its tolerance (%d iterations)", counter["iterations"])
    phi[free] = solution
    return np.clip(phi, 0.0, 1.0), counter["iterations"]


def _solve_3x3(matrices: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Each ``matrices[i]^-1 vectors[i]`` by the adjugate (a 3x3 stack: far faster than a
    stacked SVD), zero where the matrix is singular (nodes that do not span 3D)."""
    c0, c1, c2 = matrices[:, :, 0], matrices[:, :, 1], matrices[:, :, 2]
    adjugate = np.stack([np.cross(c1, c2), np.cross(c2, c0), np.cross(c0, c1)], axis=1)  # det(M) M^-1, row by row
    det = np.einsum("ij,ij->i", c0, adjugate[:, 0])
    scale = np.maximum(np.abs(matrices).max(axis=(1, 2)), 1e-300) ** 3
    inverse = np.divide(1.0, det, out=np.zeros_like(det), where=np.abs(det) > 1e-9 * scale)
    return np.einsum("ijk,ik->ij", adjugate, vectors) * inverse[:, None]


def element_gradients(points: np.ndarray, phi: np.ndarray, offsets: np.ndarray, connectivity: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's least-squares gradient of ``phi`` over its nodes (exact on a tetrahedron; zero
    where the nodes do not span 3D) and phi's mean over them."""
    sizes = np.diff(offsets)
    gradients = np.zeros((len(sizes), 3))
    means = np.zeros(len(sizes))
    for size in np.unique(sizes):
        cells = np.flatnonzero(sizes == size)
        nodes = connectivity[offsets[cells][:, None] + np.arange(size)]
        spread = points[nodes] - points[nodes].mean(axis=1, keepdims=True)
        values = phi[nodes]
        means[cells] = values.mean(axis=1)
        moments = np.einsum("caj,cak->cjk", spread, spread)
        gradients[cells] = _solve_3x3(moments, np.einsum("cak,ca->ck", spread, values - means[cells, None]))
    return gradients, means


def laplace_transmural(points: np.ndarray, dataset: vtk.vtkDataSet, wall: WallFaces,
                       axis: LongAxis) -> TransmuralCoordinate:
    """The wall's Laplace transmural coordinate on ``dataset``'s cells at ``points`` (its points, in
    the LPS frame the fibre rule works in) between its endocardial and epicardial nodes (``wall``'s),
    an open end's nodes left free (:func:`~.open_cut.open_end_nodes`, read for the Laplace solve)."""
    from ..io.meshio import cell_layout
    from .opencarp import cell_types

    offsets, connectivity = cell_layout(dataset)
    free = open_end_nodes(points, axis, wall, OpenEndUse.LAPLACE_FREE)
    phi, iterations = solve_phi(stiffness_matrix(points, cell_types(dataset), offsets, connectivity),
                                np.setdiff1d(wall.endo_ids, free), np.setdiff1d(wall.epi_ids, free))
    gradients, depth = element_gradients(points, phi, offsets, connectivity)
    lengths = np.linalg.norm(gradients, axis=1, keepdims=True)
    changes = lengths > 1e-6 * max(float(np.median(lengths)), 1e-12)  # not round-off over a face's own nodes
    direction = np.divide(gradients, lengths, out=np.zeros_like(gradients), where=changes)
    return TransmuralCoordinate(phi=phi, depth=np.clip(depth, 0.0, 1.0), direction=direction, iterations=iterations)
