"""The plain values a CardioScar run takes, with the command line's names and defaults.

One dataclass serves the panel (filled from the parameter node), the Python console and the
batch script (filled from ``cardioscar train`` / ``apply`` option names), so every face runs
with the same defaults. Training options left as ``None`` take the preset's value:
``"documented"`` is the existing tool's documented configuration, ``"fast"`` the interactive
preset of :meth:`cardioscar.fit.training.TrainingConfig.fast`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

from cardioscar.io.checks import SHAPE_PRIOR_WORDS, check_seed, check_threshold, shape_prior_word
from cardioscar.errors import CardioScarError
from cardioscar.lge.prepare import TARGETS
from cardioscar.prepare.mapping import check_slice_profile
from cardioscar.prepare.myocardium import check_margin
from cardioscar.prepare.slices import RECORDED, parse_half_thickness

from .wording import OPTION_FIELDS, OPTIONS_TRAINING_ADVICE, OWN_TRAINING_FIELDS, speaks_logic_words

PRESETS = ("documented", "fast")
#: The panel's training boxes (its parameter names) -> the TrainingConfig field each one sets.
PANEL_TRAINING_FIELDS = {"maxEpochs": "max_epochs", "earlyStoppingPatience": "early_stopping_patience",
                         "trainingMcSamples": "mc_samples", "shapePrior": "shape_prior"}
IntList = Union[str, Sequence[int], None]


def _int_list(value: IntList, parse) -> Optional[list[int]]:
    if value is None or isinstance(value, str):
        return parse(value)
    return [int(v) for v in value]


def _given(value: IntList) -> bool:
    """Whether a label list was given (the panel's empty box is not)."""
    return value is not None and (not isinstance(value, str) or bool(value.strip()))


def _half_thickness(value: Union[float, str]) -> Union[float, str]:
    """A slab half-width as given in Python or on a command line: mm > 0, or ``"auto"``."""
    try:
        width = parse_half_thickness(value) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        width = float("nan")
    if width != RECORDED and not width > 0:
        raise CardioScarError(f"slab half-width must be > 0 mm or 'auto' (half the slice thickness the DICOM files "
                              f"record), got {value!r}.")
    return width


@dataclass
class ReconstructionOptions:
    """Everything a reconstruction needs besides the input nodes.

    ``slice_indices`` / ``scar_labels`` take text (``"2,5,8"``) or a list; empty = all slices /
    not a label map (a label map node defaults to label 1). ``half_thickness``: the slab
    half-width in mm, or ``"auto"``: half the slice thickness each input's DICOM files record
    (see :mod:`CardioScarLogic.slabwidth`). ``mc_samples`` is the number of
    dropout passes averaged inside the training loss (``cardioscar train --mc-samples``);
    ``inference_mc_samples`` the number of passes that give the probability and its uncertainty
    (``cardioscar apply --mc-samples``). ``seed`` fixes training and the inference dropout masks.
    ``partial_volume_correction`` divides each pixel by the myocardial coverage of its footprint
    (``cardioscar prepare --partial-volume-correction``; needs a volumetric model).
    ``myocardium_labels`` (text or list) are the myocardium labels of a label-map input, or of the
    myocardium mask volume when one is given (``cardioscar prepare --myocardium-labels``);
    ``myocardium_segment`` names the myocardium segment of a segmentation input. Chosen pixels
    outside the myocardium then carry no constraint (:mod:`cardioscar.prepare.myocardium`).
    ``shape_prior``: learn a residual on the shape-based interpolation of the slices' scar
    (``cardioscar train --shape-prior on``, :mod:`cardioscar.shape_prior`): True (``"on"``), False
    (``"off"``), ``"auto"`` (on for drawn 0/1 targets over a stack only) or None, the preset's (documented off, fast auto).
    """

    slice_axis: str = "z"
    slice_indices: IntList = None
    half_thickness: Union[float, str] = 5.0
    scar_labels: IntList = None
    normalize_intensities: bool = False
    partial_volume_correction: bool = False
    myocardium_labels: IntList = None
    myocardium_segment: str = ""
    myocardium_margin: int = 0  # pixels just outside the myocardium that read its nearest pixel (cardioscar prepare --myocardium-margin)
    slice_profile: str = "box"  # the pixel's through-plane model, box or gaussian (cardioscar prepare --slice-profile)
    preset: str = "documented"
    shape_prior: Union[bool, str, None] = None
    max_epochs: Optional[int] = None
    early_stopping_patience: Optional[int] = None
    mc_samples: Optional[int] = None
    batch_size: Optional[int] = None
    seed: int = 42
    num_threads: Optional[int] = None
    inference_mc_samples: int = 10
    inference_batch_size: int = 50000
    threshold: Optional[float] = None
    force_cpu: bool = False
    extra_training: dict = field(default_factory=dict)
    # scar rule on raw LGE (cardioscar.lge): rule name, "BORDER,CORE" (empty = documented defaults),
    # what the network learns (scar or core), and the labels of the blood-pool label map (the
    # myocardium's are ``myocardium_labels`` above)
    scar_rule: Optional[str] = None
    scar_thresholds: Optional[str] = None
    scar_target: str = "scar"
    blood_pool_labels: IntList = None
    # the stored value of zero signal, subtracted before the rule (cardioscar prepare --intensity-offset)
    intensity_offset: float = 0.0
    # segment names when the rule's masks are segmentations (the myocardium's is ``myocardium_segment``)
    blood_pool_segment: str = ""
    remote_segment: str = ""
    # labels of the myocardium label map that the experts drew as scar (the rule grades only inside
    # them) and, of those, the ones that are core whatever their intensity (prepare --expert-*-labels)
    expert_scar_labels: IntList = None
    expert_core_labels: IntList = None
    # a dark-blood LGE (blood nulled): the check that the myocardium mask's cavity is the LGE's bright
    # blood pool is skipped (prepare --dark-blood-lge)
    dark_blood_lge: bool = False

    @speaks_logic_words(OPTION_FIELDS, OPTIONS_TRAINING_ADVICE)  # the fields' names, not the command line's options
    def __post_init__(self) -> None:
        if self.slice_axis not in ("x", "y", "z"):
            raise CardioScarError(f"slice axis must be x, y or z (image index axes i, j, k), got {self.slice_axis!r}.")
        self.half_thickness = _half_thickness(self.half_thickness)
        if self.half_thickness == RECORDED and self.slice_axis != "z":
            raise CardioScarError(f"slab half-width 'auto' is the slice thickness the DICOM files record, along z; "
                                  f"give it in mm to cut along {self.slice_axis}.")
        self.seed = check_seed(self.seed, "seed")
        check_margin(self.myocardium_margin)
        check_slice_profile(self.slice_profile)
        if self.myocardium_margin and self.scar_rule:
            raise CardioScarError("myocardium margin has no effect with a scar rule: the rule grades myocardium pixels "
                                  "only, so no pixel next to it has a value to widen; set the margin to 0.")
        replaced = [option for option, given in (("--scar-labels", _given(self.scar_labels)),
                                                 ("--normalize-intensities", self.normalize_intensities)) if given]
        if self.scar_rule and replaced:  # as prepare --scar-rule refuses them (cardioscar.logic.PreprocessingRequest)
            raise CardioScarError(f"{' and '.join(replaced)} {'have' if len(replaced) > 1 else 'has'} no effect with "
                                  f"--scar-rule {self.scar_rule}: the rule grades the raw LGE into the targets (for the "
                                  "experts' scar give --expert-scar-labels); leave "
                                  f"{'them' if len(replaced) > 1 else 'it'} out, or the rule.")
        if isinstance(self.shape_prior, str) and shape_prior_word(self.shape_prior) is not None:  # the panel's box
            self.shape_prior = shape_prior_word(self.shape_prior)
        if not (self.shape_prior is None or isinstance(self.shape_prior, bool) or self.shape_prior == "auto"):
            raise CardioScarError(f"shape prior must be True, False, 'auto' or None (the preset's), "
                                  f"got {self.shape_prior!r}.")
        if self.preset not in PRESETS:
            raise CardioScarError(f"preset must be one of {', '.join(PRESETS)}, got {self.preset!r}.")
        if self.threshold is not None:
            self.threshold = check_threshold(self.threshold, "threshold")
        if int(self.inference_mc_samples) < 1:
            raise CardioScarError(f"inference MC samples must be >= 1 (10 or more for a useful uncertainty), got {self.inference_mc_samples}.")
        if int(self.inference_batch_size) < 1:
            raise CardioScarError(f"inference batch size must be >= 1, got {self.inference_batch_size}.")
        if self.scar_target not in TARGETS:
            raise CardioScarError(f"scar target must be one of {', '.join(TARGETS)}, got {self.scar_target!r}.")
        if self.scar_target == "core" and not self.scar_rule:
            raise CardioScarError("scar target 'core' needs a scar rule (nsd, fwhm, iir or psi): the core is graded "
                                  "from the raw LGE; choose a rule, or learn the scar.")
        if not self.scar_rule and (_given(self.expert_scar_labels) or _given(self.expert_core_labels)):
            raise CardioScarError("--expert-scar-labels and --expert-core-labels need a scar rule (nsd, fwhm, iir or "
                                  "psi): it splits the experts' scar into border zone and core; to learn the experts' "
                                  "scar alone give --scar-labels instead.")
        if self.dark_blood_lge and not self.scar_rule:
            raise CardioScarError("--dark-blood-lge needs a scar rule (nsd, fwhm, iir or psi): it skips the rule's check "
                                  "of the myocardium mask against the LGE; clear it, or choose a rule.")
        # the training options with the preset's values, checked whole now (base_lr against the
        # preset's max_lr, a convergence tolerance against its schedule): they were refused only
        # when training began, after the slices were prepared (torch-free: cardioscar.fit.config)
        self.training_config()

    def scar_rule_request(self, myocardium_name: str):
        """The :class:`cardioscar.lge.prepare.ScarRuleRequest` of these options (None without a rule)."""
        from cardioscar.lge.prepare import ScarRuleRequest
        from cardioscar.lge.rules import parse_thresholds
        from cardioscar.prepare.targets import _parse_int_list

        if not self.scar_rule:
            return None
        # named by the command line's options, which every face words its own way (wording.py): the
        # panel's box, the Logic's field, the batch script's option
        myocardium = _int_list(self.myocardium_labels, lambda t: _parse_int_list(t, "--myocardium-labels", "2,3,4"))
        blood = _int_list(self.blood_pool_labels, lambda t: _parse_int_list(t, "--blood-pool-labels", "1"))
        expert_scar = _int_list(self.expert_scar_labels, lambda t: _parse_int_list(t, "--expert-scar-labels", "3,4"))
        expert_core = _int_list(self.expert_core_labels, lambda t: _parse_int_list(t, "--expert-core-labels", "4"))
        return ScarRuleRequest(rule=self.scar_rule, myocardium_path=Path(myocardium_name),
                               myocardium_labels=myocardium, blood_pool_labels=blood,
                               thresholds=parse_thresholds(self.scar_rule, self.scar_thresholds or None),
                               target=self.scar_target, intensity_offset=float(self.intensity_offset or 0.0),
                               expert_scar_labels=expert_scar, expert_core_labels=expert_core,
                               dark_blood_lge=bool(self.dark_blood_lge))

    def parsed_slice_indices(self) -> Optional[list[int]]:
        """Slice indices as a list, or None for all slices."""
        from cardioscar.prepare.targets import parse_slice_indices

        return _int_list(self.slice_indices, parse_slice_indices)

    def parsed_scar_labels(self, is_label_map: bool) -> Optional[list[int]]:
        """Scar labels; a label map (or exported segmentation) with none given uses label 1."""
        from cardioscar.prepare.targets import parse_scar_labels

        labels = _int_list(self.scar_labels, parse_scar_labels)
        if labels is None and is_label_map:
            return [1]
        return labels

    def parsed_myocardium_labels(self) -> Optional[list[int]]:
        """Myocardium labels as a list, or None (not given)."""
        from cardioscar.prepare.targets import parse_myocardium_labels

        return _int_list(self.myocardium_labels, parse_myocardium_labels)

    def training_config(self):
        """The :class:`cardioscar.fit.config.TrainingConfig` for this run (no torch needed)."""
        from dataclasses import fields

        from cardioscar.fit.config import TrainingConfig

        if not isinstance(self.extra_training, Mapping):  # None was a TypeError, pairs a puzzling name
            raise CardioScarError(f"extra_training must be a dict of TrainingConfig fields, e.g. {{'base_lr': 1e-3}}, "
                                  f"got {type(self.extra_training).__name__}.")
        unknown = sorted(set(self.extra_training) - {option.name for option in fields(TrainingConfig)}, key=repr)
        if unknown:  # TrainingConfig's TypeError named no fix
            raise CardioScarError(f"extra_training: {', '.join(map(repr, unknown))} is not a training option; give "
                                  f"fields of TrainingConfig, e.g. {{'base_lr': 1e-3}}.")

        overrides = {name: getattr(self, name) for name in OWN_TRAINING_FIELDS if getattr(self, name) is not None}
        overrides.update(self.extra_training)
        return TrainingConfig.fast(**overrides) if self.preset == "fast" else TrainingConfig(**overrides)


def preset_panel_values(preset: str) -> dict[str, object]:
    """The panel's training boxes (:data:`PANEL_TRAINING_FIELDS`) with ``preset``'s values, the shape
    prior as its word (on / off / auto). Why read from :mod:`cardioscar.fit.config` (torch-free, so the
    panel loads it at once): a copy of the numbers in the panel could drift from what the preset
    trains, and a user who picked *fast* would train with other epochs than the preset's."""
    from cardioscar.fit.config import TrainingConfig

    if preset not in PRESETS:
        raise CardioScarError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}.")
    config = TrainingConfig.fast() if preset == "fast" else TrainingConfig()
    words = {value: word for word, value in SHAPE_PRIOR_WORDS.items()}
    values = {box: getattr(config, name) for box, name in PANEL_TRAINING_FIELDS.items()}
    values["shapePrior"] = words[values["shapePrior"]]
    return values


__all__ = ["ReconstructionOptions", "PRESETS", "PANEL_TRAINING_FIELDS", "preset_panel_values"]
