"""The models version follows what decides a score, not the cards' measured figures.

A stored result is reused only under the same version (`CheckStore`), so a version that missed a
change of input spec or face finder would serve stale verdicts, and one that changed with every
figure measured again would make every stored result stale for nothing.
"""

from __future__ import annotations

import json
import shutil

import onnx
import pytest

from service.detection.models import load_ensemble
from tests.support.paths import REPO


@pytest.fixture
def models(tmp_path):
    """A copy of the shipped ``models/``: the cards copied, the other files linked."""
    out = tmp_path / "models"
    out.mkdir()
    for f in (REPO / "models").iterdir():
        if f.suffix == ".json":
            shutil.copy(f, out / f.name)
        else:
            (out / f.name).symlink_to(f)
    return out


def edit(path, change) -> None:
    card = json.loads(path.read_text())
    change(card)
    path.write_text(json.dumps(card, indent=1))


def version(models) -> str:
    return load_ensemble(models, "cpu", 1).version


def test_measured_figures_leave_the_version_alone(models):
    before = version(models)
    assert before == version(REPO / "models")

    def refigure(card):
        card["metrics"]["test"] = {"auc": 0.5}
        card["metrics"]["leave_one_source_out"] = {"remeasured": True}
        card["command"] = "python -m model_export.somewhere_else"

    edit(models / "ensemble.json", refigure)
    edit(models / "ensemble.json", lambda c: c["gate"]["metrics"].clear())
    edit(models / "ensemble.json", lambda c: c["edge"]["metrics"].clear())
    edit(models / "mobilenet.card.json", refigure)
    edit(models / "mobilenet.card.json", lambda c: c["training_history"].clear())
    edit(models / "blazeface.card.json", lambda c: c["metrics"].clear())
    assert version(models) == before


@pytest.mark.parametrize("card, change", [
    ("ensemble.json", lambda c: c.update(threshold=round(c["threshold"] + 0.01, 4))),
    ("ensemble.json", lambda c: c["uncertain_band"].__setitem__(0, c["uncertain_band"][0] - 0.01)),
    ("ensemble.json", lambda c: c["gate"].update(limit=c["gate"]["limit"] * 1.1)),
    ("ensemble.json", lambda c: c["cascade"].update(margin_logit=c["cascade"]["margin_logit"] + 0.1)),
    ("ensemble.json", lambda c: c["edge"].update(max_outside=c["edge"]["max_outside"] + 0.05)),
    ("resnet.card.json", lambda c: c["crops"].__setitem__(0, [0.45, 0.5])),
    ("vgg16.card.json", lambda c: c.update(min_face=c["min_face"] + 1)),
    ("blazeface.card.json", lambda c: c["detection"].update(nms_iou=0.4)),
])
def test_what_decides_a_score_changes_the_version(models, card, change):
    before = version(models)
    edit(models / card, change)
    assert version(models) != before


def test_another_onnx_file_changes_the_version(models):
    before = version(models)
    (models / "resnet.int8.onnx").unlink()
    shutil.copy(REPO / "models" / "resnet.int8.onnx", models / "resnet.int8.onnx")
    assert version(models) == before
    model = onnx.load(models / "resnet.int8.onnx")
    model.doc_string = "another export"  # the same graph in other bytes
    onnx.save(model, models / "resnet.int8.onnx")
    assert version(models) != before
