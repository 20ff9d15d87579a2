"""toolkit's stand-in for the sagemaker-inference package (sagemaker_inference 1.10), for inference.py
files that import it where the real package is not installed. It covers the modules handlers use:
content_types, decoder, encoder, errors, utils, environment, parameters, default_inference_handler and
logging. The Multi Model Server plumbing (model_server, transformer, default_handler_service) is not
here: ``serve`` takes its place. See docs/compatibility.md.
"""

from __future__ import annotations

__toolkit_stand_in__ = True

# submodules of the real package that this stand-in does not have
NOT_PROVIDED = frozenset({"model_server", "transformer", "default_handler_service", "torchserve",
                          "model_server_utils"})


def __getattr__(name: str) -> object:
    if name in NOT_PROVIDED:
        from toolkit.compat.serving import not_provided

        raise AttributeError(not_provided(f"sagemaker_inference.{name}"))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
