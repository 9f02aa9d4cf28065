"""Scar from raw LGE intensities by the thresholding rules used in the field (see :mod:`.rules`)."""

from .rules import RULES, RuleResult, apply_rule, parse_thresholds

__all__ = ["RULES", "RuleResult", "apply_rule", "parse_thresholds"]
