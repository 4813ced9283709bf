#!/usr/bin/env python3
"""Checks models exported by ppo-models (`hf::save_causal_lm`, `hf::save_value_model`) with
transformers: loads each with its Auto class in float32 and eager attention and compares its
outputs with the ones ppo-rs computed.

    python scripts/check_hf_export.py DIR EXPECTED_JSON

EXPECTED_JSON (written by crates/ppo-models/tests/hf_export.rs) holds
{"rel_tol": 1e-4, "cases": [CASE, ...]}; each CASE names a sub-directory of DIR and holds:

  name          sub-directory with config.json + model.safetensors
  head          "causal_lm" (AutoModelForCausalLM), "value" (AutoModelForSequenceClassification)
                or "peft" (a PEFT LoRA adapter directory loaded with peft.PeftModel over the
                causal LM in the sub-directory named by "base")
  input_ids     [[id, ...], ...], one unpadded batch
  logits        flat row-major logits [batch, seq, vocab] with logits_shape   (causal_lm)
  values        flat per-token values [batch, seq] with values_shape          (value)
  generation    optional {"prompts", "pad_token_id", "eos_token_id" (or null),
                "max_new_tokens", "tokens"}: greedy continuations of the left-padded prompts,
                each up to and including the first EOS
  token_ids     optional {"bos", "eos", "pad"}: the ids config.json (and generation_config.json
                where there is one) must give
  tokenizer     optional {"texts", "ids", "prompt_ids", "decode": [{"ids", "text"}]}: what
                AutoTokenizer must give for tok(text, add_special_tokens=False), tok(text) and
                tok.decode(ids, skip_special_tokens=True)

A difference is relative: max |ours - theirs| / max |theirs|. Prints one line per check and
exits 1 listing every mismatch.
"""

import argparse
import json
import pathlib
import sys

import torch
import transformers
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    GenerationConfig,
)


def relative_difference(ours, theirs):
    """(max |ours - theirs|, that divided by max |theirs|)."""
    ours = torch.tensor(ours, dtype=torch.float32).reshape(theirs.shape)
    max_diff = float((ours - theirs).abs().max())
    return max_diff, max_diff / (float(theirs.abs().max()) + 1e-12)


class Checker:
    def __init__(self, rel_tol):
        self.rel_tol = rel_tol
        self.failures = []

    def fail(self, case, message):
        self.failures.append(f"{case}: {message}")
        print(f"  FAIL {message}")

    def close(self, case, what, ours, theirs):
        max_diff, rel = relative_difference(ours, theirs)
        ok = rel <= self.rel_tol
        print(f"  {what}: max |diff| {max_diff:.3e}, relative {rel:.3e} {'ok' if ok else 'FAIL'}")
        if not ok:
            self.failures.append(
                f"{case}: {what} differ by {rel:.3e} relative (max |diff| {max_diff:.3e}), "
                f"tolerance {self.rel_tol:.0e}"
            )

    def equal(self, case, what, ours, theirs):
        if ours == theirs:
            print(f"  {what}: equal")
        else:
            self.fail(case, f"{what}: ppo-rs {ours!r}, transformers {theirs!r}")


def check_causal_lm(checker, case, directory, base=None):
    name = case["name"]
    if base is None:
        model = AutoModelForCausalLM.from_pretrained(
            directory, dtype=torch.float32, attn_implementation="eager"
        ).eval()
    else:
        # A PEFT LoRA adapter directory over the base checkpoint `base`.
        import peft

        base_model = AutoModelForCausalLM.from_pretrained(
            base, dtype=torch.float32, attn_implementation="eager"
        )
        model = peft.PeftModel.from_pretrained(base_model, directory).eval()
        print(f"  peft {peft.__version__}")
    print(f"  loaded {type(model).__name__}")
    ids = torch.tensor(case["input_ids"])
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    checker.equal(name, "logits shape", case["logits_shape"], list(logits.shape))
    if list(logits.shape) == case["logits_shape"]:
        checker.close(name, "logits", case["logits"], logits)
    generation = case.get("generation")
    if generation:
        check_generation(checker, name, model, generation)
    return model


def check_generation(checker, name, model, generation):
    prompts, pad = generation["prompts"], generation["pad_token_id"]
    eos = generation.get("eos_token_id")
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    config = GenerationConfig(
        do_sample=False,
        max_new_tokens=generation["max_new_tokens"],
        eos_token_id=eos,
        pad_token_id=pad,
    )
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
    tokens = []
    for row in out[:, width:].tolist():
        if eos is not None and eos in row:
            row = row[: row.index(eos) + 1]
        tokens.append(row)
    checker.equal(name, "greedy tokens", generation["tokens"], tokens)


