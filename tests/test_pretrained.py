"""The MobileNetV2 port of nsfwjs's ImageNet blocks (model_export.pretrained).

Needs the weight cache (``python -m model_export.pretrained``, which runs ``npm pack``); the parity
test also needs the pinned tfjs reference (``npm ci`` in model_export/tools).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from model_export import pretrained, pretrained_parity  # noqa: E402
from tests.support.paths import require_shared_data, sample_images  # noqa: E402

NPZ = pretrained.CACHE_DIR / pretrained.NPZ_NAME
pytestmark = pytest.mark.skipif(
    not NPZ.exists(), reason=f"{NPZ} missing: run `python -m model_export.pretrained` (needs npm)"
)
HAVE_NODE_TOOL = (pretrained_parity.TOOLS / "node_modules" / "nsfwjs").is_dir()


@pytest.fixture(scope="module")
def port():
    torch.set_num_threads(1)
    return pretrained.load_imagenet(pretrained.MobileNetV2Blocks(upto=10))


def test_cache_records_provenance():
    weights, layers, provenance = pretrained.load_npz(NPZ)
    assert provenance["tarball_sha256"] == pretrained.TARBALL_SHA256
    assert provenance["imagenet_layers"].endswith("block_10_project_BN")
    assert weights["block_10_project/kernel"].shape == (1, 1, 384, 96)
    assert weights["block_10_project/kernel"].dtype == np.float32
    assert any(layer["config"]["name"] == "block_10_project_BN" for layer in layers)


@pytest.mark.parametrize("side, cells", [(112, 7), (224, 14)])
def test_block10_shape(port, side, cells):
    x = pretrained.normalize(np.full((2, side, side, 3), 128, np.uint8))
    assert x.shape == (2, 3, side, side) and float(x.max()) == pytest.approx(128 / 255)
    with torch.no_grad():
        out = port(x)
    assert port.out_channels == 96
    assert out.shape == (2, 96, cells, cells)
    assert torch.isfinite(out).all()


def test_wrong_topology_is_refused(tmp_path):
    with np.load(NPZ, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    layers = json.loads(str(arrays["__layers__"]))
    for layer in layers:
        if layer["config"]["name"] == "block_3_pad":
            layer["config"]["padding"] = [[1, 1], [1, 1]]
    arrays["__layers__"] = np.array(json.dumps(layers))
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match="block_3_pad"):
        pretrained.load_imagenet(pretrained.MobileNetV2Blocks(upto=10), tmp_path / "bad.npz")


def _pooled(model, pixels: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        f = model(pretrained.normalize(pixels)).mean((2, 3))
    return torch.nn.functional.normalize(f, dim=1)


def test_features_tell_faces_apart(port):
    """ImageNet features: a face is closer to its mirror image than to any other person's face, and
    different faces are far apart (an untrained net maps them all to nearly the same direction)."""
    import cv2

    require_shared_data()
    paths = sample_images(3, label="real", source="utkface") + sample_images(
        3, label="real", source="london-canada"
    )
    pixels = np.stack(
        [cv2.resize(cv2.imread(str(p)), (112, 112), interpolation=cv2.INTER_AREA)[:, :, ::-1] for p in paths]
    )
    f = _pooled(port, pixels)
    mirrored = _pooled(port, np.ascontiguousarray(pixels[:, :, ::-1]))
    cos = f @ f.T
    others = cos[~torch.eye(len(f), dtype=torch.bool)].view(len(f), -1)
    assert ((f * mirrored).sum(1) > others.max(1).values).all()
    assert float(others.mean()) < 0.8

    torch.manual_seed(0)
    untrained = pretrained.MobileNetV2Blocks(upto=10).eval()
    g = _pooled(untrained, pixels)
    assert float((g @ g.T)[~torch.eye(len(g), dtype=torch.bool)].mean()) > 0.9


@pytest.mark.skipif(not HAVE_NODE_TOOL, reason="tfjs reference missing: run `npm ci` in model_export/tools")
def test_parity_with_tfjs(port, monkeypatch):
    """Block 10 matches nsfwjs run by tfjs; a port with the wrong stride-2 padding would not."""
    pixels = [pretrained_parity.seeded_pixels(112, seed) for seed in (0, 1)]
    x = pretrained_parity.batch(pixels)
    ref = pretrained_parity.run_reference(x, ["block_10_project_BN"])["block_10_project_BN"]
    with torch.no_grad():
        ours = port(x).numpy()
    assert ours.shape == ref.shape == (4, 96, 7, 7)
    scale = np.abs(ref).max()
    assert np.abs(ours - ref).max() <= pretrained_parity.REL_TOL * scale

    monkeypatch.setattr(pretrained, "STRIDE2_PAD", (1, 0, 1, 0))
    with torch.no_grad():
        shifted = port(x).numpy()
    assert np.abs(shifted - ref).max() > 0.05 * scale


def test_third_member_keeps_its_imagenet_backbone_frozen():
    """The optional ImageNet-initialised detector: (logit, cam) like the others, and training
    moves only its head (the backbone's weights and batch-norm statistics stay ImageNet's)."""
    from model_export.mobilenet_net import MobileNetDetector

    torch.manual_seed(0)
    m = MobileNetDetector()
    before = {k: v.clone() for k, v in m.backbone.state_dict().items()}
    m.train()
    assert not m.backbone.training and m.neck.training
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    x = torch.randn(4, 3, 96, 96)
    for _ in range(2):
        logit, cam = m(x)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, torch.tensor([0., 1., 0., 1.]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert logit.shape == (4,) and cam.shape == (4, 6, 6)
    torch.testing.assert_close(cam.mean(dim=(1, 2)), logit, atol=1e-5, rtol=0)
    for k, v in m.backbone.state_dict().items():
        assert torch.equal(v, before[k]), k
