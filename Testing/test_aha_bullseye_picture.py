"""What the bull's-eye PNG must show: each segment painted in its value's colour, the
territory outline drawn in black on the ring boundaries between territories."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.cm  # noqa: E402
import matplotlib.colors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cardioscar.aha.bullseye import draw_bullseye, segment_span  # noqa: E402


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
