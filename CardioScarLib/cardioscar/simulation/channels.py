"""Border-zone conducting channels per transmural layer: a planning aid for VT ablation.

Why: electrophysiologists look for *conducting channels* on scar maps, corridors of border-zone
(BZ) tissue that run through dense scar (core) and open onto healthy myocardium at two ends, the
substrate of re-entrant VT isthmuses (Andreu et al. 2011, 2017), searched layer by layer through
the wall (the layered analysis of ADAS-3D-like tools: 10 % to 90 % of the wall in 10 % steps).

What is found here, per layer (nodes whose transmural depth lies within ``layer_width / 2`` of the
layer's depth, joined by the mesh's edges between such nodes, distances along them in mm):

* the core is *closed* at radius ``r = max_width_mm / 2`` (dilated by r, then eroded by r along the
  layer's edges), which fills every gap in the core narrower than ``max_width_mm``;
* the BZ nodes so filled are *enclosed* BZ; each of their connected parts is a candidate;
* an *entrance* is a cluster of the candidate's neighbours that are neither core nor enclosed BZ
  and whose free tissue reaches a healthy node (healthy myocardium, or the BZ rim that leads to
  it); neighbours closer than r to each other are one entrance;
* a candidate with two or more entrances is a channel. Its length is the largest, over pairs of
  entrances, of the shortest path between them through the channel (mm, along the edges).

Depth is ``d_endo / (d_endo + d_epi)`` at each node (:func:`cardioscar.aha.wall.wall_depth`), so
the mesh must have volume cells. Everything here is in LPS mm; the tags come from the healthy /
border zone / core rule of :mod:`.tags`. The result depends on the thresholds behind the tags,
on the mesh's resolution (a layer needs nodes joined within its band) and on ``max_width_mm``;
it is not validated against invasive maps.
"""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import vtk
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree

from ..errors import CardioScarError, advice_in_face_words, in_log_format
from ..io.checks import MAX_MAX_WIDTH_MM, check_channel_options
from ..io.meshio import Mesh, cell_layout
from .hidden_channels import HiddenCore, hidden_core, log_hidden, marginal_core_fields, search_words
from .open_cut import OPEN_CUT_REASON, OpenEndUse, mark_open_cut, open_end_nodes
from .tags import CORE_MESH_ADVICE, FILE_CORE_MODEL_ADVICE

logger = logging.getLogger(__name__)

#: The layers' depths (share of the wall from the endocardium): 10 % to 90 % in 10 % steps.
DEFAULT_LAYERS = tuple(round(0.1 * k, 1) for k in range(1, 10))
#: Each layer's band of depth (share of the wall): 0.2 takes the nodes within 10 % of the wall of
#: the layer's depth, so neighbouring bands overlap by half and a mesh with 5-6 nodes through the
#: wall has a joined shell of nodes in every band.
DEFAULT_LAYER_WIDTH = 0.2
#: The widest gap in the core (mm) that counts as a channel.
DEFAULT_MAX_WIDTH_MM = 10.0
#: The shortest channel (mm, its length between entrances) kept; shorter ones are counted as
#: dropped (0 keeps every one). Every channel is at least half ``max_width_mm`` long (its entrances
#: lie further apart); on the phantoms of ``Testing/benchmarks/channels_phantom.py`` 13 of the 23
#: spurious channels (all from a patchy core) were under 10 mm, most of 1-2 nodes, and 44 of the 51
#: channels on the true corridor 11-37 mm (``Testing/benchmarks/ROBUSTNESS.md``, *Conducting
#: channels on a phantom*): a passage shorter than the default width is a notch, not a corridor.
DEFAULT_MIN_LENGTH_MM = 10.0
#: The point field written on the mesh: the channel's id at the node, 0 elsewhere.
CHANNEL_FIELD = "bz_channel"
#: The point field of each node's transmural depth (0 endocardium, 1 epicardium) written beside it.
DEPTH_FIELD = "wall_depth"
#: A layer whose band nodes are mostly without a neighbour in the band is too thin for the mesh.
MIN_JOINED_SHARE = 0.5
#: The MC-dropout spreads whose mean over a channel's nodes its row gives, when the mesh has them
#: (``apply``'s, and the core model's as ``export --format vtu --core-mesh`` copies it): a channel
#: through a core whose boundary is unsure may be the reconstruction's, not the tissue's.
SPREAD_FIELDS = ("scar_uncertainty", "core_uncertainty")


