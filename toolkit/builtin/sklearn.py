"""Built-in plugin: the defaults of the AWS scikit-learn container (aws/sagemaker-scikit-learn-container,
serving.py) for scikit-learn estimators and pipelines, and for other estimators built on
``sklearn.base.BaseEstimator`` (LightGBM's, for example; XGBoost's have their own plugin).

- input_fn: JSON and CSV become a float32 numpy array, squeezed as the container's decoder squeezes it
  (a one-row CSV is 1-D); NPY is loaded as sent; other types go through the codecs.
- predict_fn: ``model.predict(data)``. A 1-D array, which the estimator would refuse, is first made one
  row (or one column, when the estimator was fitted on one feature): the container answers 500 there.
- output_fn: the codecs (numbers written to CSV as the container writes them).

scikit-learn is never imported: the model's classes are recognised by their module names.
"""

from __future__ import annotations

from typing import Any, Optional

from toolkit.errors import ClientError
from toolkit.hookspecs import hookimpl
from toolkit.serving import mediatypes
from toolkit.serving.frameworks import ModelDefaults, kind_of

TEXT_TYPES = ("application/json", "text/csv")


class SklearnDefaults(ModelDefaults):
    name = "sklearn"

    def input_fn(self, body: bytes, content_type: str, codecs: Any) -> Any:
        data = codecs.decode(body, content_type)
        media = mediatypes.bare(content_type)
        if media not in TEXT_TYPES:
            return data
        import numpy as np

        try:
            return np.squeeze(np.asarray(data, dtype=np.float32))
        except (TypeError, ValueError):
            raise ClientError(f"a scikit-learn model's default input_fn needs {media} numbers (rows of "
                              f"numbers), got {type(data).__name__}; define input_fn in inference.py for "
                              f"other shapes") from None

    def predict_fn(self, data: Any, model: Any) -> Any:
        if getattr(data, "ndim", None) == 1:
            one_feature = getattr(model, "n_features_in_", None) == 1
            data = data.reshape(-1, 1) if one_feature else data.reshape(1, -1)
        return model.predict(data)


@hookimpl
def toolkit_model_defaults(model: Any) -> Optional[ModelDefaults]:
    # XGBoost's and other frameworks' estimators subclass sklearn's: the first framework in the
    # class's method resolution order decides
    if kind_of(model, "xgboost", "torch", "sklearn") != "sklearn" or not hasattr(model, "predict"):
        return None
    return SklearnDefaults()
