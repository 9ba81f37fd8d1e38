#!/usr/bin/python3
"""Train a small class-conditional MAR (patch tokenizer) on Fashion-MNIST, and export its
EMA weights for the C sampler.

The model is tools/marref/model.py: MAR, the official LTH14/mar architecture and training
loss (truncated-normal mask ratio, label drop, diffusion_batch_mul, DiffLoss with the
1000-step cosine diffusion). Images are 28x28x1 in [-1, 1]; the patch tokenizer cuts
them into 7x7 patches, so a sample is 16 tokens of 49 values.

    /usr/bin/python3 tools/train_fmnist_mar.py --threads 1 --total-steps N   # train / resume
    /usr/bin/python3 tools/train_fmnist_mar.py --export                      # EMA -> models/

The learning-rate schedule is a function of the step and total-steps only, and the
checkpoint (written atomically every few minutes) holds model, optimizer, EMA, step,
data order and every RNG state, so a resumed run continues the same schedule.
"""
import argparse
import csv
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from marref import model as M  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

ARCH_DEFAULTS = dict(img_size=28, vae_stride=1, patch_size=7, vae_embed_dim=1,
                     encoder_embed_dim=256, encoder_depth=4, encoder_num_heads=8,
                     decoder_embed_dim=256, decoder_depth=4, decoder_num_heads=8,
                     mlp_ratio=4.0, norm_eps=1e-6, buffer_size=16, class_num=10,
                     diffloss_d=3, diffloss_w=256)


def load_idx(name):
    """IDX file (gz) -> numpy array (uint8)."""
    with gzip.open(os.path.join(DATA, name), "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fmnist(split="train"):
    """(images float32 [N, 1, 28, 28] in [-1, 1], labels int64 [N])."""
    pre = "train" if split == "train" else "t10k"
    x = load_idx(f"{pre}-images-idx3-ubyte.gz").astype(np.float32) / 255.0 * 2.0 - 1.0
    y = load_idx(f"{pre}-labels-idx1-ubyte.gz").astype(np.int64)
    return torch.from_numpy(x[:, None]), torch.from_numpy(y)


def lr_at(step, cfg):
    """Linear warmup, then cosine from lr to lr*min_lr_frac at total_steps."""
    lr, warm, total = cfg["lr"], cfg["warmup_steps"], cfg["total_steps"]
    if step < warm:
        return lr * (step + 1) / warm
    p = min(1.0, (step - warm) / max(1, total - warm))
    lo = lr * cfg["min_lr_frac"]
    return lo + (lr - lo) * 0.5 * (1.0 + math.cos(math.pi * p))


def build_model(cfg):
    arch = {k: cfg[k] for k in ARCH_DEFAULTS}
    return M.MAR(**arch, label_drop_prob=cfg["label_drop"], mask_ratio_min=cfg["mask_ratio_min"],
                 attn_dropout=cfg["dropout"], proj_dropout=cfg["dropout"],
                 diffusion_batch_mul=cfg["diffusion_batch_mul"])


def make_optimizer(model, cfg):
    # no weight decay on biases, norms and embeddings-like 1-D params (MAE/MAR param groups)
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or n.endswith(".bias") or "pos_embed" in n or n in
         ("fake_latent", "mask_token") else decay).append(p)
    return torch.optim.AdamW([{"params": no_decay, "weight_decay": 0.0},
                              {"params": decay, "weight_decay": cfg["weight_decay"]}],
                             lr=cfg["lr"], betas=(0.9, 0.95))


