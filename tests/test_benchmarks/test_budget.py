# Copyright (c) OpenMMLab. All rights reserved.
import os.path as osp

import pytest
import torch
from helpers import REPO_ROOT
from mmengine.config import Config

from mim_plugins.benchmarks import (low_label_finetune, lr_schedule,
                                    train_flops_per_image, train_for_budget)
from mim_plugins.evaluation import (build_feature_eval_loaders,
                                    build_scoring_model)

MINI = {
    m: osp.join(REPO_ROOT, f'configs/{m}/{m}_vit-mini-p4_1xb256-coslr-10e_'
                'fashion-mnist.py')
    for m in ('mae', 'bim', 'prmim', 'localmim', 'mixmim')
}
SMALL = {
    'train_dataloader.batch_size': 16,
    'train_dataloader.num_workers': 0,
    'train_dataloader.persistent_workers': False,
}


def test_lr_schedule_of_the_configs():
    # the 10-epoch recipe: 1 epoch of linear warm-up from 1e-4, cosine to 0
    for path in MINI.values():
        assert lr_schedule(Config.fromfile(path)) == dict(
            warmup=0.1, start_factor=1e-4, min_lr_ratio=0.)
    cfg = Config.fromfile(MINI['mae'])
    cfg.param_scheduler.append(dict(type='StepLR', step_size=1))
    with pytest.raises(ValueError, match="'StepLR'.*'LinearLR'"):
        lr_schedule(cfg)


@pytest.mark.parametrize('method,lr_scale', [('mae', 1.), ('bim', 3.)])
def test_train_for_budget_end_to_end(method, lr_scale, fmnist_root, tmp_path,
                                     capsys):
    work_dir = str(tmp_path / method)
    base_lrs = []
    run = train_for_budget(
        MINI[method],
        1.,
        unit='epochs',
        seed=3,
        work_dir=work_dir,
        train_samples=32,
        data_root=fmnist_root,
        cfg_options=SMALL,
        eval_points=2,
        eval_train_samples=40,
        eval_test_samples=20,
        knn_k=5,
        probe_epochs=5,
        finetune_samples=16,
        finetune_epochs=1,
        lr_scale=lr_scale,
        on_record=lambda record, hook: base_lrs.append(
            {lr
             for _, lr in hook._base_lrs}))
    model = run.pop('model')
    # every optimizer (each of BIM's blocks' too) starts from the config's
    # lr times lr_scale
    lr = Config.fromfile(MINI[method]).optim_wrapper.optimizer.lr * lr_scale
    assert run['lr'] == pytest.approx(lr)
    assert len(base_lrs) == 3
    for seen in base_lrs:
        assert len(seen) == 1 and seen.pop() == pytest.approx(lr)
    # one epoch of 32 images in batches of 16
    assert run['epoch_length'] == 2 and run['train_images'] == 32
    curve = run['curve']
    assert [p['fraction'] for p in curve] == [0, 0.5, 1]
    assert [p['iters'] for p in curve] == [0, 1, 2]
    assert [p['images'] for p in curve] == [0, 16, 32]
    # the fine-tune runs at the random initialisation and at the end only
    assert ['finetune_top1' in p for p in curve] == [True, False, True]
    for point in curve:
        for key in ('knn_top1', 'linear_top1'):
            assert 0 <= point[key] <= 100
    # FLOPs spent are counted as benchmark_efficiency.py counts them
    cfg = Config.fromfile(MINI[method])
    cfg.merge_from_dict(SMALL)
    assert run['flops_per_iter'] == train_flops_per_image(cfg, 2) * 16
    assert curve[-1]['flops'] == 2 * run['flops_per_iter']
    assert run['seed'] == 3 and run['unit'] == 'epochs'
    # the saved weights are the trained model's
    saved = torch.load(osp.join(work_dir, 'final.pth'), weights_only=True)
    for key, value in model.state_dict().items():
        assert torch.equal(saved['state_dict'][key], value)
    # the Runner's INFO lines go to its log file, not to the console
    out = capsys.readouterr().out
    assert 'paramwise_options' not in out
    with open(run['log_file']) as f:
        assert 'paramwise_options' in f.read()


def test_low_label_finetune_learns_and_leaves_the_model(fmnist_root):
    cfg, model = build_scoring_model(MINI['mae'], data_root=fmnist_root)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train = build_feature_eval_loaders(cfg, 100, 1, batch_size=20)['train']
    test = build_feature_eval_loaders(cfg, 1, 64)['test']
    short = low_label_finetune(model, train, test, epochs=1)
    longer = low_label_finetune(model, train, test, epochs=8)
    # the classes are bars at different heights: learnable from 100 images
    assert longer >= 60 and longer > short
    for key, value in model.state_dict().items():
        assert torch.equal(before[key], value), key
    with pytest.raises(ValueError, match='epochs must be >= 1'):
        low_label_finetune(model, train, test, epochs=0)


def test_recipe_knobs_batch_and_warmup(fmnist_root, tmp_path):
    run = train_for_budget(
        MINI['mae'],
        1.,
        unit='epochs',
        work_dir=str(tmp_path / 'mae'),
        train_samples=32,
        data_root=fmnist_root,
        cfg_options=SMALL,
        batch_size=8,
        warmup=0.5,
        eval_points=2,
        eval_train_samples=40,
        eval_test_samples=20,
        knn_k=5,
        probe_epochs=2,
        finetune_samples=0)
    run.pop('model')
    # batch 8 over 32 images: 4 steps, whatever the config's batch
    assert run['batch_size'] == 8 and run['epoch_length'] == 4
    assert run['schedule']['warmup'] == 0.5
    # the warm-up ends at half the budget: the peak there (the configs'
    # 0.1 would be well into the cosine), its end value at the end
    assert [p['lr_factor'] for p in run['curve']] == [1e-4, 1., 0.]
    for bad, said in ((dict(batch_size=0), 'batch_size must be an int'),
                      (dict(warmup=1.), r'warmup must be in \[0, 1\)')):
        with pytest.raises(ValueError, match=said):
            train_for_budget(MINI['mae'], 1., unit='epochs', **bad)