def check_value_model(checker, case, directory):
    name = case["name"]
    model = AutoModelForSequenceClassification.from_pretrained(
        directory, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    print(f"  loaded {type(model).__name__}")
    checker.equal(name, "num_labels", 1, model.config.num_labels)
    ids = torch.tensor(case["input_ids"])
    with torch.no_grad():
        # Per-token values, as a PPO critic reads them; the class itself pools the last one.
        hidden = model.model(input_ids=ids).last_hidden_state
        values = model.score(hidden)[..., 0]
        pooled = model(input_ids=ids).logits[:, 0]
    checker.equal(name, "values shape", case["values_shape"], list(values.shape))
    if list(values.shape) == case["values_shape"]:
        checker.close(name, "per-token values", case["values"], values)
        last = torch.tensor(case["values"]).reshape(values.shape)[:, -1].tolist()
        checker.close(name, "pooled value (last token)", last, pooled)
    return model


def check_token_ids(checker, name, model, directory, expected):
    """config.json's ids, and generation_config.json's where the directory has one."""
    has_generation_config = (directory / "generation_config.json").is_file()
    generation_config = GenerationConfig.from_pretrained(directory) if has_generation_config else None
    for key in ["bos", "eos", "pad"]:
        config_id = getattr(model.config, f"{key}_token_id", None)
        checker.equal(name, f"config.json {key}_token_id", expected.get(key), config_id)
        if generation_config is not None:
            generation_id = getattr(generation_config, f"{key}_token_id")
            checker.equal(name, f"generation_config.json {key}_token_id", expected.get(key), generation_id)


def check_tokenizer(checker, name, directory, expected):
    tok = AutoTokenizer.from_pretrained(directory)
    print(f"  loaded {type(tok).__name__}")
    for text, ids, prompt_ids in zip(expected["texts"], expected["ids"], expected["prompt_ids"]):
        shown = text if len(text) < 40 else text[:37] + "..."
        checker.equal(name, f"ids of {shown!r}", ids, tok(text, add_special_tokens=False)["input_ids"])
        checker.equal(name, f"prompt ids of {shown!r}", prompt_ids, tok(text)["input_ids"])
        checker.equal(name, f"decode of {shown!r}", text, tok.decode(ids))
    for case in expected["decode"]:
        decoded = tok.decode(case["ids"], skip_special_tokens=True)
        checker.equal(name, f"decode of {case['ids']}", case["text"], decoded)
    if "token_ids" in expected:
        ids = expected["token_ids"]
        found = {"bos": tok.bos_token_id, "eos": tok.eos_token_id, "pad": tok.pad_token_id}
        checker.equal(name, "tokenizer special ids", ids, found)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dir", type=pathlib.Path, help="directory holding one sub-directory per case")
    parser.add_argument("expected", type=pathlib.Path, help="JSON with the cases and ppo-rs outputs")
    args = parser.parse_args()
    transformers.utils.logging.disable_progress_bar()
    expected = json.loads(args.expected.read_text())
    checker = Checker(expected.get("rel_tol", 1e-4))
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    for case in expected["cases"]:
        name = case["name"]
        directory = args.dir / name
        print(f"{name} ({directory})")
        try:
            if case["head"] == "causal_lm":
                model = check_causal_lm(checker, case, directory)
            elif case["head"] == "peft":
                model = check_causal_lm(checker, case, directory, args.dir / case["base"])
            elif case["head"] == "value":
                model = check_value_model(checker, case, directory)
            else:
                checker.fail(name, f"unknown head {case['head']!r}")
                continue
            if "token_ids" in case:
                check_token_ids(checker, name, model, directory, case["token_ids"])
            if "tokenizer" in case:
                check_tokenizer(checker, name, directory, case["tokenizer"])
        except Exception as error:  # a load failure is a mismatch too; report and go on
            checker.fail(name, f"{type(error).__name__}: {error}")
    if checker.failures:
        print(f"\n{len(checker.failures)} mismatch(es) between ppo-rs and transformers:")
        for failure in checker.failures:
            print(f"  {failure}")
        sys.exit(1)
    print(f"\nall {len(expected['cases'])} exported models match transformers")


if __name__ == "__main__":
    main()
