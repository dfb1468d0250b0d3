"""Losses for decoders that output logits (a linear readout)."""
from __future__ import absolute_import

import theano.tensor as T


def softmax_cross_entropy(y_true, logits):
    """Cross-entropy of one-hot (or probability) targets against the softmax
    of `logits`, over the last axis, for any number of leading axes.

    Keras 2.3.1's Theano `categorical_crossentropy(from_logits=True)` takes
    2-D tensors only; a decoder's output is (batch, steps, vocab).
    """
    shifted = logits - logits.max(axis=-1, keepdims=True)      # no overflow in exp
    log_probs = shifted - T.log(T.exp(shifted).sum(axis=-1, keepdims=True))
    return -(y_true * log_probs).sum(axis=-1)
