"""Built-in handler loader: the AWS inference toolkit's inference.py contract (see
``toolkit.serving.contract``). It answers last, so an installed loader replaces it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from toolkit.hookspecs import hookimpl


@hookimpl(trylast=True)
def toolkit_load_handler(model_dir: Path, code_dir: Optional[Path], env: Any, codecs: Any) -> Any:
    from toolkit.serving import contract

    return contract.load(model_dir, code_dir, env.program, codecs, env.default_accept)
