#!/usr/bin/env python3
"""Computes the independent VMAF reference value used by tests/ladder.rs.

vmaf-torch 1.1.0 (PyPI, a PyTorch re-implementation of Netflix's VMAF, model vmaf_v0.6.1)
scores the pair the test writes with REEL_KEEP_METRIC_PAIR=DIR:

    mkdir -p /tmp/pair
    REEL_KEEP_METRIC_PAIR=/tmp/pair cargo test --release -p reel-cli --test ladder metrics_agree
    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch vmaf-torch pandas yuvio numpy
    /tmp/venv/bin/python scripts/vmaf_torch_reference.py /tmp/pair

Not run by CI (torch is gigabytes); its printed mean is recorded in tests/ladder.rs.
"""
import sys

import numpy as np
import torch
from vmaf_torch import VMAF

W, H, N = 1280, 720, 25


def luma(path):
    raw = np.fromfile(path, dtype=np.uint8)
    size = W * H * 3 // 2
    assert raw.size == size * N, f"{path}: {raw.size} bytes, want {size * N}"
    ys = [raw[i * size:i * size + W * H].reshape(H, W) for i in range(N)]
    return torch.from_numpy(np.stack(ys)[:, None].astype(np.float64))


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else "/tmp/pair"
    ref, dist = luma(f"{folder}/ref.yuv"), luma(f"{folder}/dist.yuv")
    model = VMAF(temporal_pooling=False, clip_score=True).double()
    with torch.no_grad():
        scores = model(ref, dist).flatten().numpy()
    print(f"vmaf-torch vmaf_v0.6.1 mean over {N} frames: {scores.mean():.6f}")
    print("per frame:", " ".join(f"{s:.4f}" for s in scores))


if __name__ == "__main__":
    main()
