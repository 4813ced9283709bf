#!/usr/bin/env python3
"""Reads a TensorBoard log directory with TensorBoard's own reader and prints what it sees as
JSON, for the tests that check ppo-rs's event files (crates/ppo-log/tests/tensorboard.rs,
crates/ppo-cli/tests/train_tensorboard.rs).

    python scripts/read_tensorboard.py RUN_DIR/tb

prints {"files": [names], "file_versions": [...], "scalars": {tag: [[step, value or null when not finite], ...]},
"texts": {tag: [[step, text], ...]}, "raw_counts": {"tag@step": n, ...}}.

`scalars` and `texts` come from `EventAccumulator` (what TensorBoard's scalar and text
dashboards are fed with), in the order it keeps them; `raw_counts` counts every value of every
event file in the directory, so a step written twice shows up even if the accumulator hid it.
Needs only the `tensorboard` package (scripts/install-tensorboard.sh), no TensorFlow.
"""

import collections
import json
import math
import os
import sys

from tensorboard.backend.event_processing import event_accumulator, event_file_loader
from tensorboard.util import tensor_util


def finite_or_none(value):
    """NaN and infinities as null: JSON has no other way to say them."""
    return value if math.isfinite(value) else None


def main(log_dir):
    files = sorted(f for f in os.listdir(log_dir) if "tfevents" in f)
    raw_counts = collections.Counter()
    file_versions = []
    for name in files:
        for event in event_file_loader.EventFileLoader(os.path.join(log_dir, name)).Load():
            if event.HasField("file_version"):
                file_versions.append(event.file_version)
            for value in event.summary.value:
                raw_counts[f"{value.tag}@{event.step}"] += 1

    acc = event_accumulator.EventAccumulator(
        log_dir, size_guidance={event_accumulator.SCALARS: 0, event_accumulator.TENSORS: 0}
    )
    acc.Reload()
    tags = acc.Tags()
    scalars = {
        tag: [[e.step, finite_or_none(e.value)] for e in acc.Scalars(tag)]
        for tag in tags["scalars"]
    }
    texts = {}
    for tag in tags["tensors"]:
        if acc.SummaryMetadata(tag).plugin_data.plugin_name != "text":
            continue
        texts[tag] = [
            [e.step, tensor_util.make_ndarray(e.tensor_proto).item().decode("utf-8")]
            for e in acc.Tensors(tag)
        ]
    json.dump(
        {
            "files": files,
            "file_versions": file_versions,
            "scalars": scalars,
            "texts": texts,
            "raw_counts": raw_counts,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main(sys.argv[1])
