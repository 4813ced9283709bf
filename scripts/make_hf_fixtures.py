#!/usr/bin/env python3
"""Writes the Hugging Face parity fixtures of ppo-models (crates/ppo-models/tests/fixtures/hf).

For each case: a tiny random model saved with `save_pretrained` (config.json + safetensors,
in the dtype of the case, sharded for one of them) and `expected.json` with transformers'
logits for a fixed batch and its greedy generation for left-padded prompts. The reference
outputs are computed in float32 from the weights exactly as saved (rounded to bf16/f16 first
where the case is saved in those dtypes).

    python3 -m venv .venv-fixtures
    .venv-fixtures/bin/pip install -r scripts/requirements-fixtures.txt
    .venv-fixtures/bin/python scripts/make_hf_fixtures.py

`--configs-only DIR` writes only the config.json of every case, as the installed transformers
saves it, to DIR/transformers-<version>/<case>.json: run it under other transformers versions
to test the config parser across versions.
"""

import argparse
import json
import pathlib
import shutil
import tempfile

import torch
import transformers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2ForSequenceClassification,
    Qwen3Config,
    Qwen3ForCausalLM,
)

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "crates/ppo-models/tests/fixtures/hf"

# Shared shape: 2 layers, small vocab and width.
COMMON = dict(num_hidden_layers=2, max_position_embeddings=64, initializer_range=0.15)


def cases():
    """name -> (model class, config, on-disk dtype, max_shard_size or None)."""
    return {
        # Llama: GQA (4 query heads, 2 kv heads), untied lm_head, eps 1e-5.
        "llama_gqa_untied": (
            LlamaForCausalLM,
            LlamaConfig(
                vocab_size=96, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                num_key_value_heads=2, rms_norm_eps=1e-5, tie_word_embeddings=False, **COMMON,
            ),
            torch.float32,
            None,
        ),
        # Qwen2: q/k/v bias, tied embeddings, rope_theta 1e6.
        "qwen2_bias_tied": (
            Qwen2ForCausalLM,
            Qwen2Config(
                vocab_size=80, hidden_size=32, intermediate_size=48, num_attention_heads=4,
                num_key_value_heads=4, rms_norm_eps=1e-6, rope_theta=1_000_000.0,
                tie_word_embeddings=True, **COMMON,
            ),
            torch.float32,
            None,
        ),
        # Qwen3: q/k norm, explicit head_dim (8, not hidden/heads = 6), rope_theta 5e5,
        # saved in bfloat16.
        "qwen3_qknorm_bf16": (
            Qwen3ForCausalLM,
            Qwen3Config(
                vocab_size=128, hidden_size=24, intermediate_size=64, num_attention_heads=4,
                num_key_value_heads=2, head_dim=8, rms_norm_eps=1e-6, rope_theta=500_000.0,
                tie_word_embeddings=False, **COMMON,
            ),
            torch.bfloat16,
            None,
        ),
        # Mistral without sliding window: multi-query (1 kv head), float16, sharded.
        "mistral_sharded_f16": (
            MistralForCausalLM,
            MistralConfig(
                vocab_size=64, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                num_key_value_heads=1, sliding_window=None, rms_norm_eps=1e-6,
                tie_word_embeddings=False, **COMMON,
            ),
            torch.float16,
            "16KB",
        ),
        # Qwen2 reward/value model: backbone + `score` with one label.
        "qwen2_value_head": (
            Qwen2ForSequenceClassification,
            Qwen2Config(
                vocab_size=80, hidden_size=32, intermediate_size=48, num_attention_heads=4,
                num_key_value_heads=2, num_labels=1, pad_token_id=0, **COMMON,
            ),
            torch.float32,
            None,
        ),
    }


# The logits batch (unpadded) and the generation prompts (left-padded to the longest).
INPUT_IDS = [[5, 17, 42, 8, 23, 61, 3, 30], [12, 7, 55, 40, 2, 19, 33, 9]]
PROMPTS = [[4, 9, 31, 22, 50], [14, 27, 6]]
PAD_ID = 0
MAX_NEW_TOKENS = 8


