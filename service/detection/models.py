"""The ONNX detectors and their model cards, loaded once at start.

``models/ensemble.json`` names the member detectors and how their logits combine; each member's
``NAME.card.json`` gives its files, input spec, threshold and measured quality. A card that says
``"trained": false`` (or has no measured metrics) marks the model as untrained, and every answer
says so.

The models version (in every answer, and the key of the stored results a new check may reuse) is
a digest of what decides a score: the ONNX files, the members' input specs, the thresholds, band,
combination, cascade, gate and agreement rule, and the face finder's files and settings. The
cards' measured figures and descriptions (``DESCRIPTIVE``) are left out, so that figures measured
again do not make every stored result stale.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.detection.cascade import Cascade
from service.detection.faces import CARD_FILE as FACE_FINDER_CARD_FILE
from service.detection.preprocess import InputSpec, sigmoid

log = logging.getLogger(__name__)

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
# card keys, at any depth, that describe a model or what was measured on it; no score depends on them
DESCRIPTIVE = frozenset({
    "metrics", "command", "rule", "combine_rule", "threshold_rule", "metrics_model", "training",
    "training_history", "training_best_epoch", "training_epochs_run", "training_cpu_seconds",
    "train_command", "architecture", "params", "task", "provenance", "licence", "licence_notice",
    "share_of_val_gated", "row_cpu_ms", "candidates", "parity_max_abs_diff",
})


class ModelsError(RuntimeError):
    pass


@dataclass
class Member:
    name: str
    card: dict
    spec: InputSpec
    session: ort.InferenceSession
    path: Path
    input_name: str
    logit_name: str
    cam_name: str
    gate_name: str | None = None  # the familiarity gate's output, on the member that has it

    @property
    def trained(self) -> bool:
        return bool(self.card.get("trained")) and bool(self.card.get("metrics"))

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(logits, maps, the gate's distances or None) of a batch."""
        names = [self.logit_name, self.cam_name] + ([self.gate_name] if self.gate_name else [])
        out = self.session.run(names, {self.input_name: x})
        gate = np.asarray(out[2], np.float32).reshape(len(x)) if self.gate_name else None
        return np.asarray(out[0], np.float32).reshape(len(x)), np.asarray(out[1], np.float32), gate


@dataclass(frozen=True)
class Gate:
    """The familiarity gate (`model_export.gate`): a face whose distance on member ``member``'s
    view ``view`` exceeds ``limit`` is unfamiliar, and none of the verdicts in ``holds`` is
    given to it (UNSURE instead). Cards before 2026-11-30 have no ``holds``: FAKE only."""

    member: int  # index into the ensemble's members
    view: int  # index into the spec's crops
    limit: float
    holds: tuple[str, ...] = ("fake",)

    @classmethod
    def from_card(cls, card: dict | None, members: list[Member], cascade: Cascade | None
                  ) -> Gate | None:
        if not card:
            return None
        names = [m.name for m in members]
        if card["member"] not in names:
            raise ModelsError(f"gate: {card['member']!r} is not a member of the ensemble")
        j = names.index(card["member"])
        if members[j].gate_name != card["output"]:
            raise ModelsError(f"gate: {card['member']}'s card has no output {card['output']!r}")
        view = int(card["view"])
        if cascade is not None and (view != cascade.first_view or not cascade.first_mask[j]):
            raise ModelsError("gate: its member must score the cascade's first view")
        holds = tuple(card.get("holds", ("fake",)))
        if not holds or not set(holds) <= {"fake", "real"}:
            raise ModelsError(f"gate: holds must name 'fake' and/or 'real', not {holds!r}")
        return cls(j, view, float(card["limit"]), holds)


