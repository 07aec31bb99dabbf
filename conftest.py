"""Hypothesis profile for the whole suite: ``ntklc-ci`` unless NTKLC_HYPOTHESIS_PROFILE says
otherwise (``ntklc-nightly`` for thorough runs); see ``validation.kit.checks.load_profile``."""

from validation.kit.checks import load_profile

load_profile()
