"""Using a trained field on a mesh: MC-dropout prediction, the risk that the call at 0.5 is
wrong, and the check that the mesh is in the training mesh's units.

This is what ``cardioscar apply`` runs (through :mod:`cardioscar.logic`)."""
