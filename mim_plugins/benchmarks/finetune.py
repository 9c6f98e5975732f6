# Copyright (c) OpenMMLab. All rights reserved.
"""Low-label fine-tuning of a pre-trained encoder: the third measure of the
equal-budget benchmark and the demo, next to kNN and the linear probe.

Frozen features can hide what an encoder offers as an initialisation (MAE's
features probe worse than contrastive ones yet fine-tune better, He et al.,
2022), so the encoder is also fine-tuned end to end on a few labelled
images and scored on the test images.
"""
import copy
import math
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from mim_plugins.evaluation.feature_eval import default_feature


def _batches(model: nn.Module, data: Iterable):
    for batch in data:
        batch = model.data_preprocessor(batch, False)
        inputs = batch['inputs']
        if isinstance(inputs, (list, tuple)):
            inputs = inputs[0]
        labels = torch.cat(
            [ds.gt_label.view(-1) for ds in batch['data_samples']])
        yield inputs, labels


def fit_head(net: nn.Module,
             head: nn.Module,
             data: list,
             epochs: int = 100,
             lr: float = 1e-2) -> None:
    """Fit the head on frozen features first (LP-FT, Kumar et al., 2022):
    a random head's first gradients would distort the features it is meant
    to test, and a few hundred labels give few steps to recover."""
    with torch.no_grad():
        feats = torch.cat([default_feature(net, x) for x, _ in data])
    labels = torch.cat([y for _, y in data])
    optim = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.)
    for _ in range(epochs):  # full batch: the features are small
        loss = F.cross_entropy(head(feats), labels)
        optim.zero_grad()
        loss.backward()
        optim.step()


def low_label_finetune(model: nn.Module,
                       train: Iterable,
                       test: Iterable,
                       epochs: int = 10,
                       lr: float = 1e-4,
                       head_lr_mult: float = 1.,
                       weight_decay: float = 0.05,
                       num_classes: int = 10,
                       seed: int = 0) -> float:
    """Fine-tune a copy of the encoder with a linear head; test top-1.

    The algorithm is copied (the original is left untouched); its
    un-masked features (:func:`default_feature`, the mean of the last
    layer's patch tokens) go through a BatchNorm without affine parameters
    and a linear classifier, MAE's linear-probing head (He et al., 2022).
    The head is first fitted on the frozen features (:func:`fit_head`),
    then the encoder and the head are trained together with AdamW and a
    learning rate (one epoch of linear warm-up, then cosine), without
    augmentation.

    Args:
        model (nn.Module): A self-supervised algorithm with a
            ``data_preprocessor`` and ``extract_feat``.
        train (Iterable): Batches of the labelled training images.
        test (Iterable): Batches of the test images.
        epochs (int): Passes over ``train``. Defaults to 10.
        lr (float): Peak learning rate. Defaults to 1e-4.
        head_lr_mult (float): The head's learning rate over ``lr``.
            Defaults to 1.
        weight_decay (float): AdamW weight decay. Defaults to 0.05.
        num_classes (int): Classes of the head. Defaults to 10.
        seed (int): Seed of the head's initialisation. Defaults to 0.

    Returns:
        float: Top-1 accuracy (%) on ``test``.
    """
    if epochs < 1:
        raise ValueError(f'epochs must be >= 1, got {epochs}')
    net = copy.deepcopy(model).train()
    data = list(_batches(net, train))
    with torch.no_grad():
        width = default_feature(net, data[0][0][:1]).shape[1]
    gen = torch.Generator().manual_seed(seed)
    # MAE's probing head: features standardised per dimension (BatchNorm
    # without affine), robust to the few dominant dimensions of MIM features
    head = nn.Sequential(
        nn.BatchNorm1d(width, affine=False), nn.Linear(width, num_classes))
    with torch.no_grad():
        head[1].weight.normal_(0, 0.01, generator=gen)
        head[1].bias.zero_()
    fit_head(net, head, data)
    params = [p for p in net.backbone.parameters() if p.requires_grad]
    optim = torch.optim.AdamW([
        dict(params=params),
        dict(params=list(head.parameters()), lr=lr * head_lr_mult)
    ],
                              lr=lr,
                              weight_decay=weight_decay)
    steps = epochs * len(data)
    # one epoch of warm-up: Adam's first steps move every weight by about
    # the learning rate, which would undo a short fine-tune's start
    warmup = len(data) if epochs > 1 else max(1, steps // 10)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi *
                                   (step - warmup) / max(1, steps - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(optim, factor)
    for _ in range(epochs):
        for i in torch.randperm(len(data), generator=gen).tolist():
            inputs, labels = data[i]
            loss = F.cross_entropy(head(default_feature(net, inputs)), labels)
            optim.zero_grad()
            loss.backward()
            optim.step()
            sched.step()
    net.eval()
    head.eval()
    correct = total = 0
    with torch.no_grad():
        for inputs, labels in _batches(net, test):
            pred = head(default_feature(net, inputs)).argmax(dim=1)
            correct += (pred == labels).sum().item()
            total += len(labels)
    return 100.0 * correct / total
