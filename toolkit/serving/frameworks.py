"""Framework defaults: what a framework's AWS container does for a model when inference.py leaves out
``input_fn``, ``predict_fn`` or ``output_fn``.

After ``model_fn`` returns, ``toolkit_model_defaults(model)`` picks the defaults for the model's type (the
built-in plugins ``pytorch``, ``xgboost`` and ``sklearn`` answer for their models); a model no plugin
claims gets ``ModelDefaults``, the generic path: the codec for the Content-Type, ``model.predict(data)``
or ``model(data)``, and the codec for the Accept type. A function the user defines always replaces the
matching default.

Plugins decide by the class's module names (``kind_of``) before importing their framework, so serving
a scikit-learn model never imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Optional

from toolkit.errors import CodeError

if TYPE_CHECKING:  # pragma: no cover - types only
    from toolkit.serving.codecs import Codecs


class ModelDefaults:
    """The generic defaults; a framework plugin subclasses it and overrides what its container does
    differently. One instance serves one loaded model, from many threads at once."""

    name = "generic"

    def input_fn(self, body: bytes, content_type: str, codecs: Codecs) -> Any:
        """The request body (raw bytes, the Content-Type header as sent) as the model's input."""
        return codecs.decode(body, content_type)

    def predict_fn(self, data: Any, model: Any) -> Any:
        if hasattr(model, "predict"):
            return model.predict(data)
        if callable(model):
            return model(data)
        raise CodeError(f"the model ({type(model).__name__}) has no predict method and is not callable: "
                        f"define predict_fn(data, model) in inference.py")

    def output_fn(self, prediction: Any) -> Any:
        """The prediction as something the codecs encode (lists, numbers, numpy arrays...)."""
        return prediction


def class_modules(model: Any) -> Iterable[str]:
    """The modules that define the model's class and its bases, without importing anything."""
    return (getattr(cls, "__module__", "") or "" for cls in type(model).__mro__)


def kind_of(model: Any, *packages: str) -> Optional[str]:
    """The first of ``packages`` whose modules define the model's class or one of its bases, else None."""
    for module in class_modules(model):
        top = module.partition(".")[0]
        if top in packages:
            return top
    return None
