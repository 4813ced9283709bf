#!/usr/bin/env python3
"""Writes the tokenizer parity fixtures of ppo-models (crates/ppo-models/tests/fixtures/tokenizer).

There is no model hub here, so each case builds a tiny tokenizer with the `tokenizers` library
from the corpus below (byte-level BPEs trained on it, a WordPiece vocabulary counted from it;
the output is the same on every run), writes it the way Hugging Face model directories hold it (tokenizer.json,
tokenizer_config.json, and per case chat_template.jinja or special_tokens_map.json), loads the
directory back with `transformers.AutoTokenizer` and records in expected.json what
transformers does with it: ids with and without special tokens, decoded text, the special
token ids, and `apply_chat_template` text and ids.

    # from the repository root, with the venv of scripts/requirements-fixtures.txt
    .venv-fixtures/bin/python scripts/make_tokenizer_fixtures.py

Cases:
- qwen_chatml: Qwen2-style byte-level BPE (NFC, Qwen's split regex, ByteLevel), ChatML tokens,
  `tokenizer_class` Qwen2Tokenizer, a Qwen3-like chat template in chat_template.jinja.
- llama3_bos: Llama-3-style byte-level BPE whose post-processor prepends <|begin_of_text|>
  (TemplateProcessing), no pad token, chat template (using bos_token) in tokenizer_config.json.
- wordpiece_flags: a WordPiece tokenizer with no post-processor in tokenizer.json and
  `add_bos_token`/`add_eos_token` in tokenizer_config.json (which transformers 5 drops when
  tokenizer.json exists, so nothing is added), clean_up_tokenization_spaces on (applied, the
  model not being BPE), special tokens overridden by a legacy special_tokens_map.json, and a
  list of named chat templates.
"""

import json
import pathlib
import shutil

import tokenizers
import transformers
from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import AutoTokenizer

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "crates/ppo-models/tests/fixtures/tokenizer"

CORPUS = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.",
    "How many clips did Natalia sell altogether in April and May? 48 / 2 = 24 and 48 + 24 = 72.",
    "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting.",
    "Betty is saving money for a new wallet which costs $100. The answer is 1,234,567.",
    "James writes a 3-page letter to 2 different friends twice a week. #### 624",
    "Let x = 3.5; then 2x + 1 = 8 and x^2 = 12.25, so the total is 1,000 dollars.",
    "The quick brown fox jumps over the lazy dog. It's what they'd said, isn't it?",
    "如何制作一杯好咖啡？先把咖啡豆磨成粉，然后用九十度的水冲泡。",
    "小明有 12 个苹果，他吃了 3 个，还剩多少个？答案是 9 个。",
    "我们今天学习数学：加法、减法、乘法和除法。",
    "    def add(a, b):\n        return a + b\n",
    "Emoji test 🙂🚀 and café, naïve, Ünïcödé.",
    "Question: what is 7 * 8?\nAnswer: 56\n\nQuestion: what is 9 - 4?\nAnswer: 5",
]

TEXTS = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.",
    "   three leading spaces and two trailing  ",
    "如何制作一杯好咖啡？",
    "emoji 🙂🚀 mixed with 中文 text",
    "1,234,567 + 89 = 1,234,656",
    "He said: \"I'm fine\", didn't he? Yes . No !",
    "cafe\u0301 (decomposed) vs café",
    "\n\nnew lines\tand\ttabs\n",
    "",
]

# Qwen2's pre-tokenizer split (as in Qwen2Tokenizer and the tokenizer.json of Qwen models).
QWEN_SPLIT = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
# Llama 3's: digits in groups of up to three.
LLAMA3_SPLIT = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# A ChatML template in the style of Qwen3's: system turn from messages[0], reasoning split out
# of assistant content with str methods, only kept after the last user query, and an
# `enable_thinking` switch for the generation prompt.
QWEN_TEMPLATE = """{#- ChatML template for the ppo-rs tokenizer parity tests. -#}
{%- set ns = namespace(system_text='You are a helpful assistant.', last_query_index=messages|length - 1, multi_step=true) -%}
{%- if messages[0].role == 'system' -%}
    {%- set ns.system_text = messages[0].content.strip() -%}
{%- endif -%}
{{- '<|im_start|>system\\n' + ns.system_text + '<|im_end|>\\n' -}}
{%- for message in messages[::-1] -%}
    {%- set index = (messages|length - 1) - loop.index0 -%}
    {%- if ns.multi_step and message.role == 'user' and not (message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) -%}
        {%- set ns.multi_step = false -%}
        {%- set ns.last_query_index = index -%}
    {%- endif -%}
{%- endfor -%}
{%- for message in messages -%}
    {%- if message.role == 'system' -%}
        {%- if not loop.first -%}
            {{- raise_exception('The system message must come first.') -}}
        {%- endif -%}
    {%- elif message.role == 'user' -%}
        {{- '<|im_start|>user\\n' + message.content + '<|im_end|>\\n' -}}
    {%- elif message.role == 'assistant' -%}
        {%- set content = message.content -%}
        {%- set reasoning = '' -%}
        {%- if '</think>' in content -%}
            {%- set reasoning = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') -%}
            {%- set content = content.split('</think>')[-1].lstrip('\\n') -%}
        {%- endif -%}
        {%- if loop.index0 > ns.last_query_index and (loop.last or reasoning) -%}
            {{- '<|im_start|>assistant\\n<think>\\n' + reasoning.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') -}}
        {%- else -%}
            {{- '<|im_start|>assistant\\n' + content -}}
        {%- endif -%}
        {{- '<|im_end|>\\n' -}}
    {%- else -%}
        {{- raise_exception('Unknown role: ' + message.role) -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- '<|im_start|>assistant\\n' -}}
    {%- if enable_thinking is defined and enable_thinking is false -%}
        {{- '<think>\\n\\n</think>\\n\\n' -}}
    {%- endif -%}
{%- endif -%}
"""

