"""Full-width detectors and their leave-one-source-out runs, trained at once on a GPU machine.

    python -m model_export.gpu_batch run --plan full-width|seeds --out DIR [--deadline 420]
    python -m model_export.gpu_batch import DIR          # here, with the files DIR got back

``run`` (on the machine, after `gpu_pack unpack`) starts every run of the plan (`PLANS`) as its own
`train --device cuda` process (the GPU is shared; each process prepares its batches on its own
cores), stops those still going at ``--deadline`` seconds (each keeps its best epoch so far), then
scores every run's best epoch with the service's views, on the crops `gpu_pack` rebuilt there
(a run without a source: only the rows `loso` scores it on; a mobilenet one also gets its
familiarity gate fitted and measured, as `loso_ensemble` does). It writes to DIR: ``logits.npz``
(one array per run, one logit per cache row, NaN where not scored), ``gate.npz`` (the gate's
distances), ``summaries.json`` (each run's `train` summary), ``log.txt``, and the weights of the
runs marked ``keep`` as float16 pieces of at most 15 MiB (the device tool returns at most 8 files
of 16 MiB, 64 MiB in all).

``import`` turns those files into runs under ``model_export/runs/gpu/``: a kept run becomes a
``best.pt`` that `evaluate` and `loso` read as any other; a leave-one-source-out run becomes a
``logits.npz`` in `loso`'s layout (no weights) and, for a mobilenet, a ``gate_distances.npz``,
so ``loso --score``, ``loso_ensemble --run`` and `loso_seeds` give its figures. Those figures
rest on the rebuilt crops; a kept run is scored here again on the cache's own crops.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from model_export import common
from model_export.data import SOURCES, Cache

GPU_RUNS = common.RUNS_DIR / "gpu"
PIECE = 15 * 2**20
LOSO_TAIL = ["--sbi", "0.3", "--pair", "--balance-groups", "8"]
# "full-width": the shipped recipes (reproduce.PLAN's length, SBI and paired DFDC draws) at full
# width with the mobilenet member's balanced draws, one without them, and the leave-one-source-out
# runs of the full-width resnet at the same length.
FULL = ["--epochs", "16", "--epoch-samples", "8192", "--sbi", "0.3", "--pair", "--patience", "6",
        "--seed", "0", "--width", "1.0"]
# "seeds": the mobilenet's leave-one-source-out recipe (reproduce.LOSO) with other seeds (seed 0
# once more, to measure what training on the carried crops changes), and the resnet's at the
# shipped width and the full-width runs' length, to tell width from length (the sources where
# the full-width runs did worst, and one generator).
MOBILENET_LOSO = ["--epochs", "6", "--epoch-samples", "8192", "--val-limit", "1200",
                  "--patience", "99", *LOSO_TAIL]
PLANS = {
    "full-width": {
        "resnet_w1_b8": {"name": "resnet", "args": FULL + ["--balance-groups", "8"], "keep": True},
        "vgg16_w1_b8": {"name": "vgg16", "args": FULL + ["--balance-groups", "8"], "keep": True},
        "resnet_w1": {"name": "resnet", "args": FULL},
        **{f"loso_resnet_w1_b8/{s}": {"name": "resnet", "args": FULL + [
            "--balance-groups", "8", "--exclude-source", s]} for s in SOURCES},
    },
    "seeds": {
        **{f"loso_mobilenet_b8_s{seed}/{s}": {"name": "mobilenet", "args": MOBILENET_LOSO + [
            "--seed", str(seed), "--exclude-source", s]}
           for seed in (1, 2) for s in SOURCES},
        **{f"loso_mobilenet_b8_s{seed}/tpdne-unsplash": {"name": "mobilenet", "args": [
            *MOBILENET_LOSO, "--seed", str(seed), "--exclude-source", "tpdne-unsplash"]}
           for seed in (0, 3, 4)},
        **{f"loso_resnet_b8_16ep/{s}": {"name": "resnet", "args": [
            "--epochs", "16", "--epoch-samples", "8192", "--patience", "6", "--seed", "0",
            *LOSO_TAIL, "--exclude-source", s]}
           for s in ("tpdne-unsplash", "snapshots", "london-canada", "sdfd-sd21")},
    },
}


def _key(run: str) -> str:
    return run.replace("/", "__")


def train_all(runs: dict, deadline: float, device: str, extra: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs = {}
    for run, r in runs.items():
        out = GPU_RUNS / run
        out.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "model_export.train", "--name", r["name"], "--out", str(out),
               "--device", device, *r["args"], *extra]
        log = open(GPU_RUNS / f"{_key(run)}.log", "w")
        procs[run] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log)
    end = time.time() + deadline
    for run, (p, log) in procs.items():
        try:
            p.wait(timeout=max(0.0, end - time.time()))
        except subprocess.TimeoutExpired:
            p.terminate()
            p.wait()
            print(f"{run}: stopped at the deadline", flush=True)
        log.close()


def score_all(runs: dict, device: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every run's logit of every cache row; for a mobilenet run without a source, also each
    row's distance under the familiarity gate fitted on that run (as `loso_ensemble` fits it)."""
    from model_export import gate
    from model_export.loso import faces
    from model_export.train import predict_views
    from service.detection import preprocess

    spec = preprocess.InputSpec.from_card(common.SPEC)
    cache = Cache(common.SPEC)
    serve = np.asarray(cache.serve)
    every = np.arange(len(serve))
    logits, distances = {}, {}
    for run, r in runs.items():
        best = GPU_RUNS / run / "best.pt"
        if not best.exists():
            continue
        args = json.loads((GPU_RUNS / run / "args.json").read_text())
        model = common.build_named(r["name"], width=args.get("width")).to(device)
        model.load_state_dict(torch.load(best, weights_only=False, map_location=device)["model"])
        held_out = args.get("exclude_source")
        rows = np.unique(np.concatenate(list(faces(cache, held_out).values()))) if held_out else every
        lo = np.full(len(serve), np.nan, np.float32)  # a run without a source: only loso's rows
        lo[rows] = predict_views(model, serve[rows], spec, batch=1024, device=device)
        logits[_key(run)] = lo
        if r["name"] == gate.MEMBER and held_out:
            tr = gate.fit_sample(cache, exclude_source=held_out)
            g = gate.fit(gate.torch_features(model, cache, tr, spec, device),
                         gate.groups_of(cache, tr))
            d = np.full(len(serve), np.nan, np.float32)
            d[rows] = gate.distance(gate.torch_features(model, cache, rows, spec, device), g)
            distances[_key(run)] = d
    return logits, distances


