"""Losses for sequence outputs.

`softmax_cross_entropy` is for decoders that output logits (a linear
readout); `sparse_softmax_crossentropy` is for the usual
`TimeDistributed(Dense(vocab, activation='softmax'))` output trained on
integer targets, and is what `loss='sparse_categorical_crossentropy'` computes,
in fused Ops instead of Keras' one-hot, renormalise, clip and log graph;
`masked_sparse_softmax_crossentropy` is the same without the padding targets.
"""
from __future__ import absolute_import

import theano.tensor as T
from theano.ifelse import IfElse, ifelse
from theano.tensor.nnet import nnet as _nnet
from theano.tensor.opt import Assert

from ..ops import fused_softmax


def softmax_cross_entropy(y_true, logits):
    """Cross-entropy of one-hot (or probability) targets against the softmax
    of `logits`, over the last axis, for any number of leading axes.

    Keras 2.3.1's Theano `categorical_crossentropy(from_logits=True)` takes
    2-D tensors only; a decoder's output is (batch, steps, vocab).
    """
    shifted = logits - logits.max(axis=-1, keepdims=True)      # no overflow in exp
    log_probs = shifted - T.log(T.exp(shifted).sum(axis=-1, keepdims=True))
    return -(y_true * log_probs).sum(axis=-1)


def sparse_softmax_crossentropy(y_true, y_pred):
    """Cross-entropy of integer targets against probabilities, per position:
    `-log(y_pred[..., y_true])`, shape `y_pred.shape[:-1]`.

    A drop-in for Keras' `loss='sparse_categorical_crossentropy'` (same
    targets: integers of shape `y_pred.shape[:-1] + (1,)`, or without the
    trailing 1; same per-position output, so masks and sample weights apply
    as before):

        model.compile(optimizer='adam',
                      loss=seq2seq.losses.sparse_softmax_crossentropy)

    When `y_pred` is a softmax over its last axis (`Dense(..., activation=
    'softmax')`, directly or inside `TimeDistributed`), the loss is computed
    from the softmax's input by the fused Ops of `seq2seq.ops.fused_softmax`: no
    one-hot matrix, no second pass to renormalise, a vectorised `exp`, and
    the gradient with respect to the logits, `softmax - one_hot`, in one
    loop that also sums the bias gradient. Keras clips probabilities
    to [1e-7, 1 - 1e-7], which caps the loss at 16.1 and zeroes the gradient
    of a confidently wrong prediction; this path is exact there.

    Any other `y_pred` (a softmax built from `exp` and `sum`, a scan's output)
    gets Keras' own value, `-log(clip(p / sum(y_pred[...]), 1e-7, 1 - 1e-7))`,
    read with an index rather than a one-hot product.

    # Arguments
        y_true: integer class indices (any numeric dtype), shape
            `y_pred.shape[:-1]` or `y_pred.shape[:-1] + (1,)`. Keras feeds
            `fit`/`evaluate` targets with y_pred's rank; the package's
            input checks (`seq2seq.guards`) add the trailing 1 to targets
            of shape (batch, length) and refuse targets that are not whole
            numbers in [0, classes) (the Op would truncate 2.7 to 2 and
            read a NaN as -2147483648).
        y_pred: probabilities over the last axis, 2 or more dimensions.
    """
    if y_pred.ndim < 2:
        raise ValueError('sparse_softmax_crossentropy: y_pred must have a class '
                         'axis (2 or more dimensions), got %d' % y_pred.ndim)
    if y_true.ndim not in (y_pred.ndim - 1, y_pred.ndim):
        raise ValueError('sparse_softmax_crossentropy: y_true must have %d or %d '
                         'dimensions (y_pred has %d), got %d'
                         % (y_pred.ndim - 1, y_pred.ndim, y_pred.ndim, y_true.ndim))
    branches = _ifelse_branches(y_pred)
    if branches is not None:
        # A teacher-forced decoder's output is ifelse(learning phase, forced,
        # free) (K.in_train_phase): the loss of each branch, so that each
        # finds its own softmax.
        condition, when_true, when_false = branches
        return ifelse(condition, sparse_softmax_crossentropy(y_true, when_true),
                      sparse_softmax_crossentropy(y_true, when_false))
    classes = y_pred.shape[-1]
    per_position = y_pred.shape[:-1]
    targets = T.cast(T.flatten(y_true), 'int32')                    # (positions,)
    # A one-hot y_true (categorical targets) would flatten to classes times
    # too many targets: say so instead of failing on shapes deeper down.
    targets = Assert('sparse_softmax_crossentropy: y_true must hold one integer class '
                     'index per position of y_pred, shape y_pred.shape[:-1] + (1,)')(
        targets, T.eq(targets.shape[0], T.prod(per_position)))
    logits_and_bias = fused_softmax.softmax_input(y_pred)
    if logits_and_bias is not None:
        logits, bias = logits_and_bias                              # (positions, classes), (classes,)
        # The rows of the softmax are the rows of y_pred only when the reshapes
        # in between keep the class axis; they do in TimeDistributed and Dense.
        logits = Assert('sparse_softmax_crossentropy: the softmax and y_pred have '
                        'different class axes')(logits, T.eq(logits.shape[1], classes))
        if logits.dtype in fused_softmax.DTYPES and bias.dtype == logits.dtype:
            nll = fused_softmax.softmax_crossentropy(logits, bias, targets)
        else:
            nll = _nnet.crossentropy_softmax_1hot_with_bias(logits, bias, targets)[0]
        return T.reshape(nll, per_position, ndim=y_pred.ndim - 1)
    probabilities = T.reshape(y_pred, (-1, classes))                # (positions, classes)
    rows = T.arange(probabilities.shape[0])
    picked = probabilities[rows, targets] / probabilities.sum(axis=-1)
    epsilon = _keras_epsilon()
    nll = -T.log(T.clip(picked, epsilon, 1.0 - epsilon))
    return T.reshape(nll, per_position, ndim=y_pred.ndim - 1)


# The id the vocabularies reserve for padding (seq2seq.training.vocab.PAD_ID,
# a layer above this one).
PADDING_ID = 0


def masked_sparse_softmax_crossentropy(y_true, y_pred):
    """`sparse_softmax_crossentropy` with every position whose target is the
    padding id 0 weighted 0: the loss of the real tokens (EOS included) of
    answers padded to a fixed length.

    A model whose outputs have a fixed length (the `Seq2seq` layer, a
    `ConversationWindow`) is otherwise also trained to predict the padding
    after each end mark: a lightly trained model then ranks padding first at
    every step and answers nothing. Sample weights cannot say this for a
    window model, whose weights are per exchange, (batch, window).

        model.compile(optimizer='adam', sample_weight_mode='temporal',
                      loss=seq2seq.losses.masked_sparse_softmax_crossentropy)

    Keras averages the weighted values over every position, padding
    included, so the reported loss is the real tokens' summed loss divided
    by all positions; the gradient is that of the real tokens alone. The
    fused Ops compute it as they compute `sparse_softmax_crossentropy`.
    """
    losses = sparse_softmax_crossentropy(y_true, y_pred)
    targets = T.reshape(y_true, losses.shape, ndim=losses.ndim)
    return losses * T.neq(targets, PADDING_ID).astype(losses.dtype)


def _ifelse_branches(variable):
    """(condition, then, else) when `variable` is a one-output IfElse, else None."""
    node = variable.owner
    if node is None or not isinstance(node.op, IfElse) or len(node.outputs) != 1:
        return None
    return node.inputs


def _keras_epsilon():
    from keras import backend as K
    return K.epsilon()
