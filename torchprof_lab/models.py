"""Build a model from a name: a torchvision model, or ``package.module:factory``."""

from __future__ import annotations

import difflib
import importlib
import inspect
from dataclasses import dataclass

import torch
from torch import nn

from .errors import ModelBuildError, UnknownModelError
from .model_state import check_device

DEFAULT_INPUT_SHAPE = (3, 224, 224)


@dataclass
class BuiltModel:
    model: nn.Module
    name: str
    input_shape: tuple[int, ...]
    random_weights: bool = False  # a torchvision model built with weights=None


def torchvision_names() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models())


def build_model(spec: str, weights: str | None = None, device: str | None = None) -> BuiltModel:
    """Build ``spec`` without downloading anything unless ``weights`` names a weights enum value.

    On device="meta" the model is constructed on the meta device (no memory, no init);
    builders that compute on tensors while constructing (RegNet) fall back to the CPU.
    """
    if ":" in spec:
        factory = _factory(spec)
        model = _on_device(lambda: _call_factory(spec, factory), device)
        return BuiltModel(model, spec, DEFAULT_INPUT_SHAPE)
    return _torchvision(spec, weights, device)


def _call_factory(spec: str, factory):
    try:
        model = factory()
    except Exception as exc:  # noqa: BLE001 - the user's code: name it, in one line
        raise ModelBuildError(f"the factory {spec} raised {type(exc).__name__}: {_first_line(exc)}") from exc
    if not isinstance(model, nn.Module):
        raise ModelBuildError(f"the factory {spec} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _on_device(build, device):
    if device is not None:
        check_device(device)
    if device == "meta":
        try:
            with torch.device("meta"):
                return build()
        except (NotImplementedError, RuntimeError):
            pass
    model = build()
    if device not in (None, "meta"):
        model = model.to(device)
    return model


def _factory(spec: str):
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnknownModelError(spec, [], f" (cannot import '{module_name}': {exc})") from exc
    except SyntaxError as exc:
        raise UnknownModelError(spec, [], f" ('{module_name}' has a syntax error: {exc.msg}, "
                                          f"{exc.filename} line {exc.lineno})") from exc
    except Exception as exc:  # noqa: BLE001 - the module's own code raised while importing
        raise UnknownModelError(spec, [], f" (importing '{module_name}' raised {type(exc).__name__}: "
                                          f"{_first_line(exc)})") from exc
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        close = difflib.get_close_matches(attr, [n for n in dir(module) if not n.startswith("_")], n=3)
        raise UnknownModelError(spec, [f"{module_name}:{c}" for c in close])
    return factory


def _torchvision(name: str, weights: str | None, device: str | None) -> BuiltModel:
    import torchvision.models as tvm

    names = torchvision_names()
    if name not in names:
        close = difflib.get_close_matches(name.lower(), names, n=3, cutoff=0.5)
        raise UnknownModelError(name, close, "" if close else "; see torchvision.models.list_models()")
    builder = tvm.get_model_builder(name)
    kwargs: dict = {"weights": weights}
    if "weights_backbone" in inspect.signature(builder).parameters:
        kwargs["weights_backbone"] = None
    if name in ("googlenet", "inception_v3") and weights is None:
        kwargs["init_weights"] = True  # the explicit choice silences torchvision's FutureWarning
    model = _on_device(lambda: _with_weights(name, weights, builder, kwargs), device)
    size = getattr(model, "image_size", None)  # ViTs are built for one size
    shape = (3, size, size) if isinstance(size, int) else _input_shape(name, weights)
    return BuiltModel(model, name, shape, random_weights=weights is None)


def _with_weights(name: str, weights: str | None, builder, kwargs) -> nn.Module:
    """The torchvision model; weights that cannot be had (unknown name, no network) in one line."""
    if weights is None:
        return builder(**kwargs)
    try:
        return builder(**kwargs)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"unknown weights '{weights}' for {name}: {_first_line(exc)}") from exc
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        raise ModelBuildError(f"cannot load weights '{weights}' for {name}: {type(exc).__name__}: "
                            f"{_first_line(exc)}; they are downloaded from the internet, so without a network "
                            f"put the file in torch's hub cache ($TORCH_HOME/hub/checkpoints) or build the "
                            f"model yourself with a package.module:factory spec") from exc


def _input_shape(name: str, weights: str | None) -> tuple[int, ...]:
    """One sample's shape at the crop size of the model's (default) weights."""
    import torchvision.models as tvm

    try:
        enum = tvm.get_model_weights(name)
        chosen = enum[weights] if weights and weights != "DEFAULT" else enum.DEFAULT
        crop = getattr(chosen.transforms(), "crop_size", None)
    except (KeyError, ValueError, AttributeError):
        crop = None
    if crop:
        return (3, crop[0], crop[0])
    return DEFAULT_INPUT_SHAPE