@dataclass(frozen=True)
class ChannelOptions:
    """The layers searched and the widest corridor that counts (see the module docstring)."""

    layers: tuple[float, ...] = DEFAULT_LAYERS
    layer_width: float = DEFAULT_LAYER_WIDTH
    max_width_mm: float = DEFAULT_MAX_WIDTH_MM
    min_length_mm: float = DEFAULT_MIN_LENGTH_MM

    @classmethod
    def given(cls, **values) -> "ChannelOptions":
        """The options a face was given (a None value: not given, the default here), so that every
        face (the command line, the batch script) falls back to the same defaults."""
        return cls(**{name: value for name, value in values.items() if value is not None})

    def check(self) -> None:
        """One-line errors for options out of range (:func:`cardioscar.io.checks.check_channel_options`,
        which the command line runs on the options it was given before VTK loads)."""
        check_channel_options(self.layers, self.layer_width, self.max_width_mm, self.min_length_mm)


#: Said once per search whose tissue is one field cut at two probabilities (:func:`channels_of_mesh`).
ONE_FIELD_CHANNELS = ("its tags are one scar field cut at two probabilities, not border-zone and core tissue: the "
                      "channels found are corridors of intermediate probability through confident scar, which on a "
                      "reconstruction are mostly the field's smooth edge, not conducting tissue (tissue classes need a "
                      f"core model's field beside the scar's: {CORE_MESH_ADVICE})")


@dataclass(frozen=True)
class Tissue:
    """Healthy, border-zone and core nodes (boolean masks) and where they came from."""

    healthy: np.ndarray
    border_zone: np.ndarray
    core: np.ndarray
    source: str
    #: The probability minus the core threshold per node, when the tags were cut from a probability
    #: here (None from a tags field): where a filled corridor may lie (:mod:`.hidden_channels`).
    core_margin: np.ndarray | None = None
    #: "tissue" (two fields' classes), "bands" (one field cut at two probabilities) or None (tags
    #: without the export's note of which: an older export's, a tags field of the user's own).
    classes: str | None = None


@dataclass(frozen=True)
class Channel:
    """One conducting channel of one layer."""

    id: int
    layer: float
    nodes: np.ndarray
    length_mm: float
    entrances_lps: np.ndarray
    centroid_lps: np.ndarray
    #: ``mean_<field>`` of each of :data:`SPREAD_FIELDS` the mesh has, over the channel's nodes.
    spreads: dict[str, float] = field(default_factory=dict)
    #: An entrance within half ``max_width_mm`` of the mesh's open cut (:mod:`.open_cut`), and the
    #: nearest entrance's distance to it (mm; None: the mesh has no open cut, or it was not looked for).
    near_open_cut: bool = False
    open_cut_mm: float | None = None

    def row(self) -> dict:
        """The table's row: the channel's figures, its centroid and entrances in LPS mm, its spreads."""
        return {"channel": self.id, "layer": self.layer, "nodes": int(len(self.nodes)),
                "length_mm": round(self.length_mm, 2), "entrances": int(len(self.entrances_lps)),
                "centroid_lps": [round(float(v), 2) for v in self.centroid_lps],
                "entrances_lps": [[round(float(v), 2) for v in point] for point in self.entrances_lps],
                "near_open_cut": self.near_open_cut,
                "open_cut_mm": None if self.open_cut_mm is None else round(self.open_cut_mm, 2),
                **{name: round(value, 4) for name, value in self.spreads.items()}}


