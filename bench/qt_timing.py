"""GUI-thread responsiveness: how long the Qt event loop could not react (used by bench_view3d_gui and tests)."""

from __future__ import annotations

from PySide6.QtCore import QElapsedTimer, QTimer


class StallMeter:
    """Longest gap (ms) between ticks of a 10 ms timer on the GUI thread, i.e. the longest time the GUI could
    not react to the user. ``start()``, let the event loop run, ``stop()`` returns the longest gap."""

    def __init__(self, interval_ms: int = 10) -> None:
        self.clock = QElapsedTimer()
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.longest_ms = 0.0
        self._last = 0

    def _tick(self) -> None:
        now = self.clock.elapsed()
        self.longest_ms = max(self.longest_ms, float(now - self._last))
        self._last = now

    def start(self) -> None:
        self.longest_ms = 0.0
        self.clock.start()
        self._last = 0
        self.timer.start()

    def stop(self) -> float:
        self.timer.stop()
        self._tick()
        return self.longest_ms
