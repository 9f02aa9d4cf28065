"""Border-zone conducting channels of a model node in the scene (Qt-free), for the Python console
and batch mode.

The model is read in world coordinates (any parent transform applied) and converted to LPS, as
the AHA analysis and the export read it; the library's search
(:func:`cardioscar.simulation.channels.channels_of_mesh`) runs on it, and its per-node fields
``bz_channel`` and ``wall_depth`` are written on the model's mesh only after it succeeded. The
channels' centroids and entrances are in world LPS mm.
"""

from __future__ import annotations

from typing import Optional

from cardioscar.io.meshio import Mesh
from cardioscar.simulation.channels import (CHANNEL_FIELD, DEPTH_FIELD, ChannelOptions, ChannelResult,
                                            channels_of_mesh)

from .geometry import model_points_lps, world_mesh_lps
from .results import write_point_arrays
from .wording import speaks_logic_words

#: Command-line option -> this Logic's parameter, for the library's one-line errors.
CHANNEL_NAMES = {"--mesh": "model_node", "--layers": "options.layers", "--layer-width": "options.layer_width",
                 "--max-width": "options.max_width_mm", "--tags-field": "tags_field", "--tags": "tag_values",
                 "--scar-field": "scar_field", "--border-zone": "border_zone", "--core": "core"}


@speaks_logic_words(CHANNEL_NAMES)
def find_model_channels(model_node, options: ChannelOptions = ChannelOptions(), tags_field: Optional[str] = None,
                        tag_values: Optional[tuple[int, int, int]] = None, scar_field: Optional[str] = None,
                        border_zone: Optional[float] = None, core: Optional[float] = None) -> ChannelResult:
    """The model's channels per layer (``options``), from its ``tissue_tag`` (as *Tag* writes it) or
    ``scar_field`` cut at ``border_zone`` / ``core``; writes ``bz_channel`` and ``wall_depth`` on the
    model and returns the library's result (channels in world LPS mm, per-layer counts)."""
    points = model_points_lps(model_node)
    mesh = Mesh(dataset=world_mesh_lps(model_node, points), space="LPS", path=None)
    result, _ = channels_of_mesh(mesh, options, tags_field=tags_field, tag_values=tag_values, scar_field=scar_field,
                                 border_zone=border_zone, core=core)
    write_point_arrays(model_node, {CHANNEL_FIELD: result.node_channel, DEPTH_FIELD: result.depth})
    return result
