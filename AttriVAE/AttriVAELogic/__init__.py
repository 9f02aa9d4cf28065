"""Qt-free Logic of the Attri-VAE Slicer module (shared by the panel and the Python console).

Importing it needs MRML (the Slicer application or ``pip install slicer-core``), the
``cardioscar`` package and the CardioScar module's Logic package (installed beside it by the
same extension), but not torch: the model runs in ``cardioscar attrivae`` in a worker process.
"""

from .logic import DEFAULT_OPACITY, AttriVAELogic, ExplanationResult, PredictionResult
from .options import DEVICES, LABEL_CONVENTIONS, AttriVAEOptions

__all__ = ["AttriVAELogic", "AttriVAEOptions", "PredictionResult", "ExplanationResult", "LABEL_CONVENTIONS",
           "DEVICES", "DEFAULT_OPACITY"]
