"""Fitting the scar field: the coordinate scaler, the MC-dropout network, group batches, the CPU
training step, the training loop, the device choice and the checkpoint.

This is what ``cardioscar train`` and ``fine-tune`` run (through :mod:`cardioscar.logic`)."""