@dataclass
class ChannelResult:
    """Every layer's channels, the per-node field and per-layer counts (what was searched)."""

    channels: list[Channel]
    node_channel: np.ndarray
    depth: np.ndarray
    layers: list[dict] = field(default_factory=list)
    #: How much of the core may hide a corridor too narrow for the reconstruction (:mod:`.hidden_channels`).
    hidden: HiddenCore | None = None
    #: The mesh's open-cut nodes (:func:`.open_cut.mark_open_cut`; 0: none, or not looked for).
    open_cut_nodes: int = 0
    #: :data:`ONE_FIELD_CHANNELS` when the tissue was one field's bands, else empty.
    bands_note: str = ""
    #: The tags' classes (:attr:`Tissue.classes`), which word the summary (:func:`.hidden_channels.search_words`).
    classes: str | None = None

    @property
    def dropped_short(self) -> int:
        """Channels found but shorter than the minimum length, over every layer (not in ``channels``)."""
        return sum(row.get("dropped_short", 0) for row in self.layers)

    @property
    def near_open_cut(self) -> int:
        """Kept channels with an entrance near the mesh's open cut (flagged, still in ``channels``)."""
        return sum(channel.near_open_cut for channel in self.channels)

    @property
    def without_core(self) -> bool:
        """Whether no node of the searched layers is core: then no channel can exist, and the tags
        (or the core threshold) may be what is wrong, which a result with core and no corridor is not."""
        return not any(layer["core_nodes"] for layer in self.layers)

    def summary(self) -> str:
        """One line: how many channels in which layers, or that none was found and why none could
        be; how many were dropped as shorter than the minimum length, and how many of those kept are
        near the mesh's open cut (and why that matters)."""
        dropped = f"; {self.dropped_short} shorter than --min-length dropped" if self.dropped_short else ""
        words = search_words(self.classes)
        if self.without_core:  # a result with no core has no channel
            return (f"no conducting channel: no node of the searched layers is {words.in_core}, so no {words.corridor} "
                    f"can run through {words.core}; check the tags (or lower --core)")
        if not self.channels:
            return (f"no conducting channel found in any layer (no {words.corridor} through {words.core} with two "
                    f"entrances){dropped}; see the per-layer counts")
        layers = sorted({c.layer for c in self.channels})
        near = (f"; {self.near_open_cut} near the mesh's open cut ({OPEN_CUT_REASON})" if self.near_open_cut else "")
        return f"{len(self.channels)} channel(s) in layer(s) {', '.join(f'{v:g}' for v in layers)}{dropped}{near}"


def edge_graph(dataset: vtk.vtkDataSet, points: np.ndarray) -> csr_matrix:
    """The symmetric graph of node pairs that share a cell, weighted by their distance (mm).

    Every pair of a cell's nodes is joined (a tetrahedron's six edges; a hexahedron's also its
    diagonals, still paths through tissue)."""
    offsets, connectivity = cell_layout(dataset)
    sizes = np.diff(offsets)
    pairs = []
    for size in np.unique(sizes):
        nodes = connectivity[offsets[:-1][sizes == size][:, None] + np.arange(size)]
        for a, b in itertools.combinations(range(int(size)), 2):
            pairs.append(nodes[:, [a, b]])
    both = np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)
    n = len(points)
    keys = np.unique(both.min(axis=1) * n + both.max(axis=1))  # each edge once, in one sort of integers
    first, second = keys // n, keys % n
    first, second = first[first != second], second[first != second]
    lengths = np.linalg.norm(points[first] - points[second], axis=1)
    graph = coo_matrix((np.concatenate([lengths, lengths]), (np.concatenate([first, second]),
                                                             np.concatenate([second, first]))), shape=(n, n))
    return graph.tocsr()


def _within(graph: csr_matrix, mask: np.ndarray) -> csr_matrix:
    """The graph's edges whose two nodes are in ``mask`` (the other nodes kept, without edges)."""
    edges = graph.tocoo()
    keep = mask[edges.row] & mask[edges.col]
    return coo_matrix((edges.data[keep], (edges.row[keep], edges.col[keep])), shape=graph.shape).tocsr()


def _distance_from(graph: csr_matrix, sources: np.ndarray, limit: float) -> np.ndarray:
    """Shortest distance (mm) from the nearest of ``sources`` (boolean) along ``graph``; inf beyond ``limit``."""
    if not sources.any():
        return np.full(graph.shape[0], np.inf)
    return dijkstra(graph, directed=False, indices=np.flatnonzero(sources), min_only=True, limit=limit)


def _components(graph: csr_matrix, mask: np.ndarray) -> list[np.ndarray]:
    """The node ids of each connected part of ``mask`` along ``graph`` (none for an empty mask)."""
    if not mask.any():
        return []
    _, labels = connected_components(_within(graph, mask), directed=False)
    ids = np.flatnonzero(mask)
    order = np.argsort(labels[ids], kind="stable")
    _, starts = np.unique(labels[ids][order], return_index=True)
    return np.split(ids[order], starts[1:])


def _entrances(graph: csr_matrix, points: np.ndarray, contacts: np.ndarray, radius: float) -> list[np.ndarray]:
    """Clusters of the ``contacts`` (node ids): joined by an edge or closer than ``radius``."""
    sub = graph[contacts][:, contacts].tocoo()
    close = np.array(sorted(cKDTree(points[contacts]).query_pairs(radius)), np.int64).reshape(-1, 2)
    rows = np.concatenate([sub.row, close[:, 0]])
    cols = np.concatenate([sub.col, close[:, 1]])
    links = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(contacts), len(contacts)))
    count, labels = connected_components(links, directed=False)
    return [contacts[labels == k] for k in range(count)]


