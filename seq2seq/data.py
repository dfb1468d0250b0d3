"""Data helpers: integer sequences, one-hot targets and a toy task."""
from __future__ import absolute_import

import numpy as np


def one_hot(ids, vocab_size, dtype='float32'):
    """(..., ) int ids -> (..., vocab_size) one-hot vectors."""
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError('ids must lie in [0, vocab_size=%d), got values in [%d, %d]'
                         % (vocab_size, ids.min(), ids.max()))
    eye = np.eye(vocab_size, dtype=dtype)
    return eye[ids]


def reversal_task(n_samples, length, vocab_size, seed=0):
    """Random sequences and their reversals: (x, y), both (n_samples, length).

    Token 0 is left out (it is the padding id of Embedding(mask_zero=True)).
    """
    if vocab_size < 2:
        raise ValueError('vocab_size must be at least 2 (token 0 is reserved), got %r'
                         % (vocab_size,))
    rng = np.random.RandomState(seed)
    x = rng.randint(1, vocab_size, size=(n_samples, length))
    return x, x[:, ::-1].copy()


def targets_with_eos(sequences, length, eos_id, pad_id=0):
    """Target sequences ending with `eos_id`, padded with `pad_id`.

    The convention the decoders' search expects: a target is its tokens, then
    EOS, then padding up to `length`; decoding stops after EOS.

    # Arguments
        sequences: iterable of token id sequences.
        length: the output length (room for the longest sequence and EOS).
        eos_id, pad_id: the end-of-sequence and padding ids.

    # Returns
        int32 array (n_sequences, length).
    """
    sequences = [list(s) for s in sequences]
    longest = max(len(s) for s in sequences) if sequences else 0
    if longest + 1 > length:
        raise ValueError('length=%d leaves no room for EOS after a sequence of %d tokens'
                         % (length, longest))
    targets = np.full((len(sequences), length), pad_id, dtype='int32')
    for row, sequence in enumerate(sequences):
        targets[row, :len(sequence)] = sequence
        targets[row, len(sequence)] = eos_id
    return targets
