"""The `theano.scan` loops that run cells over time.

These loops are the reference implementation: every faster path must match
them. Tensors inside are time-major, (time, batch, features), because scan
iterates over the first axis.

Two loops cover every model:
- `run_encoder`: a cell reads a given input sequence (an encoder, or a stacked
  layer above a decoder).
- `run_feedback_decoder`: a stack of cells whose output at t-1, after a
  readout, is its input at t (Sutskever et al. 2014), optionally reading a
  constant context at every step as well (Cho et al. 2014).

One step of a feedback decoder is one function, `feedback_step`: the scan
loop here, `RecurrentDecoder.step` (seq2seq.decoders) and step-by-step search
(seq2seq.inference) all call it, so training and decoding share their maths.

Both take `implementation='scan'|'fused'|'auto'`. 'fused' runs an LSTM's
whole sequence in one C Op (`seq2seq.ops.fused_lstm`) and must match the scan loop;
where it does not apply (another cell or activation, truncated gradients, a
stack of decoder cells) the scan loop runs instead, with a
`FusedFallbackWarning` saying why. 'auto' (the layers' default) is 'fused'
where it applies and the scan loop elsewhere, without a warning.
"""
from __future__ import absolute_import

import collections
import warnings

import theano
import theano.tensor as T

from .ops import fused_lstm as fused

IMPLEMENTATIONS = ('auto', 'scan', 'fused')


class FusedFallbackWarning(UserWarning):
    """implementation='fused' was asked for where only the scan loop applies."""


def check_implementation(implementation):
    """Raise ValueError unless `implementation` is one of IMPLEMENTATIONS."""
    if implementation not in IMPLEMENTATIONS:
        raise ValueError('implementation must be one of %s, got %r'
                         % (', '.join(repr(i) for i in IMPLEMENTATIONS), implementation))


def _use_fused(implementation, reason):
    """Whether to run fused; warns when 'fused' was asked for but `reason`
    (a string) says it cannot run."""
    check_implementation(implementation)
    if implementation == 'scan':
        return False
    if implementation == 'auto':
        return reason is None
    if reason is not None:
        warnings.warn('implementation=\'fused\' falls back to the scan loop: %s' % reason,
                      FusedFallbackWarning, stacklevel=3)
        return False
    return True


DecodeStep = collections.namedtuple('DecodeStep', ['feedback', 'output', 'logits', 'states'])
DecodeStep.__doc__ = """What one step of a decoder layer gives step-by-step search.

# Fields
    feedback: (batch, dim), the value the layer feeds back as its next input.
    output: (batch, out_dim), the layer's output at this step (what its call
        returns at step t; `feedback` unless cells run above the feedback loop).
    logits: `output` before the layer's own activation (`output` when linear).
    states: the new states, per cell of the layer's `step_cells()`.
"""


def flatten_states(states):
    """[[h0, c0], [h1, c1]] -> [h0, c0, h1, c1]."""
    return [s for cell_states in states for s in cell_states]


def unflatten_states(flat, cells):
    """The inverse of `flatten_states` for `cells`' state sizes."""
    nested, start = [], 0
    for cell in cells:
        n = len(cell.state_sizes)
        nested.append(list(flat[start:start + n]))
        start += n
    return nested


def _keep_masked(mask_t, new, old):
    """new where mask_t is 1, old where it is 0 (a padded step)."""
    return T.switch(mask_t[:, None], new, old)


def run_encoder(cell, inputs, initial_states, mask=None, go_backwards=False,
                truncate_gradient=-1, implementation='scan'):
    """Run `cell` over `inputs`.

    # Arguments
        cell: a built cell.
        inputs: (batch, time, input_dim).
        initial_states: list of (batch, size), one per cell state.
        mask: optional (batch, time); where it is 0 the state is carried over.
        go_backwards: read the sequence from its last step to its first.
        truncate_gradient: scan's truncate_gradient (-1: full BPTT).
        implementation: 'scan', or 'fused' for `seq2seq.ops.fused_lstm.LSTMForward`.

    # Returns
        (outputs, final_states): outputs (batch, time, units) in the order
        read; final_states a list of (batch, size).
    """
    reason = fused.unsupported_reason(cell, truncate_gradient, inputs.dtype)
    if _use_fused(implementation, reason):
        return _fused_encoder(cell, inputs, initial_states, mask, go_backwards)
    # One GEMM for all steps, outside the loop.
    projected = cell.project_inputs(inputs).dimshuffle(1, 0, 2)  # (time, batch, G*u)
    sequences = [projected]
    if mask is not None:
        time_major_mask = T.cast(mask, 'int8').dimshuffle(1, 0)  # (time, batch)
        sequences.append(time_major_mask)
    n_states = len(initial_states)

    def step(*args):
        projected_t = args[0]                                   # (batch, G*u)
        mask_t = args[1] if mask is not None else None          # (batch,)
        first_state = 2 if mask is not None else 1
        states_tm1 = list(args[first_state:first_state + n_states])  # [(batch, size)]
        _, states_t = cell.step(projected_t, states_tm1)
        if mask_t is not None:
            states_t = [_keep_masked(mask_t, new, old)
                        for new, old in zip(states_t, states_tm1)]
        return states_t

    states_seq, _ = theano.scan(
        step,
        sequences=sequences,
        outputs_info=list(initial_states),
        non_sequences=cell.recurrent_weights,
        go_backwards=go_backwards,
        truncate_gradient=truncate_gradient,
        strict=True,
        name='encoder_scan')
    if n_states == 1 and not isinstance(states_seq, (list, tuple)):
        states_seq = [states_seq]
    outputs = states_seq[0].dimshuffle(1, 0, 2)                   # (batch, time, u)
    final_states = [s[-1] for s in states_seq]                    # [(batch, size)]
    return outputs, final_states


