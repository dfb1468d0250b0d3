"""Running cells over time: the encoder's scan loop and the fused loops.

The `theano.scan` loops are the reference implementation: every faster path
must match them. Tensors inside are time-major, (time, batch, features),
because scan iterates over the first axis.

- `run_encoder`: a cell reads a given input sequence (an encoder, or a cell
  above a decoder's feedback loop), by the scan loop or by one C Op: an
  LSTM's `seq2seq.ops.fused_lstm`, a GRU's `seq2seq.ops.fused_gru`
  (`encoder_fused_reason` says why neither applies).
- `fused_feedback_loop`: the fused kernel of a free-running decoder of one
  LSTM cell; the decoder's scan loop and its step are
  `seq2seq.layers.decoder_core.Decoder`.

`implementation='scan'|'fused'|'auto'` (`use_fused`): 'fused' runs a fused
kernel and must match the scan loop; where none applies (another
activation, truncated gradients, a free-running GRU decoder or stack of cells) the scan loop
runs instead, with a `FusedFallbackWarning` saying why. 'auto' (the layers'
default) is 'fused' where it applies and the scan loop elsewhere, without a
warning.
"""
from __future__ import absolute_import

import collections
import warnings

import theano
import theano.tensor as T

from ..ops import fused_gru, fused_lstm as fused
from ..util.checks import owned

IMPLEMENTATIONS = ('auto', 'scan', 'fused')


class FusedFallbackWarning(UserWarning):
    """implementation='fused' was asked for where only the scan loop applies."""


def check_implementation(implementation, owner=None):
    """Raise ValueError unless `implementation` is one of IMPLEMENTATIONS
    (`owner`, the layer or model function asking, starts the message)."""
    if not isinstance(implementation, str) or implementation not in IMPLEMENTATIONS:
        raise ValueError(owned(owner, 'implementation must be one of %s, got %r'
                               % (', '.join(repr(i) for i in IMPLEMENTATIONS), implementation)))


def use_fused(implementation, reason):
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


DecodeStep = collections.namedtuple('DecodeStep',
                                    ['feedback', 'output', 'logits', 'states', 'attention'])
DecodeStep.__doc__ = """What one step of a decoder layer gives step-by-step search.

# Fields
    feedback: (batch, dim), the value the layer feeds back as its next input.
    output: (batch, out_dim), the layer's output at this step (what its call
        returns at step t; `feedback` unless cells run above the feedback loop).
    logits: `output` before the layer's own activation (`output` when linear).
    states: the new states, per cell of the layer's `step_cells()`.
    attention: the attention weights (batch, L) of an attending decoder, else None.
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
        implementation: 'scan', or 'fused' for `seq2seq.ops.fused_lstm.LSTMForward`
            (an LSTM) or `seq2seq.ops.fused_gru.GRUForward` (a GRU); 'auto'
            for 'fused' where it applies (`encoder_fused_reason`).

    # Returns
        (outputs, final_states): outputs (batch, time, units) in the order
        read; final_states a list of (batch, size).
    """
    reason = encoder_fused_reason(cell.kernel_spec(), truncate_gradient, inputs.dtype)
    if use_fused(implementation, reason):
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


# The cells `run_encoder` runs fused, by their kernel_spec().kind.
_ENCODER_OPS = {'lstm': fused, 'gru': fused_gru}


def encoder_fused_reason(spec, truncate_gradient=-1, dtype=None):
    """Why `run_encoder` cannot run the cell `spec` (its
    `seq2seq.ops.specs.CellSpec`) on a fused Op, or None when it can."""
    if spec.kind not in _ENCODER_OPS:
        return 'the fused encoders run LSTM and GRU cells, got %s' % spec.kind
    return _ENCODER_OPS[spec.kind].unsupported_reason(spec, truncate_gradient, dtype)


