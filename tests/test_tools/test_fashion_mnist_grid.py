# Copyright (c) OpenMMLab. All rights reserved.
"""The learning-rate grid tool: one table, one choice, on validation."""
import pytest
from test_quality_benchmark import fake_run, load, write_runs


def grid_run(method, scale, knn, probe, split='val'):
    run = fake_run(method, 0, (50., knn - 1, knn), (60., probe - 1, probe),
                   10.)
    run['protocol'].update(
        split=split, val_images=10000,
        lr_scale=dict(mae=scale, bim=scale, prmim=scale))
    return run


def write_grid(tmp_path, points, split='val'):
    folders = []
    for scale, scores in points.items():
        folder = str(tmp_path / f'lr{scale:g}')
        write_runs(folder, [
            grid_run(m, scale, knn, probe, split)
            for m, (knn, probe) in scores.items()
        ])
        folders.append(folder)
    return folders


def test_grid_table_and_choice(tmp_path, capsys):
    tool = load('fashion_mnist_grid')
    folders = write_grid(
        tmp_path, {
            0.3: dict(mae=(70., 72.), bim=(60., 75.)),
            1.: dict(mae=(71., 74.), bim=(65., 75.)),
            3.: dict(mae=(72., 73.), bim=(64., 70.))
        })
    chosen = tool.main(folders)
    # MAE: best probe at x1; BIM: probe tied at x0.3 and x1, kNN decides
    assert chosen == dict(mae=1., bim=1.)
    out = capsys.readouterr().out
    assert '| mae | x1 **chosen** | 74.00 (60.00) | 71.00 (50.00) |' in out
    assert '| mae | x0.3 | 72.00 (60.00) | 70.00 (50.00) |' in out
    # MAE's rows come first, ordered by scale
    assert out.index('| mae | x0.3') < out.index('| mae | x1 ') < out.index(
        '| mae | x3') < out.index('| bim | x0.3')
    tool.main(folders + ['--choice'])
    assert capsys.readouterr().out.strip() == 'mae=1 bim=1'


def test_grid_refuses_the_test_split_and_mixed_protocols(tmp_path, capsys):
    tool = load('fashion_mnist_grid')
    test = write_grid(tmp_path / 't', {1.: dict(mae=(70., 72.))}, 'test')
    with pytest.raises(SystemExit, match='scored the test images'):
        tool.main(test)
    assert tool.main(test + ['--allow-test']) == dict(mae=1.)
    val = write_grid(tmp_path / 'v', {1.: dict(mae=(70., 72.))})
    with pytest.raises(SystemExit, match=r"differs .* \['split'\]"):
        tool.main(val + test + ['--allow-test'])
    # the same scale twice is not a grid
    again = write_grid(tmp_path / 'w', {1.: dict(mae=(71., 73.))})
    with pytest.raises(SystemExit, match='mae at x1 appears twice'):
        tool.main(val + again)