def atomic_save(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


class Trainer:
    def __init__(self, cfg, out):
        self.cfg = cfg
        self.out = out
        self.model = build_model(cfg)
        self.opt = make_optimizer(self.model, cfg)
        self.ema = {n: p.detach().clone() for n, p in self.model.named_parameters()}
        self.step = 0
        self.train_seconds = 0.0
        self.data_rng = np.random.default_rng(cfg["seed"])
        self.perm = self.data_rng.permutation(60000)
        self.perm_pos = 0
        self.loss_ema = None

    def state(self):
        return {"cfg": self.cfg, "step": self.step, "train_seconds": self.train_seconds,
                "model": self.model.state_dict(), "opt": self.opt.state_dict(), "ema": self.ema,
                "perm": self.perm, "perm_pos": self.perm_pos,
                "data_rng": self.data_rng.bit_generator.state, "np_rng": np.random.get_state(),
                "torch_rng": torch.get_rng_state(), "loss_ema": self.loss_ema}

    def load(self, st):
        self.model.load_state_dict(st["model"])
        self.opt.load_state_dict(st["opt"])
        self.ema = st["ema"]
        self.step = st["step"]
        self.train_seconds = st["train_seconds"]
        self.perm = st["perm"]
        self.perm_pos = st["perm_pos"]
        self.data_rng.bit_generator.state = st["data_rng"]
        np.random.set_state(st["np_rng"])
        torch.set_rng_state(st["torch_rng"])
        self.loss_ema = st["loss_ema"]

    def next_batch(self, X, Y, bs):
        if self.perm_pos + bs > len(self.perm):
            self.perm = self.data_rng.permutation(len(X))
            self.perm_pos = 0
        idx = torch.from_numpy(self.perm[self.perm_pos:self.perm_pos + bs].astype(np.int64))
        self.perm_pos += bs
        return X[idx], Y[idx]

    def train_step(self, X, Y):
        cfg = self.cfg
        lr = lr_at(self.step, cfg)
        for g in self.opt.param_groups:
            g["lr"] = lr
        imgs, labels = self.next_batch(X, Y, cfg["batch_size"])
        loss = self.model(imgs, labels)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg["grad_clip"])
        self.opt.step()
        # EMA with a warmup so early steps are not dominated by the random init
        rate = min(cfg["ema_rate"], (1.0 + self.step) / (10.0 + self.step))
        with torch.no_grad():
            for n, p in self.model.named_parameters():
                self.ema[n].mul_(rate).add_(p.detach(), alpha=1.0 - rate)
        self.step += 1
        return loss.item(), lr


def ckpt_path(out):
    return os.path.join(out, "ckpt.pt")


