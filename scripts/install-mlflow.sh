#!/usr/bin/env bash
# Installs the MLflow tracking server into `.venv-mlflow` at the repository root, for the
# real-server test `crates/ppo-log/tests/mlflow.rs`. Idempotent: an existing working install
# is reused. Prints the path of the `mlflow` binary on the last line of stdout, so
#   export PPO_RS_MLFLOW="$(scripts/install-mlflow.sh | tail -n 1)"
# enables the test. Set MLFLOW_VERSION (e.g. `3.4.0`) to pin a version.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$PWD/.venv-mlflow"
mlflow="$venv/bin/mlflow"
if [ -x "$mlflow" ] && "$mlflow" --version >/dev/null 2>&1; then
    echo "$mlflow"
    exit 0
fi
python="${PYTHON:-python3}"
"$python" -m venv "$venv" >&2
spec="mlflow${MLFLOW_VERSION:+==$MLFLOW_VERSION}"
"$venv/bin/pip" install --disable-pip-version-check --quiet "$spec" >&2
"$mlflow" --version >&2
echo "$mlflow"
