"""Sequence to sequence learning for Keras 2.3.1 on the Theano backend.

Importing this package selects Keras' Theano backend (when KERAS_BACKEND is
unset) and gives Theano fast, quiet defaults; see `seq2seq._theano.backend`.
"""
from __future__ import absolute_import

from ._theano import backend as _backend

_backend.setup()

from . import decoding, losses  # noqa: E402
from .cells import GRUCell, LSTMCell  # noqa: E402
from .decoding import Hypothesis, beam_search, greedy_search  # noqa: E402
from .decoders import AttentionDecoder, RecurrentDecoder  # noqa: E402
from .layers import (BidirectionalEncoder, CellLayer, LSTMDecoder, LSTMDecoder2,  # noqa: E402
                     LSTMEncoder, StatefulRNN)
from .models import AttentionSeq2Seq, Seq2Seq, Seq2SeqModel, SimpleSeq2Seq  # noqa: E402
from .seq2seq import Seq2seq  # noqa: E402

__version__ = '0.1.0'

__all__ = ['LSTMCell', 'GRUCell', 'StatefulRNN', 'CellLayer', 'LSTMEncoder',
           'BidirectionalEncoder', 'LSTMDecoder', 'LSTMDecoder2', 'RecurrentDecoder',
           'AttentionDecoder', 'Seq2seq', 'Seq2SeqModel', 'SimpleSeq2Seq', 'Seq2Seq',
           'AttentionSeq2Seq', 'Hypothesis', 'beam_search', 'greedy_search']


def _register_custom_objects():
    """Let keras.models.load_model find our layers with no custom_objects."""
    from keras.utils.generic_utils import get_custom_objects
    from keras.engine.base_layer import Layer
    get_custom_objects().update({name: globals()[name] for name in __all__
                                 if isinstance(globals()[name], type)
                                 and issubclass(globals()[name], Layer)})
    # Model subclasses are deserialized by class name too.
    get_custom_objects()['Seq2SeqModel'] = Seq2SeqModel
    # A model compiled with one of our losses saves the loss by name.
    for loss in (losses.sparse_softmax_crossentropy, losses.softmax_cross_entropy):
        get_custom_objects()[loss.__name__] = loss


_register_custom_objects()
