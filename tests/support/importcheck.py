"""What importing something costs: the modules a fresh interpreter loads for it."""

from __future__ import annotations

import subprocess
import sys


def modules_loaded_by(statement: str) -> set[str]:
    """Return the names in ``sys.modules`` after a fresh interpreter runs ``statement``."""
    code = f"{statement}\nimport sys\nprint('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def modules_added_by(statement: str) -> set[str]:
    """Return the modules ``statement`` loads beyond those a bare interpreter has
    (which differ between installs: ``.pth`` hooks may load ``typing``, say)."""
    return modules_loaded_by(statement) - modules_loaded_by("pass")
