"""ONNX export (FP32, dynamic batch), ORT-vs-PyTorch check, static INT8 (QDQ, per channel)."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

OPSET = 17


def export_fp32(model: torch.nn.Module, path: Path, input_size: int) -> Path:
    """Write ``model`` as ONNX: input ``image`` (N,3,S,S) -> ``logit`` (N,), ``cam`` (N,h,w)."""
    model = model.eval()
    x = torch.zeros(2, 3, input_size, input_size)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter, on purpose
        torch.onnx.export(
            model,
            (x,),
            str(path),
            input_names=["image"],
            output_names=["logit", "cam"],
            dynamic_axes={"image": {0: "N"}, "logit": {0: "N"}, "cam": {0: "N"}},
            opset_version=OPSET,
            dynamo=False,
            external_data=False,
        )
    m = onnx.load(str(path))
    onnx.checker.check_model(m)
    return path


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def run_onnx(sess: ort.InferenceSession, x: np.ndarray, batch: int = 64):
    logits, cams = [], []
    for i in range(0, len(x), batch):
        lo, cam = sess.run(["logit", "cam"], {"image": x[i : i + batch]})
        logits.append(lo)
        cams.append(cam)
    return np.concatenate(logits), np.concatenate(cams)


def check_agreement(model, path: Path, inputs: np.ndarray, atol: float = 1e-4) -> float:
    """Max |PyTorch - ORT| over logits and cams; raises if above ``atol``."""
    model = model.eval()
    with torch.no_grad():
        lt, ct = model(torch.from_numpy(inputs))
    lo, co = run_onnx(session(path), inputs)
    err = max(float(np.abs(lt.numpy() - lo).max()), float(np.abs(ct.numpy() - co).max()))
    scale = max(1.0, float(np.abs(lt.numpy()).max()))
    if err > atol * scale:
        raise AssertionError(f"ORT vs PyTorch max abs difference {err:.3g} > {atol * scale:.3g}")
    return err


class _Reader:
    def __init__(self, batches):
        self._it = iter(batches)

    def get_next(self):
        b = next(self._it, None)
        return None if b is None else {"image": b}

    def rewind(self):  # pragma: no cover - not used by quantize_static
        pass


def quantize_int8(fp32_path: Path, int8_path: Path, calib: np.ndarray, batch: int = 32) -> Path:
    """Static INT8 (QDQ, per-channel weights, MinMax activations) calibrated on ``calib`` inputs.

    The final 1x1 classifier convolution (whose output *is* the cam/logit) stays in float so the
    score is not rounded to 256 levels.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    with tempfile.TemporaryDirectory() as td:
        pre = Path(td) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        m = onnx.load(str(pre))
        convs = [n.name for n in m.graph.node if n.op_type == "Conv"]
        exclude = convs[-1:]  # the classifier-as-1x1-conv is the last Conv in the graph
        batches = [calib[i : i + batch] for i in range(0, len(calib), batch)]
        quantize_static(
            str(pre),
            str(int8_path),
            _Reader(batches),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=exclude,
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
    onnx.checker.check_model(onnx.load(str(int8_path)))
    stray = Path(str(int8_path) + ".data")
    if stray.exists():
        os.remove(stray)
    return int8_path
