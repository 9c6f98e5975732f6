# Copyright (c) OpenMMLab. All rights reserved.
"""Frozen-feature evaluation of pre-trained backbones: kNN and linear probe.

Used by the CPU demo (``tools/run_demo.py``) and the benchmark tools, so that
every method is scored the same way.
"""
import json
import os
import os.path as osp
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.config import Config
from torch import nn


@torch.no_grad()
def extract_features(
    model: nn.Module,
    data: Iterable,
    feat_fn: Optional[Callable[[nn.Module, torch.Tensor], torch.Tensor]] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Extract one feature vector per image with a frozen model.

    Args:
        model (nn.Module): A self-supervised algorithm (``BaseSelfSupervisor``)
            with a ``data_preprocessor``; put in eval mode here.
        data (Iterable): Batches as produced by an mmengine dataloader (dicts
            with ``inputs`` and ``data_samples`` carrying ``gt_label``).
        feat_fn (Callable, optional): Maps ``(model, inputs)`` to features of
            shape (B, C). Defaults to :func:`default_feature`.

    Returns:
        tuple[Tensor, Tensor]: Features (N, C) in float32 and labels (N,).
    """
    feat_fn = feat_fn or default_feature
    was_training = model.training
    model.eval()
    feats, labels = [], []
    for batch in data:
        batch = model.data_preprocessor(batch, False)
        inputs = batch['inputs']
        if isinstance(inputs, (list, tuple)):
            inputs = inputs[0]
        feats.append(feat_fn(model, inputs).float().cpu())
        labels.append(
            torch.cat([ds.gt_label.view(-1)
                       for ds in batch['data_samples']]).cpu())
    model.train(was_training)
    return torch.cat(feats), torch.cat(labels)


def pool_tokens(out: torch.Tensor) -> torch.Tensor:
    """One vector per image from one backbone output.

    Args:
        out (Tensor): (B, 1 + L, C) raw ViT tokens with the cls token first
            (the patch tokens are averaged, MAE's probing feature), a
            (B, C, H, W) feature map (spatial mean) or (B, C) as is.

    Returns:
        Tensor: Features of shape (B, C).
    """
    if out.dim() == 3:
        return out[:, 1:].mean(dim=1)
    if out.dim() == 4:
        return out.mean(dim=(2, 3))
    return out


def default_feature(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Average of the patch tokens of the last layer (MAE's probing feature).

    ``extract_feat`` of MIM algorithms returns the un-masked backbone output;
    for ViTs in ``'raw'`` mode that is (B, 1 + L, C) with the cls token first.
    When it returns several outputs (e.g. LocalMIM's taps) the last is used.

    Args:
        model (nn.Module): The algorithm.
        inputs (Tensor): Pre-processed images (B, C, H, W).

    Returns:
        Tensor: Features of shape (B, C).
    """
    out = model.extract_feat(inputs)
    if isinstance(out, (list, tuple)):
        out = out[-1]
    return pool_tokens(out)


def knn_classify(train_feats: torch.Tensor,
                 train_labels: torch.Tensor,
                 test_feats: torch.Tensor,
                 test_labels: torch.Tensor,
                 k: int = 20,
                 temperature: float = 0.07,
                 num_classes: Optional[int] = None,
                 chunk_size: int = 1024) -> float:
    """Weighted kNN top-1 accuracy on L2-normalised features.

    Each of the ``k`` nearest training samples (cosine similarity ``s``)
    votes for its class with weight ``exp(s / temperature)`` -- the protocol
    of Wu et al. (2018) used by DINO and mmselfsup.

    Args:
        train_feats (Tensor): Bank features (N, C).
        train_labels (Tensor): Bank labels (N,).
        test_feats (Tensor): Query features (M, C).
        test_labels (Tensor): Query labels (M,).
        k (int): Number of neighbours. Defaults to 20.
        temperature (float): Vote temperature. Defaults to 0.07.
        num_classes (int, optional): Defaults to ``max(label) + 1``.
        chunk_size (int): Queries per similarity block. Defaults to 1024.

    Returns:
        float: Top-1 accuracy in percent.
    """
    if k < 1 or k > len(train_feats):
        raise ValueError(f'k must be in [1, {len(train_feats)}], got {k}')
    num_classes = num_classes or int(
        max(train_labels.max(), test_labels.max())) + 1
    bank = F.normalize(train_feats.float(), dim=1)
    correct = 0
    for start in range(0, len(test_feats), chunk_size):
        query = F.normalize(
            test_feats[start:start + chunk_size].float(), dim=1)
        sim, idx = (query @ bank.T).topk(k, dim=1)
        votes = torch.zeros(len(query), num_classes)
        votes.scatter_add_(1, train_labels[idx], (sim / temperature).exp())
        pred = votes.argmax(dim=1)
        correct += (pred == test_labels[start:start + chunk_size]).sum().item()
    return 100.0 * correct / len(test_feats)


def linear_probe(train_feats: torch.Tensor,
                 train_labels: torch.Tensor,
                 test_feats: torch.Tensor,
                 test_labels: torch.Tensor,
                 epochs: int = 100,
                 lr: float = 0.1,
                 weight_decay: float = 1e-4,
                 batch_size: int = 1024,
                 seed: int = 0) -> float:
    """Top-1 accuracy of a linear classifier on frozen features.

    Features are standardised with the training statistics (the role of the
    BatchNorm neck in MAE's linear probing), then a linear layer is trained
    with SGD (momentum 0.9, cosine lr).

    Args:
        train_feats (Tensor): Training features (N, C).
        train_labels (Tensor): Training labels (N,).
        test_feats (Tensor): Test features (M, C).
        test_labels (Tensor): Test labels (M,).
        epochs (int): Training epochs. Defaults to 100.
        lr (float): Peak learning rate. Defaults to 0.1.
        weight_decay (float): Weight decay. Defaults to 1e-4.
        batch_size (int): Batch size. Defaults to 1024.
        seed (int): Seed of the initialisation and shuffling. Defaults to 0.

    Returns:
        float: Top-1 accuracy in percent.
    """
    gen = torch.Generator().manual_seed(seed)
    mean = train_feats.mean(0, keepdim=True)
    std = train_feats.std(0, keepdim=True).clamp_min(1e-6)
    x_train = (train_feats - mean) / std
    x_test = (test_feats - mean) / std
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    clf = nn.Linear(x_train.shape[1], num_classes)
    with torch.no_grad():
        clf.weight.normal_(0, 0.01, generator=gen)
        clf.bias.zero_()
    optim = torch.optim.SGD(
        clf.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    steps = epochs * ((len(x_train) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, steps)
    for _ in range(epochs):
        perm = torch.randperm(len(x_train), generator=gen)
        for start in range(0, len(x_train), batch_size):
            idx = perm[start:start + batch_size]
            loss = F.cross_entropy(clf(x_train[idx]), train_labels[idx])
            optim.zero_grad()
            loss.backward()
            optim.step()
            sched.step()
    with torch.no_grad():
        pred = clf(x_test).argmax(dim=1)
    return 100.0 * (pred == test_labels).float().mean().item()


def top_direction_share(feats: torch.Tensor) -> float:
    """Variance share of the first principal direction of standardised
    features: a measure of dimensional collapse.

    The features are standardised per dimension as the linear probe sees
    them, so the share is the largest eigenvalue of their correlation matrix
    divided by the dimension: 1 when every dimension moves with one factor
    (one direction carries everything, kNN and probe suffer), about ``1/C``
    for uncorrelated dimensions.

    Args:
        feats (Tensor): Features (N, C), N >= 2.

    Returns:
        float: The share in (0, 1].
    """
    if feats.dim() != 2 or len(feats) < 2:
        raise ValueError('feats must be (N, C) with N >= 2, got shape '
                         f'{tuple(feats.shape)}')
    x = feats.double()
    x = x - x.mean(0, keepdim=True)
    std = x.std(0, keepdim=True)
    x = x[:, std[0] > 0] / std[:, std[0] > 0]  # constant dims carry nothing
    if x.shape[1] == 0:
        raise ValueError('all feature dimensions are constant')
    s = torch.linalg.svdvals(x)
    return float((s[0]**2 / (s**2).sum()).item())


def evaluate_features(train: Tuple[torch.Tensor, torch.Tensor],
                      test: Tuple[torch.Tensor, torch.Tensor],
                      knn_k: int = 20,
                      probe_epochs: int = 100) -> Dict[str, float]:
    """Run kNN and (when ``probe_epochs > 0``) the linear probe.

    Args:
        train (tuple[Tensor, Tensor]): Training features and labels.
        test (tuple[Tensor, Tensor]): Test features and labels.
        knn_k (int): Neighbours of the kNN classifier. Defaults to 20.
        probe_epochs (int): Epochs of the linear probe; 0 skips it.
            Defaults to 100.

    Returns:
        dict[str, float]: ``knn_top1`` and, if run, ``linear_top1`` (%).
    """
    results = dict(knn_top1=knn_classify(*train, *test, k=knn_k))
    if probe_epochs > 0:
        results['linear_top1'] = linear_probe(
            *train, *test, epochs=probe_epochs)
    return results


# what a frozen-feature evaluation scores: the test images, or validation
# images held out of the end of the training set
SPLITS = ('test', 'val')


def split_indices(n_train: int,
                  val_images: int,
                  train_samples: int = 0,
                  eval_samples: int = 0) -> Dict[str, range]:
    """Disjoint training and validation indices of a training set.

    The last ``val_images`` training images are the validation split; every
    image a run learns from (pre-training, kNN bank, probe and fine-tune
    labels) is taken from the images before them, so that choices made on
    validation never see the test images and never score images the model
    was fitted on.

    Args:
        n_train (int): Images in the training set.
        val_images (int): Images held out at its end (>= 1).
        train_samples (int): The first N of the remaining images; 0 means
            all of them. Defaults to 0.
        eval_samples (int): The first N validation images scored; 0 means
            all of them. Defaults to 0.

    Returns:
        dict[str, range]: ``train`` and ``val`` indices into the training
        set.
    """
    if not 0 < val_images < n_train:
        raise ValueError(f'val_images must be in [1, {n_train - 1}] for a '
                         f'training set of {n_train} images, got '
                         f'{val_images}')
    for name, value in (('train_samples', train_samples),
                        ('eval_samples', eval_samples)):
        if value < 0:
            raise ValueError(f'{name} must be >= 0, got {value}')
    fit = n_train - val_images
    n_val = min(eval_samples or val_images, val_images)
    return dict(
        train=range(min(train_samples or fit, fit)),
        val=range(fit, fit + n_val))


def check_split(split: str, val_images: int) -> None:
    """``split`` must be one of :data:`SPLITS`; ``'val'`` needs held-out
    images."""
    if split not in SPLITS:
        raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
    if val_images < 0:
        raise ValueError(f'val_images must be >= 0, got {val_images}')
    if split == 'val' and not val_images:
        raise ValueError("split='val' scores images held out of the "
                         'training set: set val_images > 0')


def train_set_size(cfg: Config) -> int:
    """Images in the training set of a config's ``feature_eval_data``."""
    from mmpretrain.registry import DATASETS
    dataset = cfg.feature_eval_data['train'].copy()
    dataset.pop('indices', None)
    dataset['pipeline'] = []  # only the length is wanted
    return len(DATASETS.build(dataset))


def build_feature_eval_loaders(cfg: Config,
                               train_samples: int = 10000,
                               test_samples: int = 10000,
                               batch_size: int = 500,
                               split: str = 'test',
                               val_images: int = 0) -> Dict:
    """Dataloaders of a config's ``feature_eval_data`` (``train``/``test``).

    Args:
        cfg (Config): A pre-training config with ``feature_eval_data``.
        train_samples (int): First N training images (kNN bank and probe
            training set); 0 means all. Defaults to 10000.
        test_samples (int): First N images of the scored split; 0 means
            all. Defaults to 10000.
        batch_size (int): Batch size of the extraction. Defaults to 500.
        split (str): The scored split: ``'test'`` (the test images) or
            ``'val'`` (the last ``val_images`` training images, see
            :func:`split_indices`). Defaults to ``'test'``.
        val_images (int): Training images held out as validation; the
            ``train`` loader then takes its images from before them, whatever
            the scored split. 0 holds none out. Defaults to 0.

    Returns:
        dict: ``{'train': DataLoader, 'test': DataLoader}``; ``'test'`` is
        the scored split.
    """
    from mmengine.runner import Runner

    from mim_plugins.datasets import apply_data_root
    if 'feature_eval_data' not in cfg:
        raise KeyError('the config has no `feature_eval_data` (train/test '
                       'datasets of the frozen-feature evaluation)')
    check_split(split, val_images)
    apply_data_root(cfg)  # a `data_root` override reaches these datasets
    datasets = dict(
        train=cfg.feature_eval_data['train'].copy(),
        test=cfg.feature_eval_data['test'].copy())
    if val_images:
        indices = split_indices(
            train_set_size(cfg), val_images, train_samples, test_samples)
        datasets['train']['indices'] = list(indices['train'])
        if split == 'val':
            datasets['test'] = cfg.feature_eval_data['train'].copy()
            datasets['test']['indices'] = list(indices['val'])
        elif test_samples:
            datasets['test']['indices'] = test_samples
    else:
        for name, n in (('train', train_samples), ('test', test_samples)):
            if n:
                datasets[name]['indices'] = n
    loaders = {}
    for name, dataset in datasets.items():
        loaders[name] = Runner.build_dataloader(
            dict(
                batch_size=batch_size,
                num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=False),
                collate_fn=dict(type='default_collate'),
                dataset=dataset))
    return loaders


def score_model(model: nn.Module,
                loaders: Dict,
                knn_k: int = 20,
                probe_epochs: int = 100) -> Dict[str, float]:
    """Extract frozen features and run kNN (and the linear probe).

    Args:
        model (nn.Module): The self-supervised algorithm.
        loaders (dict): Output of :func:`build_feature_eval_loaders`.
        knn_k (int): Neighbours of the kNN classifier. Defaults to 20.
        probe_epochs (int): Linear-probe epochs (0 skips). Defaults to 100.

    Returns:
        dict[str, float]: ``knn_top1`` and ``linear_top1`` in percent, and
        ``pc1_share`` (:func:`top_direction_share` of the training
        features), which tracks a collapse of the features during training.
    """
    train = extract_features(model, loaders['train'])
    test = extract_features(model, loaders['test'])
    scores = evaluate_features(
        train, test, knn_k=knn_k, probe_epochs=probe_epochs)
    scores['pc1_share'] = top_direction_share(train[0])
    return scores


def build_scoring_model(
        config: str,
        checkpoint: Optional[str] = None,
        data_root: Optional[str] = None,
        cfg_options: Optional[dict] = None) -> Tuple[Config, nn.Module]:
    """Build a pre-training algorithm from its config for frozen scoring.

    Args:
        config (str): A pre-training config with ``feature_eval_data``.
        checkpoint (str, optional): Weights loaded strictly; ``None``
            initialises the model as training would.
        data_root (str, optional): Fashion-MNIST IDX folder replacing the
            ``data_prefix`` of ``feature_eval_data``.
        cfg_options (dict, optional): Overrides merged into the config
            before the model is built.

    Returns:
        tuple[Config, nn.Module]: The config and the model in eval mode.
    """
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint
    from mmpretrain.registry import MODELS

    from mim_plugins.datasets import apply_data_root
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    apply_data_root(cfg)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    if data_root:
        for split in ('train', 'test'):
            cfg.feature_eval_data[split].data_prefix = data_root
    model_cfg = cfg.model.copy()
    # as the Runner does: the top-level pre-processor (mean/std) goes in
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    model = MODELS.build(model_cfg)
    if checkpoint:
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    else:
        model.init_weights()
    return cfg, model.eval()


def save_score_table(out_dir: str, name: str, rows: List[Dict],
                     columns: Sequence[str], checkpoint: str,
                     train_samples: int, test_samples: int, probe_epochs: int,
                     **meta) -> str:
    """Write kNN/probe score rows as ``{name}.json`` and ``{name}.md``.

    Args:
        out_dir (str): Output folder (created if missing).
        name (str): File stem.
        rows (list[dict]): One dict per scored feature with ``knn_top1``,
            ``linear_top1`` and the keys of ``columns``.
        columns (Sequence[str]): Keys of ``rows`` shown (and titled) before
            the two score columns.
        checkpoint (str): The scored checkpoint.
        train_samples (int): Training images (kNN bank, probe training set).
        test_samples (int): Test images.
        probe_epochs (int): Epochs of the linear probe.
        **meta: More run description stored in the json.

    Returns:
        str: The markdown table with its caption.
    """
    meta = dict(
        checkpoint=checkpoint,
        train=train_samples,
        test=test_samples,
        probe_epochs=probe_epochs,
        **meta)
    titles = list(columns) + ['kNN top-1 (%)', 'probe top-1 (%)']
    lines = [
        f'Frozen features on Fashion-MNIST ({test_samples} test images, kNN '
        f'bank / probe {train_samples} training images, {probe_epochs} probe '
        f'epochs); checkpoint `{checkpoint}`.', '',
        '| ' + ' | '.join(titles) + ' |', '|' + ' --- |' * len(titles)
    ]
    for row in rows:
        cells = [str(row[key]) for key in columns]
        cells += [f"{row['knn_top1']:.2f}", f"{row['linear_top1']:.2f}"]
        lines.append('| ' + ' | '.join(cells) + ' |')
    table = '\n'.join(lines) + '\n'
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, f'{name}.json'), 'w') as f:
        json.dump(dict(meta=meta, rows=rows), f, indent=2)
    with open(osp.join(out_dir, f'{name}.md'), 'w') as f:
        f.write(table)
    return table
