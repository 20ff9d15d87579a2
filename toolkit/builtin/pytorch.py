"""Built-in plugin: the defaults of the AWS PyTorch container (sagemaker-pytorch-inference) for
``torch.nn.Module`` models, TorchScript included, and its default model_fn.

- model_fn (no model_fn in inference.py, or no inference.py): ``torch.jit.load`` of ``model.pt``, else of
  the only ``*.pt`` / ``*.pth`` file, onto the GPU when there is one.
- input_fn: JSON and CSV become a float32 tensor (a one-row CSV a 1-D one, as numpy.genfromtxt reads it
  there), NPY ``torch.from_numpy``; the tensor goes to the model's device. A floating-point tensor is cast
  to the model's floating-point dtype (the AWS container fails instead).
- predict_fn: the model moved to that device and put in ``eval()`` mode once, then ``model(data)`` under
  ``torch.no_grad()``.
- output_fn: a tensor becomes a (nested) list before the codec of the Accept type encodes it.

Device: a model whose parameters are already on a GPU stays there and its inputs follow it; otherwise
it goes to ``cuda`` when ``torch.cuda.is_available()``, else stays on the CPU (``device_for``).

torch is imported only for a model whose class comes from torch, or a folder with a .pt/.pth file.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Optional

from toolkit.errors import ClientError, CodeError
from toolkit.hookspecs import hookimpl
from toolkit.serving import mediatypes
from toolkit.serving.frameworks import ModelDefaults, kind_of

DEFAULT_MODEL_FILE = "model.pt"
MODEL_SUFFIXES = (".pt", ".pth")


def model_file(model_dir: Path) -> Optional[Path]:
    """The file the default model_fn loads: model.pt, else the only .pt/.pth file; None when there is none."""
    default = model_dir / DEFAULT_MODEL_FILE
    if default.is_file():
        return default
    try:
        found = sorted(p for p in model_dir.iterdir() if p.suffix in MODEL_SUFFIXES and p.is_file())
    except OSError:
        return None
    if len(found) > 1:
        raise CodeError(f"{model_dir} holds {len(found)} PyTorch files ({', '.join(p.name for p in found)}) and no "
                        f"{DEFAULT_MODEL_FILE}: name the one to serve {DEFAULT_MODEL_FILE} or define model_fn in "
                        f"inference.py")
    return found[0] if found else None


def device_for(param_devices: list[str], cuda_available: bool) -> str:
    """Where the model runs: the GPU its parameters are on, else ``cuda`` when a GPU is available (the AWS
    container's rule), else ``cpu``. Takes plain values so the rule is tested without a GPU."""
    for device in param_devices:
        if device.startswith("cuda"):
            return device
    return "cuda" if cuda_available else "cpu"


class TorchDefaults(ModelDefaults):
    name = "pytorch"

    def __init__(self, model: Any) -> None:
        import torch

        self.torch = torch
        params = list(model.parameters()) if hasattr(model, "parameters") else []
        self.device = torch.device(device_for([str(p.device) for p in params], torch.cuda.is_available()))
        floating = [p.dtype for p in params if p.is_floating_point()]
        self.dtype = floating[0] if floating else torch.float32
        self._ready = False
        self._lock = threading.Lock()

    def input_fn(self, body: bytes, content_type: str, codecs: Any) -> Any:
        torch = self.torch
        media = mediatypes.bare(content_type)
        data = codecs.decode(body, content_type)
        if media == "application/x-npy":
            tensor = torch.from_numpy(data)
        elif media in ("application/json", "text/csv"):
            import numpy as np

            try:
                array = np.asarray(data, dtype=np.float32)
            except (TypeError, ValueError):
                raise ClientError(f"a PyTorch model's default input_fn needs {media} numbers (a list or rows of "
                                  f"numbers), got {type(data).__name__}; define input_fn in inference.py "
                                  f"for other shapes") from None
            tensor = torch.from_numpy(array.squeeze() if media == "text/csv" else array)
        else:
            return data
        if tensor.is_floating_point() and tensor.dtype != self.dtype:
            tensor = tensor.to(self.dtype)
        return tensor.to(self.device)

    def predict_fn(self, data: Any, model: Any) -> Any:
        torch = self.torch
        if not self._ready:
            with self._lock:
                if not self._ready:
                    model.to(self.device)
                    model.eval()
                    self._ready = True
        if isinstance(data, torch.Tensor) and data.device != self.device:
            data = data.to(self.device)
        with torch.no_grad():
            return model(data)

    def output_fn(self, prediction: Any) -> Any:
        if isinstance(prediction, self.torch.Tensor):
            return prediction.detach().cpu().tolist()
        return prediction


@hookimpl
def toolkit_model_defaults(model: Any) -> Optional[ModelDefaults]:
    if kind_of(model, "torch") is None:
        return None
    import torch

    return TorchDefaults(model) if isinstance(model, torch.nn.Module) else None


@hookimpl
def toolkit_load_model(model_dir: Path) -> Any:
    path = model_file(model_dir)
    if path is None:
        return None
    try:
        import torch
    except ImportError:
        raise CodeError(f"{path} looks like a PyTorch model but torch is not installed: install it in the image, "
                        f"or define model_fn in inference.py") from None
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    try:
        model = torch.jit.load(str(path), map_location=device)
    except (RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CodeError(f"the default model_fn loads TorchScript and {path.name} is not (torch.jit.load: {first}); "
                        f"save the model with torch.jit.save, or define model_fn(model_dir) in inference.py") from None
    return model.to(device)
