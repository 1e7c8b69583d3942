"""Lucent entry point: ``python main.py [PATH...]`` (same as the ``lucent`` command)."""

import sys


def main() -> int:
    from app.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
