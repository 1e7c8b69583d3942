"""Engines on bad weights and bad input: a clear one-line error through the JobRunner, and the app keeps
working (the next job finishes). The shipped multires_cxr engine gets tampered copies of its weights."""

from __future__ import annotations

import io
import json
import pickle
import shutil
import struct
import zipfile

import numpy as np
import pytest
import torch

from app.jobs import JobRunner, JobState
from engines.device import CPU_OOM_MESSAGE, OOM_NOTICE
from engines.multires_cxr.engine import DEFAULT_WEIGHTS, MultiResCXREngine
from tests.engines.toy_engine import ToyEngine
from viewer.model.volume import Volume


@pytest.fixture
def runner(qtbot):
    r = JobRunner(device="cpu")
    r.notices = []  # type: ignore[attr-defined]
    r.notice.connect(lambda _id, text: r.notices.append(text))
    yield r
    r.shutdown()
    assert r.wait_idle(10)


def _cxr(shape=(256, 256), modality="CR", value=None) -> Volume:
    y, x = np.mgrid[0:shape[0], 0:shape[1]]
    a = ((np.sin(x / 9.0) + np.cos(y / 13.0)) * 1000 + 2000).astype(np.float32)
    if value is not None:
        a[...] = value
    return Volume(a, affine=np.diag([0.5, 0.5, 1.0, 1.0]), modality=modality)


def _fails(qtbot, runner, engine, volume, device="cpu") -> str:
    with qtbot.waitSignal(runner.failed, timeout=60_000) as blocker:
        runner.submit(engine, volume, device=device)
    job_id, message, details = blocker.args
    assert runner.job(job_id).state == JobState.FAILED
    assert message and "\n" not in message and "Traceback" not in message, message
    _still_alive(qtbot, runner)
    return message


def _still_alive(qtbot, runner) -> None:
    vol = Volume(np.random.default_rng(0).random((3, 16, 16), dtype=np.float32), modality="CT")
    with qtbot.waitSignal(runner.finished, timeout=30_000):
        runner.submit(ToyEngine(), vol, device="cpu")


# ---- tampered weights ------------------------------------------------------------------------------------
def _header_len(data: bytes) -> int:
    return 8 + struct.unpack("<Q", data[:8])[0]


def _tamper(kind: str, out) -> None:
    data = bytearray(DEFAULT_WEIGHTS.read_bytes())
    if kind == "flipped_header":
        for pos in (12, 40, 100):
            data[pos] ^= 0xFF
    elif kind == "flipped_data":
        start = _header_len(bytes(data))
        for k in range(0, 4000, 2):  # fp16 NaN over the first 2000 stored values
            data[start + k:start + k + 2] = b"\x00\x7e"
    elif kind == "truncated":
        del data[len(data) // 2:]
    elif kind == "empty":
        data = bytearray()
    elif kind == "pickle":
        buf = io.BytesIO()
        torch.save({"w": torch.zeros(3)}, buf)  # a zip-based PyTorch checkpoint
        data = bytearray(buf.getvalue())
    elif kind == "raw_pickle":
        data = bytearray(pickle.dumps({"w": [0.0] * 3}, protocol=2))
    elif kind == "zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("model.safetensors", bytes(data))
        data = bytearray(buf.getvalue())
    elif kind == "header_lies":
        header = json.loads(data[8:_header_len(bytes(data))])
        name = next(k for k in header if k != "__metadata__")
        header[name]["data_offsets"] = [0, 10**12]
        blob = json.dumps(header).encode()
        data = bytearray(struct.pack("<Q", len(blob)) + blob + data[_header_len(bytes(data)):])
    out.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", ["flipped_header", "truncated", "empty", "pickle", "raw_pickle", "zip",
                                  "header_lies"])
def test_tampered_user_weights_give_a_clear_error(qtbot, runner, tmp_path, kind):
    path = tmp_path / "model.safetensors"
    _tamper(kind, path)
    msg = _fails(qtbot, runner, MultiResCXREngine(weights=path), _cxr())
    assert "model.safetensors" in msg, msg