def _length(graph: csr_matrix, entrances: list[np.ndarray]) -> float:
    """The largest, over pairs of entrances, of the shortest path between them along ``graph``."""
    longest = 0.0
    for first, second in itertools.combinations(entrances, 2):
        sources = np.zeros(graph.shape[0], bool)
        sources[first] = True
        reach = _distance_from(graph, sources, np.inf)[second]
        if np.isfinite(reach).any():
            longest = max(longest, float(reach.min()))
    return longest


def _layer_band(depth: np.ndarray, layer: float, width: float) -> np.ndarray:
    """Nodes within half the band's width of the layer's depth (a hair of slack for float depths)."""
    return np.abs(depth - layer) <= 0.5 * width + 1e-9


def layer_channels(layer_graph: csr_matrix, points: np.ndarray, tissue: Tissue, band: np.ndarray, layer: float,
                   max_width_mm: float) -> tuple[list[tuple[np.ndarray, list[np.ndarray]]], dict]:
    """The channels of one layer (``band`` its nodes, ``layer_graph`` the edges among them), as
    (node ids, entrances' node ids), and the layer's counts."""
    radius = 0.5 * max_width_mm
    core = band & tissue.core
    counts = {"layer": layer, "nodes": int(band.sum()), "core_nodes": int(core.sum()),
              "border_zone_nodes": int((band & tissue.border_zone).sum()),
              "healthy_nodes": int((band & tissue.healthy).sum()), "enclosed_border_zone_nodes": 0,
              "candidates": 0, "channels": 0, "dropped_short": 0}
    counts["joined_share"] = round(float((np.diff(layer_graph.indptr)[band] > 0).mean()) if band.any() else 0.0, 3)
    if not core.any() or not counts["border_zone_nodes"]:
        return [], counts
    dilated = band & (_distance_from(layer_graph, core, radius) <= radius)
    closed = dilated & (_distance_from(layer_graph, band & ~dilated, radius) > radius)
    enclosed = closed & tissue.border_zone
    free = band & ~core & ~enclosed
    open_parts = [part for part in _components(layer_graph, free) if tissue.healthy[part].any()]
    reaches_healthy = np.zeros(len(band), bool)
    for part in open_parts:
        reaches_healthy[part] = True
    found = []
    candidates = _components(layer_graph, enclosed)
    for candidate in candidates:
        touching = np.zeros(len(band), bool)
        touching[np.unique(layer_graph[candidate].indices)] = True
        contacts = np.flatnonzero(touching & reaches_healthy)
        entrances = _entrances(layer_graph, points, contacts, radius) if len(contacts) else []
        if len(entrances) >= 2:
            found.append((candidate, entrances))
    counts.update(enclosed_border_zone_nodes=int(enclosed.sum()), candidates=len(candidates), channels=len(found))
    return found, counts


def find_channels(dataset: vtk.vtkDataSet, points: np.ndarray, depth: np.ndarray, tissue: Tissue,
                  options: ChannelOptions = ChannelOptions(), spreads: dict[str, np.ndarray] | None = None
                  ) -> ChannelResult:
    """Every layer's channels on a mesh (``points`` LPS mm, ``depth`` in [0, 1] per node; ``spreads``:
    per-node fields averaged over each channel as ``mean_<name>``).

    ``bz_channel`` of a node in channels of several (overlapping) layers is the channel of the
    layer nearest its depth. Channels are numbered from 1 by layer, then by size (largest first);
    one shorter than ``options.min_length_mm`` is left out and counted in its layer's ``dropped_short``."""
    options.check()
    graph = edge_graph(dataset, points)
    channels, layers, bands = [], [], {}
    node_channel = np.zeros(len(points), np.int32)
    nearest = np.full(len(points), np.inf)
    for layer in sorted(float(v) for v in options.layers):  # each once: check() refuses a repeat
        band = bands[layer] = _layer_band(depth, layer, options.layer_width)
        layer_graph = _within(graph, band)
        found, counts = layer_channels(layer_graph, points, tissue, band, layer, options.max_width_mm)
        layers.append(counts)
        _warn_thin_band(counts, options.layer_width)
        for nodes, entrances in sorted(found, key=lambda item: -len(item[0])):
            length = _channel_length(layer_graph, len(points), nodes, entrances)
            if length < options.min_length_mm:
                counts["dropped_short"] += 1
                continue
            channel = _channel(len(channels) + 1, layer, length, points, nodes, entrances, spreads or {})
            channels.append(channel)
            closer = np.abs(depth[nodes] - layer) < nearest[nodes]
            node_channel[nodes[closer]] = channel.id
            nearest[nodes[closer]] = np.abs(depth[nodes[closer]] - layer)
        counts["channels"] -= counts["dropped_short"]
    return ChannelResult(channels=channels, node_channel=node_channel, depth=depth, layers=layers,
                         hidden=hidden_core(tissue.core, tissue.core_margin, bands, tissue.classes),
                         classes=tissue.classes)