def feedback_step(cells, readout, x_tm1, states_tm1, input_extras=None, input_masks=None,
                  readout_extra=None):
    """One step of a stack of cells whose readout is fed back as the next input.

        z^1_t = (x_{t-1} * m_1) W_1 + b_1 + e_1
        h^k_t, s^k_t = cell_k(z^k_t, s^k_{t-1});   z^k_t = (h^{k-1}_t * m_k) W_k + b_k + e_k
        y_t = h^top_t W_y + b_y + r_t                       (the readout, no activation)

    # Arguments
        cells: the stack, bottom first; each built.
        readout: (W_y, b_y).
        x_tm1: (batch, dim), the input of this step.
        states_tm1: per cell, a list of (batch, size).
        input_extras: optional per-cell list of terms e_k (or None) added to
            that cell's projected input (a projected context, peek, attention).
        input_masks: optional per-cell list of multiplicative masks m_k (or
            None) on that cell's input (dropout, the same at every step).
        readout_extra: optional r_t added to the readout (attention context).

    # Returns
        (y_t, states_t): the readout (batch, dim) before any activation and
        the new states per cell.
    """
    n_cells = len(cells)
    input_extras = input_extras if input_extras is not None else [None] * n_cells
    input_masks = input_masks if input_masks is not None else [None] * n_cells
    readout_weight, readout_bias = readout
    layer_input = x_tm1
    states_t = []
    for cell, cell_states, extra, mask in zip(cells, states_tm1, input_extras, input_masks):
        if mask is not None:
            layer_input = layer_input * mask                      # (batch, width)
        projected = cell.project_inputs(layer_input)              # (batch, G*u)
        if extra is not None:
            projected = projected + extra
        layer_input, new_states = cell.step(projected, cell_states)  # (batch, u)
        states_t.append(new_states)
    y_t = T.dot(layer_input, readout_weight) + readout_bias       # (batch, dim)
    if readout_extra is not None:
        y_t = y_t + readout_extra
    return y_t, states_t


def run_feedback_decoder(cells, readout, first_input, initial_states, n_steps,
                         context_projections=None, truncate_gradient=-1,
                         implementation='scan'):
    """Generate `n_steps` outputs, feeding each back as the next input.

        x_0 = first_input
        h^0_t = cell_0(x_{t-1} W + [context V] , h^0_{t-1}), ...
        h^k_t = cell_k(h^{k-1}_t, h^k_{t-1})            (k > 0: a stack)
        x_t = readout(h^top_t)                           output at step t

    # Arguments
        cells: the stack, bottom first; each built.
        readout: (weight, bias), mapping the top cell's output to x_t;
            x_t must have first_input's size.
        first_input: (batch, dim), the input of the first step.
        initial_states: per cell, a list of (batch, size).
        n_steps: number of outputs.
        context_projections: optional per-cell list of (batch, G*u) terms
            added to that cell's projected input at every step (the
            Cho-style decoder's projected context; computed once outside).
        truncate_gradient: scan's truncate_gradient.
        implementation: 'scan', or 'fused' (one cell only) for
            `seq2seq.ops.fused_lstm.LSTMForward`; see `_fused_feedback_decoder`.

    # Returns
        (outputs, final_states): outputs (batch, n_steps, dim); final_states
        per cell, a list of (batch, size).
    """
    if len(cells) != 1:
        reason = 'the fused decoder runs one cell, got a stack of %d' % len(cells)
    elif not isinstance(n_steps, int) or n_steps < 1:
        reason = 'the fused decoder needs n_steps as a positive int, got %r' % (n_steps,)
    else:
        reason = fused.unsupported_reason(cells[0], truncate_gradient, first_input.dtype)
    if _use_fused(implementation, reason):
        context = context_projections[0] if context_projections is not None else None
        return _fused_feedback_decoder(cells[0], readout, first_input, initial_states[0],
                                       n_steps, context)
    readout_weight, readout_bias = readout
    if context_projections is None:
        context_projections = [None] * len(cells)
    constants = [c for c in context_projections if c is not None]
    weights = [w for cell in cells for w in [cell.kernel, cell.bias] + cell.recurrent_weights]
    n_flat = len(flatten_states(initial_states))

    def step(*args):
        x_tm1 = args[0]                                           # (batch, dim)
        states_tm1 = unflatten_states(args[1:1 + n_flat], cells)  # per cell [(batch, size)]
        x_t, states_t = feedback_step(cells, readout, x_tm1, states_tm1,
                                      context_projections)       # (batch, dim)
        return [x_t] + flatten_states(states_t)

    results, _ = theano.scan(
        step,
        outputs_info=[first_input] + flatten_states(initial_states),
        non_sequences=constants + weights + [readout_weight, readout_bias],
        n_steps=n_steps,
        truncate_gradient=truncate_gradient,
        strict=True,
        name='decoder_scan')
    outputs = results[0].dimshuffle(1, 0, 2)                      # (batch, n_steps, dim)
    final_states = unflatten_states([r[-1] for r in results[1:]], cells)
    return outputs, final_states


