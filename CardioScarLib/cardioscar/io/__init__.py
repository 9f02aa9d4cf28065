"""Files in and out: images (SimpleITK) and meshes (VTK) read in LPS with clear errors, atomic
writes, and the output-path checks every face runs before any work.

The first and last step of every run; the stages in between only see arrays and ``Mesh``."""