# Llama-3 style, written with plain block tags so that trim_blocks / lstrip_blocks matter.
LLAMA3_TEMPLATE = """{{ bos_token }}
{% if messages[0]['role'] == 'system' %}
    {% set system_message = messages[0]['content'] | trim %}
    {% set messages = messages[1:] %}
{% else %}
    {% set system_message = '' %}
{% endif %}
{% if not date_string is defined %}
    {% set date_string = '26 Jul 2024' %}
{% endif %}
<|start_header_id|>system<|end_header_id|>

Today Date: {{ date_string }}
{% if system_message %}

{{ system_message }}
{% endif %}
<|eot_id|>
{% for message in messages %}
    {% if message['role'] not in ['user', 'assistant'] %}
        {{ raise_exception('Conversation roles must be user or assistant') }}
    {% endif %}
<|start_header_id|>{{ message['role'] }}<|end_header_id|>

{{ message['content'] | trim }}<|eot_id|>
{% endfor %}
{% if add_generation_prompt %}
<|start_header_id|>assistant<|end_header_id|>

{% endif %}
"""

WORDPIECE_TEMPLATE = """{% for message in messages %}
{{ bos_token if loop.first else '' }}[{{ message.role | upper }}] {{ message.content }}{{ eos_token if message.role == 'assistant' else '' }}
{% endfor %}
{% if add_generation_prompt %}[ASSISTANT] {% endif %}"""

WORDPIECE_RAG_TEMPLATE = """{% for document in documents %}[DOC] {{ document.text }}
{% endfor %}{% for message in messages %}[{{ message.role | upper }}] {{ message.content }}
{% endfor %}"""


def qwen_chatml(path):
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=420,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    # Qwen3 marks its reasoning tags as added tokens that are not special.
    tok.add_tokens([AddedToken("<think>", normalized=False), AddedToken("</think>", normalized=False)])
    tok.save(str(path / "tokenizer.json"))
    config = {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": added_tokens_decoder(tok),
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 32768,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    write_json(path / "tokenizer_config.json", config)
    (path / "chat_template.jinja").write_text(QWEN_TEMPLATE, encoding="utf-8")


def llama3_bos(path):
    specials = [
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
    ]
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    bos = "<|begin_of_text|>"
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
            processors.TemplateProcessing(
                single=f"{bos}:0 $A:0",
                pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
                special_tokens=[(bos, tok.token_to_id(bos))],
            ),
        ]
    )
    tok.save(str(path / "tokenizer.json"))
    config = {
        "added_tokens_decoder": added_tokens_decoder(tok),
        "bos_token": bos,
        "chat_template": LLAMA3_TEMPLATE,
        "clean_up_tokenization_spaces": True,
        "eos_token": "<|eot_id|>",
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": 131072,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    write_json(path / "tokenizer_config.json", config)


def wordpiece_flags(path):
    specials = ["[UNK]", "[PAD]", "[BOS]", "[EOS]", "[SEP]"]
    normalizer = normalizers.BertNormalizer(lowercase=True, handle_chinese_chars=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    # The WordPiece trainer breaks ties in hash order, so the vocabulary is built here instead:
    # every character of the corpus alone and as a continuation, then its most frequent words.
    counts = {}
    for text in CORPUS:
        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)):
            counts[word] = counts.get(word, 0) + 1
    chars = sorted({c for word in counts for c in word})
    words = sorted((w for w in counts if len(w) > 1), key=lambda w: (-counts[w], w))[:60]
    pieces = specials + chars + ["##" + c for c in chars] + words
    tok = Tokenizer(models.WordPiece({piece: i for i, piece in enumerate(pieces)}, unk_token="[UNK]"))
    tok.add_special_tokens(specials)
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.WordPiece(cleanup=False)
    tok.save(str(path / "tokenizer.json"))
    # Legacy layout: no added_tokens_decoder, so transformers lets special_tokens_map.json
    # override the tokens named here ([SEP] becomes [EOS]). transformers 5 ignores the
    # add_*_token flags when tokenizer.json exists; they stay to pin that down.
    config = {
        "add_bos_token": True,
        "add_eos_token": True,
        # The object form transformers 4 saved (with its `__type` marker).
        "bos_token": {
            "__type": "AddedToken",
            "content": "[BOS]",
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
        },
        "chat_template": [
            {"name": "default", "template": WORDPIECE_TEMPLATE},
            {"name": "rag", "template": WORDPIECE_RAG_TEMPLATE},
        ],
        "clean_up_tokenization_spaces": True,
        "eos_token": "[SEP]",
        "pad_token": "[PAD]",
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": "[UNK]",
    }
    write_json(path / "tokenizer_config.json", config)
    special_map = {
        "eos_token": {"content": "[EOS]", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False},
        "pad_token": "[PAD]",
    }
    write_json(path / "special_tokens_map.json", special_map)


