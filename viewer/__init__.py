"""Lucent's imaging core: Qt-free model and readers (``viewer.model``, ``viewer.io``) and Qt views."""
