"""Test IDs that are safe on a command line: hostile values (NUL, backslashes, newlines, quotes)
get a short stable ID, so `pytest 'file::test[id]'` (and mutmut, which selects tests so) works."""

from __future__ import annotations

import re
import zlib
from typing import Any, Optional


def pytest_make_parametrize_id(config: Any, val: object, argname: str) -> Optional[str]:
    text = str(val)
    if len(text) <= 40 and re.fullmatch(r"[\w.+-]*", text):
        return None  # pytest's own ID
    return f"{argname}-{zlib.crc32(repr(val).encode()):08x}"
