"""Argument checks shared by the layers, the models and the search.

Each raises a one-line `TypeError` or `ValueError` naming the argument, so a
bad call is refused before any work. Plain Python and numpy only: the
numpy search (`seq2seq.search.numpy_search`) uses them without Keras.
"""
from __future__ import absolute_import

import numbers

import numpy as np


def is_int(value):
    """An integer (numpy's included), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def owned(owner, message):
    """`message` prefixed with 'owner: ' (the layer or model function that
    refuses the argument) when an owner is given."""
    return message if owner is None else '%s: %s' % (owner, message)


def check_positive_int(name, value, allow_none=False, owner=None):
    """`value` as an int >= 1 (None passes with `allow_none`). `owner`, e.g.
    'SimpleSeq2Seq', starts the message when given."""
    if value is None and allow_none:
        return None
    if not is_int(value):
        raise TypeError(owned(owner, '%s must be a positive int%s, got %r'
                              % (name, ' or None' if allow_none else '', value)))
    if value <= 0:
        raise ValueError(owned(owner, '%s must be a positive int, got %r' % (name, value)))
    return int(value)


def check_dropout(value, owner=None):
    """`value` as a float in [0, 1): a fraction of units dropped."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(owned(owner, 'dropout must be a number in [0, 1), got %r' % (value,)))
    if not 0.0 <= value < 1.0:
        raise ValueError(owned(owner, 'dropout must be in [0, 1), got %r' % (value,)))
    return float(value)


def check_bool(name, value, owner=None):
    """`value` as a bool: True or False (numpy's np.True_ / np.False_ too)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(owned(owner, '%s must be True or False, got %r (%s)'
                              % (name, value, type(value).__name__)))
    return bool(value)


def check_depth(depth, owner=None):
    """`depth` as an (encoder, decoder) pair of positive ints."""
    if isinstance(depth, (list, tuple)):
        if len(depth) != 2:
            raise ValueError(owned(owner, 'depth must be an int or a pair (encoder depth, '
                                          'decoder depth), got %r' % (depth,)))
        pair = tuple(depth)
    else:
        pair = (depth, depth)
    for d in pair:
        check_positive_int('depth', d, owner=owner)
    return (int(pair[0]), int(pair[1]))
