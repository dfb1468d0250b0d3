"""Loading a saved model: `load_model(path)`, Keras' `load_model` with the
package's custom objects, whose failures say in one line which file and
what is wrong with it.

Keras' own `keras.models.load_model` works too once `seq2seq` is imported
(the package registers its layers with Keras), but a missing, truncated or
foreign file then fails with h5py's "Unable to open file (truncated file:
eof = 1024, sblock->base_addr = 0, stored_eof = 60816)" or Keras' "No model
found in config file.", which name no file.
"""
from __future__ import absolute_import

import os
import re

from ..layers import losses
from ..layers.base import CellLayer, StatefulRNN
from ..layers.decoders import AttentionDecoder, LSTMDecoder, LSTMDecoder2, RecurrentDecoder
from ..layers.encoders import BidirectionalEncoder, LSTMEncoder, RecurrentEncoder
from ..layers.seq2seq_layer import Seq2seq
from .conversation import ConversationWindow
from .seq2seq_models import Seq2SeqModel


class ModelFileError(OSError):
    """A model file could not be loaded; the message names the file and
    says why, in one line."""


def package_custom_objects():
    """{name: object} of the package's layers, its Model subclass and its
    losses, by the names Keras saves them under (a model compiled with one
    of the losses saves it by name)."""
    objects = {cls.__name__: cls for cls in (
        StatefulRNN, CellLayer, RecurrentEncoder, BidirectionalEncoder, RecurrentDecoder,
        AttentionDecoder, LSTMDecoder, LSTMDecoder2, Seq2seq, ConversationWindow,
        Seq2SeqModel)}
    objects['LSTMEncoder'] = LSTMEncoder        # the first release's name of RecurrentEncoder
    for loss in (losses.sparse_softmax_crossentropy, losses.masked_sparse_softmax_crossentropy,
                 losses.softmax_cross_entropy):
        objects[loss.__name__] = loss
    return objects


# h5py's reasons for not opening a file, as a reader can act on them.
_TRUNCATED = re.compile(r'truncated file: eof = (\d+).*stored_eof = (\d+)')


def _has_model_config(path):
    """Whether the HDF5 file `path` holds a model configuration (False
    for weights alone, or an HDF5 file of something else)."""
    import h5py
    try:
        with h5py.File(path, 'r') as f:
            return 'model_config' in f.attrs
    except Exception:   # not readable as HDF5: the error loading it says why
        return True


def _reason(error, path):
    """What is wrong with the file, in one line, from the error loading it."""
    text = ' '.join(str(error).split())
    truncated = _TRUNCATED.search(text)
    if truncated:
        return ('the file is truncated: %s of its %s bytes (an interrupted save or copy?)'
                % truncated.groups())
    if 'file signature not found' in text:
        return 'it is not an HDF5 file (Keras saves models as HDF5, e.g. model.save(\'m.h5\'))'
    if 'No model found in config' in text or not _has_model_config(path):
        return ('it holds no model configuration (weights only, from save_weights? build the '
                'model and call load_weights)')
    return '%s: %s' % (type(error).__name__, text or 'no message')


def load_model(path, custom_objects=None, compile=True):
    """`keras.models.load_model(path)` with the package's custom objects
    (`package_custom_objects()`, updated with the given ones), so a model holding
    the package's layers and losses loads even where another class took
    one of their names in Keras' registry.

    # Arguments
        path: the model file (an HDF5 file written by `model.save`).
        custom_objects: optional {name: object} of your own, on top of the
            package's.
        compile: as Keras': False leaves the model uncompiled.

    # Raises
        TypeError: `path` is not a file name.
        ModelFileError (an OSError): the file is missing, not a file,
            unreadable, truncated, not HDF5, holds no model, or Keras could
            not build the model from it; one line naming the file and why.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError('load_model: path must be a file name (str or os.PathLike), got %r'
                        % (path,))
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise TypeError('load_model: custom_objects must be None or a dict {name: object}, '
                        'got %r' % (custom_objects,))
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelFileError('load_model: %r does not exist' % path)
    if os.path.isdir(path):
        raise ModelFileError('load_model: %r is a directory, not a model file (a model '
                             'directory of `seq2seq train` holds model.h5)' % path)
    objects = dict(package_custom_objects(), **(custom_objects or {}))
    import keras
    try:
        return keras.models.load_model(path, custom_objects=objects, compile=compile)
    except Exception as error:  # h5py and Keras raise many kinds, none naming the file
        raise ModelFileError('load_model: cannot load %r: %s' % (path, _reason(error, path))) \
            from error
