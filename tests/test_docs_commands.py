# Copyright (c) OpenMMLab. All rights reserved.
"""The commands quoted in README.md and configs/*/README.md run at HEAD.

Every number in those pages names the command that made it; this walks
their code (fenced blocks and inline spans), finds each call of a tool
(``python tools/...``, ``bash tools/...``, ``tools/*.sh``, ``mim
train/test/run``) and each config it names, and checks that the tools and
configs exist and that every Python tool's ``--help`` runs. Nothing is
trained.
"""
import glob
import os.path as osp
import re
import subprocess
import sys
from typing import Dict, List, Set

import pytest
from helpers import REPO_ROOT, subprocess_env

PAGES = ['README.md'] + sorted(
    osp.relpath(p, REPO_ROOT)
    for p in glob.glob(osp.join(REPO_ROOT, 'configs', '*', 'README.md')))
FENCE = re.compile(r'^```[^\n]*\n(.*?)^```', re.M | re.S)
INLINE = re.compile(r'`([^`\n]+)`')
CONFIG = re.compile(r'(?:^|[=:\s])((?:\.venv/|\$MIM/)?[\w./-]*configs/'
                    r'[\w./-]+\.py)')


def code_lines(text: str) -> List[str]:
    """Logical lines of a page's code: fenced blocks (continuations joined,
    comments dropped) and inline spans that call a tool."""
    lines = []
    for block in FENCE.findall(text):
        for line in block.replace('\\\n', ' ').splitlines():
            line = re.sub(r'(^|\s)#.*$', '', line).strip()
            if line:
                lines.append(line)
    prose = FENCE.sub('', text)
    lines += [
        span for span in INLINE.findall(prose)
        if re.search(r'(python|bash) tools/|^mim (train|test|run) ', span)
    ]
    return lines


def commands(line: str) -> Dict[str, Set[str]]:
    """The tools, configs and config names one line calls."""
    found = dict(python=set(), shell=set(), configs=set(), names=set())
    found['python'] |= set(re.findall(r'python3? +(tools/[\w./-]+\.py)', line))
    found['shell'] |= set(
        re.findall(r'(?:^|\s)(?:bash +|sh +)?'
                   r'(tools/[\w./-]+\.sh)', line))
    for script in re.findall(r'mim run \S+ (\w+)', line):
        found['python'].add(script)  # a tool found by name
    for path in CONFIG.findall(line):
        found['configs'].add(path)
    for name in re.findall(r'mim (?:train|test) \S+ ([\w.-]+\.py)', line):
        found['names'].add(name)
    return found


def collect(pages=PAGES) -> Dict[str, Dict[str, Set[str]]]:
    """Per page: what its code calls."""
    result = {}
    for page in pages:
        with open(osp.join(REPO_ROOT, page)) as f:
            text = f.read()
        merged = dict(python=set(), shell=set(), configs=set(), names=set())
        for line in code_lines(text):
            for key, values in commands(line).items():
                merged[key] |= values
        result[page] = merged
    return result


def tool_path(tool: str) -> str:
    """``tools/x.py`` as is; a bare name (``mim run``) looked up in tools/."""
    if '/' in tool:
        return osp.join(REPO_ROOT, tool)
    hits = glob.glob(
        osp.join(REPO_ROOT, 'tools', '**', f'{tool}.py'), recursive=True)
    return hits[0] if hits else osp.join(REPO_ROOT, 'tools', f'{tool}.py')


def config_path(path: str) -> str:
    if path.startswith('$MIM/'):  # the installed copy of configs/
        path = path[len('$MIM/'):]
    return osp.join(REPO_ROOT, path)


def missing(found: Dict[str, Set[str]]) -> List[str]:
    """What a page's code names that is not there."""
    names = {
        osp.basename(p)
        for p in glob.glob(
            osp.join(REPO_ROOT, 'configs', '**', '*.py'), recursive=True)
    }
    gone = [t for t in found['python'] if not osp.isfile(tool_path(t))]
    gone += [t for t in found['shell'] if not osp.isfile(tool_path(t))]
    gone += [c for c in found['configs'] if not osp.isfile(config_path(c))]
    gone += [n for n in found['names'] if n not in names]
    return sorted(gone)


FOUND = collect()
PYTHON_TOOLS = sorted({
    osp.relpath(tool_path(t), REPO_ROOT)
    for found in FOUND.values()
    for t in found['python']
})


def test_the_walk_finds_what_a_page_calls(tmp_path):
    page = tmp_path / 'README.md'
    page.write_text(
        'Run `python tools/benchmarks/nope.py --x` and see.\n\n'
        '```bash\n'
        '# python tools/commented_out.py\n'
        'python tools/train.py configs/mae/mae_vit-mini-p4_1xb256-coslr-'
        '10e_fashion-mnist.py \\\n'
        '    --cfg-options a=1   # a comment\n'
        'bash tools/dist_train.sh configs/none/missing.py 8\n'
        'mim train mim_plugins no_such_config.py\n'
        'mim run mim_plugins run_demo --budget 1\n'
        '```\n')
    found = collect([str(page)])[str(page)]
    assert found['python'] == {
        'tools/benchmarks/nope.py', 'tools/train.py', 'run_demo'
    }
    assert found['shell'] == {'tools/dist_train.sh'}
    assert found['configs'] == {
        'configs/mae/mae_vit-mini-p4_1xb256-coslr-10e_fashion-mnist.py',
        'configs/none/missing.py'
    }
    assert missing(found) == [
        'configs/none/missing.py', 'no_such_config.py',
        'tools/benchmarks/nope.py'
    ]


def test_pages_call_tools_and_configs_that_exist():
    # the walk reaches the pages' code: the README's headline commands
    assert 'tools/benchmarks/fashion_mnist.py' in FOUND['README.md']['python']
    assert len(PYTHON_TOOLS) >= 8
    problems = {page: missing(found) for page, found in FOUND.items()}
    assert not {p: m for p, m in problems.items() if m}


@pytest.mark.parametrize('tool', PYTHON_TOOLS)
def test_python_tool_help_runs(tool):
    proc = subprocess.run([sys.executable, tool, '--help'],
                          cwd=REPO_ROOT,
                          env=subprocess_env(),
                          capture_output=True,
                          text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'usage:' in proc.stdout
