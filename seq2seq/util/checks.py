"""Argument checks shared by the layers, the models and the search.

Each raises a one-line `TypeError` or `ValueError` naming the argument, so a
bad call is refused before any work. Plain Python and numpy only: the
numpy search (`seq2seq.search.numpy_search`) uses them without Keras.
"""
from __future__ import absolute_import

import numbers


def is_int(value):
    """An integer (numpy's included), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_positive_int(name, value, allow_none=False):
    """`value` as an int >= 1 (None passes with `allow_none`)."""
    if value is None and allow_none:
        return None
    if not is_int(value):
        raise TypeError('%s must be a positive int%s, got %r'
                        % (name, ' or None' if allow_none else '', value))
    if value <= 0:
        raise ValueError('%s must be a positive int, got %r' % (name, value))
    return int(value)


def check_depth(depth):
    """`depth` as an (encoder, decoder) pair of positive ints."""
    if isinstance(depth, (list, tuple)):
        if len(depth) != 2:
            raise ValueError('depth must be an int or a pair (encoder depth, '
                             'decoder depth), got %r' % (depth,))
        pair = tuple(depth)
    else:
        pair = (depth, depth)
    for d in pair:
        check_positive_int('depth', d)
    return (int(pair[0]), int(pair[1]))
