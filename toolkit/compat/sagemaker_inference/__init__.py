"""sagemaker-toolkit's stand-in for ``sagemaker_inference`` (sagemaker-inference 1.10), for inference.py
files that import it where the real package is not installed. It covers the modules handlers use:
content_types, decoder, encoder, errors, utils, environment, parameters, default_inference_handler and
logging. The Multi Model Server plumbing (model_server, transformer, default_handler_service) is not
here: ``serve`` takes its place. Anything else raises ``NotCovered`` naming what to do (see
docs/compatibility.md).
"""

from toolkit.compat.importing import guard

__getattr__ = guard(__name__, ("content_types", "decoder", "default_inference_handler", "encoder", "environment",
                               "errors", "logging", "parameters", "utils"))
