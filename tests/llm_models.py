"""Small token models for the CLI's pkg.module:factory specs (tests/ is on sys.path)."""

from torch import nn


class TinyLM(nn.Module):
    """Token ids -> logits: an embedding, one linear layer, an output projection."""

    def __init__(self, vocab: int = 50, width: int = 16):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.mix = nn.Linear(width, width)
        self.out = nn.Linear(width, vocab)

    def forward(self, ids):
        return self.out(self.mix(self.embed(ids)).relu())


def tiny_lm():
    return TinyLM()
