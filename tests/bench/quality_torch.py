"""quality_torch.py - the baseline of tests/bench/quality: the reference CNN of tests/bench/nn
(conv32-pool-conv64-pool-fc128-fc10) trained by PyTorch on all 60,000 Fashion-MNIST training
images for a fixed wall-clock time, then its test accuracy, as one JSON line on stdout.
Run with Debian's /usr/bin/python3 (python3-torch).

usage: quality_torch.py MINUTES THREADS

Recipe (the one tests/bench/nn --accept passes with): Adam, peak lr 2e-3, a cosine decay over
the wall-clock time (the rate at a step is set from the time elapsed, so training ends
annealed whatever the speed), label smoothing 0.1, batch 128, random horizontal flips.
"""
import gzip
import json
import math
import sys
import time

import numpy as np
import torch
from torch import nn

FMNIST = "/usr/share/datasets/fashion-mnist/"


def read(part, n):
    with gzip.open(FMNIST + part + "-images-idx3-ubyte.gz", "rb") as f:
        f.read(16)
        pix = np.frombuffer(f.read(n * 784), dtype=np.uint8)
    with gzip.open(FMNIST + part + "-labels-idx1-ubyte.gz", "rb") as f:
        f.read(8)
        lab = np.frombuffer(f.read(n), dtype=np.uint8)
    x = torch.from_numpy(((pix.astype(np.float32) / 255.0 - 0.286) / 0.353).reshape(n, 1, 28, 28))
    return x, torch.from_numpy(lab.astype(np.int64))


def main():
    minutes, threads = float(sys.argv[1]), int(sys.argv[2])
    t0 = time.monotonic()
    budget = minutes * 60
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    x, y = read("train", 60000)
    xt, yt = read("t10k", 10000)
    model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
                          nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    # time left for training: the test pass takes about a second
    train_s = budget - (time.monotonic() - t0) - 2
    start = time.monotonic()
    epochs = 0.0
    steps = 0
    done = False
    while not done:
        perm = torch.randperm(60000)
        for i in range(0, 60000, 128):
            elapsed = time.monotonic() - start
            if elapsed >= train_s:
                done = True
                break
            for g in opt.param_groups:
                g["lr"] = 2e-3 * 0.5 * (1 + math.cos(math.pi * elapsed / train_s))
            idx = perm[i:i + 128]
            xb = x[idx]
            flip = torch.rand(len(idx)) < 0.5
            xb[flip] = xb[flip].flip(3)
            opt.zero_grad()
            loss_fn(model(xb), y[idx]).backward()
            opt.step()
            steps += 1
            epochs += len(idx) / 60000
    model.eval()
    with torch.no_grad():
        acc = (model(xt).argmax(1) == yt).float().mean().item()
    print(json.dumps({"test_accuracy": round(acc, 4), "epochs": round(epochs, 2),
                      "steps": steps, "seconds": round(time.monotonic() - t0, 1),
                      "threads": threads}))


if __name__ == "__main__":
    main()
