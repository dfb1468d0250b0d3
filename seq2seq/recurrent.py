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
"""
from __future__ import absolute_import

import theano
import theano.tensor as T


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
                truncate_gradient=-1):
    """Run `cell` over `inputs`.

    # Arguments
        cell: a built cell.
        inputs: (batch, time, input_dim).
        initial_states: list of (batch, size), one per cell state.
        mask: optional (batch, time); where it is 0 the state is carried over.
        go_backwards: read the sequence from its last step to its first.
        truncate_gradient: scan's truncate_gradient (-1: full BPTT).

    # Returns
        (outputs, final_states): outputs (batch, time, units) in the order
        read; final_states a list of (batch, size).
    """
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


def run_feedback_decoder(cells, readout, first_input, initial_states, n_steps,
                         context_projections=None, truncate_gradient=-1):
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

    # Returns
        (outputs, final_states): outputs (batch, n_steps, dim); final_states
        per cell, a list of (batch, size).
    """
    readout_weight, readout_bias = readout
    if context_projections is None:
        context_projections = [None] * len(cells)
    constants = [c for c in context_projections if c is not None]
    weights = [w for cell in cells for w in [cell.kernel, cell.bias] + cell.recurrent_weights]
    n_flat = len(flatten_states(initial_states))

    def step(*args):
        x_tm1 = args[0]                                           # (batch, dim)
        states_tm1 = unflatten_states(args[1:1 + n_flat], cells)  # per cell [(batch, size)]
        layer_input = x_tm1
        states_t = []
        for cell, cell_states, context in zip(cells, states_tm1, context_projections):
            projected = cell.project_inputs(layer_input)          # (batch, G*u)
            if context is not None:
                projected = projected + context
            layer_input, new_states = cell.step(projected, cell_states)  # (batch, u)
            states_t.append(new_states)
        x_t = T.dot(layer_input, readout_weight) + readout_bias  # (batch, dim)
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
