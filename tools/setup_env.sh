#!/usr/bin/env bash
# Copyright (c) OpenMMLab. All rights reserved.
# Build the pinned OpenMMLab stack into .venv/ (called by `make setup`).
#
# Idempotent: every step checks whether its result is already there and skips
# itself; a second run on a set-up machine takes seconds.  Each step prints
# what it does and how long it took; a failing step stops with its log path.
#
# Environment knobs:
#   PYTHON               interpreter for the venv (default: python3.11, python3)
#   MIM_PLUGINS_CACHE    cache folder for the built mmcv wheel
#                        (default: ~/.cache/mim_plugins)
#   MIM_PLUGINS_NO_SHARED_WHEEL=1  ignore ../shared/wheels (force the build)
#   MAX_JOBS             parallel compile jobs for mmcv (default: nproc)
#   MIM_PLUGINS_MIN_FREE_GB  free disk (GiB) required before torch is installed
#                        (default: 8)
#
# `tools/setup_env.sh --mim-links` only checks and repairs mim_plugins/.mim
# (see step 6b) and touches nothing else.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
LOGS="$ROOT/build/setup-logs"
CACHE="${MIM_PLUGINS_CACHE:-$HOME/.cache/mim_plugins}/wheels"
mkdir -p "$LOGS" "$CACHE"

TORCH=2.14.1
TORCHVISION=0.29.1
MMENGINE=0.10.7
MMCV=2.1.0
MMPRETRAIN=1.2.0
MMDET=3.3.0
MMSEG=1.2.2
OPENMIM=0.3.9
MMCV_WHEEL="mmcv-${MMCV}-cp311-cp311-linux_x86_64.whl"
SHARED_WHEELS="$ROOT/../shared/wheels"

T_ALL=$(date +%s)

# run_step NAME CHECK_CMD DO_CMD: skip when CHECK_CMD succeeds.
run_step() {
    local name="$1" check="$2" action="$3" t0 log
    log="$LOGS/${name}.log"
    t0=$(date +%s)
    if bash -c "$check" >/dev/null 2>&1; then
        printf '[setup] %-14s already done (%ss)\n' "$name" $(( $(date +%s) - t0 ))
        return 0
    fi
    printf '[setup] %-14s running ... (log: %s)\n' "$name" "$log"
    if ! bash -c "$action" >"$log" 2>&1; then
        echo "[setup] step '$name' FAILED after $(( $(date +%s) - t0 ))s; see $log" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
    printf '[setup] %-14s done in %ss\n' "$name" $(( $(date +%s) - t0 ))
}

# mim_plugins/.mim must hold links to the checkout's tools/, configs/ and
# model-index.yml (`mim train/run mim_plugins` read them).  `pip install .`,
# `pip wheel .` or `python -m build` in an older checkout replaced them with
# copies: git does not show it and mim would silently use stale files.
MIM_LINKS="tools configs model-index.yml"
mim_links_ok() {
    local f dst
    for f in $MIM_LINKS; do
        dst="$ROOT/mim_plugins/.mim/$f"
        [ -L "$dst" ] && [ "$(readlink -f "$dst")" = "$(readlink -f "$ROOT/$f")" ] || return 1
    done
}
repair_mim_links() {
    set -euo pipefail
    local f dst
    mkdir -p "$ROOT/mim_plugins/.mim"
    for f in $MIM_LINKS; do
        dst="$ROOT/mim_plugins/.mim/$f"
        if [ -L "$dst" ] && [ "$(readlink -f "$dst")" = "$(readlink -f "$ROOT/$f")" ]; then
            continue
        fi
        if [ -e "$dst" ] || [ -L "$dst" ]; then
            echo "mim_plugins/.mim/$f is not a link to $f (a copy left by a build?); replacing it"
            rm -rf "$dst"
        fi
        ln -s "../../$f" "$dst"
    done
}
export -f mim_links_ok repair_mim_links
export ROOT MIM_LINKS

if [ "${1:-}" = "--mim-links" ]; then
    run_step mim-links mim_links_ok repair_mim_links
    exit 0
fi

export PY="$VENV/bin/python"
export PIP="$VENV/bin/python -m pip --disable-pip-version-check"

