"""The inference.py contract of the AWS inference toolkit (sagemaker-inference), so existing
inference.py files run unchanged.

User functions, all optional: ``model_fn(model_dir)``, ``input_fn(body, content_type)``,
``predict_fn(data, model)``, ``output_fn(prediction, accept)``,
``transform_fn(model, body, content_type, accept)`` (instead of the three before it),
``pre_model_fn(model_dir)``, ``model_warmup_fn(model_dir, model)``, ``execution_parameters_fn()``,
and for dynamic batching ``predict_batch_fn(inputs, model)`` with the module-level settings
``max_batch_size`` and ``max_batch_wait_ms`` (``toolkit.serving.batching``).
Each may take one more, trailing ``context`` argument (a ``RequestContext``). Functions the module
lacks are the model's framework defaults (``toolkit.serving.frameworks``: the codecs, then what the
framework's AWS container does for its models); without ``model_fn``, a ``toolkit_load_model`` plugin may
load the model (a TorchScript model.pt).

As in the AWS toolkit, ``input_fn`` and ``transform_fn`` get a JSON or CSV body as text (``Text``, a
``str``) and any other body as bytes; the exceptions of sagemaker_inference.errors answer with their
status (``aws_error``).
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator, Mapping, Optional, Union

from toolkit.errors import ClientError, CodeError, ToolkitError
from toolkit.serving import batching, mediatypes, streaming
from toolkit.serving.codecs import Codecs
from toolkit.serving.context import RequestContext
from toolkit.serving.frameworks import ModelDefaults
from toolkit.serving.handler import HANDLER_FAILURES, Handler

log = logging.getLogger("toolkit")

# function name -> number of arguments before the optional trailing context
ARITY = {
    "model_fn": 1, "input_fn": 2, "predict_fn": 2, "output_fn": 2, "transform_fn": 4,
    "pre_model_fn": 1, "model_warmup_fn": 2, "execution_parameters_fn": 0, "predict_batch_fn": 2,
}


# the media types whose body the AWS toolkit decodes to str before input_fn / transform_fn
# (sagemaker_inference.content_types.UTF8_TYPES)
TEXT_TYPES = frozenset({"application/json", "text/csv"})


class Text(str):
    """A JSON or CSV request body as text, as the AWS toolkit hands it to ``input_fn`` / ``transform_fn``.

    It is a ``str`` in every way (``json.loads``, ``StringIO``, ``split``); ``decode()`` returns the
    text, so handlers written for the bytes this toolkit passed before (``body.decode()``) keep working.
    """

    __slots__ = ()

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return str(self)


def user_body(body: bytes, media: str, content_type: str) -> Union[bytes, Text]:
    """The body as the AWS toolkit passes it to user functions: text for JSON and CSV, bytes otherwise.

    The AWS toolkit decodes only when the header is exactly ``application/json`` or ``text/csv`` (with a
    parameter such as ``; charset=utf-8`` its handlers get bytes); here the media type decides, and the
    charset parameter, when there is one, is the encoding (UTF-8 otherwise)."""
    if media not in TEXT_TYPES:
        return body
    charset = mediatypes.charset(content_type) or "utf-8"
    try:
        return Text(body.decode(charset))
    except LookupError:
        raise ClientError(f"Content-Type {content_type!r} names an unknown charset", status=415) from None
    except UnicodeDecodeError as exc:
        raise ClientError(f"the {media} body is not valid {charset}: {exc}") from None


def aws_error(exc: BaseException, stage: str) -> Optional[ToolkitError]:
    """The answer for an exception of sagemaker_inference.errors (the real package's or the stand-in's,
    recognised by class name): ``BaseInferenceToolkitError`` and its subclasses answer with their
    ``status_code`` and ``message``, as the AWS toolkit does; ``UnsupportedFormatError`` with 415 when
    raised while reading the request and 406 while writing the answer (the AWS toolkit answers 500).
    None for any other exception."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "BaseInferenceToolkitError" in names:
        status = getattr(exc, "status_code", 500)
        status = status if isinstance(status, int) and 400 <= status <= 599 else 500
        lines = str(getattr(exc, "message", "") or exc).strip().splitlines() or [type(exc).__name__]
        return (ClientError if status < 500 else ToolkitError)(lines[0], status=status)
    if "UnsupportedFormatError" in names:
        first = (str(exc).strip().splitlines() or ["unsupported content type"])[0]
        return ClientError(first, status=406 if stage == "output" else 415)
    return None


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
    except HANDLER_FAILURES as exc:
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
        self.defaults = ModelDefaults()  # replaced by the model's framework defaults once it is loaded
        # why there is no model when the module has no model_fn and no toolkit_load_model plugin loads the folder
        self.no_model = f"{origin} defines no model_fn(model_dir): add one that loads and returns the model"
        self.declared = {k: getattr(module, k) for k in batching.DECLARED if hasattr(module, k)}
        self.problem = self._check()
        self._needs_context = any(c.with_context for c in self.fns.values())

    def _check(self) -> Optional[str]:
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
            if "model_fn" in self.fns:
                self.model = self.fns["model_fn"](context, model_dir)
            else:
                self.model = self.codecs.load_model(self.model_dir)
                if self.model is None:
                    self.problem = self.no_model
                    return
                log.info("no model_fn: the default model_fn loaded a %s", type(self.model).__name__)
            if "model_warmup_fn" in self.fns:
                self.fns["model_warmup_fn"](context, model_dir, self.model)
            self.defaults = self.codecs.model_defaults(self.model)
        except ToolkitError as exc:
            log.error("loading the model failed: %s", exc)
            self.load_error = exc
            self.problem = str(exc)
            return
        except HANDLER_FAILURES as exc:
            log.exception("loading the model failed")
            self.load_error = exc
            where = "model_fn in" if "model_fn" in self.fns else "loading the model for"
            self.problem = f"{where} {self.origin} raised {type(exc).__name__}: {exc}"
            return
        if self.defaults.name != "generic":
            log.info("a %s model: the functions inference.py leaves out work as in the AWS %s container",
                     self.defaults.name, self.defaults.name)
        self.loaded = True

    def invoke(self, body: bytes, content_type: str, accept: Optional[str], context: RequestContext) -> tuple[Any, str]:
        fns = self.fns
        media = mediatypes.bare(content_type) if content_type else ""
        stage = "input"
        try:
            if "transform_fn" in fns:
                wanted = mediatypes.preferred(accept, self.default_accept)
                result = fns["transform_fn"](context, self.model, user_body(body, media, content_type), media, wanted)
                stage = "output"
                return self._response(result, wanted)

            output_fn = fns.get("output_fn")
            answer_as = mediatypes.preferred(accept, self.default_accept) if output_fn else \
                self.codecs.negotiate(accept, self.default_accept)
            input_fn = fns.get("input_fn")
            defaults = self.defaults
            data = input_fn(context, user_body(body, media, content_type), media) if input_fn else \
                defaults.input_fn(body, content_type or "", self.codecs)
            stage = "predict"
            predict_fn = fns.get("predict_fn")
            if self.batcher is not None:
                prediction = self.batcher.submit(data, context)
            elif predict_fn:
                prediction = predict_fn(context, data, self.model)
            else:
                prediction = defaults.predict_fn(data, self.model)
            stage = "output"
            if output_fn:
                return self._response(output_fn(context, prediction, answer_as), answer_as)
            if streaming.is_stream(prediction):
                return self._encode_chunks(prediction, answer_as), answer_as
            return self.codecs.encode(defaults.output_fn(prediction), answer_as), answer_as
        except ToolkitError:
            raise
        except Exception as exc:
            answer = aws_error(exc, stage)
            if answer is None:
                raise
            raise answer from exc

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
        # a framework plugin may still load the folder (a TorchScript model.pt), as the AWS containers do
        handler.no_model = (f"no inference code: {where} does not exist; put an {name} defining model_fn there "
                            f"(or set SAGEMAKER_PROGRAM / SAGEMAKER_SUBMIT_DIRECTORY)")
        return handler
    from toolkit.compat import importing as compat

    # `import sagemaker_inference` (or sagemaker_containers, sagemaker_training) finds the stand-in when
    # the real package is absent
    compat.add_to_sys_path()
    try:
        module = import_user_module(path)
    except CodeError as exc:
        handler = InferenceHandler(model_dir, None, codecs, default_accept, str(path))
        handler.problem = str(exc)
        return handler
    return InferenceHandler(model_dir, module, codecs, default_accept, str(path))


__all__ = ["ClientError", "InferenceHandler", "load"]
