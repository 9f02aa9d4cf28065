"""From images to training groups: acquired slices (``SliceLayer``), their targets in [0, 1],
the myocardium restriction, the partial-volume correction and the node -> pixel-group mapping;
also the mesh built from a label stack when there is no mesh.

This is what ``cardioscar prepare`` runs (through :mod:`cardioscar.logic`)."""
