"""sagemaker_inference.default_inference_handler: the base class framework handlers subclass."""

from __future__ import annotations

from typing import Any

from . import decoder, encoder, errors, utils


class DefaultInferenceHandler:
    """Default handler functions: decode the input, encode the output; model_fn and predict_fn must
    be provided by a subclass."""

    def default_model_fn(self, model_dir: str, context: Any = None) -> Any:
        raise NotImplementedError("Please provide a model_fn implementation "
                                  "(see https://sagemaker.readthedocs.io/en/stable/)")

    def default_input_fn(self, input_data: Any, content_type: str, context: Any = None) -> Any:
        return decoder.decode(input_data, content_type)

    def default_predict_fn(self, data: Any, model: Any, context: Any = None) -> Any:
        raise NotImplementedError("Please provide a predict_fn implementation "
                                  "(see https://sagemaker.readthedocs.io/en/stable/)")

    def default_output_fn(self, prediction: Any, accept: str, context: Any = None) -> Any:
        """``(encoded, media type)`` for the first type in Accept the encoder supports."""
        for media in utils.parse_accept(accept):
            if media in encoder.SUPPORTED_CONTENT_TYPES:
                return encoder.encode(prediction, media), media
        raise errors.UnsupportedFormatError(accept)
