#!/usr/bin/env python3
"""How far PyTorch's own bf16 logits lie from its f32 logits, for Hugging Face checkpoints: the
reference the bf16 tolerances of crates/ppo-models/tests/precision.rs are judged against.

    python scripts/bf16_errors.py DIR...

For each DIR (config.json + model.safetensors, e.g. tests/fixtures/hf/qwen3_qknorm_bf16, or a
model written by `hf::save_causal_lm`) and the ids (i*37 + 5) mod vocab, i < 24, as two rows of
12, prints max |bf16 - f32| / max |f32| for: autocast (f32 weights, bf16 matmuls), the model
loaded in bf16 with eager and with sdpa attention, and the f32 model with bf16-rounded weights.
CPU only; requirements as scripts/requirements-fixtures.txt.
"""

import sys

import torch
import transformers


def load(path, dtype, attention="eager"):
    return transformers.AutoModelForCausalLM.from_pretrained(
        path, dtype=dtype, attn_implementation=attention
    ).eval()


def main(paths):
    for path in paths:
        model = load(path, torch.float32)
        vocab = model.config.vocab_size
        ids = torch.tensor([(i * 37 + 5) % vocab for i in range(24)]).reshape(2, 12)
        with torch.no_grad():
            reference = model(ids).logits.float()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                autocast = model(ids).logits.float()
            eager = load(path, torch.bfloat16)(ids).logits.float()
            sdpa = load(path, torch.bfloat16, "sdpa")(ids).logits.float()
            weights_only = load(path, torch.bfloat16).float()(ids).logits

        def rel(x):
            return ((x - reference).abs().max() / reference.abs().max()).item()

        print(
            f"{path}: autocast {rel(autocast):.3e}, bf16 eager {rel(eager):.3e}, "
            f"bf16 sdpa {rel(sdpa):.3e}, bf16 weights only {rel(weights_only):.3e}"
        )


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
