"""The processing tests use the emulator's test helpers (tests/local/localjobs.py) as the training tests do."""

import sys
from pathlib import Path

LOCAL = str(Path(__file__).resolve().parent.parent / "local")
if LOCAL not in sys.path:
    sys.path.insert(0, LOCAL)
