from setuptools import find_packages, setup

with open('README.md') as readme:
    long_description = readme.read()

setup(
    name='seq2seq',
    version='0.1.0',
    description='Sequence to sequence learning with Keras 2.3.1 on the Theano backend',
    long_description=long_description,
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tests.*', 'examples', 'benchmarks')),
    # Keras 2.3.1 does not import on Python >= 3.10, and nose does not run there.
    python_requires='>=3.6, <3.10',
    install_requires=[
        'theano-pymc>=1.0.11,<1.0.12',
        'keras>=2.3.1,<2.4',
        'numpy>=1.13,<1.20',
        'scipy>=1.0',
        'h5py<3',
        'six',
    ],
    extras_require={
        'mkl': ['mkl'],
        'test': ['nose==1.3.7'],
    },
    classifiers=[
        'Programming Language :: Python :: 3.6',
        'Programming Language :: Python :: 3.7',
        'Programming Language :: Python :: 3.8',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
)