def run(a) -> None:
    runs = {k: v for k, v in PLANS[a.plan].items() if not a.only or k in a.only}
    t0 = time.time()
    extra = (["--epochs", str(a.epochs)] if a.epochs else []) + (
        ["--epoch-samples", str(a.epoch_samples)] if a.epoch_samples else [])
    train_all(runs, a.deadline, a.device, extra)
    print(f"trained in {time.time() - t0:.0f} s", flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    logits, distances = score_all(runs, a.device)
    np.savez(a.out / "logits.npz", **logits)
    if distances:
        np.savez(a.out / "gate.npz", **distances)
    summaries = {}
    for r in runs:
        s = GPU_RUNS / r / "summary.json"
        last = GPU_RUNS / r / "last.pt"
        if s.exists():
            summaries[r] = json.loads(s.read_text())
        elif last.exists():  # stopped at the deadline: its state so far
            summaries[r] = {**torch.load(last, weights_only=False, map_location="cpu")["state"],
                            "args": json.loads((GPU_RUNS / r / "args.json").read_text()),
                            "stopped_at_deadline": True}
    (a.out / "summaries.json").write_text(json.dumps(summaries, indent=1))
    with open(a.out / "log.txt", "w") as f:
        for r in runs:
            f.write(f"== {r}\n" + (GPU_RUNS / f"{_key(r)}.log").read_text()[-3000:] + "\n")
    for r, spec in runs.items():
        best = GPU_RUNS / r / "best.pt"
        if spec.get("keep") and best.exists():
            ck = torch.load(best, weights_only=False, map_location="cpu")
            ck["model"] = {k: v.half() if v.is_floating_point() else v
                           for k, v in ck["model"].items()}
            buf = io.BytesIO()
            torch.save(ck, buf)
            data = buf.getvalue()
            for k in range(0, len(data), PIECE):
                (a.out / f"{_key(r)}.pt.{k // PIECE}").write_bytes(data[k:k + PIECE])
    print(f"done in {time.time() - t0:.0f} s", flush=True)


def import_dir(src: Path) -> None:
    """The device's files in ``src`` -> runs under `GPU_RUNS` (see the module docstring)."""
    from model_export import loso, loso_ensemble

    logits = dict(np.load(src / "logits.npz"))
    distances = dict(np.load(src / "gate.npz")) if (src / "gate.npz").exists() else {}
    summaries = json.loads((src / "summaries.json").read_text())
    cache = Cache(common.SPEC)
    for run, summ in summaries.items():
        out = GPU_RUNS / run
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps(summ, indent=2))
        (out / "args.json").write_text(json.dumps(summ["args"], indent=2))
        pieces = sorted(src.glob(f"{_key(run)}.pt.*"), key=lambda p: int(p.suffix[1:]))
        if pieces:
            ck = torch.load(io.BytesIO(b"".join(p.read_bytes() for p in pieces)),
                            weights_only=False)
            ck["model"] = {k: v.float() if v.is_floating_point() else v
                           for k, v in ck["model"].items()}
            torch.save(ck, out / "best.pt")
        held_out = summ["args"].get("exclude_source")
        idx = loso.faces(cache, held_out) if held_out else {}
        if held_out and _key(run) in logits:
            np.savez(out / "logits.npz", **{k: logits[_key(run)][i] for k, i in idx.items()})
        if held_out and _key(run) in distances:
            np.savez(out / loso_ensemble.GATE_FILE,
                     **{k: distances[_key(run)][idx[k]] for k in ("val", "own")})
        print(run, "weights" if pieces else "", "logits" if _key(run) in logits else "",
              "gate" if _key(run) in distances else "")
    np.savez(GPU_RUNS / f"logits_rebuilt_crops_{src.name}.npz", **logits)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--deadline", type=float, default=420, help="seconds of training at most")
    r.add_argument("--device", default="cuda")
    r.add_argument("--plan", choices=list(PLANS), default="full-width")
    r.add_argument("--only", nargs="+", help="only these runs of the plan")
    r.add_argument("--epochs", type=int, help="instead of the recipe's (a smoke test)")
    r.add_argument("--epoch-samples", type=int, help="instead of the recipe's (a smoke test)")
    i = sub.add_parser("import")
    i.add_argument("src", type=Path)
    a = ap.parse_args(argv)
    run(a) if a.cmd == "run" else import_dir(a.src)


if __name__ == "__main__":
    main()
