"""nn_torch.py - the PyTorch side of tests/bench/nn: the same models, data and measurements
as nn_bench.c, one JSON line on stdout. Run with Debian's /usr/bin/python3 (python3-torch).

usage: nn_torch.py mlp|cnn|res N_TRAIN INFER_SECONDS THREADS   (THREADS 0 = torch's default)

res is the default search space's CNN as ens_model_new_from_json builds it: 3 blocks of 32, 64,
128 filters, each conv 3x3 (bias) - BN - ReLU - conv 3x3 - BN, plus a 1x1 conv + BN skip (the
channels change), add, ReLU, 2x2 max pool; then dense 128 + ReLU, dense 10.
"""
import gzip
import json
import sys
import time

import numpy as np
import torch
from torch import nn

FMNIST = "/usr/share/datasets/fashion-mnist/"


def read_first(n):
    with gzip.open(FMNIST + "train-images-idx3-ubyte.gz", "rb") as f:
        f.read(16)
        pix = np.frombuffer(f.read(n * 784), dtype=np.uint8)
    with gzip.open(FMNIST + "train-labels-idx1-ubyte.gz", "rb") as f:
        f.read(8)
        lab = np.frombuffer(f.read(n), dtype=np.uint8)
    x = torch.from_numpy(((pix.astype(np.float32) / 255.0 - 0.286) / 0.353).reshape(n, 784))
    return x, torch.from_numpy(lab.astype(np.int64))


class ResBlock(nn.Module):
    def __init__(self, cin, f):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(cin, f, 3, padding=1), nn.BatchNorm2d(f), nn.ReLU(),
                               nn.Conv2d(f, f, 3, padding=1), nn.BatchNorm2d(f))
        self.skip = nn.Sequential(nn.Conv2d(cin, f, 1), nn.BatchNorm2d(f))
        self.out = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2))

    def forward(self, x):
        return self.out(self.a(x) + self.skip(x))


def make(which):
    torch.manual_seed(1)
    if which == "res":
        return nn.Sequential(nn.Unflatten(1, (1, 28, 28)), ResBlock(1, 32), ResBlock(32, 64),
                             ResBlock(64, 128), nn.Flatten(), nn.Linear(128 * 3 * 3, 128),
                             nn.ReLU(), nn.Linear(128, 10))
    if which == "mlp":
        return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                             nn.Linear(128, 10))
    return nn.Sequential(nn.Unflatten(1, (1, 28, 28)),
                         nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def vm_hwm_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return -1.0


def main():
    which, n, secs, threads = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    if threads > 0:
        torch.set_num_threads(threads)
    x, y = read_first(n)
    model = make(which)
    if which == "mlp":
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    lossf = nn.CrossEntropyLoss()

    def epoch(xs, ys):
        perm = torch.randperm(xs.shape[0])
        loss = None
        for s in range(0, xs.shape[0], 128):
            idx = perm[s:s + 128]
            opt.zero_grad()
            loss = lossf(model(xs[idx]), ys[idx])
            loss.backward()
            opt.step()
        return float(loss)

    model.train()
    epoch(x[:256], y[:256])  # warm
    t = time.perf_counter()
    loss = epoch(x, y)
    train_sps = n / (time.perf_counter() - t)
    model.eval()
    infer = {}
    with torch.inference_mode():
        for b in (1, 32, 256):
            torch.softmax(model(x[:b]), dim=1)
            done, i, t0 = 0, 0, time.perf_counter()
            while time.perf_counter() - t0 < secs:
                off = (i * b) % (n - b)
                torch.softmax(model(x[off:off + b]), dim=1)
                done += b
                i += 1
            infer[b] = done / (time.perf_counter() - t0)
    print(json.dumps({"train_sps": round(train_sps, 1), "infer_b1": round(infer[1], 1),
                      "infer_b32": round(infer[32], 1), "infer_b256": round(infer[256], 1),
                      "rss_mb": round(vm_hwm_mb(), 1), "loss": round(loss, 4),
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
