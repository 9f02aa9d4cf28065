"""Qt-free Logic of the CardioScar Slicer module (shared by the panel, the console and batch mode).

Importing this package needs MRML (the Slicer application or ``pip install slicer-core``) and
the ``cardioscar`` package, but not torch: torch is imported when a run starts.
"""

from .aha import AhaInputs, AhaSceneResult
from .headless import (MRMLContext, check_mesh_output, create_scene, ensure_scene, load_mask, load_model,
                       load_segmentation, load_volume, save_model)
from .logic import CardioScarLogic, ReconstructionResult
from .options import PRESETS, ReconstructionOptions
from .slabwidth import half_width

__all__ = ["CardioScarLogic", "ReconstructionResult", "ReconstructionOptions", "PRESETS", "half_width",
           "MRMLContext", "create_scene", "ensure_scene", "load_volume", "load_segmentation", "load_mask", "load_model",
           "check_mesh_output",
           "save_model", "AhaInputs", "AhaSceneResult"]