def _channel_length(layer_graph: csr_matrix, n_points: int, nodes: np.ndarray, entrances: list[np.ndarray]) -> float:
    """A found channel's length (mm), along the edges among its nodes and its entrances' only."""
    through = np.zeros(n_points, bool)
    through[np.concatenate([nodes, *entrances])] = True
    return _length(_within(layer_graph, through), entrances)


def _channel(channel_id: int, layer: float, length_mm: float, points: np.ndarray, nodes: np.ndarray,
             entrances: list[np.ndarray], spreads: dict[str, np.ndarray]) -> Channel:
    """A kept channel's figures: its centroid and entrances in LPS mm, its spreads."""
    return Channel(id=channel_id, layer=layer, nodes=nodes, length_mm=length_mm,
                   entrances_lps=np.array([points[e].mean(axis=0) for e in entrances]),
                   centroid_lps=points[nodes].mean(axis=0),
                   spreads={f"mean_{name}": float(values[nodes].mean()) for name, values in spreads.items()})


def _warn_thin_band(counts: dict, width: float) -> None:
    """Warn when most of a layer's nodes have no neighbour in its band: the mesh has too few nodes
    through the wall for the band, and channels there are cut into pieces (or missed); or has none."""
    if not counts["nodes"]:
        logger.warning("layer %g: no node lies within its band (depth +/- %g of the wall): the mesh has too few nodes "
                       "through the wall for it; widen --layer-width or use a finer mesh", counts["layer"], width / 2.0)
    elif counts["joined_share"] < MIN_JOINED_SHARE:
        logger.warning("layer %g: %.0f %% of its %d nodes have no neighbour within the band (depth +/- %g of the "
                       "wall): the mesh is too coarse through the wall for it; widen --layer-width or use a finer mesh",
                       counts["layer"], 100.0 * (1.0 - counts["joined_share"]), counts["nodes"], width / 2.0)


def tissue_from_tags(values: np.ndarray, tag_values: tuple[int, int, int], source: str) -> Tissue:
    """The three classes of a tags field; a node with another value is refused (not a tags field of
    these values: a probability, or other tag numbers)."""
    values = np.asarray(values, np.float64)
    known = np.isin(values, np.asarray(tag_values, np.float64))
    if not known.all():
        others = ", ".join(f"{v:g}" for v in np.unique(values[~known])[:5])
        raise CardioScarError(f"{source} has values ({others}) that are none of its tags healthy, border zone, core = "
                              f"{','.join(str(v) for v in tag_values)}: give --tags HEALTHY,BORDER,CORE as the tags "
                              "were written (cardioscar export --tags)")
    return Tissue(healthy=values == tag_values[0], border_zone=values == tag_values[1], core=values == tag_values[2],
                  source=source)


