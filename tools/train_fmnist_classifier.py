#!/usr/bin/python3
"""Train the small Fashion-MNIST CNN that scores generated images (class accuracy, and
128-d penultimate features for FID-like statistics), and export it for the C runtime.

    /usr/bin/python3 tools/train_fmnist_classifier.py [--threads 1] [--epochs 4]

Export: models/fmnist-classifier.safetensors, F32, tensors named by the PyTorch
state_dict (features.0.weight, ..., classifier.3.bias). __metadata__["config"] is JSON:

    {"format": "disa-classifier-1", "input": {"channels": 1, "height": 28, "width": 28,
     "from_uint8": "x / 255 * 2 - 1"}, "layers": [...], "feature_layer": k,
     "feature_dim": 128, "num_classes": 10, "class_names": [...], "test_accuracy": ...}

`layers` is the forward order, one entry per op: conv2d {name, cin, cout, k, stride,
pad} (weights NAME.weight [cout, cin, k, k], NAME.bias [cout]), relu, maxpool2d {k,
stride}, flatten (NCHW order: c, then h, then w), linear {name, in, out} (NAME.weight
[out, in], NAME.bias [out]). The feature vector is the output of layers[feature_layer]
(the ReLU after the first linear); the last layer's output is the logits. The ops are
deliberately few so a C implementation can run the list generically. Dropout is applied
only in training and does not appear in the list.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402
from train_fmnist_mar import CLASS_NAMES, load_fmnist  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LAYERS = [
    {"type": "conv2d", "name": "features.0", "cin": 1, "cout": 32, "k": 3, "stride": 1, "pad": 1},
    {"type": "relu"},
    {"type": "conv2d", "name": "features.2", "cin": 32, "cout": 32, "k": 3, "stride": 1, "pad": 1},
    {"type": "relu"},
    {"type": "maxpool2d", "k": 2, "stride": 2},
    {"type": "conv2d", "name": "features.5", "cin": 32, "cout": 64, "k": 3, "stride": 1, "pad": 1},
    {"type": "relu"},
    {"type": "maxpool2d", "k": 2, "stride": 2},
    {"type": "flatten"},
    {"type": "linear", "name": "classifier.0", "in": 64 * 7 * 7, "out": 128},
    {"type": "relu"},
    {"type": "linear", "name": "classifier.3", "in": 128, "out": 10},
]
FEATURE_LAYER = 10


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, 1, 1), nn.ReLU(), nn.Conv2d(32, 32, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(32, 64, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2, 2))
        # index 2 is a training-only dropout slot, so state_dict names match LAYERS
        self.classifier = nn.Sequential(nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10))

    def forward(self, x, return_features=False):
        h = self.features(x).flatten(1)
        f = self.classifier[1](self.classifier[0](h))
        logits = self.classifier[3](self.classifier[2](f))
        return (logits, f) if return_features else logits


def run_layers(tensors, x):
    """Run the exported layer list with plain ops (checks the list against the module)."""
    feat = None
    for i, L in enumerate(LAYERS):
        t = L["type"]
        if t == "conv2d":
            x = F.conv2d(x, tensors[L["name"] + ".weight"], tensors[L["name"] + ".bias"], L["stride"], L["pad"])
        elif t == "relu":
            x = F.relu(x)
        elif t == "maxpool2d":
            x = F.max_pool2d(x, L["k"], L["stride"])
        elif t == "flatten":
            x = x.flatten(1)
        elif t == "linear":
            x = F.linear(x, tensors[L["name"] + ".weight"], tensors[L["name"] + ".bias"])
        if i == FEATURE_LAYER:
            feat = x
    return x, feat


def evaluate(net, X, Y, bs=1000):
    net.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(X), bs):
            correct += (net(X[i:i + bs]).argmax(1) == Y[i:i + bs]).sum().item()
    return correct / len(X)


def quantize(x):
    """[-1, 1] float -> the uint8 grid the C side will feed (x/255*2-1)."""
    u = torch.clamp(torch.round((x + 1) / 2 * 255), 0, 255)
    return u / 255 * 2 - 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(REPO, "models", "fmnist-classifier.safetensors"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)

    X, Y = load_fmnist("train")
    Xt, Yt = load_fmnist("test")
    X, Xt = quantize(X), quantize(Xt)
    net = Net()
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=1e-4)
    steps_per_epoch = len(X) // a.batch_size
    total = a.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=total, pct_start=0.15)
    t0 = time.time()
    for ep in range(a.epochs):
        net.train()
        perm = torch.from_numpy(rng.permutation(len(X)))
        tot = 0.0
        for s in range(steps_per_epoch):
            idx = perm[s * a.batch_size:(s + 1) * a.batch_size]
            xb = X[idx]
            # light augmentation: random shift by up to 2 pixels (no flips: shoes face one way)
            dx, dy = rng.integers(-2, 3, size=2)
            xb = torch.roll(xb, shifts=(int(dy), int(dx)), dims=(2, 3))
            loss = F.cross_entropy(net(xb), Y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item()
        acc = evaluate(net, Xt, Yt)
        print(f"epoch {ep + 1}/{a.epochs} loss {tot / steps_per_epoch:.4f} test acc {acc * 100:.2f}% "
              f"({time.time() - t0:.0f} s)", flush=True)

    net.eval()
    sd = {k: v.detach().clone() for k, v in net.state_dict().items()}
    logits_ref, feat_ref = net(Xt[:256], return_features=True)
    logits, feat = run_layers(sd, Xt[:256])
    assert torch.allclose(logits, logits_ref, atol=1e-5) and torch.allclose(feat, feat_ref, atol=1e-5)
    acc = evaluate(net, Xt, Yt)
    cfg = {"format": "disa-classifier-1", "dataset": "fashion-mnist",
           "input": {"channels": 1, "height": 28, "width": 28, "from_uint8": "x / 255 * 2 - 1"},
           "layers": LAYERS, "feature_layer": FEATURE_LAYER, "feature_dim": 128, "num_classes": 10,
           "class_names": CLASS_NAMES, "test_accuracy": round(acc, 4)}
    tensors = {k: v.numpy().astype(np.float32) for k, v in sd.items()}
    stio.save_file(a.out, tensors, {"config": json.dumps(cfg, separators=(",", ":"))})
    print(f"test accuracy {acc * 100:.2f}% -> {a.out}")


if __name__ == "__main__":
    main()