def build(cls, config, seed):
    """A model whose every parameter (norm weights and biases included) is random."""
    torch.manual_seed(seed)
    model = cls(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.copy_(1.0 + 0.2 * torch.randn_like(param))
            elif name.endswith("bias"):
                param.copy_(0.2 * torch.randn_like(param))
            else:
                param.copy_(config.initializer_range * torch.randn_like(param))
    return model


def flat(tensor):
    return [float(x) for x in tensor.reshape(-1).tolist()]


def greedy(model, vocab_size):
    """Greedy tokens for the left-padded prompts, and the smallest top-1/top-2 logit gap."""
    width = max(len(p) for p in PROMPTS)
    ids = torch.tensor([[PAD_ID] * (width - len(p)) + p for p in PROMPTS])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in PROMPTS])
    out = model.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=MAX_NEW_TOKENS,
        min_new_tokens=MAX_NEW_TOKENS,
        do_sample=False,
        eos_token_id=None,
        pad_token_id=PAD_ID,
        output_scores=True,
        return_dict_in_generate=True,
    )
    tokens = out.sequences[:, width:].tolist()
    gap = min(float((s.topk(2).values[:, 0] - s.topk(2).values[:, 1]).min()) for s in out.scores)
    assert all(len(row) == MAX_NEW_TOKENS for row in tokens)
    assert all(t < vocab_size for row in tokens for t in row)
    return tokens, gap


def write_case(name, cls, config, dtype, shard, seed):
    config._attn_implementation = "eager"
    model = build(cls, config, seed)
    directory = OUT / name
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    # Save in the case's dtype, then compute the reference in f32 from the rounded weights.
    model = model.to(dtype)
    kwargs = {"max_shard_size": shard} if shard else {}
    model.save_pretrained(directory, **kwargs)
    # A fresh f32 model with the rounded weights: `.to(float32)` would keep the rotary
    # `inv_freq` buffer rounded to the saved dtype, which transformers never does on load.
    rounded = model.state_dict()
    model = cls(config).eval()
    model.load_state_dict({k: v.to(torch.float32) for k, v in rounded.items()})
    for extra in directory.glob("generation_config.json"):
        extra.unlink()
    ids = torch.tensor(INPUT_IDS)
    expected = {
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "architecture": cls.__name__,
        "input_ids": INPUT_IDS,
    }
    with torch.no_grad():
        if cls is Qwen2ForSequenceClassification:
            # Per-token values, as a PPO critic reads them (the class itself pools one).
            hidden = model.model(input_ids=ids).last_hidden_state
            values = model.score(hidden)[..., 0]
            expected["values_shape"] = list(values.shape)
            expected["values"] = flat(values)
        else:
            logits = model(input_ids=ids).logits
            expected["logits_shape"] = list(logits.shape)
            expected["logits"] = flat(logits)
            tokens, gap = greedy(model, config.vocab_size)
            expected["generation"] = {
                "prompts": PROMPTS,
                "pad_token_id": PAD_ID,
                "max_new_tokens": MAX_NEW_TOKENS,
                "tokens": tokens,
                "min_top2_gap": gap,
            }
            print(f"{name}: greedy tokens {tokens}, smallest top-1/top-2 gap {gap:.4f}")
    (directory / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    size = sum(f.stat().st_size for f in directory.iterdir())
    print(f"{name}: {size} bytes in {sorted(f.name for f in directory.iterdir())}")


def write_configs(out_dir):
    target = pathlib.Path(out_dir) / f"transformers-{transformers.__version__}"
    target.mkdir(parents=True, exist_ok=True)
    for name, (cls, config, dtype, _) in cases().items():
        with tempfile.TemporaryDirectory() as tmp:
            cls(config).to(dtype).save_pretrained(tmp)
            shutil.copy(pathlib.Path(tmp) / "config.json", target / f"{name}.json")
    print(f"wrote configs to {target}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs-only", metavar="DIR", help="write only config.json files to DIR")
    args = parser.parse_args()
    if args.configs_only:
        write_configs(args.configs_only)
        return
    for seed, (name, (cls, config, dtype, shard)) in enumerate(cases().items()):
        write_case(name, cls, config, dtype, shard, seed)


if __name__ == "__main__":
    main()