# has DIST VERSION: is DIST==VERSION installed in the venv?
has() {
    echo "$PY -c \"import importlib.metadata as m, sys; sys.exit(m.version('$1') != '$2')\""
}

# setuptools: < 81 keeps pkg_resources (mmengine 0.10.7, openmim, mmcv's
# setup.py need it); < 80 keeps `setup.py develop` egg-links (see step 6).

# 1. A Python 3.11 virtual environment.
pick_python() {
    for cand in "${PYTHON:-}" python3.11 python3; do
        [ -n "$cand" ] || continue
        if command -v "$cand" >/dev/null 2>&1 && \
           "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
            command -v "$cand"; return 0
        fi
    done
    echo "[setup] Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2
    exit 1
}
BASE_PY=$(pick_python)
run_step venv "test -x '$PY' && '$PY' -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'" \
    "rm -rf '$VENV' && '$BASE_PY' -m venv '$VENV' && $PIP install -U 'pip<25' wheel 'setuptools<80' ninja"

# 2. torch + torchvision as a matched pair (the CPU-only torch cannot load
#    PyPI's torchvision, so both come from PyPI together).  PyPI's torch
#    brings its CUDA libraries: the finished .venv takes about 6.2 GiB, so a
#    full disk is reported here rather than as an OSError halfway through pip.
NEED_GB=${MIM_PLUGINS_MIN_FREE_GB:-8}
if ! bash -c "$(has torch $TORCH)" >/dev/null 2>&1; then
    FREE_GB=$(df -P -BG "$ROOT" | awk 'NR == 2 {sub("G", "", $4); print $4}')
    if [ "${FREE_GB:-0}" -lt "$NEED_GB" ]; then
        echo "[setup] only ${FREE_GB} GiB free on $(df -P "$ROOT" | awk 'NR == 2 {print $6}');" \
             "installing torch $TORCH needs ${NEED_GB} GiB (MIM_PLUGINS_MIN_FREE_GB)." >&2
        exit 1
    fi
fi
run_step torch "$(has torch $TORCH) && $(has torchvision $TORCHVISION)" \
    "$PIP install torch==$TORCH torchvision==$TORCHVISION 'setuptools<80'"

# 3. mmengine and the build requirements of mmcv.
run_step mmengine "$(has mmengine $MMENGINE)" \
    "$PIP install mmengine==$MMENGINE 'setuptools<80' ninja"

# 4. mmcv 2.1.0 with CPU ops, built from its sdist once and cached.
build_mmcv() {
    set -euo pipefail
    local whl="$CACHE/$MMCV_WHEEL"
    if [ -f "$whl" ]; then echo "cached wheel: $whl"; return 0; fi
    if [ "${MIM_PLUGINS_NO_SHARED_WHEEL:-0}" != 1 ] && [ -f "$SHARED_WHEELS/$MMCV_WHEEL" ]; then
        if (cd "$SHARED_WHEELS" && sha256sum -c --ignore-missing SHA256SUMS); then
            echo "using the prebuilt wheel from $SHARED_WHEELS"
            cp "$SHARED_WHEELS/$MMCV_WHEEL" "$whl"
            return 0
        fi
        echo "checksum mismatch in $SHARED_WHEELS; building from source"
    fi
    local src; src=$(mktemp -d)
    # Metadata generation imports torch and pkg_resources: no build isolation.
    $PIP download --no-deps --no-binary :all: --no-build-isolation -d "$src" mmcv==$MMCV
    tar -xzf "$src/mmcv-$MMCV.tar.gz" -C "$src"
    # torch >= 2.13 headers require C++20; the sdist hard-codes c++17/14.
    sed -i 's/-std=c++17/-std=c++20/g; s/-std=c++14/-std=c++20/g' "$src/mmcv-$MMCV/setup.py"
    (cd "$src/mmcv-$MMCV" && MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
        $PIP wheel --no-build-isolation --no-deps -w "$src/dist" .)
    cp "$src"/dist/mmcv-*.whl "$whl"
    rm -rf "$src"
}
export -f build_mmcv
export CACHE MMCV MMCV_WHEEL SHARED_WHEELS
run_step mmcv-wheel "test -f '$CACHE/$MMCV_WHEEL'" build_mmcv
run_step mmcv "$(has mmcv $MMCV) && $PY -c 'import mmcv.ops'" \
    "$PIP install '$CACHE/$MMCV_WHEEL' 'setuptools<80'"

