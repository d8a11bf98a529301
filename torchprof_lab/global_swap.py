"""A global attribute replaced while the profiler needs it, safely for nested and concurrent users.

Some things the profiler must see are reached through a global name rather than a hook: the
functional attention that ``nn.MultiheadAttention`` calls, ``UntypedStorage.resize_`` (FSDP2),
transformers' packed-sequence check. A ``GlobalSwap`` puts one dispatcher in that place while any
thread needs it. A call made on a thread inside ``installed(handler)`` goes to that thread's
innermost handler, which receives the replaced value to call on; calls on other threads go
straight to the replaced value. The last user out puts the replaced value back, unless someone
else has rebound the name meanwhile (their value is left in place).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator


class GlobalSwap:
    """``owner.name`` dispatched per thread while in use (``owner`` a module or a class)."""

    def __init__(self, owner, name: str):
        self.owner, self.name = owner, name
        self._lock = threading.Lock()
        self._users = 0
        self._replaced = getattr(owner, name)  # kept after the last user: a wrapper someone put over
        self._local = threading.local()        # the dispatcher meanwhile still reaches a function
        swap = self

        def dispatch(*args, **kwargs):  # a plain function: on a class it binds like the method it stands for
            local = swap._local
            if getattr(local, "inside", False):  # the replaced value leads back here (a wrapper of ours)
                return swap._first(*args, **kwargs)
            stack = getattr(local, "handlers", None)
            local.inside = True
            try:
                if stack:
                    return stack[-1](swap._replaced, *args, **kwargs)
                return swap._replaced(*args, **kwargs)
            finally:
                local.inside = False

        self._first = self._replaced  # what the name held when the swap was made (torch's own function)

        self._dispatch = dispatch

    @property
    def active(self) -> bool:
        return getattr(self.owner, self.name) is self._dispatch

    def install(self, handler: Callable) -> None:
        """From now on, this thread's calls of ``owner.name(*args)`` are ``handler(replaced, *args)``
        (the innermost handler installed wins), until ``uninstall(handler)``."""
        with self._lock:
            if self._users == 0:
                current = getattr(self.owner, self.name)
                if current is not self._dispatch:
                    self._replaced = current
                setattr(self.owner, self.name, self._dispatch)
            self._users += 1
        self._local.__dict__.setdefault("handlers", []).append(handler)

    def uninstall(self, handler: Callable) -> None:
        self._local.handlers.remove(handler)
        with self._lock:
            self._users -= 1
            if self._users == 0 and self.active:
                setattr(self.owner, self.name, self._replaced)

    @contextlib.contextmanager
    def installed(self, handler: Callable) -> Iterator[None]:
        """``install(handler)`` for the block."""
        self.install(handler)
        try:
            yield
        finally:
            self.uninstall(handler)
