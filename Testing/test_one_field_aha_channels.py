"""``aha --tags-field tissue_tag`` and the channel search on one field's probability bands.

One scar field cut at two probabilities is two bands of one quantity, not a border zone and a core
(``test_one_field_bands``). ``aha`` counted them per segment as ``border_zone_pct`` and ``core_pct``
and the channel search as "border-zone channels through the core". The export now notes beside
``tissue_tag`` whether its tags are two fields' tissue or one field's bands, since ``aha`` and
``channels`` read the ``.vtu`` without its sidecar: ``aha`` then writes ``band_pct`` and
``top_band_pct`` and warns once, the channel search warns once and says so in ``channels.json``;
two fields' output keeps its names, and a ``.vtu`` without the note (an older export) is read as before.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from cardioscar.aha import AhaOptions, analyse_mesh
from cardioscar.aha.analysis import tag_classes_of
from cardioscar.cli import main
from cardioscar.io.meshio import Mesh, read_mesh, set_text_field, write_mesh
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom
from cardioscar.simulation import channels, opencarp
from cardioscar.simulation.opencarp import TAG_ARRAY, TAG_VALUES_ARRAY
from cardioscar.simulation.tags import FILE_CORE_MODEL_ADVICE
from test_channels import Wall

BANDS_SAID = "is one scar field cut at two probabilities (probability band 0.5-0.8; probability >= 0.8), not border-zone"
CHANNELS_SAID = "the channels found are corridors of intermediate probability through confident scar"
#: The caveat of a narrow corridor hidden in what the search crosses, on one field's bands (its tissue
#: words, "a border-zone corridor ... filled with core", were kept there before).
BANDS_CAVEAT = ("a corridor of the lower probability band narrower than about 8 mm may have been raised into the top "
                "band by the reconstruction, so no channel through the top band is not evidence of none")
TISSUE_CAVEAT = ("a border-zone corridor narrower than about 8 mm may have been filled with core by the reconstruction, "
                 "so no channel through the core is not evidence of none")


@pytest.fixture(scope="module")
def heart(tmp_path_factory):
    """A 3000-node LAD phantom with a scar field (its truth x 1.2: 0.5-0.8 and >= 0.8 both present)
    and a core field, exported as a one-field and a two-field tagged ``.vtu``."""
    phantom = make_phantom(PhantomConfig(target_nodes=3000, seed=0, territories=("LAD",)))
    folder = tmp_path_factory.mktemp("heart")
    scar = np.clip(phantom.truth * 1.2, 0.0, 1.0)
    write_mesh(Mesh(dataset=phantom.mesh, space="LPS"), folder / "pred.vtk",
               {"scar_probability": scar, "core_probability": (scar >= 0.8).astype(float)})
    for name, extra in (("one", []), ("two", ["--core-field", "core_probability"])):
        assert main(["export", "--mesh", str(folder / "pred.vtk"), "--format", "vtu", "--output",
                     str(folder / f"{name}.vtu"), *extra]) == 0
    geometry = phantom.geometry
    rv = [geometry.to_lps(geometry.wall_to_local(np.array([0.5]), np.array([1.2]), np.array([math.radians(a)])))[0]
          for a in (30.0, 150.0)]
    return {"folder": folder, "rv": rv}


def _aha(heart, name: str, capsys) -> tuple[list[dict], dict, str]:
    out = heart["folder"] / f"aha_{name}"
    point = ",".join(f"{v:.4f}" for v in heart["rv"][0])
    assert main(["aha", "--mesh", str(heart["folder"] / f"{name}.vtu"), "--rv-point", point, "--tags-field",
                 TAG_ARRAY, "--transmurality", "off", "--output-dir", str(out)]) == 0
    with open(out / "aha.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return rows, json.loads((out / "aha.json").read_text(encoding="utf-8")), capsys.readouterr().err


def test_aha_counts_one_fields_bands_as_bands_and_two_fields_as_tissue(heart, capsys):
    rows, record, said = _aha(heart, "one", capsys)
    assert "band_pct" in rows[0] and "top_band_pct" in rows[0]
    assert "border_zone_pct" not in rows[0] and "core_pct" not in rows[0]
    assert record["classes"] == "bands"
    assert record["bands"] == {"band_pct": "probability band 0.5-0.8", "top_band_pct": "probability >= 0.8"}
    lv = record["lv"]
    assert lv["top_band_pct"] > 0 and lv["band_pct"] > 0
    assert lv["band_pct"] + lv["top_band_pct"] == pytest.approx(lv["scar_pct"], abs=1e-6)  # scar = p >= 0.5
    assert said.count(BANDS_SAID) == 1, said
    assert "LV bands of one scar field by --tags-field tissue_tag: probability band 0.5-0.8 " in said

    # two fields (in process, no bull's-eye): the tissue classes' columns, as before, and no warning
    options = AhaOptions(field="scar_probability", rv_point=heart["rv"][0], tags_field=TAG_ARRAY, transmurality="off")
    two = analyse_mesh(read_mesh(heart["folder"] / "two.vtu"), options)
    assert "border_zone_pct" in two.rows[0] and "core_pct" in two.rows[0] and "band_pct" not in two.rows[0]
    assert two.summary["classes"] == "tissue" and "bands" not in two.summary
    assert "cut at two probabilities" not in capsys.readouterr().err

    # a .vtu without the note of its classes (an export before it was written) is read as before
    mesh = read_mesh(heart["folder"] / "one.vtu")
    set_text_field(mesh.dataset, TAG_VALUES_ARRAY, json.dumps({"healthy": 1, "border_zone": 2, "core": 3}))
    older = analyse_mesh(mesh, options)
    assert "border_zone_pct" in older.rows[0] and "classes" not in older.summary


def test_aha_reads_the_note_of_the_tags_classes_in_one_parse(heart, monkeypatch, caplog):
    """tag_classes_of read the note beside tissue_tag twice (its classes, then its bands' names)."""
    parsed = []
    real = opencarp._tag_note

    def counted(dataset) -> dict:
        parsed.append(dataset)
        return real(dataset)

    monkeypatch.setattr(opencarp, "_tag_note", counted)
    mesh = read_mesh(heart["folder"] / "one.vtu")
    found = tag_classes_of(mesh, AhaOptions(tags_field=TAG_ARRAY), "one.vtu")
    assert found == {"classes": "bands", "bands": {"band_pct": "probability band 0.5-0.8",
                                                   "top_band_pct": "probability >= 0.8"}}
    assert len(parsed) == 1


def test_channels_on_one_fields_bands_warn_once_and_two_fields_do_not(tmp_path, capsys):
    wall = Wall(6000)
    tags = wall.tags()
    scar = np.choose(tags - 1, [0.1, 0.6, 0.9])  # the corridor at 0.6, the core at 0.9
    write_mesh(Mesh(dataset=wall.grid, space="LPS", path=None), tmp_path / "pred.vtu",
               {"scar_probability": scar, "core_probability": (tags == 3).astype(float)})
    for name, extra in (("one", []), ("two", ["--core-field", "core_probability"])):
        assert main(["export", "--mesh", str(tmp_path / "pred.vtu"), "--format", "vtu", "--output",
                     str(tmp_path / f"{name}.vtu"), *extra]) == 0
    capsys.readouterr()
    found = {}
    for name in ("one", "two"):
        assert main(["channels", "--mesh", str(tmp_path / f"{name}.vtu"), "--layers", "0.1", "--output-dir",
                     str(tmp_path / f"ch_{name}")]) == 0
        err = capsys.readouterr().err
        found[name] = (json.loads((tmp_path / f"ch_{name}" / "channels.json").read_text(encoding="utf-8")),
                       [line for line in err.splitlines() if CHANNELS_SAID in line], err)
    record, said, err = found["one"]
    assert record["n_channels"] == 1 and record["classes"] == "bands" and CHANNELS_SAID in record["bands_note"]
    # the file's advice in no face's options: the panel reads it back and words it as its own
    assert record["bands_note"].endswith(f": {FILE_CORE_MODEL_ADVICE})") and "--" not in record["bands_note"]
    assert len(said) == 1 and said[0].startswith("one.vtu field 'tissue_tag': its tags are one scar field"), said
    # the caveat of a hidden corridor in the bands' words, in the log and channels.json (tags: no flag)
    note = record["hidden_corridors"]["note"]
    assert note.startswith(f"{BANDS_CAVEAT} (") and "top-band nodes; no core_marginal:" in note, note
    assert "the top band's margin" in record["hidden_corridors"]["basis"]
    assert f"one.vtu field 'tissue_tag': {BANDS_CAVEAT}" in err and "border-zone corridor" not in err, err
    record, said, err = found["two"]  # the same corridor from two fields: tissue, no note, no warning
    assert record["n_channels"] == 1 and record["classes"] == "tissue" and "bands_note" not in record and not said
    assert record["hidden_corridors"]["note"].startswith(f"{TISSUE_CAVEAT} (") and " core nodes; " in err
    # the API from a probability (always one field) says it in its result, named as bands
    result = channels.run_channels(tmp_path / "pred.vtu", None, channels.ChannelOptions(layers=(0.1,)),
                                   scar_field="scar_probability")
    assert CHANNELS_SAID in result.bands_note and len(result.channels) == 1
    hidden = result.hidden.summary()
    assert hidden.startswith(f"{BANDS_CAVEAT}: ") and " top-band nodes (" in hidden, hidden
    assert "of the top band's threshold (core_marginal)" in hidden, hidden


def test_no_channel_on_one_fields_bands_is_said_in_bands_and_on_two_fields_in_tissue():
    """The search's summary of no channel (no core in the layers; core without a corridor) in the
    words of the tags' classes; a tags field without the export's note keeps the tissue words."""
    empty = np.zeros(4, bool)
    for classes, without, none in (
            ("bands", "no node of the searched layers is in the top band, so no corridor of the lower probability "
                      "band can run through the top band; check the tags (or lower --core)",
             "(no corridor of the lower probability band through the top band with two entrances)"),
            (None, "no node of the searched layers is core, so no border-zone corridor can run through the core; "
                   "check the tags (or lower --core)",
             "(no border-zone corridor through the core with two entrances)")):
        for core_nodes, expected in ((0, without), (3, none)):
            result = channels.ChannelResult(channels=[], node_channel=np.zeros(4, np.int32), depth=np.zeros(4),
                                            layers=[{"layer": 0.5, "core_nodes": core_nodes}], classes=classes)
            assert expected in result.summary(), (classes, result.summary())
    assert "top band" not in channels.ChannelResult(channels=[], node_channel=empty, depth=empty,
                                                    layers=[{"core_nodes": 0}], classes="tissue").summary()