@dataclass(frozen=True)
class Agreement:
    """The agreement rule (`model_export.agree`): a face is called FAKE only when each of the
    named members on its own also scores it at or above its own card's threshold; otherwise a
    FAKE score is answered UNSURE. The members are the view cascade's first stage, the ones run
    on every face."""

    members: tuple[int, ...]  # indices into the ensemble's members
    names: tuple[str, ...]
    thresholds: tuple[float, ...]  # P(fake), one per member

    @classmethod
    def from_card(cls, card: dict | None, members: list[Member]) -> Agreement | None:
        if not card:
            return None
        names = [m.name for m in members]
        own = card.get("members")
        if not isinstance(own, dict) or not own:
            raise ModelsError("agreement: members must map member names to thresholds")
        for name, t in own.items():
            if name not in names:
                raise ModelsError(f"agreement: {name!r} is not a member of the ensemble")
            if not isinstance(t, (int, float)) or not 0.0 < float(t) < 1.0:
                raise ModelsError(f"agreement: {name}'s threshold {t!r} is not a probability")
        return cls(tuple(names.index(n) for n in own), tuple(own),
                   tuple(float(t) for t in own.values()))

    def confirmed(self, member_logit: np.ndarray) -> bool | None:
        """Whether every member finds the face fake on its own (None: one of them did not run)."""
        own = member_logit[list(self.members)]
        if np.isnan(own).any():
            return None
        return bool((sigmoid(own) >= np.asarray(self.thresholds)).all())


@dataclass
class Ensemble:
    members: list[Member]
    card: dict
    providers: list[str]
    version: str
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bias: float = 0.0
    cascade: Cascade | None = None
    gate: Gate | None = None
    agreement: Agreement | None = None

    @property
    def trained(self) -> bool:
        return all(m.trained for m in self.members) and bool(self.card.get("trained", True))

    @property
    def threshold(self) -> float:
        return float(self.card["threshold"])

    @property
    def max_outside(self) -> float | None:
        """The largest share of a face's aligned square that may lie outside the picture for
        the face to be judged (``edge`` in the card, `model_export.edge`); None: no limit."""
        edge = self.card.get("edge")
        return None if not edge else float(edge["max_outside"])

    @property
    def band(self) -> tuple[float, float]:
        lo, hi = self.card["uncertain_band"]
        return float(lo), float(hi)

    def combine(self, member_logits: np.ndarray) -> np.ndarray:
        """(members, n) logits -> (n,) combined logits."""
        return self.weights @ member_logits + self.bias

    def describe(self) -> dict:
        return {
            "version": self.version,
            "trained": self.trained,
            "providers": self.providers,
            "threshold": self.threshold,
            "uncertain_band": list(self.band),
            "combine": self.card.get("combine"),
            "cascade": ({k: v for k, v in self.card["cascade"].items() if k != "metrics"}
                        if self.cascade else None),
            "gate": ({k: v for k, v in self.card["gate"].items() if k != "metrics"}
                     if self.gate else None),
            "agreement": ({k: v for k, v in self.card["agreement"].items() if k != "metrics"}
                          if self.agreement else None),
            "edge": ({k: v for k, v in self.card["edge"].items() if k != "metrics"}
                     if self.card.get("edge") else None),
            "members": [
                {
                    "name": m.name,
                    "arch": m.card.get("arch"),
                    "file": m.path.name,
                    "trained": m.trained,
                    "providers": m.session.get_providers(),
                    "metrics": _headline(m.card.get("metrics") or {}),
                }
                for m in self.members
            ],
            "metrics": _headline(self.card.get("metrics") or {}),
        }


def _headline(metrics: dict) -> dict:
    """The few figures worth showing in /health (the cards hold all of them)."""
    keep = {}
    for k, v in metrics.items():
        if isinstance(v, (int, float, str)):
            keep[k] = v
        elif isinstance(v, dict) and k in ("test", "overall"):
            keep[k] = {kk: vv for kk, vv in v.items() if isinstance(vv, (int, float))}
    return keep


def choose_providers(device: str) -> tuple[list, str]:
    """ONNX Runtime providers for ``device`` ('auto' | 'cpu' | 'gpu') and the file kind to load."""
    available = ort.get_available_providers()
    gpu = [p for p in GPU_PROVIDERS if p in available]
    if device == "gpu" and not gpu:
        raise ModelsError(f"REALCHECK_DEVICE=gpu but ONNX Runtime offers only {available}")
    if device in ("gpu", "auto") and gpu:
        return [*gpu, "CPUExecutionProvider"], "gpu"
    return ["CPUExecutionProvider"], "cpu"