def added_tokens_decoder(tok):
    """tokenizer_config.json's `added_tokens_decoder`, as transformers saves it."""
    out = {}
    for idx, token in sorted(tok.get_added_tokens_decoder().items()):
        out[str(idx)] = {
            "content": token.content,
            "lstrip": token.lstrip,
            "normalized": token.normalized,
            "rstrip": token.rstrip,
            "single_word": token.single_word,
            "special": token.special,
        }
    return out


def write_json(path, value):
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def input_ids(out):
    """Token ids of `apply_chat_template(tokenize=True)`, which may return a BatchEncoding."""
    if isinstance(out, list):
        return out
    return list(out["input_ids"])


# Conversations: (system prompt or None, user prompt, assistant response).
CHATS = [
    (None, "What is 12 * 7?", "12 * 7 = 84."),
    ("You are a patient math tutor.  ", "小明有 12 个苹果，吃了 3 个，还剩几个？", "<think>\n12 - 3 = 9\n</think>\n\n还剩 9 个。"),
    ("Answer briefly.", "  Say <|im_end|> literally  ", "Done 🙂"),
]


def expected(path, extra_texts):
    tok = AutoTokenizer.from_pretrained(str(path))
    texts = TEXTS + extra_texts
    encode = []
    for text in texts:
        plain = tok(text, add_special_tokens=False)["input_ids"]
        with_special = tok(text)["input_ids"]
        encode.append(
            {
                "text": text,
                "ids": plain,
                "ids_with_special_tokens": with_special,
                "decoded": tok.decode(with_special, skip_special_tokens=True),
            }
        )
    chats = []
    if tok.chat_template is not None:
        for system, prompt, response in CHATS:
            head = [{"role": "system", "content": system}] if system is not None else []
            user = head + [{"role": "user", "content": prompt}]
            full = user + [{"role": "assistant", "content": response}]
            for messages, add_generation_prompt in ((user, True), (user, False), (full, False)):
                for enable_thinking in (None, False):
                    if enable_thinking is not None and not add_generation_prompt:
                        continue
                    kwargs = {} if enable_thinking is None else {"enable_thinking": enable_thinking}
                    text = tok.apply_chat_template(
                        messages, add_generation_prompt=add_generation_prompt, tokenize=False, **kwargs
                    )
                    ids = input_ids(
                        tok.apply_chat_template(
                            messages, add_generation_prompt=add_generation_prompt, tokenize=True, **kwargs
                        )
                    )
                    chats.append(
                        {
                            "messages": messages,
                            "add_generation_prompt": add_generation_prompt,
                            "enable_thinking": enable_thinking,
                            "text": text,
                            "ids": ids,
                            "decoded": tok.decode(ids, skip_special_tokens=True),
                        }
                    )
    plain_prompts = [
        {
            "prompt": prompt,
            "response": response,
            "prompt_ids": tok(prompt)["input_ids"],
            "response_ids": tok(response, add_special_tokens=False)["input_ids"],
        }
        for _, prompt, response in CHATS
    ]
    vocab = tok.get_vocab()
    result = {
        "transformers_version": transformers.__version__,
        "tokenizers_version": tokenizers.__version__,
        "len": len(tok),
        "max_id": max(vocab.values()),
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
        "bos_token": tok.bos_token,
        "eos_token": tok.eos_token,
        "pad_token": tok.pad_token,
        "encode": encode,
        "plain_prompts": plain_prompts,
        "chats": chats,
    }
    write_json(path / "expected.json", result)


CASES = {
    "qwen_chatml": (qwen_chatml, ["<|im_start|>user\nhi<|im_end|>\n", "think: <think>ok</think> done"]),
    "llama3_bos": (llama3_bos, ["<|begin_of_text|>hello<|eot_id|>", "no <|im_end|> here"]),
    "wordpiece_flags": (wordpiece_flags, ["[BOS] hello [SEP] world [EOS]"]),
}


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    for name, (build, extra_texts) in CASES.items():
        path = OUT / name
        path.mkdir(parents=True)
        build(path)
        expected(path, extra_texts)
        size = sum(f.stat().st_size for f in path.iterdir())
        print(f"{name}: {size} bytes")


if __name__ == "__main__":
    main()
