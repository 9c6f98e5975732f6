#!/usr/bin/env bash
# Usage: tools/benchmarks/mmsegmentation/mim_dist_train.sh CONFIG PRETRAIN GPUS [args]
# Fine-tunes a segmentor with mmseg's own train.py (through mim), the
# backbone initialised from a plugin pre-training checkpoint.
set -x

CFG=$1
PRETRAIN=$2  # pre-training or extracted-backbone checkpoint
GPUS=$3
PY_ARGS=${@:4}

PYTHONPATH="$(dirname $0)/../../..":$PYTHONPATH \
mim train mmseg $CFG \
    --launcher pytorch -G $GPUS \
    --cfg-options model.backbone.init_cfg.type=Pretrained \
    model.backbone.init_cfg.checkpoint=$PRETRAIN \
    model.backbone.init_cfg.prefix="backbone." \
    $PY_ARGS
