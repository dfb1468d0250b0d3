"""Encoder layers: a sequence in, one vector (or every step's vector) out.

    RecurrentEncoder      (batch, time, input_dim) -> (batch, output_dim), or
                          the whole sequence (return_sequences=True); an LSTM
                          or a GRU (`LSTMEncoder` is the same class, its old name)
    BidirectionalEncoder  a forward and a backward encoder, concatenated step
                          by step (Bahdanau et al. 2015)
"""
from __future__ import absolute_import

import theano.tensor as T

from ..util.checks import check_positive_int
from .arguments import layer_owner
from .base import CellLayer, input_shape_kwargs
from .recurrent import run_encoder


class RecurrentEncoder(CellLayer):
    """Encodes a sequence into one vector: the cell's last output (an LSTM
    by default, a GRU with cell='gru'). `LSTMEncoder` is the same class.

    Called on a sequence it starts from its own state (zeros, or the
    remembered state); called on `[sequence, h, c]` (a GRU: `[sequence, h]`)
    it starts from the given state, e.g. the final state of the layer below.

    # Arguments
        output_dim: size of the LSTM's h and c (the output vector).
        input_dim, input_length: the input's shape, when it is the first layer.
        return_sequences: output every step's h, (batch, time, output_dim),
            to stack another encoder on top.
        return_state: also output the final states: `[output, h, c]`.
        go_backwards: read the sequence last step first (outputs in the order
            read).
        cell: 'lstm' or 'gru' (see `CellLayer`).
        (and the arguments of `StatefulRNN` and of the cell)

    A mask (e.g. from `Embedding(mask_zero=True)`) makes padded steps carry
    the state over, so the final state is that of the unpadded sequence,
    whether the padding is on the left or on the right.
    """

    def __init__(self, output_dim, input_dim=None, input_length=None,
                 return_sequences=False, return_state=False, go_backwards=False, **kwargs):
        owner = layer_owner(self, kwargs)
        check_positive_int('output_dim', output_dim, owner=owner)
        check_positive_int('input_dim', input_dim, allow_none=True, owner=owner)
        check_positive_int('input_length', input_length, allow_none=True, owner=owner)
        kwargs = input_shape_kwargs(kwargs, input_dim, input_length,
                                     kwargs.get('batch_size'), kwargs.get('remember_state', False))
        super(RecurrentEncoder, self).__init__(**kwargs)
        self.output_dim = output_dim
        self.input_dim = input_dim
        self.input_length = input_length
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.go_backwards = go_backwards
        self.supports_masking = True
        self.cell = self.new_cell(output_dim)
        self._create_state_variables()

    def recurrent_cells(self):
        return [self.cell]

    def build(self, input_shape):
        sequence_shape = input_shape[0] if isinstance(input_shape, list) else input_shape
        if len(sequence_shape) != 3:
            raise ValueError('%s expects input of shape (batch, time, input_dim), got %s'
                             % (self.name, sequence_shape))
        if isinstance(input_shape, list) and len(input_shape) != 1 + len(self.cell.state_sizes):
            raise ValueError('%s takes a sequence and %d initial states (%s), got %d inputs'
                             % (self.name, len(self.cell.state_sizes),
                                ', '.join(self.cell.state_names), len(input_shape)))
        self.cell.build(self, sequence_shape[-1], '')
        self.built = True

    def call(self, inputs, mask=None):
        if isinstance(inputs, list):
            sequence, states = inputs[0], list(inputs[1:])
            mask = mask[0] if isinstance(mask, list) else mask
        else:
            sequence, states = inputs, self.initial_states(0, inputs)
        outputs, final_states = run_encoder(
            self.cell, sequence, states, mask=mask,
            go_backwards=self.go_backwards, truncate_gradient=self.truncate_gradient,
            implementation=self.implementation)
        self.remember([final_states], sequence)
        output = outputs if self.return_sequences else final_states[0]
        if self.return_state:
            return [output] + list(final_states)
        return output

    def compute_output_shape(self, input_shape):
        sequence_shape = input_shape[0] if isinstance(input_shape, list) else input_shape
        if self.return_sequences:
            output_shape = (sequence_shape[0], sequence_shape[1], self.output_dim)
        else:
            output_shape = (sequence_shape[0], self.output_dim)
        if self.return_state:
            return [output_shape] + [(sequence_shape[0], size) for size in self.cell.state_sizes]
        return output_shape

    def compute_mask(self, inputs, mask=None):
        mask = mask[0] if isinstance(mask, list) else mask
        output_mask = mask if self.return_sequences else None
        if output_mask is not None and self.go_backwards:
            output_mask = output_mask[:, ::-1]   # the outputs come in the order read
        if self.return_state:
            return [output_mask] + [None] * len(self.cell.state_sizes)
        return output_mask

    def get_config(self):
        config = {'output_dim': self.output_dim, 'input_dim': self.input_dim,
                  'input_length': self.input_length,
                  'return_sequences': self.return_sequences,
                  'return_state': self.return_state,
                  'go_backwards': self.go_backwards}
        base = super(RecurrentEncoder, self).get_config()
        return dict(list(base.items()) + list(config.items()))


