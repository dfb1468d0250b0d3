"""The maths of the fused Ops in numpy: what their `perform` runs where no C
compiler is at hand, and the reference the tests hold the C code to.

The Theano graphs of the layers (`seq2seq.layers`) are the reference of the
package; these functions are the same maths step by step, written once for
the Ops (`fused_lstm`, `fused_gru`, `fused_attention`, `fused_decode`) and
the tests. LSTM gate order i, f, c, o, as `seq2seq.layers.cells.LSTMCell`;
GRU gate order z, r, h, as `seq2seq.layers.cells.GRUCell`.
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


def gru_step(projected, h_prev, recurrent_kernel, inner_activation):
    """One step of the GRU cell (Keras 2.3.1's reset_after=False, gate order
    z, r, h) from the projected input x_t W + b (batch, 3u), h_{t-1} (batch, u)
    and the recurrent kernel U (u, 3u):

        (z_z, z_r) = (x_t W + b)_zr + h_{t-1} U_zr
        z_t = inner_activation(z_z)            r_t = inner_activation(z_r)
        hh_t = tanh((x_t W + b)_h + (r_t * h_{t-1}) U_h)
        h_t = z_t * h_{t-1} + (1 - z_t) * hh_t

    Returns (h_t, gates), gates = (z_z, z_r, hh_t) (batch, 3u): the gates'
    pre-activations (cheap to recompute from, and exact for hard_sigmoid's
    gradient on its bounds) and the candidate after its tanh."""
    units = h_prev.shape[1]
    zr = projected[:, :2 * units] + h_prev.dot(recurrent_kernel[:, :2 * units])  # (batch, 2u)
    z = activate(zr[:, :units], inner_activation)                              # (batch, u)
    r = activate(zr[:, units:], inner_activation)                              # (batch, u)
    candidate = np.tanh(projected[:, 2 * units:] +
                        (r * h_prev).dot(recurrent_kernel[:, 2 * units:]))     # (batch, u)
    h = z * h_prev + (1 - z) * candidate                                       # (batch, u)
    return h, np.concatenate([zr, candidate], axis=1)


def gru_step_backward(gates, h_prev, recurrent_kernel, dh, inner_activation):
    """The backward of `gru_step`: from the step's gates, h_{t-1} and dh, the
    gradient of h_t (from outside and from step t+1),

        d_hh = dh (1 - z) (1 - hh^2)                 (the candidate's pre-activation)
        d_zz = dh (h_{t-1} - hh) z'                  d_rh = d_hh U_h^T
        d_zr = d_rh h_{t-1} r'
        dh_{t-1} = dh z + d_rh r + (d_zz, d_zr) U_zr^T

    where x' is the gate activation's derivative. Returns (dz (batch, 3u) =
    (d_zz, d_zr, d_hh), dh_{t-1}, r * h_{t-1}, the input of U_h, whose
    gradient is sum_t (r * h_{t-1})^T d_hh)."""
    units = h_prev.shape[1]
    z_z, z_r, candidate = gates[:, :units], gates[:, units:2 * units], gates[:, 2 * units:]
    z = activate(z_z, inner_activation)
    r = activate(z_r, inner_activation)
    d_candidate = dh * (1 - z) * (1 - candidate * candidate)                   # (batch, u)
    d_update = dh * (h_prev - candidate) * activation_derivative(z_z, z, inner_activation)
    d_reset_h = d_candidate.dot(recurrent_kernel[:, 2 * units:].T)            # (batch, u)
    d_reset = d_reset_h * h_prev * activation_derivative(z_r, r, inner_activation)
    dz = np.concatenate([d_update, d_reset, d_candidate], axis=1)              # (batch, 3u)
    dh_prev = dh * z + d_reset_h * r + dz[:, :2 * units].dot(recurrent_kernel[:, :2 * units].T)
    return dz, dh_prev, r * h_prev


def gru_forward(projected, h0, recurrent_kernel, mask, inner_activation):
    """A GRU over a whole sequence: projected (time, batch, 3u), x_t W + b
    per step; h0 (batch, u); mask None or (time, batch), where 0 carries
    h over. Returns (h_seq (time, batch, u), gates (time, batch, 3u))."""
    time, batch, _ = projected.shape
    h_seq = np.empty((time, batch, h0.shape[1]), dtype=projected.dtype)
    gates = np.empty_like(projected)
    h = h0
    for t in range(time):
        h_new, gates[t] = gru_step(projected[t], h, recurrent_kernel, inner_activation)
        if mask is not None:
            h_new = np.where(mask[t][:, None] != 0, h_new, h)                  # (batch, u)
        h = h_seq[t] = h_new
    return h_seq, gates


def gru_backward(h0, recurrent_kernel, h_seq, gates, dh_seq, mask, inner_activation):
    """Back-propagation through time of `gru_forward`, from dh_seq
    (time, batch, u), the gradient reaching each step's h from outside.

    Returns (d_projected (time, batch, 3u), dh0, d_recurrent_kernel)."""
    time, batch, units = h_seq.shape
    d_projected = np.zeros(gates.shape, dtype=h_seq.dtype)
    d_recurrent_kernel = np.zeros(recurrent_kernel.shape, dtype=h_seq.dtype)
    dh_next = np.zeros((batch, units), dtype=h_seq.dtype)   # dL/dh_t from step t+1
    for t in reversed(range(time)):
        h_prev = h_seq[t - 1] if t > 0 else h0                                # (batch, u)
        dh = dh_seq[t] + dh_next                                               # (batch, u)
        dz, dh_prev, reset_h = gru_step_backward(gates[t], h_prev, recurrent_kernel, dh,
                                                 inner_activation)
        if mask is not None:
            # A padded step passed h through unchanged: so does its
            # gradient, and its gates get none.
            keep = mask[t][:, None] != 0                                       # (batch, 1)
            dz = np.where(keep, dz, 0)
            dh_prev = np.where(keep, dh_prev, dh)
        d_projected[t] = dz
        d_recurrent_kernel[:, :2 * units] += h_prev.T.dot(dz[:, :2 * units])
        d_recurrent_kernel[:, 2 * units:] += reset_h.T.dot(dz[:, 2 * units:])
        dh_next = dh_prev
    return d_projected, dh_next, d_recurrent_kernel


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
