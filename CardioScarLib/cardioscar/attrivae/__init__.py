"""Attri-VAE: interpretable MI classification from an LGE volume and its labels.

A 3D convolutional VAE whose first latent dimensions are each tied to one attribute (LV volume,
myocardial volume, wall thickness, clinical values) by a pairwise ordering regulariser, an MLP on
the latent that classifies MI vs normal, and Grad-CAM attention maps per attribute (after Cetin et
al., Comput Med Imaging Graph 104, 2023). Modules: ``preprocess`` (crop, mask, gamma, resize and the
way back to the image grid), ``attributes``, ``model``, ``losses``, ``train`` (stratified
cross-validation + final model), ``checkpoint``, ``predict``, ``gradcam``, ``traversal``,
``explain``, ``synthetic`` and ``demo``.
"""
