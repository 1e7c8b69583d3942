"""Lucent's Qt application shell: main window, actions, jobs, settings. Knows viewer and engines."""
