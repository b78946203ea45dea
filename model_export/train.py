"""Train one detector from scratch on the face cache (CPU), with per-epoch checkpoints.

    python -m model_export.train --name resnet --epochs 12 --out model_export/runs/resnet [--resume]
    python -m model_export.train --name resnet --exclude-source utkface ...   # leave-one-source-out

An "epoch" is ``--epoch-samples`` draws with replacement, balanced per (source, label) group:
each label gets half the draws; within a label a source gets a share proportional to the square
root of its size (DFDC is not drowned out by UTKFace, TPDNE is not oversampled 10x). Each draw is a
random view of a randomly degraded face (see `augment`); with ``--sbi f`` a fraction ``f`` of the
fake draws are self-blended real faces instead. Validation each epoch is the centre view of every
``val`` face (the service's view geometry); the best validation AUC is kept (``best.pt``), and
training stops after ``--patience`` epochs without improvement. ``last.pt`` holds the optimiser,
scheduler and RNG state, so ``--resume`` continues where an interrupted run stopped.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from model_export import augment, balance, common, metrics
from model_export.data import TRAIN_ZOOM, Cache
from service.detection import preprocess


def group_weights(labels: np.ndarray, sources: np.ndarray) -> np.ndarray:
    w = np.zeros(len(labels), np.float64)
    for lab in (0, 1):
        groups = {s: np.flatnonzero((labels == lab) & (sources == s)) for s in np.unique(sources)}
        groups = {s: ix for s, ix in groups.items() if len(ix)}
        total = sum(math.sqrt(len(ix)) for ix in groups.values())
        for ix in groups.values():
            w[ix] = 0.5 * math.sqrt(len(ix)) / total / len(ix)
    return w / w.sum()


class Batches:
    """Reproducible augmented batches for one epoch (seed = base seed + epoch)."""

    def __init__(self, faces, labels, sources, spec, sbi: float, seed: int, partner=None,
                 mask_mouth: bool = False, grade: float = 0.0, colour: float = 0.0):
        self.faces, self.labels, self.spec, self.sbi = faces, labels, spec, sbi
        self.mask_mouth, self.grade, self.colour = mask_mouth, grade, colour
        self.p = group_weights(labels, sources)
        # paired sampling: an item with a partner (a DFDC fake and the real frame it was made
        # from) brings its partner along, both cut and degraded identically; their draw weight
        # is halved so the source keeps its share of images
        self.partner = np.full(len(labels), -1) if partner is None else partner
        self.p[self.partner >= 0] *= 0.5
        self.p /= self.p.sum()
        self.reals = np.flatnonzero(labels == 0)
        self.seed = seed
        self.zoom = TRAIN_ZOOM
        self.mean = np.asarray(spec.mean, np.float32)
        self.std = np.asarray(spec.std, np.float32)

    def _make(self, idx, rng):
        views, ys = [], []
        for i in idx:
            y = int(self.labels[i])
            j = self.partner[i]
            if j >= 0:
                seed = int(rng.integers(2**63))
                for k in (i, j):
                    r = np.random.default_rng(seed)
                    face = self.faces[k]
                    if self.grade and r.random() < self.grade:
                        face = augment.grade(face, r)
                    if self.colour and r.random() < self.colour:
                        face = augment.recolour(face, r)
                    face = augment.degrade(face, r, self.spec.face_size, self.zoom)
                    face = augment.mask_mouth(face) if self.mask_mouth else face
                    views.append(augment.random_view(face, r, self.spec.input_size))
                    ys.append(int(self.labels[k]))
                continue
            face = self.faces[i]
            if y == 1 and self.sbi > 0 and rng.random() < self.sbi:
                face = augment.self_blend(self.faces[rng.choice(self.reals)], rng)
            if self.grade and rng.random() < self.grade:
                face = augment.grade(face, rng)
            if self.colour and rng.random() < self.colour:
                face = augment.recolour(face, rng)
            face = augment.degrade(face, rng, self.spec.face_size, self.zoom)
            face = augment.mask_mouth(face) if self.mask_mouth else face
            views.append(augment.random_view(face, rng, self.spec.input_size))
            ys.append(y)
        x = preprocess.to_input(np.stack(views), self.spec)
        return torch.from_numpy(x), torch.tensor(ys, dtype=torch.float32)

    def epoch(self, epoch: int, n: int, batch: int):
        rng = np.random.default_rng([self.seed, epoch])
        draws = rng.choice(len(self.labels), size=n, p=self.p)
        cost = np.cumsum(np.where(self.partner[draws] >= 0, 2, 1))  # images so far
        draws, cost = draws[cost <= n], cost[cost <= n]  # an epoch is ~n images
        ends = np.flatnonzero(np.diff((cost - 1) // batch) > 0) + 1
        chunks = np.split(draws, ends)
        rngs = [np.random.default_rng([self.seed, epoch, k]) for k in range(len(chunks))]
        with ThreadPoolExecutor(1) as ex:  # prepare the next batch while the model trains
            fut = ex.submit(self._make, chunks[0], rngs[0])
            for k in range(len(chunks)):
                xb = fut.result()
                if k + 1 < len(chunks):
                    fut = ex.submit(self._make, chunks[k + 1], rngs[k + 1])
                yield xb


@torch.no_grad()
def predict_views(model, faces_serve: np.ndarray, spec, crops=None, batch: int = 128,
                  device: str = "cpu") -> np.ndarray:
    """Per-face logit: mean over the spec's views (or ``crops``), as the service combines them."""
    model.eval()
    crops = spec.crops if crops is None else crops
    origins = preprocess.crop_origins(spec.face_size, spec.input_size, crops)
    s = spec.input_size
    out = np.zeros((len(faces_serve), len(origins)), np.float32)
    for i in range(0, len(faces_serve), batch):
        f = np.asarray(faces_serve[i : i + batch])
        for j, (x0, y0) in enumerate(origins):
            x = preprocess.to_input(f[:, y0 : y0 + s, x0 : x0 + s], spec)
            out[i : i + len(f), j] = model(torch.from_numpy(x).to(device))[0].float().cpu().numpy()
    return out.mean(axis=1)


