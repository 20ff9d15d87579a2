"""The inference.py contract of the AWS inference toolkit (sagemaker-inference), so existing
inference.py files run unchanged.

User functions, all optional: ``model_fn(model_dir)``, ``input_fn(body, content_type)``,
``predict_fn(data, model)``, ``output_fn(prediction, accept)``,
``transform_fn(model, body, content_type, accept)`` (instead of the three before it),
``pre_model_fn(model_dir)``, ``model_warmup_fn(model_dir, model)``, ``execution_parameters_fn()``,
and for dynamic batching ``predict_batch_fn(inputs, model)`` with the module-level settings
``max_batch_size`` and ``max_batch_wait_ms`` (``toolkit.serving.batching``). Each may take one
more, trailing ``context`` argument (a ``RequestContext``). Functions the module lacks use the
codecs (``toolkit_decoder`` / ``toolkit_encoder``) and ``model(data)`` or
``model.predict(data)``.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator, Mapping, Optional

from toolkit.errors import ClientError, CodeError
from toolkit.serving import batching, mediatypes, streaming
from toolkit.serving.codecs import Codecs
from toolkit.serving.context import RequestContext
from toolkit.serving.handler import Handler

log = logging.getLogger("toolkit")

# function name -> number of arguments before the optional trailing context
ARITY = {
    "model_fn": 1, "input_fn": 2, "predict_fn": 2, "output_fn": 2, "transform_fn": 4,
    "pre_model_fn": 1, "model_warmup_fn": 2, "execution_parameters_fn": 0, "predict_batch_fn": 2,
}


def takes_context(fn: Callable[..., Any], base: int) -> bool:
    """Whether ``fn`` accepts a trailing context argument after its ``base`` arguments."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) > base


