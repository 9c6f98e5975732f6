# Copyright (c) OpenMMLab. All rights reserved.
import os
import os.path as osp
import shutil
import sys
import warnings

from setuptools import find_packages, setup


def readme() -> str:
    with open('README.md', encoding='utf-8') as f:
        return f.read()


def get_version() -> str:
    version_file = 'mim_plugins/version.py'
    scope = {}
    with open(version_file, encoding='utf-8') as f:
        exec(compile(f.read(), version_file, 'exec'), scope)
    return scope['__version__']


def parse_requirements(fname: str) -> list:
    """Read a requirements file, skipping comments and blank lines."""
    reqs = []
    with open(fname, encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                reqs.append(line)
    return reqs


def add_mim_extension() -> None:
    """Add the ``.mim`` folder (configs, tools, model-index) to the package.

    ``mim train mim_plugins <config>`` looks for ``mim_plugins/.mim/tools/
    train.py`` and searches configs under ``mim_plugins/.mim/configs``.
    Editable installs get symlinks (so edits are live); wheels and sdists get
    copies.  A build in a checkout whose ``.mim`` already holds the links
    (``make setup``) keeps them: the build copies the files they point to,
    while replacing them by copies would leave an editable install reading
    frozen configs and tools.
    """
    argv = ' '.join(sys.argv)
    if 'develop' in argv or 'editable_wheel' in argv:
        mode = 'symlink'
    elif 'sdist' in argv or 'bdist_wheel' in argv or 'build' in argv:
        mode = 'copy'
    else:
        return

    filenames = ['tools', 'configs', 'model-index.yml']
    repo_path = osp.dirname(osp.abspath(__file__))
    mim_path = osp.join(repo_path, 'mim_plugins', '.mim')
    os.makedirs(mim_path, exist_ok=True)

    for filename in filenames:
        src = osp.join(repo_path, filename)
        if not osp.exists(src):
            continue
        dst = osp.join(mim_path, filename)
        if mode == 'copy' and osp.islink(dst) and osp.realpath(
                dst) == osp.realpath(src):
            continue
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, osp.dirname(dst)), dst)
        else:
            if osp.isfile(src):
                shutil.copyfile(src, dst)
            else:
                shutil.copytree(src, dst)
    if mode == 'copy' and not osp.exists(osp.join(mim_path, 'tools')):
        warnings.warn('tools/ was not copied into mim_plugins/.mim')


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mim_plugins',
        version=get_version(),
        description='Efficient masked image modeling (BIM, PR-MIM, MixMIM, '
        'LocalMIM) as MMPretrain plugins',
        long_description=readme(),
        long_description_content_type='text/markdown',
        keywords='self-supervised learning, masked image modeling, '
        'OpenMMLab, mmpretrain',
        packages=find_packages(exclude=('configs', 'tools', 'tests')),
        include_package_data=True,
        package_data={'mim_plugins': ['.mim/**/*', '.mim/*']},
        python_requires='>=3.8',
        classifiers=[
            'Development Status :: 3 - Alpha',
            'Intended Audience :: Science/Research',
            'License :: OSI Approved :: Apache Software License',
            'Operating System :: OS Independent',
            'Programming Language :: Python :: 3',
            'Programming Language :: Python :: 3.11',
            'Topic :: Scientific/Engineering :: Artificial Intelligence',
        ],
        license='Apache License 2.0',
        # As mmpretrain/mmdet do: mmcv and mmengine are the `mim` extra, so
        # pip never tries to build mmcv's sdist over a working install.
        install_requires=parse_requirements('requirements/runtime.txt'),
        extras_require={
            'mim':
            parse_requirements('requirements/mminstall.txt'),
            'tests':
            parse_requirements('requirements/tests.txt'),
            'det':
            parse_requirements('requirements/det.txt'),
            'seg':
            parse_requirements('requirements/seg.txt'),
            'all':
            parse_requirements('requirements/tests.txt') +
            parse_requirements('requirements/det.txt') +
            parse_requirements('requirements/seg.txt'),
        },
        zip_safe=False)
