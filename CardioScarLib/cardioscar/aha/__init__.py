"""AHA 17-segment scar burden, transmurality and the bull's-eye plot (Cerqueira et al. 2002).

``analyse_mesh`` segments a reconstructed mesh and measures it per segment (``check_frame`` finds
its frame alone, before a training); ``run_aha`` reads and writes files (``aha.csv``, ``aha.json``,
``bullseye.png``, the mesh with ``aha_segment``).
The convention is stated in :mod:`cardioscar.aha.segments`.
"""

from .analysis import AhaOptions, AhaResult, LabelMap, analyse_mesh, check_frame, run_aha, write_outputs
from .segments import SEGMENTS, TERRITORY_OF, TERRITORY_SEGMENTS

__all__ = ["AhaOptions", "AhaResult", "LabelMap", "analyse_mesh", "check_frame", "run_aha", "write_outputs",
           "SEGMENTS", "TERRITORY_OF", "TERRITORY_SEGMENTS"]
