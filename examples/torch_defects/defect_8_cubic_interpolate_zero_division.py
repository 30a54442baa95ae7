"""torch.optim.LBFGS defect 8: the strong-Wolfe cubic interpolation can divide by zero.

``torch.optim.lbfgs._cubic_interpolate`` computes ``3 * (f1 - f2) / (x1 - x2)`` without a guard; when the zoom
hands it a collapsed bracket (x1 == x2, Python floats, possible with ``tolerance_change=0``) it raises
ZeroDivisionError instead of returning a point of the bracket. pytorch PR #42093 proposed a guard; not merged.
The function is private, so this calls it directly with the arguments such a bracket gives.

Needs only torch. Exit status 1 and "REPRODUCED" while the defect is there, 0 and "NOT REPRODUCED" once fixed.
"""

import sys

from torch.optim import lbfgs

try:
    t = lbfgs._cubic_interpolate(0.5, -0.5, -1.0, 0.5, -0.5, -1.0)
except ZeroDivisionError as exc:
    print(f"REPRODUCED: _cubic_interpolate(0.5, -0.5, -1.0, 0.5, -0.5, -1.0) raised ZeroDivisionError: {exc}")
    sys.exit(1)
except AttributeError:
    print("NOT REPRODUCED: torch.optim.lbfgs._cubic_interpolate no longer exists")
    sys.exit(0)
print(f"NOT REPRODUCED: _cubic_interpolate on a collapsed bracket returned {t!r}")