def test_flipped_bytes_in_the_shipped_file_fail_the_hash(qtbot, runner, tmp_path, monkeypatch):
    """The shipped file is checked against its model card's SHA-256 before any tensor is read."""
    path = tmp_path / "model.safetensors"
    _tamper("flipped_data", path)
    # the engine takes this file for its shipped weights, so the card's hash applies to it
    monkeypatch.setattr(MultiResCXREngine, "default_weights", classmethod(lambda cls: path))
    msg = _fails(qtbot, runner, MultiResCXREngine(), _cxr())
    assert "SHA-256 mismatch" in msg


def test_wrong_extension_is_refused(qtbot, runner, tmp_path):
    path = tmp_path / "model.pt"
    shutil.copyfile(DEFAULT_WEIGHTS, path)
    assert "only .safetensors" in _fails(qtbot, runner, MultiResCXREngine(weights=path), _cxr())


def test_nan_weights_are_not_reported_as_results(qtbot, runner, tmp_path):
    path = tmp_path / "model.safetensors"
    _tamper("flipped_data", path)
    results, failures = [], []
    runner.finished.connect(lambda _id, res: results.append(res))
    runner.failed.connect(lambda _id, msg, _d: failures.append(msg))
    runner.submit(MultiResCXREngine(weights=path), _cxr(), device="cpu")
    assert runner.wait_idle(60)
    assert failures or all(np.isfinite(v) for r in results for v in r.scores.values())


# ---- bad input -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case, words", [
    ("3d_ct", "takes 2D"), ("mr_modality", "takes CR, DX, OT"), ("tiny", "too small"),
    ("constant", "constant"), ("nan", "NaN"), ("inf", "NaN or infinite"),
])
def test_multires_bad_input(qtbot, runner, case, words):
    if case == "3d_ct":
        vol = Volume(np.zeros((4, 64, 64), np.int16) + np.arange(64, dtype=np.int16), modality="CT")
    elif case == "mr_modality":
        vol = _cxr(modality="MR")
    elif case == "tiny":
        vol = _cxr((16, 16))
    elif case == "constant":
        vol = _cxr(value=7.0)
    else:
        vol = _cxr()
        vol.array[10:20, 10:20] = np.nan if case == "nan" else np.inf
    assert words in _fails(qtbot, runner, MultiResCXREngine(), vol)


def test_toy_engine_nan_input(qtbot, runner):
    vol = Volume(np.full((3, 16, 16), np.nan, np.float32), modality="CT")
    assert "NaN" in _fails(qtbot, runner, ToyEngine(), vol)


@pytest.mark.parametrize("fail, words", [("engine_error", "cannot read this image"),
                                         ("bug", "The engine failed: ValueError: boom"),
                                         ("at_slice", "failed at slice 3")])
def test_engine_failures_are_plain_messages(qtbot, runner, fail, words):
    vol = Volume(np.random.default_rng(1).random((5, 16, 16), dtype=np.float32), modality="CT")
    assert words in _fails(qtbot, runner, ToyEngine(fail=fail), vol)


# ---- out of memory ---------------------------------------------------------------------------------------
def test_simulated_cuda_oom_falls_back_to_cpu(qtbot, runner, monkeypatch):
    import engines.device

    monkeypatch.setattr(engines.device, "cuda_available", lambda: True)
    engine = ToyEngine(fail="oom")
    vol = Volume(np.random.default_rng(2).random((4, 16, 16), dtype=np.float32), modality="CT")
    with qtbot.waitSignal(runner.finished, timeout=30_000) as blocker:
        job_id = runner.submit(engine, vol, device="cuda")
    assert engine.devices_tried == ["cuda", "cpu"]
    assert OOM_NOTICE in blocker.args[1].notes and OOM_NOTICE in runner.notices
    assert runner.job(job_id).device == "cpu"
    _still_alive(qtbot, runner)


class _CpuOOM(ToyEngine):
    def run(self, volume, query=None, device="cpu", progress=None, cancelled=None):
        raise MemoryError()


def test_out_of_memory_on_cpu_says_what_to_do(qtbot, runner):
    vol = Volume(np.zeros((2, 8, 8), np.float32), modality="CT")
    assert _fails(qtbot, runner, _CpuOOM(), vol) == CPU_OOM_MESSAGE
