"""Sequence to sequence learning for Keras 2.3.1 on the Theano backend.

`import seq2seq` runs `seq2seq._theano.install()`: Keras on Theano (when
KERAS_BACKEND is unset) and the package's Theano patches, each of which can
be turned off (see `seq2seq._theano` and the README), then imports the layers
and registers them with Keras so that `keras.models.load_model` finds them.

When Keras cannot run on Theano here (KERAS_BACKEND names another backend,
or Keras or Theano is not installed), the import still succeeds on Python
3.7+ so that the pure-numpy parts (`seq2seq.decoding`) can be used; the
Keras names (`seq2seq.Seq2seq`, ...) then raise the error saying why.
"""
from __future__ import absolute_import

import importlib
import sys
import warnings

from . import _theano, import_aliases
from ._theano.backend import BackendError

import_aliases.install()


def _install_input_checks():
    from .layers import input_checks   # imported only when the patch is on
    return input_checks.install()


_theano.register('input_checks', _install_input_checks,
                 'fit/evaluate/predict of models holding our layers check their data first '
                 '(seq2seq.layers.input_checks)', changes_theano=False, theano_version=None)

__version__ = '0.1.0'

# Public name -> the module defining it.
_PUBLIC = {
    'LSTMCell': 'layers.cells', 'GRUCell': 'layers.cells',
    'Hypothesis': 'search.numpy_search', 'beam_search': 'search.numpy_search',
    'greedy_search': 'search.numpy_search',
    'AttentionDecoder': 'layers.decoders', 'RecurrentDecoder': 'layers.decoders',
    'LSTMDecoder': 'layers.decoders', 'LSTMDecoder2': 'layers.decoders',
    'BidirectionalEncoder': 'layers.encoders', 'LSTMEncoder': 'layers.encoders',
    'RecurrentEncoder': 'layers.encoders',
    'CellLayer': 'layers.base', 'StatefulRNN': 'layers.base',
    'AttentionSeq2Seq': 'models.seq2seq_models', 'Seq2Seq': 'models.seq2seq_models',
    'Seq2SeqModel': 'models.seq2seq_models', 'SimpleSeq2Seq': 'models.seq2seq_models',
    'Seq2seq': 'layers.seq2seq_layer',
    'Conversational': 'legacy.conversational',  # the 2015 name
    'ConversationWindow': 'models.conversation',
    'load_model': 'models.saving',
    'set_seed': 'training.seeding',
}

__all__ = ['LSTMCell', 'GRUCell', 'StatefulRNN', 'CellLayer', 'RecurrentEncoder', 'LSTMEncoder',
           'BidirectionalEncoder', 'LSTMDecoder', 'LSTMDecoder2', 'RecurrentDecoder',
           'AttentionDecoder', 'Seq2seq', 'Seq2SeqModel', 'SimpleSeq2Seq', 'Seq2Seq',
           'AttentionSeq2Seq', 'Conversational', 'ConversationWindow', 'Hypothesis', 'beam_search', 'greedy_search',
           'load_model', 'set_seed']

# Modules whose absence means "no Keras-on-Theano here", not a bug of ours.
_STACK_MODULES = ('keras', 'theano', 'tensorflow')

_load_error = []  # the error of the last failed `_load()`


class CustomObjectWarning(UserWarning):
    """A Keras custom object of the same name was already registered."""


def register_custom_objects(objects, registry=None):
    """Add `objects` ({name: object}) to Keras' custom objects, except names
    that already name a different object: those are left alone, with a
    `CustomObjectWarning` (a user's own class keeps its name). Returns the
    names registered."""
    if registry is None:
        from keras.utils.generic_utils import get_custom_objects
        registry = get_custom_objects()
    registered = []
    for name, obj in objects.items():
        current = registry.get(name)
        if current is not None and current is not obj:
            warnings.warn('seq2seq: Keras custom object %r is already %r; seq2seq\'s %s is not '
                          'registered under that name (load models that use it with '
                          'custom_objects={%r: %s.%s})'
                          % (name, current, name, name, obj.__module__, obj.__name__),
                          CustomObjectWarning, stacklevel=3)
            continue
        registry[name] = obj
        registered.append(name)
    return registered


def _custom_objects():
    """The layers, the Model subclass and the losses, by the names Keras
    saves: those `seq2seq.load_model` passes, and the public layers above
    the models (the legacy `Conversational`)."""
    from keras.engine.base_layer import Layer
    from .models.saving import package_custom_objects
    objects = package_custom_objects()
    objects.update({name: globals()[name] for name in __all__
                    if isinstance(globals()[name], type) and issubclass(globals()[name], Layer)})
    return objects


def _load():
    """Install the patches, import the Keras layers, register them."""
    _theano.install()
    for name, module in sorted(_PUBLIC.items()):
        globals()[name] = getattr(importlib.import_module('.' + module, __name__), name)
    # The first release's module attributes `seq2seq.decoding` and `seq2seq.losses`.
    globals()['decoding'] = importlib.import_module('.search.numpy_search', __name__)
    globals()['losses'] = importlib.import_module('.layers.losses', __name__)
    register_custom_objects(_custom_objects())
    del _load_error[:]


def _missing_stack(error):
    name = getattr(error, 'name', None) or ''
    return isinstance(error, ImportError) and name.split('.')[0] in _STACK_MODULES


try:
    _load()
except BackendError as error:
    if sys.version_info < (3, 7):
        raise
    _load_error[:] = [error]
except ImportError as error:
    if sys.version_info < (3, 7) or not _missing_stack(error):
        raise
    _load_error[:] = [error]


def __getattr__(name):  # PEP 562: only reached when `_load()` failed
    if name in _PUBLIC or name == 'losses':
        if _load_error:
            try:
                _load()  # the environment may have been fixed since
            except (BackendError, ImportError) as error:
                raise error from _load_error[0]
        return globals()[name]
    raise AttributeError('module %r has no attribute %r' % (__name__, name))
