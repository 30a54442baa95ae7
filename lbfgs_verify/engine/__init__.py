"""The run engine: one way to run a target on a scenario, shared by check, fuzz and report.

- :mod:`~lbfgs_verify.engine.runs`: scenarios, runs, splits and resumes, the cold-start control;
- :mod:`~lbfgs_verify.engine.recordings`: uninterrupted runs recorded once and reused across properties;
- :mod:`~lbfgs_verify.engine.observe`: per-step observation of iterates, evaluations and line searches;
- :mod:`~lbfgs_verify.engine.strategies`: hypothesis strategies that draw problems and settings;
- :mod:`~lbfgs_verify.engine.capabilities`: the features a target declares it lacks;
- :mod:`~lbfgs_verify.engine.hypothesis_profiles`: the ``ci`` and ``thorough`` profiles, registered once;
- :mod:`~lbfgs_verify.engine.evidence`: the failure a property raises, with its evidence;
- :mod:`~lbfgs_verify.engine.repro`: the one writer of standalone reproduction scripts.
"""
