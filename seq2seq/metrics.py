"""Metrics on predicted token sequences."""
from __future__ import absolute_import

import numpy as np


def token_accuracy(predicted, target, pad_id=None):
    """Fraction of target tokens predicted right, position by position.

    # Arguments
        predicted: (batch, length) token ids, or (batch, length, vocab)
            scores whose argmax is taken.
        target: (batch, length) token ids.
        pad_id: target positions holding this id are not counted.
    """
    predicted = np.asarray(predicted)
    target = np.asarray(target)
    if predicted.ndim == target.ndim + 1:
        predicted = predicted.argmax(axis=-1)
    if predicted.shape != target.shape:
        raise ValueError('predicted and target must have the same shape, got %s and %s'
                         % (predicted.shape, target.shape))
    counted = np.ones(target.shape, dtype=bool) if pad_id is None else target != pad_id
    if not counted.any():
        raise ValueError('target holds no token other than pad_id=%r' % (pad_id,))
    return float((predicted == target)[counted].mean())


def sequence_accuracy(predicted, target):
    """Fraction of sequences predicted entirely right."""
    predicted = np.asarray(predicted)
    target = np.asarray(target)
    if predicted.ndim == target.ndim + 1:
        predicted = predicted.argmax(axis=-1)
    return float((predicted == target).all(axis=-1).mean())
