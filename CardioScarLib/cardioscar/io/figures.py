"""Figures drawn without pyplot.

The library runs inside other programs' Python: 3D Slicer's session, a Jupyter kernel, a user's
script, Dask worker threads. pyplot's backend and its registry of open figures belong to that whole
process: ``matplotlib.use("Agg")`` in a library call switched the user's plotting backend for the
rest of their session, and each figure pyplot made stayed in its registry until someone closed it
(memory that a long Slicer session never got back after a failed write). A
:class:`~matplotlib.figure.Figure` with its own Agg canvas touches neither, and is freed like any
other object once nothing refers to it.
"""

from __future__ import annotations


def new_figure(**kwargs):
    """A :class:`~matplotlib.figure.Figure` (``kwargs`` as it takes them) drawn by Agg whatever
    backend pyplot uses; imported here, not at the top, so that the commands that draw nothing do
    not pay for matplotlib."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(**kwargs)
    FigureCanvasAgg(figure)
    return figure


def render_figure(fig, path, dpi: int = 110) -> None:
    """Lay ``fig`` out tight (no title or label cut off) and write it to ``path`` as it is: the
    caller places it, alone (:func:`cardioscar.cohort.summary.save_figure`) or with the files it is
    read with (an explanation's set)."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