# The name of the last release, when the encoder could only hold an LSTM; the
# same class, so both names load a saved model.
LSTMEncoder = RecurrentEncoder


class BidirectionalEncoder(CellLayer):
    """Two encoders over the same sequence, one reading it backwards; their
    outputs are concatenated step by step (Bahdanau et al. 2015):

        H_j = [h_fwd_j ; h_bwd_j]       (batch, time, 2 * units_per_direction)

    Without `return_sequences` the output is [last forward h ; last backward
    h]. Backward outputs are put back in input order, so H_j describes input
    step j from both sides.

    # Arguments
        output_dim: size of the concatenated output (even: half per direction).
        return_sequences: output every step.
        return_state: also output the final states, forward then backward:
            `[output, h_fwd, c_fwd, h_bwd, c_bwd]` (a GRU: `[output, h_fwd, h_bwd]`).
        cell: 'lstm' or 'gru'.
        (and the arguments of `StatefulRNN` and of the cells)
    """

    def __init__(self, output_dim, return_sequences=True, return_state=False, **kwargs):
        check_positive_int('output_dim', output_dim, owner=layer_owner(self, kwargs))
        if output_dim % 2:
            raise ValueError('output_dim of a BidirectionalEncoder must be even (half '
                             'per direction), got %d' % output_dim)
        super(BidirectionalEncoder, self).__init__(**kwargs)
        self.output_dim = output_dim
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.supports_masking = True
        self.forward_cell = self.new_cell(output_dim // 2)
        self.backward_cell = self.new_cell(output_dim // 2)
        self._create_state_variables()

    def recurrent_cells(self):
        return [self.forward_cell, self.backward_cell]

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError('%s expects input of shape (batch, time, input_dim), got %s'
                             % (self.name, input_shape))
        self.forward_cell.build(self, input_shape[-1], 'forward_')
        self.backward_cell.build(self, input_shape[-1], 'backward_')
        self.built = True

    def call(self, inputs, mask=None):
        forward, forward_finals = run_encoder(
            self.forward_cell, inputs, self.initial_states(0, inputs), mask=mask,
            truncate_gradient=self.truncate_gradient, implementation=self.implementation)
        backward, backward_finals = run_encoder(
            self.backward_cell, inputs, self.initial_states(1, inputs), mask=mask,
            go_backwards=True, truncate_gradient=self.truncate_gradient,
            implementation=self.implementation)                 # last step first
        self.remember([forward_finals, backward_finals], inputs)
        if self.return_sequences:
            output = T.concatenate([forward, backward[:, ::-1]], axis=-1)  # (batch, time, 2u)
        else:
            output = T.concatenate([forward_finals[0], backward_finals[0]], axis=-1)  # (batch, 2u)
        if self.return_state:
            return [output] + list(forward_finals) + list(backward_finals)
        return output

    def compute_output_shape(self, input_shape):
        if self.return_sequences:
            output_shape = (input_shape[0], input_shape[1], self.output_dim)
        else:
            output_shape = (input_shape[0], self.output_dim)
        if self.return_state:
            n_states = 2 * len(self.forward_cell.state_sizes)
            return [output_shape] + [(input_shape[0], self.output_dim // 2)] * n_states
        return output_shape

    def compute_mask(self, inputs, mask=None):
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * (2 * len(self.forward_cell.state_sizes))
        return output_mask

    def get_config(self):
        config = {'output_dim': self.output_dim, 'return_sequences': self.return_sequences,
                  'return_state': self.return_state}
        base = super(BidirectionalEncoder, self).get_config()
        return dict(list(base.items()) + list(config.items()))
