"""The familiarity gate: a face unlike every face the detectors learned from is not called FAKE.

    python -m model_export.gate          # fit on the shipped mobilenet, attach, measure (~1 min)
    python -m model_export.gate --measure [--by class] [--share S]   # test figures only

The detectors call real photos from collections they never saw fake more often than the ones
they know (`docs/models.md`, leave one source out). This gate says when a face is outside what
they learned: the mobilenet member's pooled head features (the 128 numbers its classifier
weighs) of the face's centre view, and their Mahalanobis distance to the nearest mean of the
training faces of one source and class (one covariance shared by all these groups). A face
farther than the ``limit`` is *unfamiliar*: whatever the ensemble's score, the service answers
UNSURE and says why (``HOLDS``). Held back as FAKE, it removes false alarms on real photos of a
kind the detectors never saw (and some detections); held back as REAL (since 2026-11-30), it
keeps fakes of a kind they never saw, which they score as real, from being cleared: trained
without the Stable Diffusion faces, the detectors rank those below the real faces, and the gate
marks many of them unfamiliar (`loso_ensemble`'s ``served``; `served_verdicts` on the test
split).

The distance is computed inside the member's ONNX files (an extra output, ``unfamiliarity``,
appended after the trained graph: the logit and the activation map are bit-identical), so the
service needs only the limit from ``ensemble.json``'s ``gate``. It is fitted on the file the
service runs on the CPU (INT8): the means and covariance on up to ``PER_GROUP`` training faces
of each source and class (centre view, no augmentation), the limit the smallest that marks at
most ``GATED_SHARE`` of every source's val faces unfamiliar.

`model_export.loso_ensemble` applies the same rule, fitted on each leave-one-source-out run
without the held-out source, at several shares: what the gate does for sources it never saw.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from model_export import common, metrics
from model_export.data import Cache
from service.detection import preprocess

MEMBER = "mobilenet"
OUTPUT = "unfamiliarity"
FEATURES = "gate_features"
PREFIX = "gate_"
META = "gate_classifier_inputs"  # the classifier's own inputs, while the gate replaces them
#: the verdicts an unfamiliar face never gets (the service reads them from ensemble.json)
HOLDS = ("fake", "real")
#: at most this share of every source's val faces is marked unfamiliar
GATED_SHARE = 0.10
#: training faces per source and class the means and covariance are fitted on
PER_GROUP = 500
RIDGE = 1e-3
VIEW = 0  # the spec's first crop, the centre view: every face's first round scores it


# ---------------------------------------------------------------- the statistic


def fit(features: np.ndarray, groups: np.ndarray) -> dict:
    """One mean per group (K, C) and ``whiten`` (C, C): ``(f - mean) @ whiten`` has unit
    covariance within the groups (one covariance shared by all)."""
    names = sorted(set(groups))
    means = np.stack([features[groups == g].mean(0) for g in names])
    centred = np.concatenate([features[groups == g] - means[i] for i, g in enumerate(names)])
    cov = np.cov(centred.T) + RIDGE * np.eye(features.shape[1])
    whiten = np.linalg.cholesky(np.linalg.inv(cov))  # inv(cov) = whiten @ whiten.T
    return {"means": means.astype(np.float32), "whiten": whiten.astype(np.float32),
                    "groups": [str(n) for n in names]}


def groups_of(cache: Cache, idx: np.ndarray) -> np.ndarray:
    """Each face's group: its source and class (a source with both has two)."""
    return np.array([f"{s}/{'fake' if y else 'real'}"
                     for s, y in zip(cache.sources[idx], cache.labels[idx])])


def distance(features: np.ndarray, gate: dict) -> np.ndarray:
    """Squared Mahalanobis distance to the nearest group mean (what the ONNX output computes)."""
    z = (features[:, None, :] - gate["means"][None]) @ gate["whiten"]
    return (z * z).sum(-1).min(-1)


def limit_for(val_distances: np.ndarray, sources: np.ndarray, share: float = GATED_SHARE
              ) -> float:
    """The smallest limit that marks at most ``share`` of every source's val faces unfamiliar."""
    return float(max(np.quantile(val_distances[sources == s], 1.0 - share)
                     for s in set(sources)))


# ---------------------------------------------------------------- the ONNX files


def _classifier(graph: onnx.GraphProto) -> onnx.NodeProto:
    """The 1x1 convolution whose output is the activation map (``cam`` = Gather(Conv(...)))."""
    producer = {o: n for n in graph.node for o in n.output}
    conv = producer[producer["cam"].input[0]]
    if conv.op_type != "Conv":
        raise ValueError(f"expected the classifier's Conv before 'cam', found {conv.op_type}")
    return conv


