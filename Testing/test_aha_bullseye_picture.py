"""What the bull's-eye PNG must show: each segment painted in its value's colour, the
territory outline drawn in black on the ring boundaries between territories, and no segment's
writing over another's."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")
import matplotlib.cm  # noqa: E402
import matplotlib.colors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from cardioscar.aha.bullseye import bullseye_figure, draw_bullseye, segment_span  # noqa: E402


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


@pytest.mark.parametrize("uncovered", [{16, 17}, {14, 17}, {13, 14, 16, 17}],
                         ids=["16+apex", "14+apex", "apical"])
def test_not_covered_labels_of_the_apex_and_the_apical_ring_do_not_overlap(uncovered):
    """Slices that stop short of the apex leave the cap (17) and apical segments not covered: the
    apex's "not covered" and segment 16's (14's) were written over each other. Checked on the text
    boxes as drawn in ``aha``'s figure of three discs, not by eye."""
    rows = [{"segment": s, "covered": s not in uncovered}
            | {key: None if s in uncovered else value for key, value in
               (("scar_pct", 40.0), ("transmurality_mean_pct", 60.0), ("error_risk_mean", 0.2))}
            for s in range(1, 18)]
    fig = bullseye_figure(rows)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    discs = [axis for axis in fig.axes if axis.get_title()]
    assert len(discs) == 3
    for disc in discs:
        texts = disc.texts[:34]  # draw_bullseye writes each segment's number, then its text, segment 1 first
        assert [t.get_text() for t in texts[::2]] == [str(s) for s in range(1, 18)]
        assert sum(t.get_text() == "not\ncovered" for t in texts[1::2]) == len(uncovered)
        boxes = [(index // 2 + 1, text.get_window_extent(renderer)) for index, text in enumerate(texts)]
        overlapping = [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2)
                       if a != b and box_a.overlaps(box_b)]
        assert overlapping == [], disc.get_title()
