#!/usr/bin/env bash
# Installs Lucent on a fresh Debian machine: system libraries Qt/VTK need (offscreen and on X),
# a virtual environment in .venv, the CPU build of torch (first, so nothing pulls a CUDA build),
# then the project with its pinned dependencies. Idempotent: re-running it is cheap.
# orthanc + orthanc-dicomweb: the PACS the networking tests start on loopback (never the system service);
# dcmtk: getscu/movescu, the baseline of bench/bench_retrieve.py.
set -euo pipefail
cd "$(dirname "$0")/.."
APT_PKGS="libglib2.0-0 libfontconfig1 libxkbcommon0 libegl1 libgl1 libdbus-1-3 fonts-dejavu-core \
  xvfb xauth libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-render-util0 \
  libxcb-shape0 libxkbcommon-x11-0 libxcursor1 dcm2niix orthanc orthanc-dicomweb dcmtk"
need_apt=0
for p in $APT_PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_apt=1
done
if [ "$need_apt" = 1 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: run as root (or install sudo) to apt-get: $APT_PKGS" >&2; exit 1; }
    SUDO="sudo"
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $APT_PKGS >/dev/null
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e ".[${LUCENT_EXTRAS:-dev}]"
# An editable install leaves the project's own modules uncompiled: compile them now, so that the first start
# (and every start where Python may not write bytecode) does not spend ~0.15 s compiling them.
.venv/bin/python -m compileall -q -j 0 app viewer engines main.py >/dev/null
