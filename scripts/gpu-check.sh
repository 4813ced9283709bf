#!/usr/bin/env bash
# The GPU check, in two halves because GPU machines here have PyTorch but no Rust toolchain:
#
#   scripts/gpu-check.sh build [PYTHON]
#       On a machine with Rust: builds ppo-cli with `--features tch` against PYTHON's torch
#       (default: scripts/install-hf-python.sh's PyTorch 2.9.0; another version is built with
#       LIBTORCH_BYPASS_VERSION_CHECK=1), strips it and leaves it in gpu-check/ppo-cli (~30 MB,
#       small enough to carry).
#
#   scripts/gpu-check.sh run [DEVICE] [SHAPE] [STEPS]
#       Where it runs (DEVICE tch:cuda:0 by default; tch:cpu works anywhere): finds the local
#       torch's lib/ with `python3` (or $PYTHON), then
#         1. STEPS (20) PPO iterations of a SHAPE-shaped random model (q06 = Qwen3-0.6B:
#            d1024, 28 layers, 16/8 heads, head_dim 128, V151936, tied; tiny = the demo's)
#            with the seed's batch settings (4 prompts, 4 PPO epochs, minibatch 4, 64 new
#            tokens), policy + reference + critic on DEVICE;
#         2. greedy tokens of the trained policy (its Hugging Face export) on DEVICE vs flex;
#         3. prints seconds per iteration, generation tokens/s and peak memory (host RSS;
#            GPU memory from nvidia-smi sampled every 0.5 s when it exists).
#       Everything it writes goes under gpu-check/ (or $OUT when set).
# On CPU: `scripts/gpu-check.sh build && scripts/gpu-check.sh run tch:cpu tiny 3`.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"
shift || true

torch_lib() {
    "$1" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))'
}

case "$mode" in
build)
    python="${1:-${PPO_RS_PYTHON:-}}"
    [ -n "$python" ] || python="$(scripts/install-hf-python.sh | tail -n 1)"
    venv="$(cd "$(dirname "$python")/.." && pwd)"
    version="$("$python" -c 'import torch; print(torch.__version__.split("+")[0])')"
    if [ "$version" != "2.9.0" ]; then
        echo "torch $version is not the 2.9.0 burn 0.22 targets: LIBTORCH_BYPASS_VERSION_CHECK=1" >&2
        export LIBTORCH_BYPASS_VERSION_CHECK=1
    fi
    VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" LIBTORCH_USE_PYTORCH=1 \
        cargo build --release -p ppo-cli --features tch
    target="${CARGO_TARGET_DIR:-target}"
    mkdir -p gpu-check
    cp "$target/release/ppo-cli" gpu-check/ppo-cli
    strip gpu-check/ppo-cli
    echo "gpu-check/ppo-cli: $(du -h gpu-check/ppo-cli | cut -f1), built against torch $version"
    ;;
run)
    device="${1:-tch:cuda:0}"
    shape="${2:-q06}"
    steps="${3:-20}"
    out="${OUT:-gpu-check}"
    bin="${PPO_CLI:-gpu-check/ppo-cli}"
    python="${PYTHON:-python3}"
    mkdir -p "$out"
    export LD_LIBRARY_PATH="$(torch_lib "$python")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    "$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count())'
    "$bin" --version

    echo "== 1. $steps PPO iterations, shape $shape, on $device"
    shape_args=()
    if [ "$shape" = q06 ]; then
        for kv in vocab_size=151936 hidden_size=1024 intermediate_size=3072 \
            num_hidden_layers=28 num_attention_heads=16 num_key_value_heads=8 head_dim=128 \
            max_position_embeddings=4096 rope_theta=1000000.0 tie_word_embeddings=true; do
            shape_args+=(--set "model.$kv")
        done
    fi
    gpu_log="$out/nvidia-smi.csv"
    sampler=""
    if command -v nvidia-smi > /dev/null; then
        nvidia-smi --query-gpu=index,memory.used --format=csv,noheader,nounits -lms 500 \
            > "$gpu_log" &
        sampler=$!
    fi
    rm -rf "$out/run"
    "$bin" train --device "$device" --output-dir "$out/run" --resume never --max-steps "$steps" \
        "${shape_args[@]}" \
        --set training.batch_size=4 --set training.group_size=1 --set training.ppo_epochs=4 \
        --set training.mini_batch_size=4 --set training.forward_batch_size=4 \
        --set generation.max_new_tokens=64 --set eval.eval_every_n_steps=0 --set eval.max_eval_samples=8 \
        --set checkpoint.save_every_n_steps=0 --set checkpoint.save_best=false \
        --set checkpoint.save_epoch_exports=false --set plots=false \
        > "$out/train.log" 2>&1 || { tail -n 30 "$out/train.log"; exit 1; }
    [ -z "$sampler" ] || kill "$sampler"

    echo "== 2. greedy tokens of the trained policy on $device vs flex"
    gen() {
        "$bin" generate --model "$out/run/final" --device "$1" --greedy --json \
            --max-new-tokens 16 --prompt "The check of ppo-rs on $device"
    }
    gen flex > "$out/generate-flex.json"
    gen "$device" > "$out/generate-device.json"
    "$python" - "$out" <<'PY'
import json, sys
a = json.load(open(sys.argv[1] + "/generate-flex.json"))
b = json.load(open(sys.argv[1] + "/generate-device.json"))
print("flex:  ", a["token_ids"])
print("device:", b["token_ids"])
sys.exit(0 if a["token_ids"] == b["token_ids"] else "greedy tokens differ")
PY

    echo "== 3. figures"
    "$python" - "$out" "$device" "$shape" <<'PY'
import json, os, statistics, sys
out, device, shape = sys.argv[1:4]
rows = [json.loads(l) for l in open(out + "/run/logs/metrics.jsonl")]
train = [r for r in rows if r["kind"] == "train"]
def med(key, skip=1):
    vals = [t[key] for t in train[skip:] if key in t] or [t[key] for t in train if key in t]
    return statistics.median(vals)
total = [t["time/generate"] + t["time/score"] + t["time/update"] for t in train]
gen_tokens = [t["response_length"] * 4 / t["time/generate"] for t in train]
print(f"device {device}, shape {shape}, {len(train)} iterations (medians without the first):")
print(f"  seconds/iteration {statistics.median(total[1:] or total):.3f}"
      f" (generate {med('time/generate'):.3f}, score {med('time/score'):.3f},"
      f" update {med('time/update'):.3f})")
print(f"  generation tokens/s {statistics.median(gen_tokens[1:] or gen_tokens):.1f}")
print(f"  peak host RSS {max(t['peak_memory_mib'] for t in train):.0f} MiB")
log = out + "/nvidia-smi.csv"
if os.path.exists(log) and os.path.getsize(log) > 0:
    peak = {}
    for line in open(log):
        i, used = [x.strip() for x in line.split(",")]
        peak[i] = max(peak.get(i, 0), int(used))
    print("  peak GPU memory used (nvidia-smi, MiB):", peak)
PY
    ;;
*)
    echo "usage: scripts/gpu-check.sh build [PYTHON] | run [DEVICE] [SHAPE] [STEPS]" >&2
    exit 2
    ;;
esac
