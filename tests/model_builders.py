"""torchvision models built for counting without allocating or initialising weights."""

import contextlib

import torch


def meta_model(builder, **kwargs):
    """Build a torchvision model without allocating weights (RegNet computes while building, so it
    builds on the CPU, its weight initialisation skipped: the counts do not read the values)."""
    try:
        with torch.device("meta"), _no_weight_init():  # init on meta computes nothing but costs Python calls
            return builder(**kwargs)
    except NotImplementedError:
        with _no_weight_init():
            return builder(**kwargs)


@contextlib.contextmanager
def _no_weight_init():
    """torch.nn.init's fills as no-ops for the block (regnet_y_128gf: 6.8 s of init to 0.1 s)."""
    names = [n for n in dir(torch.nn.init) if n.endswith("_") and not n.startswith("_")]
    saved = {n: getattr(torch.nn.init, n) for n in names}
    try:
        for n in names:
            setattr(torch.nn.init, n, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for n, f in saved.items():
            setattr(torch.nn.init, n, f)
