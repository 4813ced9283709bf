#!/usr/bin/env python3
"""Writes the DeBERTa-v2/v3 reward-model parity fixtures of ppo-models
(crates/ppo-models/tests/fixtures/deberta).

A tiny SentencePiece-unigram tokenizer is trained on a few sentences (the DeBERTa-v3 pair
template `[CLS] A [SEP] B [SEP]` with token type ids) and saved the way transformers saves it.
For each case: a tiny random-initialised `DebertaV2ForSequenceClassification` (one label)
saved as `config.json` + `model.safetensors` (or `pytorch_model.bin`, as the published
OpenAssistant reward model ships), the tokenizer files, and `expected.json` with
transformers' `tokenizer(question, answer)` ids and the logits for each pair alone and for
right- and left-padded batches. `buckets.json` holds transformers' log-bucket relative
positions for the bucket sizes used here and for DeBERTa-v3-large (256 buckets, 512).

    python3 -m venv .venv-fixtures
    .venv-fixtures/bin/pip install -r scripts/requirements-fixtures.txt
    .venv-fixtures/bin/python scripts/make_deberta_fixtures.py
"""

import json
import pathlib
import shutil
import tempfile

import torch
import transformers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, DebertaV2Config, DebertaV2ForSequenceClassification
from transformers.models.deberta_v2.modeling_deberta_v2 import make_log_bucket_position

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "crates/ppo-models/tests/fixtures/deberta"

CORPUS = [
    "What is the capital of France? The capital of France is Paris.",
    "How do I make a good cup of coffee? Use fresh beans, grind them and brew at 93 degrees.",
    "Tom has 3 bags of 4 apples. How many apples does he have? He has 12 apples.",
    "The quick brown fox jumps over the lazy dog while the cat sleeps in the sun.",
    "Explain photosynthesis in simple words: plants turn light, water and air into sugar.",
    "Je ne sais pas. Das ist gut. ¿Dónde está la biblioteca? 東京は日本の首都です。",
    "Numbers like 42, 3.14 and 1000 appear in answers; so do lists: first, second, third.",
]

PAIRS = [
    ("What is the capital of France?", "Paris."),
    ("How many apples does Tom have?", "He has 3 bags of 4 apples, so 12 apples."),
    (
        "Explain photosynthesis in simple words.",
        "Plants use the light of the sun to turn water and air into sugar; first, 42.",
    ),
    ("¿Dónde está la biblioteca?", "東京は日本の首都です。 Je ne sais pas!"),
]

SMALL = dict(
    hidden_size=24,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=48,
    max_position_embeddings=128,
    layer_norm_eps=1e-7,
    num_labels=1,
)


def cases():
    """name -> (config keywords, weights file)."""
    return {
        # DeBERTa-v3 as published (deberta-v3-large's options, small): shared keys, c2p+p2c,
        # log buckets, LayerNorm on the relative embeddings, no absolute positions, no token
        # types; weights in pytorch_model.bin.
        "v3_shared_c2p_p2c_bin": (
            dict(
                relative_attention=True, pos_att_type=["p2c", "c2p"], share_att_key=True,
                norm_rel_ebd="layer_norm", position_buckets=16, max_relative_positions=-1,
                position_biased_input=False, type_vocab_size=0, pooler_hidden_act="gelu",
            ),
            "pytorch_model.bin",
        ),
        # Separate position projections, c2p only, 8 buckets over 32 positions, absolute
        # positions and token types, no LayerNorm on the relative embeddings.
        "unshared_c2p_types": (
            dict(
                relative_attention=True, pos_att_type="c2p", share_att_key=False,
                norm_rel_ebd="none", position_buckets=8, max_relative_positions=32,
                position_biased_input=True, type_vocab_size=2, pooler_hidden_act="tanh",
            ),
            "model.safetensors",
        ),
        # No buckets, relative positions clamped at 12 (pairs are longer), c2p+p2c given as a
        # string, the ConvLayer, an embedding_size projection, relu in the MLP.
        "unshared_conv_embed_proj": (
            dict(
                relative_attention=True, pos_att_type="p2c|c2p", share_att_key=False,
                norm_rel_ebd="layer_norm", position_buckets=-1, max_relative_positions=12,
                position_biased_input=False, type_vocab_size=2, conv_kernel_size=3,
                conv_act="gelu", embedding_size=16, hidden_act="relu", pooler_hidden_act="gelu",
            ),
            "model.safetensors",
        ),
        # p2c only with shared keys, 32 buckets over 128 positions.
        "shared_p2c_buckets32": (
            dict(
                relative_attention=True, pos_att_type=["p2c"], share_att_key=True,
                norm_rel_ebd="layer_norm", position_buckets=32, max_relative_positions=128,
                position_biased_input=False, type_vocab_size=0, pooler_hidden_act="gelu",
            ),
            "model.safetensors",
        ),
    }


