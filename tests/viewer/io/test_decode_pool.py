"""Compressed series decoded in worker processes give exactly the pixels of in-process decoding."""

import numpy as np

from viewer.io import decode_pool, load_volume


def test_worker_processes_match_serial_decoding(shared_data, monkeypatch):
    series = shared_data / "dicom/ct_series"
    monkeypatch.setenv("LUCENT_DECODE_PROCESSES", "0")
    serial = load_volume(series)
    monkeypatch.setenv("LUCENT_DECODE_PROCESSES", "1")
    monkeypatch.setattr(decode_pool, "MIN_FRAMES_FOR_PROCESSES", 2)
    monkeypatch.setattr(decode_pool, "MIN_BYTES_FOR_PROCESSES", 1)
    monkeypatch.setattr(decode_pool, "n_workers", lambda: 2)
    assert decode_pool.use_processes(20, 10_000_000)
    pooled = load_volume(series)
    assert pooled.array.dtype == serial.array.dtype
    np.testing.assert_array_equal(pooled.array, serial.array)
    np.testing.assert_allclose(pooled.affine, serial.affine)
