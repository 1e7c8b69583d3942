#!/usr/bin/env bash
# Installs Lucent (scripts/setup.sh) and runs the whole test suite headless; fails at once without ../shared/data.
# pytest's exit code 5 ("no tests collected") is turned into a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
# the tests read real data from ../shared/data (LUCENT_SHARED_DATA elsewhere); without it they cannot run: fail
data="${LUCENT_SHARED_DATA:-../shared/data}"
if [ ! -d "$data" ]; then echo "test data missing: $data not found (the tests need ../shared/data; see README)" >&2; exit 1; fi
bash scripts/setup.sh || exit 1
export QT_QPA_PLATFORM=offscreen
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
rc=$?
if [ "$rc" -eq 5 ]; then echo "no tests were collected: failing" >&2; exit 1; fi
exit "$rc"
