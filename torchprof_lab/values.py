"""Result values stay values: the mappings inside a frozen result cannot be written into either.

A frozen dataclass stops ``report.field = x`` but not ``report.by_category["x"] = 1``. A result
class with dict fields derives from ``Value``, whose ``__post_init__`` turns them (nested ones
too) into ``FrozenDict``: a dict for every reader (JSON, ``dict(...)``, ``==``), which raises
``TypeError`` on any write, pickles (DDP gathers ranks' results) and copies.
"""

from __future__ import annotations

import dataclasses


class FrozenDict(dict):
    """A dict that refuses writes after it is made."""

    def _refuse(self, *args, **kwargs):
        raise TypeError("a result's mappings are read-only: make a new result (dataclasses.replace) "
                        "or copy it with dict(...)")

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self):
        return type(self), (dict(self),)

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


def frozen(value):
    """``value`` with every dict in it, and the dicts inside those, a FrozenDict."""
    if isinstance(value, dict) and not isinstance(value, FrozenDict):
        return FrozenDict({k: frozen(v) for k, v in value.items()})
    return value


def freeze_mappings(result) -> None:
    """Make the dict fields of a frozen dataclass ``result`` read-only (from its __post_init__)."""
    for f in dataclasses.fields(result):
        value = getattr(result, f.name)
        if isinstance(value, dict) and not isinstance(value, FrozenDict):
            object.__setattr__(result, f.name, frozen(value))


class Value:
    """Base of the frozen result dataclasses that hold dicts: made once, read-only inside too."""

    def __post_init__(self):
        freeze_mappings(self)