def _fused_encoder(cell, inputs, initial_states, mask, go_backwards):
    """`run_encoder` for an LSTMCell, with `seq2seq.ops.fused_lstm.LSTMForward`."""
    h0, c0 = initial_states
    # Time-major before the input GEMM, so that projected comes out
    # C-contiguous (time, batch, 4u) as the Op reads it.
    # x W only: the Op adds the bias at every step and sums its gradient.
    projected = T.dot(inputs.dimshuffle(1, 0, 2), cell.kernel)  # (time, batch, 4u)
    time_major_mask = None
    if mask is not None:
        time_major_mask = T.cast(mask, 'int8').dimshuffle(1, 0)  # (time, batch)
    if go_backwards:
        # The scan reads the steps last first and returns them in that order.
        projected = projected[::-1]
        if time_major_mask is not None:
            time_major_mask = time_major_mask[::-1]
    h_seq, c_seq = fused.lstm_sequence(
        projected, h0, c0, cell.recurrent_kernel, mask=time_major_mask,
        inner_activation=fused.inner_activation_name(cell.inner_activation), bias=cell.bias)
    outputs = h_seq.dimshuffle(1, 0, 2)                           # (batch, time, u)
    return outputs, [h_seq[-1], c_seq[-1]]


def _fused_feedback_decoder(cell, readout, first_input, initial_states, n_steps, context):
    """`run_feedback_decoder` for one LSTMCell, with `seq2seq.ops.fused_lstm.LSTMForward`.

    The output fed back is linear in h, so the feedback folds into the
    recurrent kernel. With x_t = h_t Wx + bx (the readout):

        z_0 = v W + b + ctx + h_0 U                       (step 0, as in scan)
        z_t = x_{t-1} W + b + ctx + h_{t-1} U
            = h_{t-1} (U + Wx W) + (bx W + b + ctx)       (t >= 1)

    so steps 1 .. n_steps-1 are an LSTM with recurrent kernel U + Wx W and a
    projected input constant over time. The outputs x_t = h_t Wx + bx are
    then one GEMM over all steps, and Theano differentiates U + Wx W.
    """
    readout_weight, readout_bias = readout
    first_projected = cell.project_inputs(first_input)           # (batch, 4u)
    if context is not None:
        first_projected = first_projected + context
    h_1, (_, c_1) = cell.step(first_projected, list(initial_states))  # (batch, u)
    if n_steps == 1:
        h_seq = T.shape_padleft(h_1)                              # (1, batch, u)
        final_states = [h_1, c_1]
    else:
        feedback_kernel = cell.recurrent_kernel + T.dot(readout_weight, cell.kernel)  # (u, 4u)
        constant = T.dot(readout_bias, cell.kernel) + cell.bias  # (4u,)
        n_gates = cell.n_gates * cell.units
        if context is not None:
            # The same context at every step: broadcast in time, not repeated.
            projected = T.shape_padleft(context)                  # (1, batch, 4u)
        else:
            projected = T.patternbroadcast(
                T.zeros((1, 1, n_gates), dtype=first_input.dtype), (True, True, False))
        rest_h, rest_c = fused.lstm_sequence(
            projected, h_1, c_1, feedback_kernel,
            inner_activation=fused.inner_activation_name(cell.inner_activation),
            bias=constant, n_steps=n_steps - 1)                   # (n_steps-1, batch, u)
        h_seq = T.concatenate([T.shape_padleft(h_1), rest_h])     # (n_steps, batch, u)
        final_states = [rest_h[-1], rest_c[-1]]
    outputs = T.dot(h_seq, readout_weight) + readout_bias         # (n_steps, batch, dim)
    return outputs.dimshuffle(1, 0, 2), [final_states]