# 5. The OpenMMLab toolboxes, openmim and pytest.  openmim's own dependency
#    chain (opendatalab -> openxlab) pins setuptools~=60.2, so it is installed
#    without dependencies plus the few it needs for `mim train/test`.
run_step toolboxes "$(has mmpretrain $MMPRETRAIN) && $(has mmdet $MMDET) && $(has mmsegmentation $MMSEG) && $(has openmim $OPENMIM)" \
    "$PIP install mmpretrain==$MMPRETRAIN mmdet==$MMDET mmsegmentation==$MMSEG 'setuptools<80' \
         ftfy regex -r '$ROOT/requirements/tests.txt' \
         click colorama model-index pandas requests rich tabulate \
     && $PIP install --no-deps openmim==$OPENMIM"

# 6. This package, editable, with its `.mim` links (configs, tools).  mim
#    finds `.mim/tools/train.py` under the distribution's location; setuptools
#    < 80 keeps that location at the checkout (egg-link), while setuptools 80's
#    PEP 660 editable install reports site-packages and hides it.
#    The check also asks that mim finds this checkout, not a non-editable
#    copy installed by `pip install .`.
MIM_CHECK="from mim.utils.utils import get_installed_path as p; import os, sys; sys.exit(os.path.realpath(p('mim_plugins')) != os.path.realpath('$ROOT/mim_plugins') or not os.path.isfile(os.path.join(p('mim_plugins'), '.mim', 'tools', 'train.py')))"
run_step mim_plugins "$PY -c 'import mim_plugins' && $PY -W ignore -c \"$MIM_CHECK\"" \
    "cd '$ROOT' && $PIP install --no-deps --no-build-isolation -e ."
# 6b. The `.mim` links (made by the editable install above; repaired here
#     when a later build replaced them with copies).
run_step mim-links mim_links_ok repair_mim_links

# 7. Fashion-MNIST for the demo: the Debian package dataset-fashion-mnist
#    ships gzipped IDX files; mmpretrain's FashionMNIST reads them unpacked
#    from data/fashion-mnist (git-ignored).
FMNIST_SYS=/usr/share/datasets/fashion-mnist
FMNIST="$ROOT/data/fashion-mnist"
FMNIST_FILES="train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte"
prepare_fmnist() {
    set -euo pipefail
    if [ ! -d "$FMNIST_SYS" ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            apt-get update
            DEBIAN_FRONTEND=noninteractive apt-get install -y dataset-fashion-mnist
        else
            echo "Fashion-MNIST is missing at $FMNIST_SYS and apt-get cannot be used here."
            echo "Install it with 'sudo apt-get install dataset-fashion-mnist', or put the"
            echo "four gunzipped IDX files ($FMNIST_FILES) from"
            echo "https://github.com/zalandoresearch/fashion-mnist into $FMNIST/."
            exit 1
        fi
    fi
    mkdir -p "$FMNIST"
    for f in $FMNIST_FILES; do
        [ -s "$FMNIST/$f" ] || gunzip -c "$FMNIST_SYS/$f.gz" > "$FMNIST/$f"
    done
}
export -f prepare_fmnist
export FMNIST_SYS FMNIST FMNIST_FILES
fmnist_ready="for f in $FMNIST_FILES; do test -s '$FMNIST/'\$f || exit 1; done"
if [ "${MIM_PLUGINS_SKIP_DATA:-0}" = 1 ]; then
    echo "[setup] fashion-mnist  skipped (MIM_PLUGINS_SKIP_DATA=1)"
else
    run_step fashion-mnist "$fmnist_ready" prepare_fmnist
fi

# 8. Final check: the whole stack imports together.
run_step check "false" \
    "$PY -c 'import torch, torchvision, mmcv.ops, mmengine, mmpretrain, mmdet.models, mmseg.models, mim, mim_plugins; print(torch.__version__, mmcv.__version__, mmpretrain.__version__)'"

echo "[setup] environment ready in $(( $(date +%s) - T_ALL ))s: $VENV"
