"""The test command refuses to run without the real data (issue 21): one line on stderr, a failing status."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_test_script_fails_in_one_line_without_shared_data(tmp_path: Path) -> None:
    env = {**os.environ, "LUCENT_SHARED_DATA": str(tmp_path / "absent")}
    proc = subprocess.run(["bash", str(REPO / "scripts" / "test.sh")], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"test data missing: {tmp_path / 'absent'} not found (the tests "
                                                "need ../shared/data; see README)"]
