"""Fixtures for tests of the application window."""

import pytest

from app.main_window import MainWindow
from app.settings import Settings


@pytest.fixture
def window(qtbot):
    """A shown main window with no study (settings in the test's private folder); shut down afterwards."""
    win = MainWindow(Settings())
    qtbot.addWidget(win)
    win.resize(1000, 800)
    win.show()
    yield win
    win.engines.runner.shutdown()


@pytest.fixture
def demo_window(window):
    """The main window with the demo CT open."""
    assert window.open_demo()
    return window