def _set_channels(graph: onnx.GraphProto, name: str, channels: int) -> None:
    """The recorded shape of tensor ``name`` (if any) with ``channels`` channels."""
    for vi in graph.value_info:
        dims = vi.type.tensor_type.shape.dim
        if vi.name == name and len(dims) > 1 and dims[1].HasField("dim_value"):
            dims[1].dim_value = channels


def strip(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model without a gate attached earlier: exactly the graph it was attached to."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    meta = {p.key: p.value for p in m.metadata_props}
    if META in meta:  # the classifier's own inputs and weights back, where they were
        was = json.loads(meta[META])
        conv = _classifier(g)
        inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        k = int(was["channels"])
        for name, at, key in was["initializers"]:  # in the order of their places
            g.initializer.insert(at, numpy_helper.from_array(inits[PREFIX + key][:k], name))
        del conv.input[:]
        conv.input.extend(was["inputs"])
        _set_channels(g, conv.output[0], k)
        keep_meta = [p for p in m.metadata_props if p.key != META]
        del m.metadata_props[:]
        m.metadata_props.extend(keep_meta)
    for field, keep in ((g.node, [n for n in g.node if not n.name.startswith(PREFIX)]),
                        (g.initializer, [t for t in g.initializer
                                         if not t.name.startswith(PREFIX)]),
                        (g.output, [o for o in g.output if o.name not in (OUTPUT, FEATURES)])):
        del field[:]
        field.extend(keep)
    return m


def attach(model: onnx.ModelProto, gate: dict | None) -> onnx.ModelProto:
    """``model`` with its pooled features as an output (``gate`` None: for fitting) or with the
    ``unfamiliarity`` output of a fitted gate.

    The features are what the classifier reads. They are read *through* the classifier: its
    1x1 convolution gets C more output channels, an identity, whose spatial mean is the pooled
    features, while its first channel stays the activation map. Reading the classifier's input
    directly would give that tensor a second consumer, and in the INT8 file ONNX Runtime then
    stops fusing the convolution before it into a quantized one (measured: 11 % more CPU for
    the member; `bench.gate_cost`)."""
    m = strip(model)
    g = m.graph
    conv = _classifier(g)
    names = [t.name for t in g.initializer]
    if len(conv.input) < 3 or sum(n in (conv.input[1], conv.input[2]) for n in names) != 2:
        raise ValueError("the classifier's weight and bias must be initializers")
    w = numpy_helper.to_array(g.initializer[names.index(conv.input[1])])
    b = numpy_helper.to_array(g.initializer[names.index(conv.input[2])])
    c = w.shape[1]
    # the classifier's own weights move into the extended ones (an initializer left unused
    # is warned about at every session start); `strip` puts them back where they were
    was = {"inputs": list(conv.input), "channels": int(w.shape[0]),
           "initializers": sorted([(n, names.index(n), key) for n, key in
                                   zip(conv.input[1:3], ("classifier_w", "classifier_b"))],
                                  key=lambda e: e[1])}
    m.metadata_props.append(onnx.StringStringEntryProto(key=META, value=json.dumps(was)))
    keep = [t for t in g.initializer if t.name not in conv.input[1:3]]
    del g.initializer[:]
    g.initializer.extend(keep)
    _set_channels(g, conv.output[0], w.shape[0] + c)
    g.initializer.extend([
        numpy_helper.from_array(np.concatenate([w, np.eye(c, dtype=w.dtype).reshape(c, c, 1, 1)]),
                                PREFIX + "classifier_w"),
        numpy_helper.from_array(np.concatenate([b, np.zeros(c, b.dtype)]), PREFIX + "classifier_b"),
        numpy_helper.from_array(np.array([w.shape[0]], np.int64), PREFIX + "from"),
        numpy_helper.from_array(np.array([w.shape[0] + c], np.int64), PREFIX + "to"),
        numpy_helper.from_array(np.array([1], np.int64), PREFIX + "axis1")])
    del conv.input[1:]
    conv.input.extend([PREFIX + "classifier_w", PREFIX + "classifier_b"])
    nodes = [helper.make_node("Slice", [conv.output[0], PREFIX + "from", PREFIX + "to",
                                        PREFIX + "axis1"], [PREFIX + "fmap"], name=PREFIX + "slice"),
             helper.make_node("ReduceMean", [PREFIX + "fmap"], [FEATURES], name=PREFIX + "pool",
                              axes=[2, 3], keepdims=0)]
    if gate is None:
        g.node.extend(nodes)
        g.output.append(helper.make_tensor_value_info(FEATURES, TensorProto.FLOAT, ["n", None]))
        return m
    g.initializer.extend([
        numpy_helper.from_array(gate["means"].astype(np.float32), PREFIX + "means"),
        numpy_helper.from_array(gate["whiten"].astype(np.float32), PREFIX + "whiten"),
        numpy_helper.from_array(np.array([2], np.int64), PREFIX + "axis2")])
    nodes += [
        helper.make_node("Unsqueeze", [FEATURES, PREFIX + "axis1"], [PREFIX + "f"],
                         name=PREFIX + "unsqueeze"),                          # (n, 1, C)
        helper.make_node("Sub", [PREFIX + "f", PREFIX + "means"], [PREFIX + "d"],
                         name=PREFIX + "sub"),                                # (n, K, C)
        helper.make_node("MatMul", [PREFIX + "d", PREFIX + "whiten"], [PREFIX + "z"],
                         name=PREFIX + "matmul"),
        helper.make_node("Mul", [PREFIX + "z", PREFIX + "z"], [PREFIX + "z2"], name=PREFIX + "sq"),
        helper.make_node("ReduceSum", [PREFIX + "z2", PREFIX + "axis2"], [PREFIX + "dist"],
                         name=PREFIX + "sum", keepdims=0),                    # (n, K)
        helper.make_node("ReduceMin", [PREFIX + "dist"], [OUTPUT], name=PREFIX + "min",
                         axes=[1], keepdims=0),                               # (n,)
    ]
    g.node.extend(nodes)
    g.output.append(helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["n"]))
    onnx.checker.check_model(m)
    return m


