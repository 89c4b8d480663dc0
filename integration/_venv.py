"""Make a script run under the repository's .venv, so `integration/thread` works when called directly too.

`INTEGRATION_VENV` names another virtual environment to use instead (irun's own tests keep theirs apart from the
repository's .venv, so `cargo test` and a developer's `irun` never share one).
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.abspath(os.environ.get("INTEGRATION_VENV") or os.path.join(ROOT, ".venv"))
VENV_PYTHON = os.path.join(VENV, "bin", "python")


def use_venv() -> None:
    """Re-execute the running script with the venv's Python unless it already runs there."""
    if os.path.abspath(sys.prefix) in (VENV, os.path.realpath(VENV)):
        return
    if not os.path.exists(VENV_PYTHON):
        sys.exit(f"{os.path.basename(sys.argv[0])}: FAILED: {VENV_PYTHON} not found; run `irun setup` first")
    os.execv(VENV_PYTHON, [VENV_PYTHON, *sys.argv])
