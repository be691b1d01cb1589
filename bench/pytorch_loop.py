#!/usr/bin/python3
"""Path (c) of bench_train_throughput: the bench's bare training loop in PyTorch.

The example CNN (examples/fashion-mnist.json's tune model, dropout 0.25),
SGD lr 0.05 momentum 0.9 weight decay 1e-4, batch 64, per-batch index_select
of a randperm order, cross-entropy; each epoch trains over the train split and
evaluates on the validation split (batch 256). One torch thread. The data are
the raw tensors bench_train_throughput wrote (train_x.f32, train_y.i64,
val_x.f32, val_y.i64, meta.json), so every path trains on the same bytes.

Run by bench_train_throughput with Debian's python3-torch and a clean
environment (env -i PATH=/usr/bin:/bin OPENBLAS_NUM_THREADS=1 ...):

    /usr/bin/python3 bench/pytorch_loop.py --dir DIR [--epochs 3] [--worker-malloc]

Prints one line: RESULT {"seconds": ..., "val_accuracy": ..., ...}.
"""
import argparse
import ctypes
import json
import os
import resource
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class Cnn(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(64)
        self.drop = nn.Dropout(p)
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = torch.flatten(self.drop(x), 1)
        return self.fc2(F.relu(self.fc1(x)))


def load(directory, name, dtype, shape):
    array = np.fromfile(os.path.join(directory, name), dtype=dtype)
    return torch.from_numpy(array.reshape(shape))


def blas_libraries():
    with open("/proc/self/maps") as maps:
        paths = {line[line.index("/"):].strip() for line in maps if "/" in line}
    return sorted(p for p in paths if "blas" in p.lower())


def blas_threads(libraries):
    for path in libraries:
        try:
            return ctypes.CDLL(path).openblas_get_num_threads()
        except (OSError, AttributeError):
            continue
    return -1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--worker-malloc", action="store_true",
                        help="also apply baton-worker's mallopt settings")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.worker_malloc:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD, as ConfigureWorkerProcess
        libc.mallopt(-1, 1 << 30)   # M_TRIM_THRESHOLD

    with open(os.path.join(args.dir, "meta.json")) as f:
        meta = json.load(f)
    n, m = meta["train"], meta["validation"]
    train_x = load(args.dir, "train_x.f32", np.float32, (n, 1, 28, 28))
    train_y = load(args.dir, "train_y.i64", np.int64, (n,))
    val_x = load(args.dir, "val_x.f32", np.float32, (m, 1, 28, 28))
    val_y = load(args.dir, "val_y.i64", np.int64, (m,))

    faults_start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    torch.manual_seed(7)
    model = Cnn(0.25)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    batch, eval_batch = 64, 256
    train_loss = val_accuracy = 0.0
    for _ in range(args.epochs):
        model.train()
        order = torch.randperm(n)
        loss_sum = 0.0
        for begin in range(0, n, batch):
            index = order[begin:begin + batch]
            x = train_x.index_select(0, index)
            y = train_y.index_select(0, index)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * index.numel()
        train_loss = loss_sum / n

        model.eval()
        correct = 0
        with torch.no_grad():
            for begin in range(0, m, eval_batch):
                logits = model(val_x[begin:begin + eval_batch])
                correct += int(logits.argmax(1).eq(val_y[begin:begin + eval_batch]).sum())
        val_accuracy = correct / m
    seconds = time.perf_counter() - start
    page_faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_start

    libraries = blas_libraries()
    print("RESULT " + json.dumps({
        "seconds": seconds, "train_loss": train_loss, "val_accuracy": val_accuracy,
        "page_faults": page_faults, "torch_threads": torch.get_num_threads(), "blas_threads": blas_threads(libraries),
        "blas": libraries, "torch_version": torch.__version__}))


if __name__ == "__main__":
    main()