def session(model: onnx.ModelProto):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), sess_options=opts,
                                providers=["CPUExecutionProvider"])


def centre_inputs(faces_serve: np.ndarray, spec) -> np.ndarray:
    x0, y0 = preprocess.crop_origins(spec.face_size, spec.input_size, spec.crops)[VIEW]
    s = spec.input_size
    return preprocess.to_input(np.asarray(faces_serve)[:, y0:y0 + s, x0:x0 + s], spec)


def _in_row_order(cache: Cache, idx: np.ndarray, spec, run, chunk: int = 256) -> list[np.ndarray]:
    """``run(x)`` (a list of arrays) on the centre views of cache rows ``idx``, read from the
    memory-mapped cache in row order, handed back in the order of ``idx``."""
    order = np.argsort(idx)
    parts = [run(centre_inputs(cache.serve[idx[order[i:i + chunk]]], spec))
             for i in range(0, len(idx), chunk)]
    back = np.empty_like(order)
    back[order] = np.arange(len(idx))
    return [np.concatenate([p[k] for p in parts])[back] for k in range(len(parts[0]))]


def onnx_outputs(sess, cache: Cache, idx: np.ndarray, spec, names: list[str]) -> list[np.ndarray]:
    """``names`` outputs of ``sess`` on the centre views of cache rows ``idx``."""
    return _in_row_order(cache, idx, spec, lambda x: sess.run(names, {"image": x}))


def torch_features(model, cache: Cache, idx: np.ndarray, spec, device: str = "cpu") -> np.ndarray:
    """The pooled head features of a PyTorch mobilenet run (centre view), as the ONNX output."""
    model.eval()
    with torch.no_grad():
        return _in_row_order(cache, idx, spec, lambda x: [
            model.head_map(torch.from_numpy(x).to(device)).mean(dim=(2, 3)).cpu().numpy()])[0]


def fit_sample(cache: Cache, exclude_source: str | None = None, per_group: int = PER_GROUP,
               seed: int = 0) -> np.ndarray:
    """Training faces to fit on: up to ``per_group`` of each source and class, so the large
    sources do not set the covariance alone."""
    tr = cache.index("train", exclude_source=exclude_source)
    g = groups_of(cache, tr)
    rng = np.random.default_rng(seed)
    pick = [rng.choice(tr[g == k], min(per_group, int((g == k).sum())), replace=False)
            for k in sorted(set(g))]
    return np.sort(np.concatenate(pick))


# ---------------------------------------------------------------- figures


