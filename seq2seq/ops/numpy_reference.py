"""The maths of the fused Ops in numpy: what their `perform` runs where no C
compiler is at hand, and the reference the tests hold the C code to.

The Theano graphs of the layers (`seq2seq.layers`) are the reference of the
package; these functions are the same maths step by step, written once for
the three Ops (`fused_lstm`, `fused_attention`, `fused_decode`) and the tests.
Gate order i, f, c, o, as `seq2seq.layers.cells.LSTMCell`.
"""
from __future__ import absolute_import

import numpy as np


def activate(z, inner_activation):
    """A gate's activation: 'hard_sigmoid' (as Theano computes it) or 'sigmoid'."""
    if inner_activation == 'hard_sigmoid':
        # Theano's: clip(0.2 z + 0.5, 0, 1), in z's dtype.
        return np.clip(z * z.dtype.type(0.2) + z.dtype.type(0.5), 0, 1)
    return 1 / (1 + np.exp(-z))


def activation_derivative(z, activated, inner_activation):
    """d activated / d z, as Theano's gradients compute it."""
    if inner_activation == 'hard_sigmoid':
        # Theano's clip passes the gradient where min <= x <= max (inclusive).
        linear = z * z.dtype.type(0.2) + z.dtype.type(0.5)
        inside = (linear >= 0) & (linear <= 1)
        return inside * z.dtype.type(0.2)
    return activated * (1 - activated)


def split_gates(gates, units):
    """The four gate blocks (i, f, c, o) of a stacked (..., 4 * units) array."""
    return (gates[..., :units], gates[..., units:2 * units],
            gates[..., 2 * units:3 * units], gates[..., 3 * units:])


def lstm_step(z, c_prev, inner_activation):
    """One step of the cell from its pre-activations z (batch, 4u) and
    c_{t-1}: (h_t, c_t, gates), gates = (z_i, z_f, tanh(z_c), z_o)."""
    z_i, z_f, z_c, z_o = split_gates(z, z.shape[-1] // 4)
    i = activate(z_i, inner_activation)
    f = activate(z_f, inner_activation)
    g = np.tanh(z_c)
    o = activate(z_o, inner_activation)
    c = f * c_prev + i * g
    h = o * np.tanh(c)
    return h, c, np.concatenate([z_i, z_f, g, z_o], axis=1)


def lstm_step_backward(gates, c, c_prev, dh, dc, inner_activation):
    """The backward of `lstm_step`: from the step's gates, c_t and c_{t-1},
    and the gradients dh of h_t and dc of c_t (from outside and from step
    t+1; not yet through h_t), (dz (batch, 4u), dL/dc_{t-1} through f)."""
    z_i, z_f, g, z_o = split_gates(gates, gates.shape[-1] // 4)
    i = activate(z_i, inner_activation)
    f = activate(z_f, inner_activation)
    o = activate(z_o, inner_activation)
    tanh_c = np.tanh(c)
    dc = dc + dh * o * (1 - tanh_c * tanh_c)
    dz = np.concatenate([
        dc * g * activation_derivative(z_i, i, inner_activation),
        dc * c_prev * activation_derivative(z_f, f, inner_activation),
        dc * i * (1 - g * g),
        dh * tanh_c * activation_derivative(z_o, o, inner_activation)], axis=1)
    return dz, dc * f


def masked_softmax(energy, mask):
    """The scan's masked softmax over the last axis: 0 on masked steps, and
    all 0 for a row with no unmasked step."""
    keep = mask != 0
    masked = np.where(keep, energy, -np.inf)
    top = masked.max(axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0)
    weights = np.where(keep, np.exp(masked - top), 0).astype(energy.dtype)
    total = np.maximum(weights.sum(axis=-1, keepdims=True), energy.dtype.type(1e-12))
    return weights / total


def attention_weights(projection, query, attention_vector, mask):
    """Additive attention's weights: e_j = v . tanh(P_j + q) and alpha the
    masked softmax of e over j. projection P (B, L, a), query q (B, a),
    v (a,), mask (B, L). Returns (alpha (B, L), tanh(P + q) (B, L, a), which
    the backward pass reads)."""
    energy = np.tanh(projection + query[:, None, :])                 # (B, L, a)
    return masked_softmax(energy.dot(attention_vector), mask), energy


def log_softmax(logits):
    """log(softmax) of each row, computed without overflow."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