def _fused_encoder(cell, inputs, initial_states, mask, go_backwards):
    """`run_encoder` for an LSTMCell (`seq2seq.ops.fused_lstm.LSTMForward`)
    or a GRUCell (`seq2seq.ops.fused_gru.GRUForward`)."""
    # Time-major before the input GEMM, so that projected comes out
    # C-contiguous (time, batch, G*u) as the Ops read it.
    # x W only: the Ops add the bias at every step and sum its gradient.
    projected = T.dot(inputs.dimshuffle(1, 0, 2), cell.kernel)  # (time, batch, G*u)
    time_major_mask = None
    if mask is not None:
        time_major_mask = T.cast(mask, 'int8').dimshuffle(1, 0)  # (time, batch)
    if go_backwards:
        # The scan reads the steps last first and returns them in that order.
        projected = projected[::-1]
        if time_major_mask is not None:
            time_major_mask = time_major_mask[::-1]
    h_seq, final_states = fused_cell_sequence(cell, projected, initial_states,
                                              time_major_mask)  # (time, batch, u)
    outputs = h_seq.dimshuffle(1, 0, 2)                           # (batch, time, u)
    return outputs, final_states


def fused_cell_sequence(cell, projected, initial_states, time_major_mask=None):
    """An LSTMCell or GRUCell over every step on its fused Op
    (`seq2seq.ops.fused_lstm.LSTMForward`, `seq2seq.ops.fused_gru.GRUForward`).

    # Arguments
        cell: the built cell.
        projected: (time, batch, G*u), x_t W for every step (the Op adds the
            cell's bias at every step and sums its gradient).
        initial_states: list of (batch, size), the cell's states.
        time_major_mask: optional int8 (time, batch); where 0 the states
            carry over.

    # Returns
        (h_seq (time, batch, u), final states: a list of (batch, size)).
    """
    spec = cell.kernel_spec()
    if spec.kind == 'gru':
        h_seq = fused_gru.gru_sequence(
            projected, initial_states[0], cell.recurrent_kernel, mask=time_major_mask,
            inner_activation=spec.inner_activation, bias=cell.bias)  # (time, batch, u)
        return h_seq, [h_seq[-1]]
    h0, c0 = initial_states
    h_seq, c_seq = fused.lstm_sequence(
        projected, h0, c0, cell.recurrent_kernel, mask=time_major_mask,
        inner_activation=spec.inner_activation, bias=cell.bias)  # (time, batch, u) each
    return h_seq, [h_seq[-1], c_seq[-1]]


def fused_feedback_loop(cell, readout, first_input, initial_states, n_steps, context=None):
    """A free-running decoder of one LSTM cell with `seq2seq.ops.fused_lstm.LSTMForward`.

    The output fed back is linear in h, so the feedback folds into the
    recurrent kernel. With x_t = h_t Wx + bx (the readout):

        z_0 = v W + b + ctx + h_0 U                       (step 0, as in scan)
        z_t = x_{t-1} W + b + ctx + h_{t-1} U
            = h_{t-1} (U + Wx W) + (bx W + b + ctx)       (t >= 1)

    so steps 1 .. n_steps-1 are an LSTM with recurrent kernel U + Wx W and a
    projected input constant over time. The outputs x_t = h_t Wx + bx are
    then one GEMM over all steps, and Theano differentiates U + Wx W.

    # Arguments
        cell: a built LSTMCell (`fused.unsupported_reason` of its spec None).
        readout: (Wx, bx).
        first_input: v (batch, dim); initial_states: [h_0, c_0].
        n_steps: the number of outputs, an int.
        context: optional (batch, 4u), added to every step's projected input.

    # Returns
        (outputs (batch, n_steps, dim), [h, c] final).
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
        if context is not None:
            # The same context at every step: broadcast in time, not repeated.
            projected = T.shape_padleft(context)                  # (1, batch, 4u)
        else:
            projected = T.patternbroadcast(
                T.zeros((1, 1, cell.n_gates * cell.units), dtype=first_input.dtype),
                (True, True, False))
        rest_h, rest_c = fused.lstm_sequence(
            projected, h_1, c_1, feedback_kernel,
            inner_activation=cell.kernel_spec().inner_activation,
            bias=constant, n_steps=n_steps - 1)                   # (n_steps-1, batch, u)
        h_seq = T.concatenate([T.shape_padleft(h_1), rest_h])     # (n_steps, batch, u)
        final_states = [rest_h[-1], rest_c[-1]]
    outputs = T.dot(h_seq, readout_weight) + readout_bias         # (n_steps, batch, dim)
    return outputs.dimshuffle(1, 0, 2), final_states
