"""Seeding: the same seed gives the same weights, dropout masks and shuffling."""
from __future__ import absolute_import

import random

import numpy as np


# -- random states ---------------------------------------------------------------------
def set_seed(seed):
    """Seed every random generator training draws from: numpy's global one
    (Keras' initial weights, `fit`'s shuffling, and the seeds of the Theano
    random streams `K.dropout` makes when a model is built) and Python's
    `random`. Call it before building the model: the same seed then gives the
    same initial weights, dropout masks, shuffling, and so the same trained
    weights and outputs, run to run (on the same machine and libraries)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not (
            0 <= seed < 2 ** 32):
        raise ValueError('seed must be an int in [0, 2**32), got %r' % (seed,))
    np.random.seed(int(seed))
    random.seed(int(seed))


def random_streams(model):
    """The state variables of the Theano random streams (MRG) the model's
    graph draws from: one per `K.dropout` (Keras' `Dropout` layers, our
    decoders' dropout), in the order of a walk of the graph from its outputs
    (the same for the same model, built again by `load_model`)."""
    from theano.gof import graph
    found, seen = [], set()
    for variable in graph.inputs(list(model.outputs)):
        if getattr(variable.tag, 'is_rng', False) and id(variable) not in seen:
            seen.add(id(variable))
            found.append(variable)
    return found
