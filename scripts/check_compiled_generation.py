"""torch.compile'd generation makes the same tokens as eager greedy decoding and leaves the model
untouched, for the static and the dynamic cache. A check too slow for the test suite (about
20 s of compilation on this 2-core CPU), run by hand:

    .venv/bin/python scripts/check_compiled_generation.py
"""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path[:0] = [str(TESTS), str(TESTS / "integration")]

import generation_models  # noqa: E402  (the tests' tiny GPT-2 / Llama factories)
from model_fingerprint import assert_untouched, fingerprint  # noqa: E402

from torchprof_lab import benchmark_generation  # noqa: E402

PROMPT, NEW = 8, 5


def main() -> None:
    for cache in ("static", "dynamic"):
        model = generation_models.llama_tiny()
        before = fingerprint(model)
        eager = benchmark_generation(model, prompt_len=PROMPT, new_tokens=NEW, batch_sizes=[2], cache=cache,
                                     min_time=0.0, min_runs=1, warmup=1, warmup_time=0.0, threads=1)
        compiled = benchmark_generation(model, prompt_len=PROMPT, new_tokens=NEW, batch_sizes=[2], cache=cache,
                                        compile=True, min_time=0.0, min_runs=1, warmup=2, warmup_time=0.0,
                                        threads=1)
        assert_untouched(before, model)
        same = [list(s) for s in compiled.rows[0].output_ids] == [list(s) for s in eager.rows[0].output_ids]
        assert compiled.compiled and same, cache
        print(f"{cache} cache: compiled tokens equal eager; decode p50 {compiled.rows[0].decode.p50 * 1e3:.2f} ms "
              f"compiled, {eager.rows[0].decode.p50 * 1e3:.2f} ms eager")


if __name__ == "__main__":
    main()
