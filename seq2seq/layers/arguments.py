"""Checks of the arguments of the package's layers and model functions:
activation and initializer names, and keyword arguments.

Every layer of the package runs them in its constructor (`StatefulRNN`,
`CellLayer`, `RecurrentDecoder`), and so does `from_config`, which calls the
constructor with a saved config (what `keras.models.load_model` does); the
model functions of `seq2seq.models` run them on their own arguments before
building anything. A bad value is refused with a one-line `TypeError` or
`ValueError` that names the layer (or the model function) and the argument,
e.g.

    RecurrentEncoder: activation='relux' is not an activation (did you mean 'relu'? ...)

rather than Keras' 'Unknown activation function:relux' from deep inside the
construction, which names neither.
"""
from __future__ import absolute_import

import difflib
import inspect
import numbers

from keras import activations, initializers

from ..util.checks import owned
from .cells import get_initializer

# The keyword arguments `keras.engine.base_layer.Layer.__init__` takes (its
# `allowed_kwargs` in Keras 2.3.1); any other one it refuses with the tuple
# message "('Keyword argument not understood:', 'foo')".
KERAS_LAYER_KEYWORDS = ('input_shape', 'batch_input_shape', 'batch_size', 'dtype', 'name',
                        'trainable', 'weights', 'input_dtype')

# The cells' arguments, given to the layers and, as **cell_kwargs, to the models.
INITIALIZER_ARGUMENTS = ('init', 'inner_init', 'forget_bias_init')
ACTIVATION_ARGUMENTS = ('activation', 'inner_activation')
CELL_ARGUMENTS = INITIALIZER_ARGUMENTS + ACTIVATION_ARGUMENTS

# Module-level names of keras.activations / keras.initializers that are not
# activations or initializers.
_NOT_NAMES = ('get', 'serialize', 'deserialize', 'deserialize_keras_object',
              'serialize_keras_object')


def layer_owner(layer, kwargs):
    """How a message names a layer under construction: its class, and its
    name when given (`layer.name` is set only by Keras' constructor, after
    the checks), e.g. "RecurrentEncoder 'encoder_0'"."""
    name = kwargs.get('name')
    return type(layer).__name__ + (' %r' % name if name else '')


def activation_names():
    """The activation names Keras knows, sorted."""
    return sorted(name for name, value in vars(activations).items()
                  if inspect.isfunction(value) and value.__module__ == activations.__name__
                  and not name.startswith('_') and name not in _NOT_NAMES)


def initializer_names():
    """The initializer names Keras knows (snake_case functions and aliases,
    and the class names a saved config holds), and the 2015 'one' and 'zero'."""
    names = set(['one', 'zero'])
    for name, value in vars(initializers).items():
        if name.startswith('_') or name in _NOT_NAMES:
            continue
        if (inspect.isclass(value) and issubclass(value, initializers.Initializer)) or (
                inspect.isfunction(value) and value.__module__ == initializers.__name__):
            names.add(name)
    return sorted(names)


def _suggestion(value, known):
    """"did you mean 'x'? " for the known name closest to `value`, or ''."""
    matches = difflib.get_close_matches(str(value), known, n=1)
    return 'did you mean %r? ' % matches[0] if matches else ''


def _misplaced_number(owner, argument, value, kind, order):
    """A number where a name belongs is an argument given by position in
    another order than the layer's (e.g. a later release's): a `TypeError`
    saying so, with the positional order `order` when known."""
    raise TypeError(owned(owner, '%s=%r is a number, not %s: was it given by position? %s; '
                                 'give the other arguments by keyword'
                          % (argument, value, kind,
                             'the positional order is %s' % order if order
                             else 'the positional order differs')))


def _is_number(value):
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def checked_activation(owner, argument, value, order=None):
    """The activation function `value` names (as Keras' `activations.get`:
    a name, a function, or None for linear); a one-line error naming
    `owner` and `argument` if it names none. `order`: the owner's positional
    order, told when `value` is a number (a misplaced positional argument)."""
    if _is_number(value):
        _misplaced_number(owner, argument, value, 'an activation', order)
    if value is not None and not isinstance(value, str) and not callable(value):
        raise TypeError(owned(owner, '%s=%r is not an activation (a name such as %r, or a '
                                     'function)' % (argument, value, 'tanh')))
    try:
        return activations.get(value)
    except ValueError:
        known = activation_names()
        raise ValueError(owned(owner, '%s=%r is not an activation (%sKeras knows %s, or give '
                                      'a function)'
                               % (argument, value, _suggestion(value, known),
                                  ', '.join(known)))) from None


