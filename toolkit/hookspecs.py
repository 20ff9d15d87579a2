"""Every hook the toolkit calls, grouped by phase: the contract between the core and plugins.

A plugin is a module or object with functions named after these hooks and marked with
``@toolkit.hookimpl``; it only implements the hooks it cares about. Third-party plugins are
called before the built-ins (pluggy calls the last registered first), so a plugin overrides a
built-in by answering first. ``firstresult`` hooks stop at the first implementation that returns
something other than None: return None to say "not mine".

The code and training hooks and ``toolkit_serve`` have a one-line docstring here; docs/hooks.md explains each one in
full, with an example, and says what changed since 0.1 (tests/test_hooks_documented.py keeps the
two in step). Argument names say what a hook receives: ``env`` is the job's parsed environment
(``toolkit.TrainingEnv`` or ``toolkit.ServingEnv``), ``settings`` a read-only mapping of variables,
``worker`` the ``toolkit.Worker`` a server serves in.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence

import pluggy

if TYPE_CHECKING:  # pragma: no cover - types only
    from toolkit.environment import ServingEnv, TrainingEnv
    from toolkit.serving.codecs import Codecs
    from toolkit.serving.frameworks import ModelDefaults
    from toolkit.serving.worker import Worker
    from toolkit.types import Command, Outcome

PROJECT = "toolkit"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --------------------------------------------------------------------------------------------
# Code: where the user's code comes from and what it needs (training and serving)
# --------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def toolkit_fetch_code(uri: str, dest: Path, settings: Mapping[str, str]) -> Optional[Path]:
    """Fetch the user's code at ``uri`` into ``dest`` and return its folder; None when the scheme is not yours."""


@hookspec
def toolkit_fetch_schemes() -> Sequence[str]:
    """Return the URI schemes your ``toolkit_fetch_code`` accepts, for error messages and ``toolkit plugins``."""


@hookspec(firstresult=True)
def toolkit_install_dependencies(
    code_dir: Path, settings: Mapping[str, str], requirements: Optional[str]
) -> Optional[bool]:
    """Install what the code in ``code_dir`` needs; True when you handled it, None to let the next installer try."""


# --------------------------------------------------------------------------------------------
# Training (and processing): what to run and with which environment
# --------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def toolkit_launch(
    entry_point: str, code_dir: Path, args: Sequence[str], env: TrainingEnv
) -> Optional[Command]:
    """Say what to run for ``entry_point`` as a ``toolkit.Command``; None when it is not yours."""


@hookspec
def toolkit_environment(env: TrainingEnv) -> Optional[Mapping[str, str]]:
    """Return variables to add to the user process's environment (all results are merged)."""


@hookspec
def toolkit_after_training(env: TrainingEnv, outcome: Outcome) -> None:
    """Called once the job has ended and the success or failure file is written."""


# --------------------------------------------------------------------------------------------
# Serving: the handler, the codecs and the HTTP server
# --------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def toolkit_load_handler(model_dir: Path, code_dir: Optional[Path], env: ServingEnv, codecs: Codecs) -> Any:
    """Return the inference handler for the model in ``model_dir``, or None to let the next loader try.

    ``code_dir`` is where the user's code is (the fetched SAGEMAKER_SUBMIT_DIRECTORY, or
    ``model_dir/code``), None when there is none. The result must be a
    ``toolkit.Handler``: ``load_model()`` is called once per process (in the
    supervisor before forking when TOOLKIT_PRELOAD_MODEL=true), then ``invoke(request)`` for every
    POST /invocations, from several threads at once. ``codecs`` decodes and encodes bodies by media
    type, for handlers that want the default codecs.

    The built-in loader imports SAGEMAKER_PROGRAM (default ``inference.py``) from ``code_dir`` and
    implements the AWS inference toolkit's contract: model_fn, input_fn, predict_fn, output_fn,
    transform_fn, pre_model_fn, model_warmup_fn, execution_parameters_fn, each with an optional
    trailing ``context`` argument. It answers last, so a plugin's loader replaces it.

    On a multi-model endpoint (SAGEMAKER_MULTI_MODEL=true) it is called in every worker for each
    model loaded through POST /models: ``model_dir`` is the model's folder, ``code_dir`` its
    ``code/`` (else the server's code folder). A ``problem`` after ``load_model()`` fails the load.
    """


@hookspec(firstresult=True)
def toolkit_load_model(model_dir: Path) -> Any:
    """Load the model in ``model_dir`` when inference.py defines no ``model_fn`` (or there is no
    inference.py), or return None when the folder holds nothing you load.

    This is the AWS framework containers' default ``model_fn``. The built-in ``pytorch`` plugin loads
    a TorchScript ``model.pt`` (else the one ``*.pt`` / ``*.pth`` file) with ``torch.jit.load``, as
    sagemaker-pytorch-inference does. Look at the file names before importing your framework, so a
    folder that is not yours costs no import. Raise ``toolkit.CodeError`` with a one-line reason when
    the files are yours but cannot be loaded; the server then answers 503 with it.
    """


@hookspec(firstresult=True)
def toolkit_model_defaults(model: Any) -> Optional[ModelDefaults]:
    """Return the defaults for a loaded ``model`` of your framework, or None when it is not yours.

    Called once per model after ``model_fn``. The result is a ``toolkit.serving.frameworks.ModelDefaults``
    (subclass it): its ``input_fn(body, content_type, codecs)``, ``predict_fn(data, model)`` and
    ``output_fn(prediction)`` replace whichever of input_fn / predict_fn / output_fn inference.py does not
    define, the way a framework's AWS container does (``output_fn`` here only converts the prediction;
    the codec of the negotiated Accept type encodes it). Decide by the class's module names
    (``toolkit.serving.frameworks.kind_of(model, "torch")``) before importing your framework, so other
    models never pay for the import. The built-ins answer for PyTorch, XGBoost and scikit-learn models;
    a model no plugin claims gets the generic ``ModelDefaults``.
    """


@hookspec(firstresult=True)
def toolkit_decoder(media_type: str) -> Optional[Callable[[bytes], Any]]:
    """Return a function that turns a request body of ``media_type`` into a Python object, or None.

    ``media_type`` is bare and lower-case (``application/json``: parameters such as charset are
    removed). The server asks once per media type and keeps the answer, so the function you return
    is what runs per request. It raises ``toolkit.ClientError`` (or ValueError) for a body that does
    not parse; the client then gets 400 with that message. Used when the user's module has no
    ``input_fn``.
    """


@hookspec(firstresult=True)
def toolkit_encoder(media_type: str) -> Optional[Callable[[Any], bytes]]:
    """Return a function that turns a prediction into response bytes of ``media_type``, or None.

    Asked once per media type, like ``toolkit_decoder``; used when the user's module has no
    ``output_fn``, and to choose among the types a client's Accept header lists.
    """


@hookspec
def toolkit_media_types() -> Sequence[str]:
    """Return the media types your decoder/encoder accept; they are listed in 415/406 errors and
    matched against wildcards such as ``text/*`` in Accept headers."""


@hookspec(firstresult=True)
def toolkit_serve(worker: Worker) -> Optional[bool]:
    """Serve ``worker.timed_app()`` on ``worker.sock`` in this worker process until it stops; True when you did."""