def tissue_of_mesh(mesh, tags_field: str | None = None, tag_values: tuple[int, int, int] | None = None,
                   scar_field: str | None = None, border_zone: float | None = None, core: float | None = None
                   ) -> Tissue:
    """The mesh's healthy / border-zone / core nodes: from a tags field (``tags_field``, else the
    export's ``tissue_tag`` when the mesh has it and no ``scar_field`` is named), its values from
    ``tag_values`` or the export's note beside ``tissue_tag``; else from ``scar_field`` (default
    ``scar_probability``) cut by the tag rule's thresholds (:mod:`.tags`). A mesh with neither is
    refused: there is no tissue to search."""
    from .opencarp import TAG_ARRAY, recorded_classes, recorded_tag_values
    from ..io.checks import check_scar_field_name
    from .tags import DEFAULT_TAGS, band_labels, tag_nodes

    name = "the mesh" if mesh.path is None else mesh.path.name
    fields = mesh.point_field_names()
    if tags_field is None and scar_field is None and TAG_ARRAY in fields:
        tags_field = TAG_ARRAY
    if tags_field is not None:
        if border_zone is not None or core is not None:
            raise CardioScarError(f"--border-zone/--core cut a probability, but the tags of {name} are read from its "
                                  f"field '{tags_field}': leave them out, or give --scar-field to tag from the probability")
        noted = recorded_tag_values(mesh.dataset) if tags_field == TAG_ARRAY else None
        noted = None if noted is None else (noted["healthy"], noted["border_zone"], noted["core"])
        if tag_values is not None and noted is not None and tuple(tag_values) != noted:
            raise CardioScarError(f"--tags {','.join(map(str, tag_values))} is not what the export noted beside "
                                  f"{TAG_ARRAY} on {name} ({','.join(map(str, noted))}): leave --tags out")
        values = tag_values or noted
        if values is None:
            raise CardioScarError(f"{name}: field '{tags_field}' carries no note of which value is which class: give "
                                  f"--tags HEALTHY,BORDER,CORE (cardioscar export's default {','.join(map(str, DEFAULT_TAGS))})")
        tissue = tissue_from_tags(mesh.point_array(tags_field), tuple(values), f"{name} field '{tags_field}'")
        return replace(tissue, classes=recorded_classes(mesh.dataset)[0] if tags_field == TAG_ARRAY else None)
    if tag_values is not None:
        raise CardioScarError(f"--tags numbers the values of a tags field, but {name} is tagged from a probability "
                              f"here (it has no '{TAG_ARRAY}', or --scar-field was given): leave --tags out, or name "
                              "the field with --tags-field")
    scar_field = scar_field or "scar_probability"
    check_scar_field_name(scar_field, "--scar-field")
    if scar_field not in fields:
        raise CardioScarError(f"{name} has no tags ('{TAG_ARRAY}', from cardioscar export --format vtu) and no scar "
                              f"field '{scar_field}' (from cardioscar apply): give a tagged or predicted mesh, or name "
                              "the field with --tags-field / --scar-field")
    tags, cut = tag_nodes(mesh.dataset, mesh.point_array(scar_field), border_zone, core)
    return Tissue(healthy=tags == DEFAULT_TAGS[0], border_zone=tags == DEFAULT_TAGS[1], core=tags == DEFAULT_TAGS[2],
                  source=f"{name} field '{scar_field}' ({', '.join(band_labels(*cut))})",
                  core_margin=np.asarray(mesh.point_array(scar_field), np.float64) - cut[1], classes="bands")


#: The table's columns (``channels.csv``): the centroid in LPS mm, as every point the library reports.
CSV_COLUMNS = ("channel", "layer", "nodes", "length_mm", "entrances", "centroid_l_mm", "centroid_p_mm",
               "centroid_s_mm", "near_open_cut", "open_cut_mm")
#: What every ``channels.json`` says of the method's limits.
LIMITS = ("channels depend on the border-zone and core thresholds behind the tags, on the mesh's resolution through "
          "and along the wall, and on max_width_mm; not validated against invasive (electro-anatomical) maps")


#: What ``channels.json`` says of the ``near_open_cut`` flag.
OPEN_CUT_NOTE = ("a channel with an entrance within max_width_mm / 2 of the mesh's open cut (its basal or apical end, "
                 "where the wall ends with no node beyond) may be an artefact of the mesh's open base: the core is "
                 "closed along the cut; flagged, not dropped (a real corridor may end there)")


def channels_csv(channels: list[Channel]) -> str:
    """``channels.csv``: one line per channel (a header alone when none was found), with a
    ``mean_<field>`` column for each spread the mesh had."""
    spread_names = list(channels[0].spreads) if channels else []
    lines = [",".join(CSV_COLUMNS + tuple(spread_names))]
    for channel in channels:
        row = channel.row()
        lines.append(",".join([str(row["channel"]), f"{row['layer']:g}", str(row["nodes"]), f"{row['length_mm']:.2f}",
                               str(row["entrances"])] + [f"{v:.2f}" for v in row["centroid_lps"]]
                              + [str(row["near_open_cut"]).lower(),
                                 "" if row["open_cut_mm"] is None else f"{row['open_cut_mm']:.2f}"]
                              + [f"{row[name]:.4f}" for name in spread_names]))
    return "\n".join(lines) + "\n"


#: ``channels.json``'s words for what the search's sentences name by the command line's options. Why:
#: the command line, the Slicer Logic and panel, the batch script and a cohort row write the same file,
#: and "shorter than --min-length" named an option the Logic's and the batch script's user never typed
#: (``options.min_length_mm``, ``--channel-min-length``); the file names it by its own key beside it.
FILE_WORDS = {"--min-length": "min_length_mm", "lower --core": "lower the core threshold",
              CORE_MESH_ADVICE: FILE_CORE_MODEL_ADVICE}


