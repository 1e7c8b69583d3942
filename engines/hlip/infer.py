"""``python -m engines.hlip.infer INPUT... [--out DIR] [--query TEXT] [--weights W] [--device D]`` is
``lucent infer --engine hlip`` (:func:`engines.cli.engine_main`, which reads the files). All INPUTs are the
scans of one study."""

from engines.cli import main_if_run

main_if_run(__name__, "hlip", study=True)
