#!/usr/bin/env bash
# Installs PyTorch 2.9.0 + transformers (scripts/requirements-fixtures.txt) into a virtual
# environment shared by every checkout on this machine, for the tests that compare against
# transformers (Hugging Face exports, tokenizers). Idempotent: a working install is reused.
# Prints the environment's python on the last line of stdout, so
#   export PPO_RS_PYTHON="$(scripts/install-hf-python.sh | tail -n 1)"
# enables those tests. The first install downloads about 7 GB from PyPI (torch's CUDA
# libraries come with it even on CPU machines). PPO_RS_HF_VENV overrides the location.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${PPO_RS_HF_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/ppo-rs/venv-hf}"
python="$venv/bin/python"
requirements="$PWD/scripts/requirements-fixtures.txt"
check() {
    "$python" - "$requirements" <<'PY' >&2
import sys, importlib.metadata as md
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if "==" in line:
        name, version = line.split("==")
        have = md.version(name)
        if have != version:
            sys.exit(f"{name} {have} installed, {version} required")
import torch, transformers, peft  # noqa: F401  (fails when the install is broken)
PY
}
if [ -x "$python" ] && check 2>/dev/null; then
    echo "$python"
    exit 0
fi
mkdir -p "$(dirname "$venv")"
"${PYTHON:-python3}" -m venv "$venv" >&2
"$venv/bin/pip" install --disable-pip-version-check --quiet -r "$requirements" >&2
check
echo "$python"