def import_user_module(path: Path) -> ModuleType:
    """Import ``path`` as a top-level module, with its folder on sys.path for sibling imports."""
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CodeError(f"{path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        log.exception("importing %s failed", path)
        raise CodeError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    return module


class _Call:
    """A user function with its context decision made once, at load time."""

    __slots__ = ("fn", "with_context")

    def __init__(self, fn: Callable[..., Any], name: str) -> None:
        self.fn = fn
        self.with_context = takes_context(fn, ARITY[name])

    def __call__(self, context: Optional[RequestContext], *args: Any) -> Any:
        if self.with_context:
            return self.fn(*args, context)
        return self.fn(*args)


class InferenceHandler(Handler):
    """The handler for one model: a user module (maybe none) plus the codecs."""

    batcher: Any = None  # a toolkit.serving.batching.Batcher when batching is on (set by batching.attach)

    def __init__(self, model_dir: Path, module: Optional[ModuleType], codecs: Codecs, default_accept: str,
                 origin: str) -> None:
        self.model_dir = model_dir
        self.codecs = codecs
        self.default_accept = default_accept
        self.origin = origin
        self.model: Any = None
        self.loaded = False
        self.load_error: Optional[BaseException] = None  # what model_fn (or its neighbours) raised
        self.fns: dict[str, _Call] = {}
        for name in ARITY:
            fn = getattr(module, name, None) if module is not None else None
            if callable(fn):
                self.fns[name] = _Call(fn, name)
        self.declared = {k: getattr(module, k) for k in batching.DECLARED if hasattr(module, k)}
        self.problem = self._check()
        self._needs_context = any(c.with_context for c in self.fns.values())

    def _check(self) -> Optional[str]:
        if "model_fn" not in self.fns:
            return f"{self.origin} defines no model_fn(model_dir): add one that loads and returns the model"
        if "transform_fn" in self.fns:
            both = [n for n in ("input_fn", "predict_fn", "output_fn") if n in self.fns]
            if both:
                return (f"{self.origin} defines transform_fn and also {', '.join(both)}: "
                        f"transform_fn replaces them, so define either transform_fn or those")
        return None

    @property
    def needs_context(self) -> bool:
        return self._needs_context

    def load_model(self) -> None:
        if self.problem is not None or self.loaded:
            return
        context = RequestContext({}, str(self.model_dir))
        model_dir = str(self.model_dir)
        try:
            if "pre_model_fn" in self.fns:
                self.fns["pre_model_fn"](context, model_dir)
            self.model = self.fns["model_fn"](context, model_dir)
            if "model_warmup_fn" in self.fns:
                self.fns["model_warmup_fn"](context, model_dir, self.model)
        except Exception as exc:
            log.exception("loading the model failed")
            self.load_error = exc
            self.problem = f"model_fn in {self.origin} raised {type(exc).__name__}: {exc}"
            return
        self.loaded = True

    def invoke(self, body: bytes, content_type: str, accept: Optional[str], context: RequestContext) -> tuple[Any, str]:
        fns = self.fns
        media = mediatypes.bare(content_type) if content_type else ""
        if "transform_fn" in fns:
            wanted = mediatypes.preferred(accept, self.default_accept)
            return self._response(fns["transform_fn"](context, self.model, body, media, wanted), wanted)

        output_fn = fns.get("output_fn")
        answer_as = mediatypes.preferred(accept, self.default_accept) if output_fn else \
            self.codecs.negotiate(accept, self.default_accept)
        input_fn = fns.get("input_fn")
        data = input_fn(context, body, media) if input_fn else self.codecs.decode(body, content_type or "")
        predict_fn = fns.get("predict_fn")
        if self.batcher is not None:
            prediction = self.batcher.submit(data, context)
        else:
            prediction = predict_fn(context, data, self.model) if predict_fn else self._predict(data)
        if output_fn:
            return self._response(output_fn(context, prediction, answer_as), answer_as)
        if streaming.is_stream(prediction):
            return self._encode_chunks(prediction, answer_as), answer_as
        return self.codecs.encode(prediction, answer_as), answer_as

    def _predict(self, data: Any) -> Any:
        model = self.model
        if hasattr(model, "predict"):
            return model.predict(data)
        if callable(model):
            return model(data)
        raise CodeError(f"{self.origin} defines no predict_fn(data, model) and the model is not callable "
                        f"and has no predict method: add predict_fn")

    def _response(self, result: Any, media: str) -> tuple[Any, str]:
        """output_fn/transform_fn may return bytes, str, (body, content_type) or an object to encode."""
        if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], str):
            result, media = result
        if isinstance(result, (bytes, bytearray, memoryview, str)):
            return result, media
        if streaming.is_stream(result):
            return self._encode_chunks(result, mediatypes.bare(media)), media
        return self.codecs.encode(result, mediatypes.bare(media)), media

    def _encode_chunks(self, chunks: Iterator[Any], media: str) -> Iterator[Any]:
        """A streamed result: bytes and str items are sent as they are, others through the codec."""
        encode = self.codecs.encode
        try:
            for chunk in chunks:
                yield chunk if isinstance(chunk, (bytes, str)) else encode(chunk, media)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def execution_parameters(self, context: RequestContext) -> Optional[Mapping[str, Any]]:
        fn = self.fns.get("execution_parameters_fn")
        if fn is None:
            return None
        result = fn(context)
        if isinstance(result, (str, bytes)):
            import json

            result = json.loads(result)
        if not isinstance(result, Mapping):
            raise CodeError(f"execution_parameters_fn in {self.origin} must return a dict, got {type(result).__name__}")
        return result


def load(model_dir: Path, code_dir: Optional[Path], program: str, codecs: Codecs, default_accept: str) -> Handler:
    """The built-in loader: the user module from ``code_dir`` (if any) in an ``InferenceHandler``."""
    name = program if program.endswith(".py") else f"{program}.py"
    path = (code_dir / name) if code_dir is not None else None
    if path is None or not path.is_file():
        where = str(path) if path is not None else str(model_dir / "code" / name)
        handler = InferenceHandler(model_dir, None, codecs, default_accept, where)
        handler.problem = (f"no inference code: {where} does not exist; put an {name} defining model_fn there "
                           f"(or set SAGEMAKER_PROGRAM / SAGEMAKER_SUBMIT_DIRECTORY)")
        return handler
    try:
        module = import_user_module(path)
    except CodeError as exc:
        handler = InferenceHandler(model_dir, None, codecs, default_accept, str(path))
        handler.problem = str(exc)
        return handler
    return InferenceHandler(model_dir, module, codecs, default_accept, str(path))


__all__ = ["ClientError", "InferenceHandler", "load"]