def train_tokenizer(directory):
    """A SentencePiece-unigram tokenizer with DeBERTa-v3's special tokens and pair template,
    saved by transformers (so `tokenizer.json` is what transformers itself encodes with)."""
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=160,
        special_tokens=["[PAD]", "[CLS]", "[SEP]", "[UNK]"],
        unk_token="[UNK]",
        shrinking_factor=0.75,
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    tok.add_special_tokens(["[MASK]"])
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        tok.save(str(tmp / "tokenizer.json"))
        (tmp / "tokenizer_config.json").write_text(json.dumps({
            "tokenizer_class": "DebertaV2Tokenizer",
            "bos_token": "[CLS]", "eos_token": "[SEP]", "unk_token": "[UNK]",
            "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
            "mask_token": "[MASK]", "do_lower_case": False, "model_max_length": 512,
        }, indent=1))
        hf = AutoTokenizer.from_pretrained(str(tmp))
        hf.save_pretrained(str(directory))
    return AutoTokenizer.from_pretrained(str(directory))


def build(config, seed):
    """A model whose every parameter (LayerNorm weights and biases included) is random."""
    torch.manual_seed(seed)
    model = DebertaV2ForSequenceClassification(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "LayerNorm.weight" in name:
                param.copy_(1.0 + 0.2 * torch.randn_like(param))
            elif name.endswith("bias"):
                param.copy_(0.2 * torch.randn_like(param))
            else:
                param.copy_(0.15 * torch.randn_like(param))
    return model


def flat(tensor):
    return [float(x) for x in tensor.reshape(-1).tolist()]


def padded(encodings, pad_id, side):
    width = max(len(e["input_ids"]) for e in encodings)
    ids, types, mask = [], [], []
    for e in encodings:
        n = len(e["input_ids"])
        pad = width - n
        if side == "right":
            ids.append(e["input_ids"] + [pad_id] * pad)
            types.append(e["token_type_ids"] + [0] * pad)
            mask.append([1] * n + [0] * pad)
        else:
            ids.append([pad_id] * pad + e["input_ids"])
            types.append([0] * pad + e["token_type_ids"])
            mask.append([0] * pad + [1] * n)
    return ids, types, mask


def write_case(name, keywords, weights_file, seed, tokenizer, tokenizer_dir):
    config = DebertaV2Config(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **SMALL, **keywords)
    model = build(config, seed)
    directory = OUT / name
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    model.save_pretrained(directory)
    if weights_file == "pytorch_model.bin":
        (directory / "model.safetensors").unlink()
        torch.save(model.state_dict(), directory / "pytorch_model.bin")
    for f in tokenizer_dir.iterdir():
        shutil.copy(f, directory / f.name)
    encodings = [tokenizer(q, a) for q, a in PAIRS]
    expected = {
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "pairs": [list(p) for p in PAIRS],
        "input_ids": [e["input_ids"] for e in encodings],
        "token_type_ids": [e["token_type_ids"] for e in encodings],
        "single_logits": [],
    }
    with torch.no_grad():
        for e in encodings:
            logits = model(
                input_ids=torch.tensor([e["input_ids"]]),
                token_type_ids=torch.tensor([e["token_type_ids"]]),
                attention_mask=torch.ones(1, len(e["input_ids"]), dtype=torch.long),
            ).logits
            expected["single_logits"].append(flat(logits)[0])
        for side in ["right", "left"]:
            ids, types, mask = padded(encodings, tokenizer.pad_token_id, side)
            logits = model(
                input_ids=torch.tensor(ids),
                token_type_ids=torch.tensor(types),
                attention_mask=torch.tensor(mask),
            ).logits
            expected[f"{side}_padded"] = {
                "input_ids": ids, "token_type_ids": types, "attention_mask": mask,
                "logits": flat(logits),
            }
    # Padding on the right does not change a score in transformers (checked here too).
    right = expected["right_padded"]["logits"]
    assert max(abs(a - b) for a, b in zip(right, expected["single_logits"])) < 1e-4, name
    (directory / "expected.json").write_text(json.dumps(expected) + "\n")
    size = sum(f.stat().st_size for f in directory.iterdir())
    print(f"{name}: {size} bytes, lengths {[len(i) for i in expected['input_ids']]}, "
          f"scores {[round(s, 4) for s in expected['single_logits']]}")


def write_buckets():
    rel = torch.arange(-700, 701, dtype=torch.long)
    table = []
    for buckets, max_position in [(8, 32), (16, 64), (32, 128), (256, 512)]:
        values = make_log_bucket_position(rel, buckets, max_position).to(torch.long)
        table.append({"position_buckets": buckets, "max_relative_positions": max_position,
                      "first_relative_position": int(rel[0]), "buckets": values.tolist()})
    (OUT / "buckets.json").write_text(json.dumps(table) + "\n")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer_dir = pathlib.Path(tmp)
        tokenizer = train_tokenizer(tokenizer_dir)
        for seed, (name, (keywords, weights_file)) in enumerate(cases().items()):
            write_case(name, keywords, weights_file, seed, tokenizer, tokenizer_dir)
    write_buckets()


if __name__ == "__main__":
    main()
