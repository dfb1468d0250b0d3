"""Checks that keep the remembered hidden states finite.

A layer built with `remember_state=True` keeps each LSTM's (h, c) in
Theano shared variables and overwrites them after every batch. One NaN or
inf there makes every later output NaN, so the states are guarded at both
doors:

    checked_state_array    a value given to `set_hidden_state` (or the
                           `hidden_state=` argument), refused with a
                           `TypeError`/`ValueError` naming it unless it
                           holds real, finite numbers that fit the floatx
    guarded_state_updates  the graph side: the updates that write a batch's
                           final states back, keeping every state of the
                           layer at its old value when any new entry is
                           NaN or inf, and counting those refused batches
    check_states_finite    the Python side: raises `ValueError` if a layer
                           of a model refused a state since the last check,
                           and resets the counts

The guard is per layer, all or nothing: either every state of the layer
takes the batch's final value, or every state keeps the value it had before
the call, so a refused batch leaves the layer exactly as it was (rather
than some rows or some LSTMs a batch ahead of the others).
"""
from __future__ import absolute_import

import functools
import warnings

import numpy as np
import theano
import theano.tensor as T

__all__ = ['check_states_finite', 'checked_state_array', 'guarded_state_updates',
           'new_refusal_counter', 'refused_batches']

# The attribute of a StatefulRNN holding its counter of refused batches.
COUNTER_ATTRIBUTE = '_nonfinite_state_batches'


# -- values given from Python ---------------------------------------------------------
def describe(value):
    """A short description of `value` for an error message (never a whole array)."""
    if isinstance(value, np.ndarray):
        return 'an array of shape %s and dtype %s' % (value.shape, value.dtype)
    if isinstance(value, (list, tuple)):
        return 'a %s of %d entries' % (type(value).__name__, len(value))
    text = repr(value)
    return '%s %s' % (type(value).__name__, text if len(text) <= 40 else text[:37] + '...')


def _as_array(value, name):
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError('%s must be an array of real numbers, got %s' % (name, describe(value)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')     # numpy's warning on ragged lists
            return np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError('%s must be an array of real numbers, got %s (%s)'
                        % (name, describe(value), error))


def _first_index(mask):
    return tuple(int(i) for i in np.argwhere(mask)[0])


def checked_state_array(value, name, shape, dtype):
    """`value` as an array of `dtype` and `shape`, refused if it is not one.

    # Arguments
        value: what the user gave (array, nested lists, ...).
        name: how the error message names it, e.g. 'hidden_state[1][0]'.
        shape: the expected shape, a tuple.
        dtype: the dtype of the state variable (Keras' floatx).

    # Raises
        TypeError: not numbers, complex, booleans or objects.
        ValueError: the wrong shape, NaN or inf entries, or finite values
            beyond the range of `dtype` (they would become inf).
    """
    array = _as_array(value, name)
    kind = array.dtype.kind
    if kind == 'c':
        raise TypeError('%s must hold real numbers, got complex values (%s); a hidden '
                        'state is real' % (name, describe(array)))
    if kind not in 'iuf':
        raise TypeError('%s must be an array of real numbers, got %s'
                        % (name, describe(value) if not isinstance(value, np.ndarray)
                           else describe(array)))
    if array.shape != tuple(shape):
        raise ValueError('%s must have shape %s, got shape %s'
                         % (name, tuple(shape), array.shape))
    if kind == 'f':
        nan, inf = np.isnan(array), np.isinf(array)
        if nan.any() or inf.any():
            raise ValueError('%s must be finite, got %d NaN and %d inf entries (the first at '
                             'index %s); a non-finite state makes every later output NaN'
                             % (name, nan.sum(), inf.sum(), _first_index(nan | inf)))
    with np.errstate(over='ignore'):
        converted = array.astype(dtype)
    overflow = ~np.isfinite(converted)
    if overflow.any():
        raise ValueError('%s must fit in %s (|x| <= %g), got %d entries beyond it (the first '
                         'at index %s: %r); they would become inf'
                         % (name, np.dtype(dtype).name, np.finfo(dtype).max, overflow.sum(),
                            _first_index(overflow), array[_first_index(overflow)]))
    return converted


# -- the graph --------------------------------------------------------------------------
def new_refusal_counter(name):
    """The shared int32 scalar counting a layer's refused batches."""
    return theano.shared(np.int32(0), name=name)


def _all_finite(tensor):
    return T.all(T.invert(T.or_(T.isnan(tensor), T.isinf(tensor))))


def guarded_state_updates(variables, final_states, counter):
    """The updates writing a batch's final states back, if all are finite.

    # Arguments
        variables: the layer's state variables, flat (h, c of every cell).
        final_states: the batch's final states, flat, in the same order.
        counter: the layer's `new_refusal_counter()`.

    # Returns
        A list of (variable, new value) pairs for `Layer.add_update`:

            finite = every entry of every final state is finite
            variable <- finite ? final : variable      (per state)
            counter  <- counter + (finite ? 0 : 1)
    """
    finite = functools.reduce(T.and_, [_all_finite(state) for state in final_states])  # ()
    updates = [(variable, T.switch(finite, T.cast(final, variable.dtype), variable))
               for variable, final in zip(variables, final_states)]   # (batch, size) each
    updates.append((counter, counter + T.cast(T.eq(finite, 0), 'int32')))
    return updates


# -- Python, after a call -----------------------------------------------------------------
def _stateful_layers(model, seen=None):
    """Every layer under `model` (itself included) holding a refusal counter."""
    seen = set() if seen is None else seen
    if id(model) in seen:
        return []
    seen.add(id(model))
    found = [model] if getattr(model, COUNTER_ATTRIBUTE, None) is not None else []
    for layer in getattr(model, 'layers', None) or []:
        found.extend(_stateful_layers(layer, seen))
    return found


def refused_batches(model):
    """{layer name: batches refused since the last check} of `model`'s
    remembered-state layers (all of them, zeros included); no reset."""
    return {layer.name: int(getattr(layer, COUNTER_ATTRIBUTE).get_value())
            for layer in _stateful_layers(model)}


def check_states_finite(model):
    """Raise `ValueError` if a remembered-state layer of `model` refused a
    non-finite state since the last check; reset the counts either way.

    Call it after `fit`, `predict`, `evaluate` or a `*_on_batch` call (the
    package's call guard does). It reads one scalar per remember_state
    layer, and does nothing on a model without such layers.

    # Arguments
        model: a Keras model, or a layer.
    """
    refused = []
    for layer in _stateful_layers(model):
        counter = getattr(layer, COUNTER_ATTRIBUTE)
        count = int(counter.get_value())
        if count:
            counter.set_value(np.int32(0))
            refused.append('%s (%d batch%s)' % (layer.name, count, '' if count == 1 else 'es'))
    if refused:
        raise ValueError(
            'the batch produced a non-finite hidden state (NaN/inf) in %s; the remembered '
            'state was kept as it was before that batch. Check the inputs and the weights '
            'for NaN/inf (a NaN in the input of fit also reaches the weights)'
            % ', '.join(refused))