def channels_record(result: ChannelResult, tissue: Tissue, options: ChannelOptions) -> dict:
    """``channels.json``: how the search was made, what each layer held, and the channels; its
    sentences in no face's options (:data:`FILE_WORDS`)."""
    return {"result": advice_in_face_words(result.summary(), FILE_WORDS), "n_channels": len(result.channels),
            "coordinate_frame": "LPS",
            "tissue": tissue.source, "layers": [float(v) for v in sorted(options.layers)],
            "layer_width": options.layer_width, "max_width_mm": options.max_width_mm,
            "min_length_mm": options.min_length_mm, "n_dropped_short": result.dropped_short,
            "n_near_open_cut": result.near_open_cut, "open_cut_nodes": result.open_cut_nodes,
            "near_open_cut": OPEN_CUT_NOTE,
            "depth": "d_endo / (d_endo + d_epi) at each node (0 endocardium, 1 epicardium)",
            "node_field": f"{CHANNEL_FIELD}: the channel's id (of the layer nearest the node's depth), 0 elsewhere",
            "limits": LIMITS, **({"classes": tissue.classes} if tissue.classes else {}),
            **({"bands_note": advice_in_face_words(result.bands_note, FILE_WORDS)} if result.bands_note else {}),
            "per_layer": result.layers, "channels": [c.row() for c in result.channels],
            **({"hidden_corridors": result.hidden.record()} if result.hidden is not None else {})}


#: The tables every face writes into its output folder (the command line also writes the mesh).
TABLE_FILES = {"csv": "channels.csv", "json": "channels.json"}