def pair_index(cache: Cache, idx: np.ndarray) -> np.ndarray:
    """Position (within ``idx``) of each item's real/fake partner in the same group, or -1."""
    groups: dict[tuple, list[int]] = {}
    for k, i in enumerate(idx):
        groups.setdefault((cache.sources[i], cache.records[i].group), []).append(k)
    partner = np.full(len(idx), -1)
    for ks in groups.values():
        if len(ks) == 2 and cache.labels[idx[ks[0]]] != cache.labels[idx[ks[1]]]:
            partner[ks[0]], partner[ks[1]] = ks[1], ks[0]
    return partner


def lr_lambda(total_steps: int, warmup: int):
    def f(step):
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, total_steps - warmup)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return f


def train(a) -> dict:
    torch.set_num_threads(a.threads)
    cv2.setNumThreads(1)
    common.seed_everything(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = preprocess.InputSpec.from_card(common.SPEC)
    cache = Cache(common.SPEC)
    tr = cache.index("train", exclude_source=a.exclude_source)
    va = cache.index("val", exclude_source=a.exclude_source)
    if a.val_limit and len(va) > a.val_limit:  # a fixed, evenly spread subset (short runs)
        va = va[np.linspace(0, len(va) - 1, a.val_limit).astype(int)]
    print(f"train {len(tr)} val {len(va)} (excluded: {a.exclude_source})", flush=True)
    faces_tr = np.ascontiguousarray(cache.train[tr])
    faces_va = np.ascontiguousarray(cache.serve[va])
    if a.mask_mouth:
        faces_va = augment.mask_mouth(faces_va)
    y_va = cache.labels[va]
    partner = pair_index(cache, tr) if a.pair else None
    batches = Batches(faces_tr, cache.labels[tr], cache.sources[tr], spec, a.sbi, a.seed, partner,
                      a.mask_mouth, a.grade, a.colour)
    if a.balance_groups:
        group = balance.groups(balance.patches(cache.serve[tr], a.balance_region),
                               a.balance_groups, a.seed)
        before = balance.fake_share_by_group(batches.p, cache.labels[tr], group)
        batches.p = balance.balanced(batches.p, cache.labels[tr], group)
        print(f"fake share of draws by {a.balance_region} group, before:",
              {g: round(v, 3) for g, v in before.items()}, flush=True)

    model = common.build_named(a.name, a.tune_blocks, a.width).to(a.device)
    tuned = [p for n, p in model.named_parameters() if n.startswith("backbone.") and p.requires_grad]
    rest = [p for n, p in model.named_parameters() if not n.startswith("backbone.")]
    groups = [{"params": rest}] + ([{"params": tuned, "lr": a.lr * a.backbone_lr}] if tuned else [])
    opt = torch.optim.AdamW(groups, lr=a.lr, weight_decay=a.wd)
    steps_per_epoch = math.ceil(a.epoch_samples / a.batch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lr_lambda(a.epochs * steps_per_epoch, max(1, steps_per_epoch // 2))
    )
    state = {"epoch": 0, "best_auc": -1.0, "best_epoch": -1, "history": [], "seconds": 0.0}
    if a.resume and (out / "last.pt").exists():
        ck = torch.load(out / "last.pt", weights_only=False, map_location=a.device)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        state = ck["state"]
        print(f"resumed after epoch {state['epoch']}", flush=True)
    (out / "args.json").write_text(json.dumps(vars(a), indent=2))
    stop = min(a.epochs, a.stop_epoch or a.epochs)

    def save_last() -> None:  # everything --resume needs
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                    "sched": sched.state_dict(), "state": state}, out / "last.pt")

    while state["epoch"] < stop and not state.get("early_stopped"):
        ep = state["epoch"]
        t0 = time.time()
        model.train()
        tot, n = 0.0, 0
        for xb, yb in batches.epoch(ep, a.epoch_samples, a.batch):
            xb, yb = xb.to(a.device, non_blocking=True), yb.to(a.device, non_blocking=True)
            logit, _ = model(xb)
            loss = F.binary_cross_entropy_with_logits(logit, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(yb)
            n += len(yb)
        t_train = time.time() - t0
        lv = predict_views(model, faces_va, spec, crops=[(0.5, 0.5)], device=a.device)
        auc = metrics.roc_auc(y_va, lv)
        per = metrics.per_source_auc(y_va, lv, cache.sources[va])
        state["epoch"] = ep + 1
        state["seconds"] += time.time() - t0
        rec = {
            "epoch": ep + 1,
            "loss": round(tot / max(1, n), 4),
            "val_auc": round(auc, 4),
            "val_auc_per_source": {k: round(v, 4) for k, v in per.items()},
            "train_s": round(t_train, 1),
            "img_per_s": round(n / t_train, 1),
            "lr": opt.param_groups[0]["lr"],
        }
        state["history"].append(rec)
        print(json.dumps(rec), flush=True)
        if auc > state["best_auc"]:
            state["best_auc"], state["best_epoch"] = auc, ep + 1
            weights = {k: v.cpu() for k, v in model.state_dict().items()}
            torch.save({"model": weights, "epoch": ep + 1, "val_auc": auc}, out / "best.tmp")
            (out / "best.tmp").replace(out / "best.pt")  # whole, even if the run is stopped
        save_last()
        if ep + 1 - state["best_epoch"] >= a.patience:
            print(f"early stop: no val improvement for {a.patience} epochs", flush=True)
            state["early_stopped"] = True
            save_last()
            break
    summary = {
        **state,
        "args": vars(a),
        "command": "python -m model_export.train " + " ".join(sys.argv[1:]),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--name", choices=list(common.ALL_ARCHS), required=True)
    ap.add_argument("--width", type=float, default=None, help="override the shipped width")
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--epoch-samples", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--sbi", type=float, default=0.0, help="fraction of fake draws self-blended")
    ap.add_argument("--pair", action="store_true", help="paired real/fake sampling (DFDC)")
    ap.add_argument("--exclude-source", default=None)
    ap.add_argument("--tune-blocks", type=int, default=0,
                    help="mobilenet: also train the convolutions of the backbone's last N blocks")
    ap.add_argument("--mask-mouth", action="store_true",
                    help="a trial: hide the mouth region of every face (`augment.mask_mouth`); "
                    "`loso --score` hides it too for such a run")
    ap.add_argument("--grade", type=float, default=0.0, metavar="P",
                    help="share of training faces given a random photographic finish "
                    "(`augment.grade`: white balance, tone, smoothing or sharpening, background "
                    "blur), both classes alike")
    ap.add_argument("--colour", type=float, default=0.0, metavar="P",
                    help="share of training faces given a strong colour edit (`augment.recolour`: "
                    "black and white, toned, white balance, exposure, saturation, contrast), both "
                    "classes alike")
    ap.add_argument("--balance-groups", type=int, default=0, metavar="K",
                    help="group the training faces by the look of their lower face (K groups) "
                    "and draw every group with the same share of fakes (`balance`)")
    ap.add_argument("--balance-region", default="lower", choices=list(balance.REGIONS),
                    help="the part of the face --balance-groups groups by")
    ap.add_argument("--backbone-lr", type=float, default=0.1,
                    help="the tuned backbone blocks' learning rate, as a share of --lr")
    ap.add_argument(
        "--stop-epoch", type=int, default=None, help="stop after this epoch (schedule unchanged)"
    )
    ap.add_argument("--val-limit", type=int, default=None, help="validate on a subset")
    ap.add_argument("--patience", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="torch device to train on (cuda: `gpu_batch`)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true")
    return ap.parse_args(argv)


if __name__ == "__main__":
    train(parse())
