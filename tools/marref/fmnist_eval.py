#!/usr/bin/python3
"""Class accuracy of Fashion-MNIST MAR samples under the reference sampler: generate
n images per class, quantize to uint8 as the C pipeline does, classify with the exported
classifier, report accuracy (overall and per class) and sampling time.

    /usr/bin/python3 tools/marref/fmnist_eval.py [--model models/fmnist-mar.safetensors |
        --ckpt results/train/fmnist-mar/ckpt.pt] --sampler disa --upper 100 --lower 100
        --num-iter 16 --cfg 3.0 --n-per-class 20 [--png grid.png]

This is the Python side of the acceptance check "class accuracy of generated images";
the C engine must reach the same numbers on the same settings (up to sampling noise).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import stio  # noqa: E402
from marref import model as M  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))


def load_classifier(path):
    tensors, meta = stio.load_file(path)
    cfg = json.loads(meta["config"])
    w = {k: torch.from_numpy(v.astype(np.float32)) for k, v in tensors.items()}

    def run(x):
        for L in cfg["layers"]:
            t = L["type"]
            if t == "conv2d":
                x = F.conv2d(x, w[L["name"] + ".weight"], w[L["name"] + ".bias"], L["stride"], L["pad"])
            elif t == "relu":
                x = F.relu(x)
            elif t == "maxpool2d":
                x = F.max_pool2d(x, L["k"], L["stride"])
            elif t == "avgpool2d":
                x = F.avg_pool2d(x, L["k"], L["stride"])
            elif t == "flatten":
                x = x.flatten(1)
            elif t == "linear":
                x = F.linear(x, w[L["name"] + ".weight"], w[L["name"] + ".bias"])
            else:
                raise ValueError(t)
        return x
    return run, cfg


def load_mar(args):
    if args.ckpt:
        sys.path.insert(0, os.path.dirname(HERE))
        import train_fmnist_mar as T
        st = torch.load(args.ckpt, map_location="cpu")
        cfg = dict(st["cfg"], dropout=0.0)
        m = T.build_model(cfg)
        sd = m.state_dict()
        for n in sd:
            if n in st["ema"]:
                sd[n] = st["ema"][n]
        m.load_state_dict(sd)
        print(f"checkpoint {args.ckpt} step {st['step']} (EMA)")
        return m.eval()
    m, _ = M.load_safetensors(args.model)
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(REPO, "models", "fmnist-mar.safetensors"))
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--classifier", default=os.path.join(REPO, "models", "fmnist-classifier.safetensors"))
    ap.add_argument("--sampler", default="disa", choices=["default", "disa", "ddim"])
    ap.add_argument("--upper", type=int, default=100)
    ap.add_argument("--lower", type=int, default=100)
    ap.add_argument("--strategy", default="linear")
    ap.add_argument("--num-iter", type=int, default=16)
    ap.add_argument("--cfg", type=float, default=3.0)
    ap.add_argument("--cfg-schedule", default="linear")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--n-per-class", type=int, default=20)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--png", default=None, help="write a grid (one row per class)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_grad_enabled(False)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)

    model = load_mar(a)
    clf, ccfg = load_classifier(a.classifier)
    labels = torch.arange(10).repeat_interleave(a.n_per_class)
    imgs = []
    t0 = time.time()
    for i in range(0, len(labels), a.batch):
        lb = labels[i:i + a.batch]
        x = model.sample_tokens(len(lb), num_iter=a.num_iter, cfg=a.cfg, cfg_schedule=a.cfg_schedule,
                                labels=lb, temperature=a.temperature, diff_sampler=a.sampler,
                                upper_steps=a.upper, lower_steps=a.lower, annealing=a.strategy)
        imgs.append(x)
    dt = time.time() - t0
    x = torch.cat(imgs)
    u8 = torch.clamp(torch.round((x + 1) / 2 * 255), 0, 255)
    pred = clf(u8 / 255 * 2 - 1).argmax(1)
    acc = (pred == labels).float().mean().item()
    per = [(pred[labels == c] == c).float().mean().item() for c in range(10)]
    print(f"sampler {a.sampler} {a.upper}->{a.lower} {a.strategy} K={a.num_iter} cfg={a.cfg} "
          f"({a.cfg_schedule}) T={a.temperature}: accuracy {acc * 100:.1f}% on {len(labels)} images, "
          f"{dt:.0f} s ({dt / len(labels):.2f} s/image)")
    print("per class: " + " ".join(f"{c}:{p * 100:.0f}" for c, p in enumerate(per)))
    if a.png:
        import zlib
        import struct
        g = u8.reshape(10, a.n_per_class, 28, 28).permute(0, 2, 1, 3).reshape(280, a.n_per_class * 28)
        g = g.numpy().astype(np.uint8)
        raw = b"".join(b"\x00" + row.tobytes() for row in g)

        def chunk(tag, data):
            c = struct.pack(">I", len(data)) + tag + data
            return c + struct.pack(">I", zlib.crc32(tag + data) & 0xffffffff)
        png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", g.shape[1], g.shape[0], 8, 0, 0, 0, 0))
        png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
        with open(a.png, "wb") as f:
            f.write(png)
        print(f"grid -> {a.png}")


if __name__ == "__main__":
    main()
