"""``python -m lbfgs_verify ...`` is the ``lbfgs-verify`` command (see :mod:`lbfgs_verify.cli`)."""

import sys

from lbfgs_verify.cli import main

sys.exit(main())
