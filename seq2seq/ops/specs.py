"""What the fused kernels know of the layers they run: plain specifications.

The layers describe themselves with these (`LSTMCell.kernel_spec()`,
`Decoder.kernel_spec()` in `seq2seq.layers`); the Ops read names and numbers
only, and import nothing from the layers.
"""
from __future__ import absolute_import

import collections

CellSpec = collections.namedtuple('CellSpec', ['kind', 'units', 'activation', 'inner_activation'])
CellSpec.__doc__ = """A recurrent cell as the kernels see it.

# Fields
    kind: 'lstm' or 'gru' for the package's own cells; for a subclass that
        changes their maths, a description saying so (no kernel runs it).
    units: the size of its state.
    activation, inner_activation: activation names ('tanh', 'hard_sigmoid',
        'sigmoid', ...; a function that is none of Keras' named ones is
        described by its name and 'custom').
"""

DecoderSpec = collections.namedtuple(
    'DecoderSpec', ['cells', 'peek', 'attends', 'dropout', 'readout_activation', 'upper_cells'])
DecoderSpec.__doc__ = """A decoder as the kernels see it (`seq2seq.layers.decoder_core`).

# Fields
    cells: the `CellSpec` of each cell inside the feedback loop, bottom first.
    peek: whether the bottom cell reads the first input at every step.
    attends: whether it attends over a memory.
    dropout: the dropout rate of the loop cells' inputs.
    readout_activation: the readout's activation name.
    upper_cells: the `CellSpec` of each cell above the loop.
"""
