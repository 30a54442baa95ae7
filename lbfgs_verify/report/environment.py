"""Where a report was made: library versions, BLAS, threads, CPU, GPU, date and seed.

Bits depend on the BLAS, the thread count and the CPU (docs/measurements.md), so
every report states them. The date is the one field here that changes between identical runs.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
from typing import Any

NO_GPU = "no GPU: CUDA properties not run"


def _blas(module: Any) -> str:
    """``name version`` of the BLAS a numpy-like module was built against (``show_config(mode="dicts")``)."""
    try:
        info = module.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:
        return "unknown"
    return f"{info.get('name', 'unknown')} {info.get('version', '')}".strip()


def torch_blas() -> str:
    """``BLAS_INFO`` of torch's build settings (mkl, open, ...)."""
    import torch

    found = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
    return found.group(1) if found else "unknown"


def blas_libraries() -> list[dict[str, Any]]:
    """The BLAS/OpenMP libraries loaded in this process with their versions and thread counts (threadpoolctl)."""
    from threadpoolctl import threadpool_info

    return [{"library": info.get("internal_api"), "version": info.get("version"), "threads": info.get("num_threads"),
             "file": os.path.basename(info.get("filepath", ""))} for info in threadpool_info()]


def cpu_model() -> str:
    """``model name`` from /proc/cpuinfo on Linux, else :func:`platform.processor`."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cuda_device() -> str:
    """The CUDA device's name and capability, or :data:`NO_GPU`."""
    import torch

    if not torch.cuda.is_available():
        return NO_GPU
    props = torch.cuda.get_device_properties(0)
    return f"{props.name} (compute capability {props.major}.{props.minor}, {torch.cuda.device_count()} device(s))"


def environment(*, seed: int, threads: int) -> dict[str, Any]:
    """The environment block of report.json (``date`` is listed among the report's timing fields)."""
    import numpy
    import scipy
    import torch

    from lbfgs_verify.properties.runner import library_versions

    return {
        "versions": library_versions(),
        "blas": {"torch": torch_blas(), "numpy": _blas(numpy), "scipy": _blas(scipy)},
        "threads": {"comparisons": threads, "torch_default": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                    "blas_libraries": blas_libraries()},
        "cpu": cpu_model(),
        "platform": platform.platform(),
        "cuda": cuda_device(),
        "seed": seed,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
