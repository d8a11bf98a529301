"""Tiny transformers causal LMs, built offline with random weights, for generation tests and
the CLI (``python -m torchprof_lab generation_models:gpt2_tiny --generate``, with tests/ on
sys.path)."""

import torch
import transformers

transformers.logging.set_verbosity_error()  # the tiny GPT-2's eos id (50256) is outside its vocabulary


def gpt2_config():
    return transformers.GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=128, n_positions=256)


def llama_config():
    return transformers.LlamaConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                                    intermediate_size=128, vocab_size=128, max_position_embeddings=256)


def gpt2_tiny():
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(gpt2_config()).eval()


def llama_tiny():
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(llama_config()).eval()
