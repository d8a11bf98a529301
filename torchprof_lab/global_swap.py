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
        self._replaced = None
        self._local = threading.local()
        swap = self

        def dispatch(*args, **kwargs):  # a plain function: on a class it binds like the method it stands for
            stack = getattr(swap._local, "handlers", None)
            if stack:
                return stack[-1](swap._replaced, *args, **kwargs)
            return swap._replaced(*args, **kwargs)

        self._dispatch = dispatch

    @property
    def active(self) -> bool:
        return getattr(self.owner, self.name) is self._dispatch

    @contextlib.contextmanager
    def installed(self, handler: Callable) -> Iterator[None]:
        """While the block runs, this thread's calls of ``owner.name(*args)`` are
        ``handler(replaced, *args)``."""
        with self._lock:
            if self._users == 0:
                self._replaced = getattr(self.owner, self.name)
                setattr(self.owner, self.name, self._dispatch)
            self._users += 1
        stack = self._local.__dict__.setdefault("handlers", [])
        stack.append(handler)
        try:
            yield
        finally:
            stack.remove(handler)
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    if self.active:
                        setattr(self.owner, self.name, self._replaced)
                    self._replaced = None
