"""The hypothesis profiles of lbfgs_verify, registered in this one place.

``quick``    a smoke run: few examples, for ``lbfgs-verify check --budget quick``.
``ci``       derandomized (same examples every run), bounded, no deadline: the default for tests and CI.
``thorough`` long randomized fuzzing: many examples, for nightly runs and ``--budget thorough``.

Select one with the environment variable ``LBFGS_VERIFY_PROFILE`` (default ``ci``).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

PROFILE_ENV_VAR = "LBFGS_VERIFY_PROFILE"
PROFILES = ("quick", "ci", "thorough")
DEFAULT_PROFILE = "ci"

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile(
    "quick",
    derandomize=True,
    max_examples=5,
    deadline=None,
    print_blob=True,
    database=None,
    suppress_health_check=_SLOW_OK,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
)
settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=25,
    deadline=None,
    print_blob=True,
    database=None,
    suppress_health_check=_SLOW_OK,
)
settings.register_profile(
    "thorough",
    derandomize=False,
    max_examples=1000,
    deadline=None,
    print_blob=True,
    suppress_health_check=_SLOW_OK,
)


def active_profile_name() -> str:
    """The profile named by ``LBFGS_VERIFY_PROFILE``; a wrong name raises ValueError naming the choices."""
    name = os.environ.get(PROFILE_ENV_VAR, DEFAULT_PROFILE)
    if name not in PROFILES:
        raise ValueError(f"{PROFILE_ENV_VAR}={name!r} is not a profile; choose one of {', '.join(PROFILES)}")
    return name


def load_profile(name: str | None = None) -> str:
    """Activate profile ``name`` (default: from the environment) and return its name."""
    name = name or active_profile_name()
    if name not in PROFILES:
        raise ValueError(f"unknown hypothesis profile {name!r}; choose one of {', '.join(PROFILES)}")
    settings.load_profile(name)
    return name
