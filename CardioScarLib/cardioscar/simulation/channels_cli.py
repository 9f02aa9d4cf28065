"""``cardioscar channels``: border-zone conducting channels, layer by layer through the wall.

The verb's parser and handler, registered by ``cli.py`` with one line, as ``export`` is (the
``commands/`` package holds the verbs that had flat module names before it); the work is
:func:`cardioscar.simulation.channels.run_channels`, imported only when the verb runs (it
imports VTK and SciPy).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger("cardioscar")


def layer_depths(text: str) -> tuple[float, ...]:
    """Comma-separated depths (shares of the wall), e.g. 0.1,0.5,0.9; () when the text is none
    (every face's reader: ``--layers``, the batch script's ``--channel-layers``, the panel's box)."""
    try:
        return tuple(float(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        return ()


def depths(text: str) -> tuple[float, ...]:
    """``--layers``: comma-separated depths (shares of the wall), e.g. 0.1,0.5,0.9."""
    values = layer_depths(text)
    if not values:
        raise argparse.ArgumentTypeError(f"must be comma-separated depths between 0 and 1, e.g. 0.1,0.5,0.9 (got {text!r})")
    return values


def _tag_values(text: str) -> tuple[int, int, int]:
    from cardioscar.simulation.export import parse_tags

    return parse_tags(text)


def search_arguments(args: argparse.Namespace) -> tuple:
    """The verb's options as :func:`~cardioscar.simulation.channels.run_channels` reads them: the
    ``ChannelOptions`` (its defaults for those not given) and the tissue's keywords."""
    from cardioscar.simulation.channels import ChannelOptions

    options = ChannelOptions.given(layers=args.layers, layer_width=args.layer_width, max_width_mm=args.max_width,
                                   min_length_mm=args.min_length)
    tissue = {"tags_field": args.tags_field, "tag_values": None if args.tags is None else _tag_values(args.tags),
              "scar_field": args.scar_field, "border_zone": args.border_zone, "core": args.core}
    return options, tissue


def _run(args: argparse.Namespace) -> None:
    from cardioscar.io.checks import check_channel_options, check_output_dir, check_vtk_file

    # run_channels' own checks, in its order, before it loads VTK and SciPy: a refusal costs no import
    check_channel_options(args.layers, args.layer_width, args.max_width, args.min_length)
    check_output_dir(args.output_dir)
    check_vtk_file(args.mesh)
    from cardioscar.simulation.channels import run_channels
    from cardioscar.simulation.open_cut import open_cut_note

    options, tissue = search_arguments(args)
    result = run_channels(args.mesh, args.output_dir, options, **tissue)
    for channel in result.channels:
        row = channel.row()
        logger.info("channel %d: layer %g, %d nodes, %.1f mm, %d entrances, centroid LPS %s%s", row["channel"],
                    row["layer"], row["nodes"], row["length_mm"], row["entrances"], row["centroid_lps"],
                    open_cut_note(row))
    logger.info("Wrote %s", ", ".join(str(Path(args.output_dir) / name) for name in ("channels.csv", "channels.json")))


def register(subparsers) -> None:
    """Add the ``channels`` verb to the ``cardioscar`` command line."""
    # the defaults are ChannelOptions' (the module imports VTK: not while the parser is built)
    verb = subparsers.add_parser(
        "channels", help="border-zone conducting channels through the core, per transmural layer (VT ablation aid; "
                         "on one field's tags, corridors of its lower probability band through its top band)",
        description="Writes OUTPUT_DIR/channels.csv, channels.json and channels_mesh.<ext> (point fields bz_channel, "
                    "wall_depth and, from a probability, core_marginal: the top band within 0.1 of its threshold, "
                    "where a corridor narrower than about 8 mm may have been raised into it). Points in the tables "
                    "are LPS mm. Needs a volumetric LV mesh. Two fields' tags (export --core-mesh) are border-zone and "
                    "core tissue; one field cut at two probabilities (a probability searched here, or one field's "
                    "tags) is two probability bands, not tissue: what the search calls border zone and core there "
                    "is its lower band and its top band, and it warns so.")
    verb.add_argument("--mesh", required=True, type=Path,
                      help="tagged mesh (export --format vtu: tissue_tag) or predicted mesh (apply: scar_probability)")
    verb.add_argument("--output-dir", required=True, type=Path)
    verb.add_argument("--layers", type=depths, default=None,
                      help="depths searched, shares of the wall from the endocardium (default 0.1,0.2,...,0.9)")
    verb.add_argument("--layer-width", type=float, default=None,
                      help="each layer's band of depth, a share of the wall (default 0.2)")
    verb.add_argument("--max-width", type=float, default=None,
                      help="widest gap in the core (mm) that counts as a channel (default 10)")
    verb.add_argument("--min-length", type=float, default=None,
                      help="shortest channel kept (mm between its entrances; shorter ones are counted as dropped in "
                           "channels.json; default 10, 0 keeps every channel)")
    verb.add_argument("--tags-field", default=None,
                      help="point field of tissue tags (default tissue_tag when the mesh has it)")
    verb.add_argument("--tags", default=None, metavar="HEALTHY,BORDER,CORE",
                      help="the tag values of --tags-field (default: the note export writes beside tissue_tag)")
    verb.add_argument("--scar-field", default=None,
                      help="tag from this probability field instead (default scar_probability when there are no tags)")
    verb.add_argument("--border-zone", type=float, default=None,
                      help="with a probability: where its lower band starts (0.5; one field's bands, not tissue)")
    verb.add_argument("--core", type=float, default=None,
                      help="with a probability: where its top band starts (0.8)")
    verb.set_defaults(handler=_run)
