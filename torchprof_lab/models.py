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
    config: object = None  # a transformers model's config (hf:...): vocab_size, layers, heads
    notes: tuple[str, ...] = ()  # how it was built (which head, random or loaded weights)


def torchvision_names() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models())


def build_model(spec: str, weights: str | None = None, device: str | None = None,
                config: dict | None = None) -> BuiltModel:
    """Build ``spec`` without downloading anything unless ``weights`` names a weights enum value.

    ``hf:<model_type>`` (hf:gpt2, hf:llama) is a transformers model with its config's defaults,
    ``hf:<directory>`` one from a local config.json (and its weights, if there); ``config``
    overrides config fields ({"num_hidden_layers": 2}). Nothing is ever downloaded.
    On device="meta" the model is constructed on the meta device (no memory, no init);
    builders that compute on tensors while constructing (RegNet) fall back to the CPU.
    """
    if spec.startswith("hf:"):
        if weights is not None:
            raise ValueError("weights= names torchvision weights; an hf:<directory> loads the weights it holds")
        return _transformers(spec, config or {}, device)
    if config:
        raise ValueError("config overrides apply to transformers models (hf:<model_type> or hf:<directory>)")
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
    if factory is not None and not callable(factory):  # it exists: suggesting its own name would not help
        raise UnknownModelError(spec, [], f" ({module_name}.{attr} is a {type(factory).__name__}, not a callable "
                                          f"that builds the model)")
    if factory is None:
        close = [n for n in difflib.get_close_matches(attr, [n for n in dir(module) if not n.startswith("_")], n=10)
                 if _callable_attribute(module, n)][:3]  # only the close names are looked up: a lazy package
        raise UnknownModelError(spec, [f"{module_name}:{c}" for c in close])  # imports one submodule per name
    return factory


def _callable_attribute(module, name: str) -> bool:
    try:
        return callable(getattr(module, name))
    except Exception:  # noqa: BLE001 - a lazy attribute whose import fails is no suggestion
        return False


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
        raise ValueError(f"unknown weights '{weights}' for {name}: {_weights_names(name) or _first_line(exc)}") from exc
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        raise ModelBuildError(f"cannot load weights '{weights}' for {name}: {type(exc).__name__}: "
                            f"{_first_line(exc)}; they are downloaded from the internet, so without a network "
                            f"put the file in torch's hub cache ($TORCH_HOME/hub/checkpoints) or build the "
                            f"model yourself with a package.module:factory spec") from exc


def _weights_names(name: str) -> str:
    """'use DEFAULT or one of IMAGENET1K_V1, IMAGENET1K_V2': the weights torchvision has for ``name``."""
    import torchvision.models as tvm

    try:
        names = [w.name for w in tvm.get_model_weights(name)]
    except (KeyError, ValueError, AttributeError):
        return ""
    return f"use DEFAULT or one of {', '.join(names)}" if names else "torchvision has no weights for it"


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


HF_MISSING = "transformers models need the transformers package: pip install 'torchprof_lab[hf]'"


def _transformers(spec: str, overrides: dict, device: str | None) -> BuiltModel:
    """hf:<model_type> from the config class's defaults, or hf:<local directory> with a config.json
    (weights loaded when the directory has them); no hub download, ever."""
    try:
        import transformers
    except ImportError as exc:
        raise ModelBuildError(HF_MISSING) from exc
    from pathlib import Path

    name = spec[3:]
    if not name:
        raise UnknownModelError(spec, [], " (give hf:<model_type> such as hf:gpt2, or hf:<local directory>)")
    directory = Path(name).expanduser()
    weights_file = None
    if directory.is_dir():
        if not (directory / "config.json").is_file():
            raise UnknownModelError(spec, [], f" ({directory} has no config.json: hf:<directory> reads a "
                                              f"transformers model directory, config.json and weights if present)")
        cfg = _hf_call(spec, lambda: transformers.AutoConfig.from_pretrained(
            str(directory), local_files_only=True, **overrides))
        weights_file = next((f for f in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                                         "pytorch_model.bin.index.json") if (directory / f).is_file()), None)
    else:
        known = _hf_model_types(transformers)
        if name not in known:
            if "/" in name or "\\" in name:
                raise UnknownModelError(spec, [], " (not a local directory; torchprof_lab downloads nothing, so a "
                                        "hub id cannot be fetched: download the model yourself (config.json, "
                                        "weights) and pass hf:<that directory>, or hf:<model_type> such as hf:gpt2)")
            close = difflib.get_close_matches(name.lower(), known, n=3, cutoff=0.6)
            raise UnknownModelError(spec, [f"hf:{c}" for c in close], "" if close else
                                    " (not a transformers model_type, e.g. hf:gpt2, hf:bert, hf:llama, hf:t5)")
        cfg = _hf_call(spec, lambda: transformers.AutoConfig.for_model(name, **overrides))
    _check_overrides(cfg, overrides)
    auto, head = _hf_head(transformers, cfg)
    if weights_file is not None:
        model = _hf_call(spec, lambda: auto.from_pretrained(str(directory), config=cfg, local_files_only=True))
        if device not in (None, "meta"):
            model = model.to(device)
        loaded = f"weights loaded from {directory / weights_file}"
    else:
        model = _on_device(lambda: _hf_call(spec, lambda: auto.from_config(cfg)), device)
        loaded = "weights: random initialisation"
    model.eval()
    notes = (f"{type(model).__name__} ({head}) built from {type(cfg).__name__}"
             f"{' of ' + str(directory) if directory.is_dir() else ' defaults'}"
             f"{' with ' + ', '.join(f'{k}={v}' for k, v in overrides.items()) if overrides else ''}; {loaded}",)
    return BuiltModel(model, spec, (), random_weights=weights_file is None, config=cfg, notes=notes)


def _check_overrides(cfg, overrides: dict) -> None:
    """A field the config class does not have is a typo (a config keeps any keyword it is given)."""
    try:
        defaults = type(cfg)()
    except Exception:  # noqa: BLE001 - a config class that needs arguments: nothing to check against
        return
    unknown = sorted(k for k in overrides if not hasattr(defaults, k))
    if unknown:
        close = [c for k in unknown for c in difflib.get_close_matches(k, list(defaults.to_dict()), n=1)]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"{type(cfg).__name__} has no field {', '.join(unknown)}{hint}")


def _hf_model_types(transformers) -> list[str]:
    return sorted(transformers.models.auto.configuration_auto.CONFIG_MAPPING.keys())


def _hf_head(transformers, cfg):
    """(auto class, what it is): a causal LM for a decoder-only model, else the base model
    (an encoder such as BERT, an encoder-decoder such as T5: the bare stack, no head)."""
    auto = transformers.models.auto.modeling_auto
    kind = cfg.model_type
    if getattr(cfg, "is_encoder_decoder", False):
        return transformers.AutoModel, "encoder-decoder: the base model, no LM head"
    if kind in auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and kind not in auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return transformers.AutoModelForCausalLM, "decoder: causal LM head"
    return transformers.AutoModel, "encoder: the base model, no head"


def _hf_call(spec: str, build):
    """transformers' own errors (a bad config value, a missing file) in one line."""
    try:
        return build()
    except (ValueError, TypeError, KeyError, OSError, AttributeError) as exc:
        raise ModelBuildError(f"cannot build {spec}: {type(exc).__name__}: {_first_line(exc)}") from exc
