"""What the bull's-eye PNG must show: each segment painted in its value's colour, the
territory outline drawn in black on the ring boundaries between territories, and no label written
over another (a segment's over another's, a territory's name over a compass word)."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")
import matplotlib.cm  # noqa: E402
import matplotlib.colors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from cardioscar.aha.bullseye import (  # noqa: E402
    NOT_COVERED, NOT_COVERED_LEGEND, bullseye_figure, draw_bullseye, segment_at, segment_span)


def _render(values: dict) -> tuple[np.ndarray, object]:
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    draw_bullseye(ax, values, title="", vmin=0.0, vmax=100.0, cmap="Reds", fmt="")
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(float) / 255.0
    transform = ax.transData
    plt.close(fig)
    return image, transform


def _pixel(image: np.ndarray, transform, x: float, y: float) -> np.ndarray:
    px, py = transform.transform((x, y))
    return image[image.shape[0] - int(round(py)), int(round(px))]


def test_segments_painted_in_their_values_colours_and_territories_outlined():
    values = {segment: 6.0 * segment for segment in range(1, 18)}
    values[5] = None  # grey
    image, transform = _render(values)
    mapping = matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(0, 100), cmap="Reds")
    for segment in range(1, 18):
        inner, outer, start, end = segment_span(segment)
        # a point off the labels: near the outer edge, a quarter into the sector
        angle = np.radians(start + 0.25 * (end - start)) if segment != 17 else np.radians(45.0)
        radius = inner + 0.8 * (outer - inner) if segment != 17 else 0.75
        got = _pixel(image, transform, radius * np.cos(angle), radius * np.sin(angle))
        want = np.array((0.85, 0.85, 0.85)) if values[segment] is None else np.array(mapping.to_rgba(values[segment])[:3])
        assert np.abs(got - want).max() < 0.02, (segment, got, want)
    # the outer rim (radius 4) borders the outside all round, so it is outlined in black
    assert _pixel(image, transform, 0.0, 4.0).max() < 0.2
    assert _pixel(image, transform, -4.0, 0.0).max() < 0.2


def _neighbours() -> list[tuple[int, int]]:
    """Every two segments that share an edge, read off the drawn layout: across a ring boundary
    (a basal segment and the mid one inside it, the apex and an apical one) or along a ring."""
    pairs = set()
    for degree in np.arange(0.5, 360.0, 1.0):
        for radius in (1.0, 2.0, 3.0):
            pairs.add(frozenset((segment_at(radius - 1e-3, degree), segment_at(radius + 1e-3, degree))))
        for middle in (1.5, 2.5, 3.5):
            pairs.add(frozenset((segment_at(middle, degree - 0.5), segment_at(middle, degree + 0.5))))
    return sorted(tuple(sorted(pair)) for pair in pairs if len(pair) == 2)  # one order for every worker


#: None, every single segment, every two neighbours, each whole ring (the apex is a single) and all 17.
UNCOVERED = ({"none": set()} | {f"{s}": {s} for s in range(1, 18)} | {f"{a}+{b}": {a, b} for a, b in _neighbours()}
             | {"apical ring": set(range(13, 17)), "apical ring and apex": set(range(13, 18)),
                "mid ring": set(range(7, 13)), "basal ring": set(range(1, 7)), "all 17": set(range(1, 18))})
#: The compass words and the territories' names, written at fixed places whatever is covered.
FIXED = {"anterior", "septal", "inferior", "lateral", "LAD", "RCA", "LCx"}


@pytest.mark.parametrize("uncovered", UNCOVERED.values(), ids=UNCOVERED.keys())
def test_no_label_overlaps_another_whatever_is_not_covered(uncovered):
    """Slices that miss segments leave them not covered: their "not covered" ran into the
    neighbours' writing (the apex's and 16's, a basal segment's and the mid one inside it, 15's
    over 10's number), and with every segment covered "LCx" ran into "lateral". Checked on the
    text boxes as drawn in ``aha``'s figure, not by eye: no segment's number or mark, no
    territory's name or compass word, not the legend and not the title overlaps anything else
    written (a segment's number and its own value may touch). Two discs: the MC spread's, whose
    values are the widest written ("0.123"), and the truth's scar, which is drawn even with no
    value, so that all 17 not covered has a disc."""
    rows = [{"segment": s, "covered": s not in uncovered}
            | {key: None if s in uncovered else value
               for key, value in (("scar_pct", 40.0), ("uncertainty_mean", 0.123))}
            for s in range(1, 18)]
    fig = bullseye_figure([row | {"scar_pct": None} for row in rows], reference_rows=rows)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    discs = [axis for axis in fig.axes if axis.get_title()]
    assert len(discs) == (1 if len(uncovered) == 17 else 2)
    for disc in discs:
        texts = disc.texts[:34]  # draw_bullseye writes each segment's number, then its text, segment 1 first
        assert [t.get_text() for t in texts[::2]] == [str(s) for s in range(1, 18)]
        assert [s for s, t in enumerate(texts[1::2], 1) if t.get_text() == NOT_COVERED] == sorted(uncovered)
        legend = [t for t in disc.texts[34:] if t.get_text() not in FIXED]
        assert [t.get_text() for t in legend] == ([NOT_COVERED_LEGEND] if uncovered else [])
        assert {t.get_text() for t in disc.texts[34:]} - {NOT_COVERED_LEGEND} == FIXED
        # the segments write two texts each; every other label is a writer of its own
        writers = [index // 2 + 1 for index in range(34)] + [-index for index in range(len(disc.texts) - 33)]
        boxes = [(writer, text.get_text(), text.get_window_extent(renderer))
                 for writer, text in zip(writers, [*disc.texts, disc.title])]
        overlapping = [(a, text_a, b, text_b) for (a, text_a, box_a), (b, text_b, box_b)
                       in itertools.combinations(boxes, 2)
                       if a != b and box_a.overlaps(box_b)]
        assert overlapping == [], disc.get_title()


def test_a_disc_with_every_segment_covered_has_no_legend():
    """The legend line says what the mark means only where a segment carries it."""
    fig = bullseye_figure([{"segment": s, "covered": True, "scar_pct": 40.0} for s in range(1, 18)])
    (disc,) = [axis for axis in fig.axes if axis.get_title()]
    assert {t.get_text() for t in disc.texts[34:]} == FIXED
