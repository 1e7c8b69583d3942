"""``python -m engines.radzero.infer INPUT... [--out DIR] [--query TEXT] [--weights W] [--device D]`` is
``lucent infer --engine radzero`` (:func:`engines.cli.engine_main`, which reads the files). Several --query run
each into DIR/<query>/."""

from engines.cli import main_if_run

main_if_run(__name__, "radzero")
