#!/usr/bin/env bash
# Installs TensorBoard (the `tensorboard` package from PyPI, which reads event files without
# TensorFlow) into a virtual environment shared by every checkout on this machine, for the
# tests that read ppo-rs's event files with the real reader (crates/ppo-log/tests/tensorboard.rs,
# crates/ppo-cli/tests/train_tensorboard.rs). Idempotent: a working install is reused. Prints
# the environment's python on the last line of stdout, so
#   export PPO_RS_TENSORBOARD_PYTHON="$(scripts/install-tensorboard.sh | tail -n 1)"
# enables those tests. PPO_RS_TENSORBOARD_VENV overrides the location; TENSORBOARD_VERSION
# (e.g. `2.20.0`) pins a version.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${PPO_RS_TENSORBOARD_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/ppo-rs/venv-tensorboard}"
python="$venv/bin/python"
check() {
    "$python" -c 'from tensorboard.backend.event_processing import event_accumulator' >&2
}
if [ -x "$python" ] && check 2>/dev/null; then
    echo "$python"
    exit 0
fi
mkdir -p "$(dirname "$venv")"
"${PYTHON:-python3}" -m venv "$venv" >&2
spec="tensorboard${TENSORBOARD_VERSION:+==$TENSORBOARD_VERSION}"
"$venv/bin/pip" install --disable-pip-version-check --quiet "$spec" >&2
check
"$python" -c 'import tensorboard; print("tensorboard", tensorboard.__version__)' >&2
echo "$python"