def export(out, path, dtype):
    st = torch.load(ckpt_path(out), map_location="cpu")
    cfg = st["cfg"]
    model = build_model(cfg)
    sd = model.state_dict()
    for n in sd:
        sd[n] = st["ema"][n] if n in st["ema"] else sd[n]
    extra = {"dataset": "fashion-mnist", "class_names": CLASS_NAMES, "train_steps": st["step"],
             "pixel_range": [-1.0, 1.0]}
    config = M.export_config(model, "patch", extra)
    M.export_safetensors(path, sd, config, dtype=dtype)
    print(f"exported EMA weights at step {st['step']} -> {path} ({os.path.getsize(path) / 1e6:.1f} MB, {dtype})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.environ.get("DISA_TRAIN_DIR", os.path.join(REPO, "results", "train")), "fmnist-mar"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--total-steps", type=int, default=None, help="schedule length (default 30000)")
    ap.add_argument("--batch-size", type=int, default=None, help="default 128")
    ap.add_argument("--lr", type=float, default=None, help="peak AdamW lr (default 8e-4)")
    ap.add_argument("--warmup-steps", type=int, default=None, help="default 1000")
    ap.add_argument("--ema-rate", type=float, default=None, help="default 0.9995")
    ap.add_argument("--width", type=int, default=None, help="encoder/decoder width (default 256)")
    ap.add_argument("--depth", type=int, default=None, help="encoder and decoder depth (default 4)")
    ap.add_argument("--heads", type=int, default=None, help="default 8")
    ap.add_argument("--buffer-size", type=int, default=None, help="default 16")
    ap.add_argument("--diffloss-d", type=int, default=None, help="default 3")
    ap.add_argument("--diffloss-w", type=int, default=None, help="default 256")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", default="auto", choices=["auto", "no"],
                    help="auto: continue from OUT/ckpt.pt when it exists")
    ap.add_argument("--ckpt-minutes", type=float, default=5.0)
    ap.add_argument("--bench", type=int, default=0, help="time this many steps and exit (no checkpoint)")
    ap.add_argument("--export", nargs="?", const=os.path.join(REPO, "models", "fmnist-mar.safetensors"),
                    default=None, help="export EMA weights of OUT/ckpt.pt and exit")
    ap.add_argument("--export-dtype", default="f16", choices=["f16", "f32"])
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    if a.export:
        export(a.out, a.export, a.export_dtype)
        return

    os.makedirs(a.out, exist_ok=True)
    cfg = dict(ARCH_DEFAULTS)
    cfg.update(total_steps=30000, batch_size=128, lr=8e-4, warmup_steps=1000, min_lr_frac=0.05,
               weight_decay=0.02, grad_clip=3.0, ema_rate=0.9995, label_drop=0.1, mask_ratio_min=0.7,
               dropout=0.0, diffusion_batch_mul=4, seed=a.seed)
    over = {"total_steps": a.total_steps, "batch_size": a.batch_size, "lr": a.lr,
            "warmup_steps": a.warmup_steps, "ema_rate": a.ema_rate,
            "encoder_embed_dim": a.width, "decoder_embed_dim": a.width,
            "encoder_depth": a.depth, "decoder_depth": a.depth,
            "encoder_num_heads": a.heads, "decoder_num_heads": a.heads,
            "buffer_size": a.buffer_size, "diffloss_d": a.diffloss_d, "diffloss_w": a.diffloss_w}
    st = None
    if a.resume == "auto" and not a.bench and os.path.exists(ckpt_path(a.out)):
        st = torch.load(ckpt_path(a.out), map_location="cpu")
        cfg = st["cfg"]
        # only the schedule length may change on resume; architecture comes from the checkpoint
        if a.total_steps is not None and a.total_steps != cfg["total_steps"]:
            print(f"total_steps {cfg['total_steps']} -> {a.total_steps}")
            cfg["total_steps"] = a.total_steps
    else:
        cfg.update({k: v for k, v in over.items() if v is not None})
        np.random.seed(a.seed)
        torch.manual_seed(a.seed)

    X, Y = load_fmnist("train")
    tr = Trainer(cfg, a.out)
    if st is not None:
        tr.load(st)
        print(f"resumed at step {tr.step} from {ckpt_path(a.out)}")
    nparam = sum(p.numel() for p in tr.model.parameters())
    print(f"config {json.dumps(cfg)}\nparameters {nparam / 1e6:.2f} M, threads {a.threads}", flush=True)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)

    if a.bench:
        t0 = time.time()
        for i in range(a.bench):
            loss, _ = tr.train_step(X, Y)
            if i == 1:
                t0 = time.time()
        dt = time.time() - t0
        print(f"bench: {(a.bench - 2) / dt:.3f} steps/s at batch {cfg['batch_size']}, last loss {loss:.4f}")
        return

    log_path = os.path.join(a.out, "loss.csv")
    new_log = not os.path.exists(log_path) or st is None
    logf = open(log_path, "w" if new_log else "a", newline="")
    w = csv.writer(logf)
    if new_log:
        w.writerow(["step", "time_s", "loss", "loss_ema", "lr"])
    last_ckpt = time.time()
    acc, nacc = 0.0, 0
    t_seg = time.time()
    while tr.step < cfg["total_steps"]:
        loss, lr = tr.train_step(X, Y)
        if not math.isfinite(loss):
            print(f"loss {loss} at step {tr.step}, stopping", flush=True)
            sys.exit(1)
        acc += loss
        nacc += 1
        tr.loss_ema = loss if tr.loss_ema is None else 0.99 * tr.loss_ema + 0.01 * loss
        now = time.time()
        if tr.step % 50 == 0:
            tr.train_seconds += now - t_seg
            t_seg = now
            w.writerow([tr.step, f"{tr.train_seconds:.1f}", f"{acc / nacc:.5f}", f"{tr.loss_ema:.5f}", f"{lr:.3e}"])
            logf.flush()
            acc, nacc = 0.0, 0
        if now - last_ckpt > a.ckpt_minutes * 60 or tr.step == cfg["total_steps"]:
            tr.train_seconds += now - t_seg
            t_seg = now
            atomic_save(tr.state(), ckpt_path(a.out))
            last_ckpt = now
            print(f"step {tr.step}/{cfg['total_steps']} loss_ema {tr.loss_ema:.4f} lr {lr:.2e} "
                  f"train {tr.train_seconds / 60:.1f} min, checkpoint saved", flush=True)
    logf.close()
    print("done", flush=True)


if __name__ == "__main__":
    main()
