"""``cardioscar prepare`` options for scar rules on raw LGE (kept here so cli.py changes by two lines)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import CardioScarError
from .rules import RULES, parse_thresholds


def _labels(option: str):
    def parse(text: str) -> list[int]:
        try:
            values = [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            values = []
        if not values:
            raise argparse.ArgumentTypeError(f"{option} '{text}' must be comma-separated integers, e.g. 2,3,4")
        return values
    return parse


#: The options read by a scar rule alone (refused without --scar-rule), by their argparse names.
RULE_ONLY = ("scar_thresholds", "blood_pool_mask", "blood_pool_labels", "remote_mask", "intensity_offset",
             "dark_blood_lge")


def add_prepare_options(parser: argparse.ArgumentParser) -> None:
    """Add --scar-rule and its masks to the prepare parser (which has --myocardium-mask/-labels)."""
    defaults = "; ".join(f"{rule} {b:g},{c:g}" for rule, (b, c, *_r) in RULES.items())
    group = parser.add_argument_group("scar rules on raw LGE (--image is the LGE)")
    group.add_argument("--scar-rule", choices=tuple(RULES), default=None,
                       help="grade the LGE per slice: nsd (SD above remote), fwhm (fraction of max), iir (ratio to "
                            "blood pool), psi (fraction of the intensity range)")
    group.add_argument("--scar-thresholds", default=None, metavar="BORDER,CORE",
                       help=f"border-zone and core thresholds (defaults: {defaults})")
    group.add_argument("--scar-target", choices=("scar", "core"), default="scar",
                       help="what the network learns: scar = border zone + core (default), core = core only")
    group.add_argument("--blood-pool-mask", type=Path, default=None, help="blood-pool mask/label map (needed by iir)")
    group.add_argument("--blood-pool-labels", type=_labels("--blood-pool-labels"), default=None,
                       help="labels of the blood pool, e.g. 1 (in --blood-pool-mask, else in --myocardium-mask)")
    # --myocardium-mask / --myocardium-labels are prepare's own options (cardioscar.prepare.myocardium)
    group.add_argument("--expert-scar-labels", type=_labels("--expert-scar-labels"), default=None,
                       help="labels of the --myocardium-mask label map that the experts drew as scar, e.g. 3,4: the "
                            "rule grades only inside them (outside healthy, inside border zone or core)")
    group.add_argument("--expert-core-labels", type=_labels("--expert-core-labels"), default=None,
                       help="of --expert-scar-labels, those that are core whatever their intensity, e.g. 4 (EMIDEC's "
                            "no-reflow: dark on LGE, dense necrosis)")
    group.add_argument("--remote-mask", type=Path, default=None,
                       help="healthy (remote) myocardium mask for nsd (default: the darkest of 6 myocardial sectors)")
    group.add_argument("--intensity-offset", type=float, default=None, metavar="VALUE",
                       help="stored value of zero signal, subtracted before the rule (default 0: none); matters for "
                            "fwhm and iir only, e.g. 2048 for PSIR images stored with that offset (see "
                            "Documentation/lge-to-opencarp.md, its rules' notes)")
    group.add_argument("--dark-blood-lge", action="store_true", default=None,
                       help="the LGE is a dark-blood sequence (blood nulled): skip the check that --myocardium-mask's "
                            "cavity is the LGE's bright blood pool (which catches another patient's mask); the share "
                            "it measures is still recorded")


def scar_rule_request(args: argparse.Namespace):
    """The ScarRuleRequest of the parsed options, or None without --scar-rule."""
    from .prepare import ScarRuleRequest

    if args.scar_rule is None:
        if args.scar_target != "scar":
            raise CardioScarError(f"--scar-target {args.scar_target} needs --scar-rule {{nsd,fwhm,iir,psi}}: the core is "
                                  "graded from the raw LGE")
        # a flag left off is None on the command line and False in a manifest's row: neither was given
        given = [f"--{name.replace('_', '-')}" for name in RULE_ONLY
                 if getattr(args, name) is not None and getattr(args, name) is not False]
        if given:
            # each given option by its own name: the cohort writes them as its columns (in_manifest_terms),
            # where "--blood-pool-*" named no column at all
            raise CardioScarError(f"{', '.join(given)} need{'s' if len(given) == 1 else ''} --scar-rule "
                                  "{nsd,fwhm,iir,psi}: they are options of a scar rule on raw LGE")
        if args.expert_scar_labels is not None or args.expert_core_labels is not None:
            raise CardioScarError("--expert-scar-labels and --expert-core-labels need --scar-rule {nsd,fwhm,iir,psi}: "
                                  "they split the experts' scar into border zone and core by the rule; to learn the "
                                  "experts' scar alone give --scar-labels 3,4 instead")
        return None
    if args.myocardium_mask is None:
        raise CardioScarError(f"--scar-rule {args.scar_rule} needs --myocardium-mask FILE (with --myocardium-labels "
                              "for a label map)")
    if args.remote_mask is not None and args.scar_rule != "nsd":
        raise CardioScarError(f"--remote-mask is used by --scar-rule nsd only; {args.scar_rule} has no remote region: "
                              "leave it out, or use --scar-rule nsd")
    blood = args.blood_pool_mask
    if blood is None and args.blood_pool_labels is not None:
        blood = args.myocardium_mask  # one label map holding both
    if args.scar_rule == "iir" and blood is None:  # said before any image is read (a cohort: before anything runs)
        raise CardioScarError("--scar-rule iir needs the blood pool: give --blood-pool-mask FILE or --blood-pool-labels "
                              "(its labels in the --myocardium-mask label map, EMIDEC's 1)")
    return ScarRuleRequest(rule=args.scar_rule, myocardium_path=args.myocardium_mask,
                           myocardium_labels=args.myocardium_labels, blood_pool_path=blood,
                           blood_pool_labels=args.blood_pool_labels, remote_path=args.remote_mask,
                           thresholds=parse_thresholds(args.scar_rule, args.scar_thresholds), target=args.scar_target,
                           intensity_offset=args.intensity_offset or 0.0, expert_scar_labels=args.expert_scar_labels,
                           expert_core_labels=args.expert_core_labels, dark_blood_lge=bool(args.dark_blood_lge))
