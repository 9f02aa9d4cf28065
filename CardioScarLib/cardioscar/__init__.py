"""CardioScar: 3D myocardial scar reconstruction from sparse 2D LGE-CMR slices.

The package is the pure-Python core shared by the ``cardioscar`` command line and the
3D Slicer module. It never imports Qt or Slicer.
"""

__version__ = "1.0.0"