def gated_figures(y, p, sources, t, unfamiliar) -> dict:
    """What the gate changes on labelled faces: FAKE verdicts before and after, per source."""
    fake = p >= t
    out = {"faces_unfamiliar": float(unfamiliar.mean()),
           "reals_called_fake": {"without_gate": float(fake[y == 0].mean()),
                                 "with_gate": float((fake & ~unfamiliar)[y == 0].mean())},
           "fakes_caught": {"without_gate": float(fake[y == 1].mean()),
                            "with_gate": float((fake & ~unfamiliar)[y == 1].mean())},
           "per_source": {}}
    for s in sorted(set(sources)):
        m = sources == s
        row = {"faces_unfamiliar": float(unfamiliar[m].mean())}
        for c, key in ((0, "reals_called_fake"), (1, "fakes_caught")):
            k = m & (y == c)
            if k.any():
                row[key] = [float(fake[k].mean()), float((fake & ~unfamiliar)[k].mean())]
        out["per_source"][s] = row
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", type=Path, default=common.MODELS_DIR)
    ap.add_argument("--share", type=float, default=GATED_SHARE)
    ap.add_argument("--by", choices=("group", "class"), default="group",
                    help="one mean per source and class (shipped) or per class (a comparison)")
    ap.add_argument("--measure", action="store_true",
                    help="print the test figures only: write no file")
    a = ap.parse_args(argv)
    from model_export.evaluate import scores_path

    spec = preprocess.InputSpec.from_card(common.SPEC)
    cache = Cache(common.SPEC)
    card_path = a.models / f"{MEMBER}.card.json"
    card = json.loads(card_path.read_text())
    files = {k: a.models / card["files"][k] for k in ("cpu", "gpu")}
    base = {k: strip(onnx.load(str(p))) for k, p in files.items()}
    probe = session(attach(base["cpu"], None))
    tr, va, te = fit_sample(cache), cache.index("val"), cache.index("test")
    f_tr, = onnx_outputs(probe, cache, tr, spec, [FEATURES])
    gate = fit(f_tr, groups_of(cache, tr) if a.by == "group" else cache.labels[tr])
    f_va, = onnx_outputs(probe, cache, va, spec, [FEATURES])
    limit = float(np.ceil(limit_for(distance(f_va, gate), cache.sources[va], a.share) * 100) / 100)
    if a.measure:
        y_te, s_te = cache.labels[te], cache.sources[te]
        lt = np.load(scores_path("ensemble", a.models))["test"]
        f_te, = onnx_outputs(probe, cache, te, spec, [FEATURES])
        ens = json.loads((a.models / "ensemble.json").read_text())
        print(json.dumps(metrics.rounded(gated_figures(
            y_te, preprocess.sigmoid(lt), s_te, ens["threshold"], distance(f_te, gate) > limit),
            4), indent=1))
        return
    for k, p in files.items():
        onnx.save(attach(base[k], gate), str(p))
    # the attached file: the trained outputs unchanged, the distance as computed here
    served = session(onnx.load(str(files["cpu"])))
    plain = session(base["cpu"])
    x = centre_inputs(cache.serve[te[:64]], spec)
    before = plain.run(["logit", "cam"], {"image": x})
    after = served.run(["logit", "cam", OUTPUT], {"image": x})
    if not all(np.array_equal(b, c) for b, c in zip(before, after[:2])):
        raise SystemExit("attaching the gate changed the member's logit or map")
    d_te, = onnx_outputs(served, cache, te, spec, [OUTPUT])
    f_te, = onnx_outputs(probe, cache, te, spec, [FEATURES])
    if not np.allclose(d_te, distance(f_te, gate), rtol=1e-3, atol=1e-2):
        raise SystemExit("the ONNX distance differs from numpy's")
    ens_path = a.models / "ensemble.json"
    ens = json.loads(ens_path.read_text())
    y_te, s_te = cache.labels[te], cache.sources[te]
    lt = np.load(scores_path("ensemble", a.models))["test"]  # the served logits
    test = gated_figures(y_te, preprocess.sigmoid(lt), s_te, ens["threshold"], d_te > limit)
    card.setdefault("outputs", {})[OUTPUT] = OUTPUT
    common.write_json(card_path, card)
    ens["gate"] = metrics.rounded({
        "member": MEMBER, "output": OUTPUT, "view": VIEW, "limit": limit, "holds": list(HOLDS),
        "rule": (f"a face whose {MEMBER} head features (centre view) lie farther from the training "
                 "faces than the limit (squared Mahalanobis distance to "
                 f"the nearest of {len(gate['groups'])} source-and-class means, shared "
                 f"covariance; fitted on {len(tr)} training faces of the INT8 file) is "
                 f"unfamiliar: FAKE and REAL become UNSURE. Limit: the smallest that marks at most "
                 f"{100 * a.share:.0f} % of every source's val faces unfamiliar"),
        "share_of_val_gated": a.share,
        "metrics": {"test": test},
        "command": "python -m model_export.gate " + " ".join(argv if argv else sys.argv[1:]),
    }, 4)
    common.write_json(ens_path, ens)
    print(json.dumps({k: test[k] for k in ("faces_unfamiliar", "reals_called_fake",
                                           "fakes_caught")}))


if __name__ == "__main__":
    main()
