#!/usr/bin/env bash
# The LibTorch backend on CPU: builds ppo-rs with `--features tch` against the PyTorch 2.9.0 of
# scripts/install-hf-python.sh's environment (LIBTORCH_USE_PYTORCH=1: no separate LibTorch
# download) and runs the tests that check `tch:cpu` against transformers and flex:
#   - ppo-models: logits, greedy generation, value heads and DeBERTa scores vs transformers on
#     every backend, and tch vs flex logits to 1e-5 (hf_parity, deberta_parity);
#   - ppo-core: a trainer restored on tch:cpu continues bit for bit (resume);
#   - ppo-cli: train/generate/eval on tch:cpu, exact resume through checkpoint files, a run on
#     tch:cpu tracking the same run on flex, and placement by role across the two (tch_cli).
# Usage: scripts/test-tch.sh [PYTHON]   (PYTHON: a python with torch 2.9.0; default
# $PPO_RS_PYTHON, else the environment scripts/install-hf-python.sh installs).
# `.ci/run` runs it when PyTorch can be installed. Cold, on 2 cores: ~4 min of clippy and ~8 min
# of release build.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${1:-${PPO_RS_PYTHON:-}}"
if [ -z "$python" ]; then
    python="$(scripts/install-hf-python.sh | tail -n 1)"
fi
venv="$(cd "$(dirname "$python")/.." && pwd)"
torch_lib="$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" LIBTORCH_USE_PYTORCH=1
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "LibTorch from $torch_lib"
features=ppo-models/tch,ppo-core/tch,ppo-cli/tch
# The code behind the `tch` feature is linted too (the default clippy run does not see it).
cargo clippy -p ppo-models -p ppo-core -p ppo-cli --all-targets --features "$features" -- -D warnings
# One invocation: one feature resolution, so burn and LibTorch's bindings are built once.
cargo test --release -p ppo-models -p ppo-core -p ppo-cli \
    --features "$features" \
    --test hf_parity --test deberta_parity --test resume --test tch_cli
