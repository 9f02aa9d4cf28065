"""Border-zone conducting channels of a model node in the scene (Qt-free), for the panel, the
Python console and batch mode.

The model is read in world coordinates (any parent transform applied) and converted to LPS, as
the AHA analysis and the export read it; the library's search
(:func:`cardioscar.simulation.channels.channels_of_mesh`) runs on it, and its per-node fields
``bz_channel`` and ``wall_depth``, the per-channel table and the colouring by channel are written
on the model only after it succeeded. The channels' centroids and entrances are in world LPS mm.

:func:`find_model_channels` is three steps, which the panel runs apart so that the middle one runs
in its worker process, with *Stop* (:meth:`CardioScarLogic.background.BackgroundRun.channels`):
read and check the inputs (:func:`read_channel_inputs`, scene only), search (no scene), and write
the result on the model (:func:`apply_channels`, which refuses a model edited meanwhile).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Optional

import numpy as np
import vtk

from cardioscar.errors import CardioScarError
from cardioscar.io.checks import check_output_dir
from cardioscar.io.meshio import Mesh
from cardioscar.simulation.channels import (CHANNEL_FIELD, DEPTH_FIELD, ChannelOptions, ChannelResult,
                                            channels_csv, channels_of_mesh, tissue_of_mesh,
                                            write_channel_tables)
from cardioscar.simulation.hidden_channels import MARGINAL_CORE_FIELD, marginal_core_fields
from cardioscar.simulation.opencarp import TAG_ARRAY

from .geometry import check_unchanged, model_points_lps, model_state, world_mesh_lps
from .results import PROBABILITY, fill_string_table, referenced_or_new, write_point_arrays
from .tissue import show_by_table, singleton_color_table
from .wording import LOGIC_CORE_MODEL_ADVICE, record_in_words, speaks_logic_words

#: Command-line option -> this Logic's parameter, for the library's one-line errors.
CHANNEL_NAMES = {"--mesh": "model_node", "--layers": "options.layers", "--layer-width": "options.layer_width",
                 "--max-width": "options.max_width_mm", "--min-length": "options.min_length_mm",
                 "--tags-field": "tags_field", "--tags": "tag_values",
                 "--scar-field": "scar_field", "--border-zone": "border_zone", "--core": "core"}
#: The model's reference to its channel table (one row per channel, ``channels.csv``'s columns).
CHANNEL_TABLE_REFERENCE = "CardioScarChannelTable"
#: The scene's colour table of the channel ids (singleton tag).
CHANNEL_COLOR_TAG = "CardioScarChannels"
#: Channel colours, cycled by id (0, no channel, is light grey).
CHANNEL_COLORS = ((0.90, 0.10, 0.10), (0.10, 0.45, 0.90), (0.95, 0.65, 0.05), (0.55, 0.15, 0.75),
                  (0.05, 0.65, 0.35), (0.95, 0.35, 0.70), (0.45, 0.30, 0.15), (0.10, 0.75, 0.80))


def tissue_of_model(model_node, border_zone: float, core: float, tag_numbers: str = "1,2,3") -> dict:
    """Where the panel's search reads the tissue: the model's ``tissue_tag`` when *Tag* (or an
    export) wrote one (the thresholds were applied then; its values from the note written beside
    it, else ``tag_numbers``, the section's *Tag numbers*), else its ``scar_probability`` cut at
    ``border_zone`` / ``core`` (keyword arguments of :func:`find_model_channels`)."""
    from cardioscar.simulation.export import parse_tags
    from cardioscar.simulation.opencarp import recorded_tag_values

    mesh = model_node.GetMesh()
    if mesh is None or mesh.GetPointData().GetArray(TAG_ARRAY) is None:
        return {"scar_field": PROBABILITY, "border_zone": border_zone, "core": core}
    return {} if recorded_tag_values(mesh) is not None else {"tag_values": parse_tags(tag_numbers)}


@dataclass
class LogicChannelResult(ChannelResult):
    """The library's result of a search the Logic ran (:func:`find_model_channels`), whose
    :meth:`summary` names the Logic's parameters. Why: the library's summary names the command
    line's options ("2 shorter than --min-length dropped", "lower --core"), which a console user
    never typed, and a method's text cannot be reworded by :func:`speaks_logic_words` as an error or
    a log record is; :meth:`library_summary` keeps the library's words, which the batch script words
    in its own options. ``bands_note`` likewise (its advice to tag from a core model), the library's
    in ``library_bands_note``."""

    #: ``bands_note`` in the library's words.
    library_bands_note: str = ""

    @classmethod
    def of(cls, result: ChannelResult) -> "LogicChannelResult":
        """``result``'s fields, with this class's summary and its ``bands_note`` in the Logic's words."""
        found = cls(**{item.name: getattr(result, item.name) for item in fields(ChannelResult)})
        found.library_bands_note = result.bands_note
        found.bands_note = record_in_words(result.bands_note, CHANNEL_NAMES, LOGIC_CORE_MODEL_ADVICE)
        return found

    def summary(self) -> str:
        """The library's summary with each option named as the Logic's parameter (:data:`CHANNEL_NAMES`)."""
        return record_in_words(self.library_summary(), CHANNEL_NAMES, LOGIC_CORE_MODEL_ADVICE)

    def library_summary(self) -> str:
        """The library's summary, in the command line's words."""
        return super().summary()


@dataclass
class ChannelJob:
    """What a channel search reads from the scene, checked: the model's mesh in world LPS (its
    arrays included), the options and tissue keywords, and ``state``, the checksums of the model's
    points, cells and the fields the search reads (:func:`apply_channels`)."""

    model_name: str
    world_mesh: vtk.vtkDataSet
    options: ChannelOptions
    tissue: dict
    state: dict


@speaks_logic_words(CHANNEL_NAMES, LOGIC_CORE_MODEL_ADVICE)
def read_channel_inputs(model_node, options: ChannelOptions = ChannelOptions(), **tissue) -> ChannelJob:
    """Read and check what the search needs from the scene (the options and the tissue here, before
    any worker); changes nothing. ``tissue``: ``tags_field``, ``tag_values``, ``scar_field``, ``border_zone``, ``core``."""
    options.check()
    if model_node is None or model_node.GetMesh() is None:
        raise CardioScarError("Choose the model to search (a tagged or predicted volumetric model).")
    points = model_points_lps(model_node)
    world = world_mesh_lps(model_node, points)
    tissue_of_mesh(Mesh(dataset=world, space="LPS", path=None), **tissue)  # its refusals before any worker starts
    fields = [tissue.get("tags_field") or TAG_ARRAY, tissue.get("scar_field") or PROBABILITY]  # what it may read
    return ChannelJob(model_node.GetName(), world, options, dict(tissue), model_state(model_node, fields, points))


def channel_color_node(scene, n_channels: int):
    """The scene's channel colour table: 0 light grey, channel k the palette's colour k (cycled)."""
    node = singleton_color_table(scene, CHANNEL_COLOR_TAG, "CardioScar conducting channels")
    node.SetNumberOfColors(n_channels + 1)
    node.SetColor(0, "no channel", 0.85, 0.85, 0.85, 1.0)
    for channel in range(1, n_channels + 1):
        r, g, b = CHANNEL_COLORS[(channel - 1) % len(CHANNEL_COLORS)]
        node.SetColor(channel, f"channel {channel}", r, g, b, 1.0)
    return node


def _show_channels(model_node, n_channels: int) -> None:
    """Colour the model by ``bz_channel``, one colour per channel."""
    show_by_table(model_node, CHANNEL_FIELD, vtk.vtkAssignAttribute.POINT_DATA,
                  channel_color_node(model_node.GetScene(), n_channels), max(n_channels, 1))


def update_channel_table(model_node, csv_text: str):
    """The model's channel table node (created on first use): ``channels.csv``'s columns and rows."""
    lines = csv_text.splitlines()
    table = referenced_or_new(model_node, CHANNEL_TABLE_REFERENCE, "vtkMRMLTableNode",
                              f"{model_node.GetName()} conducting channels")
    return fill_string_table(table, lines[0].split(","), [line.split(",") for line in lines[1:]])


def check_channels_fit(model_node, n_nodes: int, state: Optional[dict] = None) -> None:
    """Refuse a model that left the scene, no longer has the ``n_nodes`` searched, or (given the
    ``state`` of its :class:`ChannelJob`) changed since its inputs were read."""
    mesh = model_node.GetMesh()
    if model_node.GetScene() is None or mesh is None:
        raise CardioScarError(f"The model '{model_node.GetName()}' was removed during the channel search: nothing was "
                              "written")
    if mesh.GetNumberOfPoints() != n_nodes:
        raise CardioScarError(f"The model '{model_node.GetName()}' changed during the channel search (now "
                              f"{mesh.GetNumberOfPoints()} nodes, searched {n_nodes}): nothing was written; run it again")
    if state:
        check_unchanged(model_node, state, "the channel search")


def apply_channels(model_node, node_channel: np.ndarray, depth: np.ndarray, csv_text: str,
                   state: Optional[dict] = None, marginal_core: Optional[np.ndarray] = None):
    """Write a finished search on the model: ``bz_channel`` and ``wall_depth``, ``core_marginal``
    (the core that may hide a narrow corridor, when the search had a probability; else an earlier
    one removed), the channel table and the colouring by channel (after :func:`check_channels_fit`,
    so a refusal writes nothing). Returns the table node."""
    check_channels_fit(model_node, len(node_channel), state)
    write_point_arrays(model_node, {CHANNEL_FIELD: np.asarray(node_channel, np.int32), DEPTH_FIELD: depth,
                                    MARGINAL_CORE_FIELD: marginal_core})
    _show_channels(model_node, int(np.max(node_channel, initial=0)))
    return update_channel_table(model_node, csv_text)


@speaks_logic_words(CHANNEL_NAMES, LOGIC_CORE_MODEL_ADVICE)
def find_model_channels(model_node, options: ChannelOptions = ChannelOptions(), tags_field: Optional[str] = None,
                        tag_values: Optional[tuple[int, int, int]] = None, scar_field: Optional[str] = None,
                        border_zone: Optional[float] = None, core: Optional[float] = None, *,
                        output_dir: Optional[str | Path] = None) -> LogicChannelResult:
    """The model's channels per layer (``options``), from its ``tissue_tag`` (as *Tag* writes it) or
    ``scar_field`` cut at ``border_zone`` / ``core``; writes ``bz_channel``, ``wall_depth``,
    ``core_marginal`` (with a probability), the channel table and the colouring on the model (and,
    with ``output_dir``, ``channels.csv`` and ``channels.json`` there first, the folder checked
    before the search) and returns the library's
    result (channels in world LPS mm, per-layer counts; ``result.hidden``: how much of the core may
    hide a corridor too narrow for the reconstruction, logged as a warning), its summary in this
    call's words (:class:`LogicChannelResult`)."""
    if output_dir is not None:
        check_output_dir(output_dir, "output_dir")
    job = read_channel_inputs(model_node, options, tags_field=tags_field, tag_values=tag_values,
                              scar_field=scar_field, border_zone=border_zone, core=core)
    result, tissue = channels_of_mesh(Mesh(dataset=job.world_mesh, space="LPS", path=None), options, **job.tissue)
    if output_dir is not None:
        write_channel_tables(result, tissue, options, output_dir)
    apply_channels(model_node, result.node_channel, result.depth, channels_csv(result.channels),
                   marginal_core=marginal_core_fields(result.hidden)[MARGINAL_CORE_FIELD])
    return LogicChannelResult.of(result)


__all__ = ["CHANNEL_NAMES", "CHANNEL_TABLE_REFERENCE", "ChannelJob", "LogicChannelResult", "apply_channels", "channel_color_node", "check_channels_fit",
           "find_model_channels", "read_channel_inputs", "tissue_of_model", "update_channel_table"]