def _session(path: Path, providers: list, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # Idle worker threads busy-wait for the next run by default; between batches they then burn
    # the cores that decoding and face finding need (~45 % of a check's CPU on 2 cores, see
    # docs/performance.md). Results are unchanged.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers)


def decisive(card):
    """A card without its ``DESCRIPTIVE`` keys (at any depth)."""
    if isinstance(card, dict):
        return {k: decisive(v) for k, v in card.items() if k not in DESCRIPTIVE}
    if isinstance(card, list):
        return [decisive(v) for v in card]
    return card


def _decisive_bytes(card: dict) -> bytes:
    return json.dumps(decisive(card), sort_keys=True, separators=(",", ":")).encode()


def load_ensemble(models_dir: Path, device: str = "auto", threads: int = 0) -> Ensemble:
    models_dir = Path(models_dir)
    ens_path = models_dir / "ensemble.json"
    if not ens_path.exists():
        raise ModelsError(f"no {ens_path}: run `python -m model_export.bootstrap` or train")
    card = json.loads(ens_path.read_text())
    providers, kind = choose_providers(device)
    members = []
    digest = hashlib.sha256(_decisive_bytes(card))
    finder_card = models_dir / FACE_FINDER_CARD_FILE
    if finder_card.exists():
        fcard = json.loads(finder_card.read_text())
        digest.update(_decisive_bytes(fcard))
        for spec in fcard.get("models", {}).values():
            digest.update((models_dir / spec["file"]).read_bytes())
    for name in card["members"]:
        mcard = json.loads((models_dir / f"{name}.card.json").read_text())
        path = models_dir / mcard["files"][kind]
        session = _session(path, providers, threads)
        used = session.get_providers()
        if kind == "gpu" and used[0] not in GPU_PROVIDERS:
            # The GPU wheel lists CUDA even on machines without a GPU: trust the session.
            log.warning("%s: GPU providers failed, running on %s", name, used)
            session = _session(models_dir / mcard["files"]["cpu"], ["CPUExecutionProvider"], threads)
            path = models_dir / mcard["files"]["cpu"]
        digest.update(_decisive_bytes(mcard))
        digest.update(path.read_bytes())
        outputs = mcard.get("outputs", {})
        missing = set(outputs.values()) - {o.name for o in session.get_outputs()}
        if missing:
            raise ModelsError(f"{path.name} lacks the outputs {sorted(missing)} its card names")
        members.append(Member(
            name=name, card=mcard, spec=InputSpec.from_card(mcard), session=session, path=path,
            input_name=mcard.get("input_name", "image"),
            logit_name=outputs.get("logit", "logit"), cam_name=outputs.get("cam", "cam"),
            gate_name=outputs.get("unfamiliarity"),
        ))
    combine = card.get("combine", "mean_logit")
    if isinstance(combine, dict):
        weights = np.array([float(combine["weights"][m.name]) for m in members], np.float32)
        bias = float(combine.get("bias", 0.0))
    else:
        weights = np.full(len(members), 1.0 / len(members), np.float32)
        bias = 0.0
    used = sorted({p for m in members for p in m.session.get_providers()},
                  key=lambda p: (p == "CPUExecutionProvider", p))
    ens = Ensemble(members=members, card=card, providers=used,
                   version=digest.hexdigest()[:16], weights=weights, bias=bias)
    ens.cascade = Cascade.from_card(card.get("cascade"), [m.name for m in members],
                                    ens.threshold, ens.band)
    ens.gate = Gate.from_card(card.get("gate"), members, ens.cascade)
    ens.agreement = Agreement.from_card(card.get("agreement"), members)
    if ens.max_outside is not None and not 0.0 <= ens.max_outside < 1.0:
        raise ModelsError(f"edge: max_outside {ens.max_outside} is not a share below 1")
    if ens.agreement and ens.cascade and not all(ens.cascade.first_mask[j]
                                                 for j in ens.agreement.members):
        raise ModelsError("agreement: its members must be in the cascade's first stage")
    return ens
