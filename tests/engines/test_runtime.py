"""Device choice, CUDA OOM fallback (simulated), thread count, and the engine contract on the toy engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engines import device as dev
from engines.base import Cancelled, EngineError
from tests.engines.toy_engine import ToyEngine
from viewer.model.volume import Volume


def _oom() -> Exception:
    return torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")


def test_pick_device(monkeypatch):
    assert dev.pick_device("cpu") == torch.device("cpu")
    notices: list[str] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert dev.pick_device("auto") == torch.device("cpu")
    assert dev.pick_device("cuda", notices.append) == torch.device("cpu")
    assert notices and "CUDA is not available" in notices[0]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dev.pick_device("auto") == torch.device("cuda")
    assert dev.pick_device("CUDA:1") == torch.device("cuda:1")
    with pytest.raises(EngineError, match="Unknown device 'tpu'"):
        dev.pick_device("tpu")


def test_is_out_of_memory():
    assert dev.is_out_of_memory(_oom())
    assert dev.is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert not dev.is_out_of_memory(RuntimeError("shape mismatch"))
    assert not dev.is_out_of_memory(ValueError("out of memory"))


def test_oom_on_cuda_retries_on_cpu_with_notice():
    calls: list[torch.device] = []
    notices: list[str] = []

    def fn(d: torch.device) -> str:
        calls.append(d)
        if d.type == "cuda":
            raise _oom()
        return f"ran on {d}"

    assert dev.run_with_oom_fallback(fn, torch.device("cuda"), notices.append) == "ran on cpu"
    assert [c.type for c in calls] == ["cuda", "cpu"]
    assert notices == ["GPU out of memory — retrying on CPU"]


def test_oom_fallback_with_the_toy_engine():
    engine = ToyEngine(fail="oom")
    vol = Volume(np.random.default_rng(0).random((3, 16, 16), dtype=np.float32))
    notices: list[str] = []
    result = dev.run_with_oom_fallback(lambda d: engine.run(vol, device=str(d)), "cuda", notices.append)
    assert engine.devices_tried == ["cuda", "cpu"] and notices and result.overlays


def test_oom_on_cpu_and_other_errors():
    def cpu_oom(d):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB. out of memory")

    with pytest.raises(EngineError, match="Out of memory on the CPU"):
        dev.run_with_oom_fallback(cpu_oom, "cpu")

    def bug(d):
        raise KeyError("x")

    with pytest.raises(KeyError):
        dev.run_with_oom_fallback(bug, "cuda")


def test_configure_threads_leaves_a_core(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv("LUCENT_TORCH_THREADS", raising=False)
    try:
        assert dev.configure_threads(cores=2) == 1 and torch.get_num_threads() == 1
        assert dev.configure_threads(cores=4) == 3
        assert dev.configure_threads(cores=1) == 1
        assert dev.configure_threads(cores=2, gui=False) == 2  # headless (lucent infer): every core
        monkeypatch.setenv("LUCENT_TORCH_THREADS", "2")
        assert dev.configure_threads(cores=8) == 2
        assert dev.configure_threads() == 2  # idempotent
    finally:
        torch.set_num_threads(before)


def test_toy_engine_contract_progress_and_overlays():
    rng = np.random.default_rng(1)
    vol = Volume(rng.random((4, 20, 24), dtype=np.float32), affine=np.diag([0.5, 0.7, 2.0, 1.0]), modality="CT")
    seen: list[tuple[float, str]] = []
    res = ToyEngine().run(vol, progress=lambda f, m="": seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(seen) == 5
    sal, mask = res.overlays
    assert sal.volume.array.shape == vol.array.shape and np.allclose(sal.volume.affine, vol.affine)
    assert sal.volume.array.min() > 0 and sal.volume.array.max() < 1 and sal.volume.array.std() > 0
    assert mask.kind == "mask" and set(np.unique(mask.volume.array)) <= {0, 1}
    assert 0 <= res.scores["edge fraction"] <= 1


def test_toy_engine_cancel_and_errors():
    vol = Volume(np.random.default_rng(2).random((6, 8, 8), dtype=np.float32))
    n = 0

    def cancelled() -> bool:
        nonlocal n
        n += 1
        return n > 2

    with pytest.raises(Cancelled):
        ToyEngine().run(vol, cancelled=cancelled)
    with pytest.raises(EngineError, match="constant|empty|NaN"):
        ToyEngine().run(Volume(np.full((4, 4), np.nan, np.float32)))
    with pytest.raises(EngineError, match="grey"):
        ToyEngine().run(Volume(np.zeros((4, 4, 3), np.uint8), rgb=True))
