"""Make a script run under the repository's .venv, so `integration/thread` works when called directly too."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")


def use_venv() -> None:
    """Re-execute the running script with .venv's Python unless it already runs there."""
    if os.path.abspath(sys.prefix) == os.path.join(ROOT, ".venv"):
        return
    if not os.path.exists(VENV_PYTHON):
        sys.exit(f"{os.path.basename(sys.argv[0])}: FAILED: {VENV_PYTHON} not found; run `irun setup` first")
    os.execv(VENV_PYTHON, [VENV_PYTHON, *sys.argv])