def write_channel_files(mesh, result: ChannelResult, tissue: Tissue, options: ChannelOptions,
                        output_dir: str | Path) -> dict[str, Path]:
    """Write ``channels_mesh.<ext>`` (the input's format, with ``bz_channel``, ``wall_depth`` and, when
    the tags were cut from a probability, ``core_marginal``), then
    ``channels.csv`` and ``channels.json`` as one set, into ``output_dir``; each file atomically."""
    from ..io.checks import check_output_dir
    from ..io.meshio import write_mesh

    out = check_output_dir(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    suffix = mesh.path.suffix.lower() if mesh.path is not None else ".vtk"
    paths = {**{key: out / name for key, name in TABLE_FILES.items()}, "mesh": out / f"channels_mesh{suffix}"}
    if mesh.path is not None and paths["mesh"].resolve() == mesh.path.resolve():
        raise CardioScarError(f"the channels' mesh would overwrite the input {mesh.path}; choose another --output-dir")
    write_mesh(mesh, paths["mesh"], {CHANNEL_FIELD: result.node_channel, DEPTH_FIELD: result.depth,
                                     **marginal_core_fields(result.hidden)})
    return {**write_channel_tables(result, tissue, options, out), "mesh": paths["mesh"]}


def write_channel_tables(result: ChannelResult, tissue: Tissue, options: ChannelOptions,
                         output_dir: str | Path) -> dict[str, Path]:
    """Write ``channels.csv`` and ``channels.json`` into ``output_dir`` (created if missing) as one
    set: both placed, or the previous ones kept (the batch script's and the panel's files)."""
    from ..io.atomic import atomic_write_set
    from ..io.checks import check_output_dir

    out = check_output_dir(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {key: out / name for key, name in TABLE_FILES.items()}
    with atomic_write_set([paths["csv"], paths["json"]]) as (csv_tmp, json_tmp):
        csv_tmp.write_text(channels_csv(result.channels), encoding="utf-8")
        json_tmp.write_text(json.dumps(channels_record(result, tissue, options), indent=2), encoding="utf-8")
    return paths


def check_searchable_mesh(mesh: Mesh) -> None:
    """Refuse a mesh the search would read wrong without a word: one not in millimetres (its widths
    and lengths are mm: the test wall in metres found no channel, exit 0; in micrometres it was
    refused as "a ball-like shape"), or one whose cells share no node (written without merging its
    points: no path joins one cell to the next, so no channel, exit 0). Faces that train before
    they search (the batch script, a cohort row) call it first, with :func:`~cardioscar.aha.wall.lv_wall`."""
    from ..aha.analysis import refuse_unjoined_cells
    from .opencarp import check_millimetres

    check_millimetres(mesh.points_lps(), "before the channel search (its widths and lengths are mm)")
    refuse_unjoined_cells(mesh, "the mesh" if mesh.path is None else mesh.path.name, "the channel search")


def warn_min_length_below_reach(options: ChannelOptions) -> None:
    """Warn when ``--min-length`` lies under half ``--max-width``: a corridor shorter than that has its
    two ends within half ``--max-width`` of each other, which count as one entrance, so it is no
    channel at any ``--min-length``. ``--min-length 0`` ("keep every channel") then read as a search
    for short corridors that found none, while none shorter could be found (round 19)."""
    reach = options.max_width_mm / 2.0
    if options.min_length_mm < reach:
        logger.warning("--min-length %g: no channel shorter than half --max-width (%g mm) can be found (the ends of a "
                       "shorter corridor count as one entrance), so it keeps the same channels as %g; to see shorter "
                       "corridors, lower --max-width", options.min_length_mm, reach, reach)


def _log_of(source: str, words: str, log) -> None:
    """Log ``source: words`` with ``words`` in the record's format string, ``source`` (a file's name)
    as its value. Why: a face rewords a record's format, never the values filled in (the Slicer
    Logic's record factory, the batch script's filter): passed as a value, the summary's "lower
    --core" reached a Slicer console user as the command line's option."""
    log("%s: " + in_log_format(words), source)


def channels_of_mesh(mesh, options: ChannelOptions = ChannelOptions(), *, tags_field: str | None = None,
                     tag_values: tuple[int, int, int] | None = None, scar_field: str | None = None,
                     border_zone: float | None = None, core: float | None = None) -> tuple[ChannelResult, Tissue]:
    """In memory (the command line's and the Slicer Logic's work): the tissue (:func:`tissue_of_mesh`),
    the wall's depth, every layer's channels, each flagged when an entrance lies near the mesh's open
    cut (:mod:`.open_cut`); a summary line logged, a warning when the layers hold no core (the tags
    may be wrong). A core without a corridor through it is an answer, not a fault: its "none found" is
    information (EMIDEC P051, a 4.4 ml infarct, was warned about on a correct input)."""
    from ..aha.wall import lv_wall, wall_depth
    from .opencarp import PIECES_CHANNELS, SEAM_CHANNELS, warn_about_pieces, warn_if_centimetres

    options.check()
    warn_min_length_below_reach(options)
    tissue = tissue_of_mesh(mesh, tags_field, tag_values, scar_field, border_zone, core)
    check_searchable_mesh(mesh)
    warn_if_centimetres(mesh.points_lps(), "the mesh" if mesh.path is None else mesh.path.name,
                        "the channel search (its widths and lengths are mm)")
    warn_about_pieces(mesh, PIECES_CHANNELS, seam=SEAM_CHANNELS)
    points, lps, axis, faces = lv_wall(mesh, "the channel search", " (channels are searched in layers through the wall)")
    depth, _, _ = wall_depth(points, points[faces.endo_ids], points[faces.epi_ids])
    spreads = {name: mesh.point_array(name) for name in SPREAD_FIELDS if name in mesh.point_field_names()}
    result = find_channels(lps, points, depth, tissue, options, spreads)
    mark_open_cut(result, points[open_end_nodes(points, axis, faces, OpenEndUse.CHANNEL_CUT)], options.max_width_mm)
    _log_of(tissue.source, result.summary(), logger.warning if result.without_core else logger.info)
    log_hidden(result.hidden, tissue.source)
    if tissue.classes == "bands":
        # warned, not refused: one patient's reader sees it beside the channels, and a phantom's or a
        # label map's scar has no second field; a cohort row refuses (its summary hides each log)
        result.bands_note = ONE_FIELD_CHANNELS
        _log_of(tissue.source, ONE_FIELD_CHANNELS, logger.warning)
    return result, tissue


def run_channels(mesh, output_dir: str | Path | None = None, options: ChannelOptions = ChannelOptions(), *,
                 tags_field: str | None = None, tag_values: tuple[int, int, int] | None = None,
                 scar_field: str | None = None, border_zone: float | None = None, core: float | None = None
                 ) -> ChannelResult:
    """Files in (a mesh or its path), files out (with ``output_dir``: :func:`write_channel_files`),
    the output folder checked before any work; see :func:`channels_of_mesh`."""
    from ..io.checks import check_output_dir
    from ..io.meshio import read_mesh

    options.check()
    if output_dir is not None:
        check_output_dir(output_dir)
    if not isinstance(mesh, Mesh):
        mesh = read_mesh(mesh)
    result, tissue = channels_of_mesh(mesh, options, tags_field=tags_field, tag_values=tag_values,
                                      scar_field=scar_field, border_zone=border_zone, core=core)
    if output_dir is not None:
        write_channel_files(mesh, result, tissue, options, output_dir)
    return result
