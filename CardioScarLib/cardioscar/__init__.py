"""CardioScar: 3D myocardial scar reconstruction from sparse 2D LGE-CMR slices.

The package is the pure-Python core shared by the ``cardioscar`` command line and the
3D Slicer module. It never imports Qt or Slicer. Its modules are grouped by stage
(``io``, ``prepare``, ``fit``, ``predict``, ``evaluate``, ``phantoms``, ...); the flat names
they had before (``cardioscar.training``, ...) still import the same modules (:mod:`.old_names`).
"""

from cardioscar import old_names as _old_names

__version__ = "1.0.0"

_old_names.install()


def __getattr__(name: str):
    return _old_names.alias_attribute(name)