def checked_initializer(owner, argument, value, order=None):
    """The initializer `value` names (a name, the 2015 'one'/'zero', an
    initializer, or a saved config dict); a one-line error naming `owner`
    and `argument` if it names none (`order` as for `checked_activation`)."""
    if _is_number(value):
        _misplaced_number(owner, argument, value, 'an initializer', order)
    if not isinstance(value, (str, dict)) and not callable(value):
        raise TypeError(owned(owner, '%s=%r is not an initializer (a name such as %r, an '
                                     'Initializer or a config dict)'
                              % (argument, value, 'glorot_uniform')))
    try:
        return get_initializer(value)
    except (ValueError, TypeError) as error:
        if isinstance(value, dict):     # the class is known, its config is not
            reason = ' '.join(str(error).split())
        else:
            reason = ("%sa Keras initializer name such as 'glorot_uniform', 'orthogonal' "
                      "or 'zeros', or the 2015 'one' / 'zero'"
                      % _suggestion(value, initializer_names()))
        raise ValueError(owned(owner, '%s=%r is not an initializer (%s)'
                               % (argument, value, reason))) from None


def check_cell_arguments(owner, arguments, order=None):
    """The initializers and activations of {argument: value} (any of
    `CELL_ARGUMENTS`; others are not looked at). `order`: the owner's
    positional order, told when a value is a number."""
    for argument in INITIALIZER_ARGUMENTS:
        if argument in arguments:
            checked_initializer(owner, argument, arguments[argument], order)
    for argument in ACTIVATION_ARGUMENTS:
        if argument in arguments:
            checked_activation(owner, argument, arguments[argument], order)


def positional_order(owner, note=None):
    """How a message shows the positional order of a layer class's
    constructor or of a model function, up to its first cell argument (five
    names at most), e.g. 'Seq2seq(output_dim, hidden_dim, output_length,
    init, ...)', followed by `note` (e.g. 'the 2015 one')."""
    names = keyword_names(owner.__init__)[1:] if inspect.isclass(owner) else \
        keyword_names(owner)
    shown = []
    for name in names:
        shown.append(name)
        if name in CELL_ARGUMENTS or len(shown) == 5:
            break
    order = '%s(%s%s)' % (owner.__name__, ', '.join(shown),
                          ', ...' if len(shown) < len(names) else '')
    return '%s, %s' % (order, note) if note else order


def keyword_names(function):
    """The arguments `function` takes by keyword (its `**kwargs` aside)."""
    return [parameter.name for parameter in inspect.signature(function).parameters.values()
            if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)]


def constructor_keywords(cls):
    """Every keyword argument the constructors of `cls` and its bases
    name, and Keras' own: the names an unknown keyword is compared with."""
    names = set(KERAS_LAYER_KEYWORDS)
    for klass in inspect.getmro(cls):
        init = klass.__dict__.get('__init__')
        if init is None or not inspect.isfunction(init):
            continue
        names.update(keyword_names(init)[1:])      # not `self`
    return sorted(names)


def check_function_arguments(owner, function, cell_kwargs, readout_activation=None):
    """The arguments a model function of `seq2seq.models` passes on to its
    layers: `cell_kwargs` (its `**cell_kwargs`, which must be among
    `CELL_ARGUMENTS`; an unknown one is compared with every argument of
    `function`) and `readout_activation`, refused in `owner`'s name before
    any layer is built (a layer would refuse them in its own name)."""
    check_keywords(owner, cell_kwargs, CELL_ARGUMENTS,
                   known=set(CELL_ARGUMENTS) | set(keyword_names(function)))
    order = positional_order(function)
    check_cell_arguments(owner, cell_kwargs, order)
    if readout_activation is not None:
        checked_activation(owner, 'readout_activation', readout_activation, order)


def check_keywords(owner, given, allowed, known=None):
    """Refuse a keyword of `given` (a dict) that is not in `allowed`, with a
    `TypeError` (Python's own for an unexpected keyword) naming it and the
    closest name of `known` (default `allowed`), or all of them when none
    is close."""
    unknown = sorted(name for name in given if name not in allowed)
    if unknown:
        candidates = sorted(known if known is not None else allowed)
        hint = _suggestion(unknown[0], candidates).rstrip() or \
            'it takes %s' % ', '.join(candidates)
        raise TypeError(owned(owner, 'unknown keyword argument %r (%s)' % (unknown[0], hint)))
