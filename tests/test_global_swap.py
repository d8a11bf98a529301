"""GlobalSwap: a global replaced per thread while in use, put back by the last user, never over a
value someone else bound meanwhile."""

import threading
import types

import torch

from torchprof_lab import memory
from torchprof_lab import torch_internals as ti
from torchprof_lab.global_swap import GlobalSwap


def _module():
    module = types.SimpleNamespace(f=lambda x: ("original", x))
    return module, GlobalSwap(module, "f")


def test_the_threads_handler_gets_the_call_and_the_replaced_value():
    module, swap = _module()
    original = module.f
    with swap.installed(lambda replaced, x: ("outer", replaced(x))):
        assert module.f(1) == ("outer", ("original", 1))
        with swap.installed(lambda replaced, x: ("inner", x)):
            assert module.f(2) == ("inner", 2)
        assert module.f(3) == ("outer", ("original", 3))
    assert module.f is original


def test_a_value_the_user_bound_before_is_called_and_put_back():
    module, swap = _module()
    users = lambda x: ("user's", x)  # noqa: E731 - a user's own patch, made before the profiler's
    module.f = users
    with swap.installed(lambda replaced, x: ("handler", replaced(x))):
        assert module.f(1) == ("handler", ("user's", 1))
    assert module.f is users


def test_a_value_bound_meanwhile_is_left_in_place():
    module, swap = _module()
    later = lambda x: ("later", x)  # noqa: E731
    with swap.installed(lambda replaced, x: ("handler", x)):
        module.f = later
    assert module.f is later


def test_other_threads_reach_the_replaced_value_and_exits_in_any_order_restore_it():
    module, swap = _module()
    original = module.f
    entered, release, seen = threading.Event(), threading.Event(), []

    def other():
        with swap.installed(lambda replaced, x: ("other thread", x)):
            seen.append(module.f(0))
            entered.set()
            release.wait(5)

    thread = threading.Thread(target=other)
    block = swap.installed(lambda replaced, x: ("main thread", x))
    block.__enter__()
    thread.start()
    assert entered.wait(5)
    assert module.f(1) == ("main thread", 1) and seen == [("other thread", 0)]
    block.__exit__(None, None, None)  # the first in leaves first: not last-in-first-out
    assert module.f(2) == ("original", 2)  # this thread has no handler now; the other still uses it
    release.set()
    thread.join(5)
    assert module.f is original


def test_the_memory_tracker_follows_resize_only_while_it_runs():
    resize = torch.UntypedStorage.resize_
    model = torch.nn.Linear(4, 4)
    memory(model, (4,), 2, train=True)  # a step on the CPU: the tracker runs and ends
    assert torch.UntypedStorage.resize_ is resize
    assert torch.nn.functional.scaled_dot_product_attention is ti.SDPA
    with ti.storage_resize.installed(lambda replaced, st, size: replaced(st, size)):
        st = torch.UntypedStorage(8)
        st.resize_(16)  # bound like the method it stands for
        assert st.nbytes() == 16
    assert torch.UntypedStorage.resize_ is resize


def test_a_wrapper_put_over_the_dispatcher_keeps_working_after_and_on_reentry():
    """Someone wraps the global while a swap is on; the wrapper outlives the swap (calls still reach
    the original), and a later swap over that wrapper does not loop back into itself."""
    module, swap = _module()
    original = module.f
    with swap.installed(lambda replaced, x: ("handler", replaced(x))):
        inner = module.f  # the dispatcher
        module.f = lambda x: ("wrapper", inner(x))  # a library's wrapper, made while the swap is on
    wrapper = module.f
    assert wrapper(1) == ("wrapper", ("original", 1))  # no handler now: the dispatcher calls the original
    with swap.installed(lambda replaced, x: ("handler", replaced(x))):
        assert module.f(2) == ("handler", ("wrapper", ("original", 2)))  # the wrapper's call comes back once
    assert module.f is wrapper and original(3) == ("original", 3)
