"""``track()``: a user's own training loop measured step by step (docs/training_callbacks.md)."""
