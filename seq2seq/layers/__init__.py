"""The Keras layers and the maths under them.

    cells.py          LSTMCell, GRUCell: one step's maths and its weights
    recurrent.py      the theano.scan loops (the reference every fast path matches)
    state_checks.py   remembered states: shape checks, refusing non-finite states
    base.py           StatefulRNN (remembered state), CellLayer (a layer owning cells)
    encoders.py       RecurrentEncoder (LSTMEncoder), BidirectionalEncoder
    decoders.py       the decoder layers: RecurrentDecoder, AttentionDecoder,
                      LSTMDecoder, LSTMDecoder2
    seq2seq_layer.py  Seq2seq: encoder and decoder in one layer (the 2015 API)
    losses.py         the cross-entropy losses on the fused softmax Op
    dropout_free.py   a model's graph with its dropout masks at their expected value
                      (scoring a teacher-forced model on references)
    input_checks.py   fit/evaluate/predict of a model holding these layers check
                      their inputs before any work

The names below are importable from `seq2seq.layers` as they were when it was
one module.
"""
from __future__ import absolute_import

from .base import CellLayer, StatefulRNN  # noqa: F401
from .decoders import AttentionDecoder, LSTMDecoder, LSTMDecoder2, RecurrentDecoder  # noqa: F401
from .encoders import BidirectionalEncoder, LSTMEncoder, RecurrentEncoder  # noqa: F401
from ..util.checks import check_depth  # noqa: F401
