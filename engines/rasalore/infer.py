"""``python -m engines.rasalore.infer INPUT... [--out DIR] [--query TEXT] [--weights W] [--device D]`` is
``lucent infer --engine rasalore`` (:func:`engines.cli.engine_main`, which reads the files)."""

from engines.cli import main_if_run

main_if_run(__name__, "rasalore")
