"""Errors a user can act on; each message is one line."""


class ProfilerError(Exception):
    """Base class for errors torchprof_lab raises about the user's model or input."""


# torch's words for a failing forward that has a usual cause, the layer type they must come from
# ("" for any), and what to do about it
FORWARD_HINTS = (
    ("Expected more than 1 value per channel when training", "",
     "a batch norm in training mode needs more than one value per channel: a batch of 2 or more, or a larger input"),
    ("'indices' to have one of the following scalar types", "Embedding",
     "an embedding takes integer ids: --input-dtype long, or inputs= of token ids"),
    ("index out of range in self", "Embedding",  # index_select's words: other layers say them too
     "an id or a position past the embedding's rows: ids below its size, a sequence within the model's positions"),
)


class ForwardError(ProfilerError, RuntimeError):
    """The model's forward raised; names the innermost layer that was running, and the usual
    cause where torch's words have one (``FORWARD_HINTS``)."""

    def __init__(self, layer: str, layer_type: str, input_shapes: str, reason: str):
        self.layer, self.layer_type, self.input_shapes, self.reason = layer, layer_type, input_shapes, reason
        where = f"layer '{layer}' ({layer_type})" if layer else f"model forward ({layer_type})"
        hint = next((f" ({hint})" for words, layer_kind, hint in FORWARD_HINTS
                     if words in reason and layer_kind in layer_type), "")
        super().__init__(f"{where} failed on input of shape {input_shapes}: {reason}{hint}")


class UncountedOpsError(ProfilerError):
    """strict=True and some ops ran without a cost formula."""

    def __init__(self, ops: dict):
        self.ops = dict(ops)
        listed = ", ".join(f"{name} x{calls}" for name, calls in sorted(ops.items()))
        super().__init__(f"{len(ops)} op(s) ran with no cost formula (strict): {listed}")


class UnknownModelError(ProfilerError, ValueError):
    """A model name that resolves to nothing; carries close matches."""

    def __init__(self, name: str, suggestions: list, detail: str = ""):
        self.name, self.suggestions = name, list(suggestions)
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"unknown model '{name}'{hint}{detail}")


class ModelBuildError(ProfilerError, RuntimeError):
    """The model could not be built: its factory raised, or its weights could not be loaded."""


class DataDependentError(ForwardError):
    """On meta, the forward read a tensor's value (``.item()``, ``.all()`` in an ``if``, ``bool()``,
    ``nonzero``): meta tensors have shapes but no values. Names the layer and the line."""

    def __init__(self, layer: str, layer_type: str, op: str, where: str):
        self.layer, self.layer_type, self.input_shapes = layer, layer_type, ""
        self.op, self.where = op, where
        self.reason = (f"a data-dependent check (.item()/.all()/bool(), {op}) in "
                       f"{f'layer {layer!r} ({layer_type})' if layer else f'the model forward ({layer_type})'}"
                       f"{f' at {where}' if where else ''}: meta tensors have no values; count on the CPU")
        ProfilerError.__init__(self, self.reason)
