"""Checks of the data given to a Keras model that holds the package's layers,
made before any batch runs, so that a refused call changes nothing.

`install()` (the patch 'input_checks', on by default; off with
`SEQ2SEQ_PATCH_INPUT_CHECKS=0` before `import seq2seq`) wraps these methods of
`keras.engine.training.Model`:

    fit  evaluate  predict  train_on_batch  test_on_batch  predict_on_batch
    fit_generator  evaluate_generator  predict_generator

On a model holding none of the package's layers the wrappers call Keras at
once (the test is made once per model and cached). On the others each call
first checks its arrays, with a few vectorised numpy passes over each (once
per call, not per batch), and raises
a `ValueError` or `TypeError` naming the argument, the value received and the
value expected:

* the arrays: the number of inputs and targets, their ranks and fixed
  dimensions, one sample count for all, real numbers (no strings, objects
  or complex numbers), no empty array;
* float inputs and targets, and sample weights: NaN, inf, or values beyond
  the range of Keras' floatx (they would become inf); with remember_state
  they would poison the remembered state;
* token ids read by an `Embedding` straight from a model input: whole
  numbers (2.7 is refused, not truncated), not negative (Keras would read
  the last row), below the Embedding's `input_dim`;
* targets of `seq2seq.losses.sparse_softmax_crossentropy` (and its masked
  twin) and of Keras' `sparse_categorical_crossentropy`: whole numbers in
  [0, classes), no NaN.
  Targets of shape (batch, length), which both losses take, are given to
  Keras as (batch, length, 1);
* the batch size, for a model with remembered state (`remember_state=True`,
  `stateful=True`), whose state holds a fixed number of rows B:
  - fit, evaluate and predict with no `batch_size` use B (Keras' default 32,
    or a partial last batch, would fail in the middle of the call);
  - a `batch_size` other than B, or a sample count that is not a multiple of
    B (the last batch would be partial), is refused before the first batch;
  - `train_on_batch`, `test_on_batch` and `predict_on_batch` take exactly B
    samples;
  - generators (`fit_generator`, ...) are checked batch by batch, each batch
    before it runs: a batch of another size is refused, and the batches
    before it in the same call have run (they updated the weights, the
    optimizer and the remembered state). A `keras.utils.Sequence` gets its
    last batch (the usual partial one) checked before the first batch runs,
    and so do fit_generator's validation arrays.

After each call of a model with remembered state, `seq2seq.layers.state_checks.
check_states_finite(model)` raises if a layer refused to write a NaN or inf
state (a graph-side guard keeps the old state then).

`check_source_values` applies the value checks to the sources of
`seq2seq.inference.greedy_decode` / `beam_decode`.
"""
from __future__ import absolute_import

import functools
import importlib
import inspect
import weakref

import numpy as np

ENTRY_POINTS = ('fit', 'evaluate', 'predict', 'train_on_batch', 'test_on_batch',
                'predict_on_batch', 'fit_generator', 'evaluate_generator', 'predict_generator')

# The attribute a wrapper keeps Keras' own method in.
ORIGINAL_ATTRIBUTE = '_seq2seq_unguarded'

_plans = weakref.WeakKeyDictionary()     # model -> (layers key, _Plan)
_state_checks = {}                       # 'module' -> seq2seq.layers.state_checks or None


# -- what a model holds ------------------------------------------------------------------
class _Plan(object):
    """What the checks need to know of a model's layers."""

    def __init__(self, ours, state_batch_sizes, embeddings):
        self.ours = ours                            # holds one of our layers
        self.state_batch_sizes = state_batch_sizes  # {layer name: batch_size}
        self.embeddings = embeddings                # {feed input index: (name, input_dim)}

    @property
    def remembers(self):
        return bool(self.state_batch_sizes)


# Where `seq2seq.data.variable_length_batches` keeps a model's declared
# input and output shapes while Keras' own checks are relaxed.
DECLARED_FEED_SHAPES = '_seq2seq_declared_feed_shapes'

def _is_ours(layer):
    return type(layer).__module__.split('.')[0] == 'seq2seq'


def _all_layers(model, seen=None):
    """Every layer under `model`, nested models included."""
    seen = set() if seen is None else seen
    found = []
    for layer in getattr(model, 'layers', None) or []:
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        found.append(layer)
        found.extend(_all_layers(layer, seen))
    return found


def _embedding_inputs(model):
    """{feed input index: (Embedding name, input_dim)} for every Embedding
    that reads a model input directly."""
    from keras.layers import Embedding
    feed = list(getattr(model, '_feed_inputs', None) or model.inputs or [])
    found = {}
    for layer in model.layers:
        if not isinstance(layer, Embedding):
            continue
        for node in layer._inbound_nodes:
            for tensor in node.input_tensors:
                for index, model_input in enumerate(feed):
                    if tensor is model_input:
                        found[index] = (layer.name, int(layer.input_dim))
    return found


def model_plan(model):
    """The model's `_Plan`, cached per model (rebuilt when its layers change);
    None when it holds none of the package's layers."""
    key = tuple(id(layer) for layer in getattr(model, 'layers', None) or [])
    cached = _plans.get(model)
    if cached is not None and cached[0] == key:
        return cached[1]
    layers = _all_layers(model)
    plan = None
    if _is_ours(model) or any(_is_ours(layer) for layer in layers):
        states = {layer.name: int(layer.batch_size) for layer in layers
                  if _is_ours(layer) and getattr(layer, 'remember_state', False)}
        plan = _Plan(True, states, _embedding_inputs(model))
    _plans[model] = (key, plan)
    return plan


# -- messages ------------------------------------------------------------------------------
def _index(position):
    return '(%s)' % ', '.join(str(int(i)) for i in position) if len(position) != 1 \
        else '(%d,)' % int(position[0])


def _first(mask):
    """The index of the first True of `mask`."""
    return tuple(np.argwhere(mask)[0])


def _describe(value):
    if isinstance(value, np.ndarray):
        return 'an array of shape %s and dtype %s' % (value.shape, value.dtype)
    text = repr(value)
    return '%s %s' % (type(value).__name__, text if len(text) <= 60 else text[:57] + '...')


def _argument(name, names, index):
    """How a message names array `index` of argument `name` ('x', 'y', ...)."""
    if len(names) == 1:
        return "%s ('%s')" % (name, names[0])
    return "%s[%d] ('%s')" % (name, index, names[index])


# -- arrays --------------------------------------------------------------------------------
def _as_array(value, where):
    if value is None or isinstance(value, (str, bytes, dict, set)):
        raise TypeError('%s must be a numpy array of numbers, got %s' % (where, _describe(value)))
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError('%s must be a numpy array of numbers, got %s (%s)'
                        % (where, _describe(value), error))
    kind = array.dtype.kind
    if kind == 'c':
        raise TypeError('%s must hold real numbers, got complex values (%s)'
                        % (where, _describe(array)))
    if kind not in 'biuf':
        raise TypeError('%s must be a numpy array of numbers, got %s'
                        % (where, _describe(array)))
    if array.ndim == 1:
        array = array[:, None]          # Keras reads a vector as (samples, 1)
    return array


def as_array_list(method, argument, value, names):
    """`value` (an array, a list or a dict by name) as one array per name."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(names))
        missing = [name for name in names if name not in value]
        if unknown or missing:
            raise ValueError('%s: %s is a dict whose keys must be %s; got %s'
                             % (method, argument, names, sorted(value)))
        items = [value[name] for name in names]
    elif isinstance(value, (list, tuple)) and (
            len(names) > 1 or (value and isinstance(value[0], np.ndarray))):
        items = list(value)
    else:
        items = [value]
    if len(items) != len(names):
        raise ValueError('%s: %s must hold %d array(s), one per %s (%s), got %d'
                         % (method, argument, len(names),
                            'input' if argument.startswith('x') else 'output',
                            ', '.join(names), len(items)))
    return [_as_array(item, '%s: %s' % (method, _argument(argument, names, i)))
            for i, item in enumerate(items)]


def _check_shape(method, where, array, expected, shorter_steps=False):
    """`array`'s rank and fixed dimensions (the batch axis aside) against
    `expected` (a shape with None for any); with `shorter_steps` axis 1 may
    hold fewer steps than `expected` (trimmed batches), never more."""
    if array.ndim != len(expected):
        raise ValueError('%s: %s must have %d dimensions, shape %s, got shape %s'
                         % (method, where, len(expected), _shape_text(expected), array.shape))
    for axis in range(1, array.ndim):
        if shorter_steps and axis == 1 and expected[1] is not None:
            if array.shape[1] > expected[1]:
                raise ValueError('%s: %s must have shape %s with at most %d steps, got shape '
                                 '%s' % (method, where, _shape_text(expected), expected[1],
                                         array.shape))
        elif expected[axis] is not None and array.shape[axis] != expected[axis]:
            raise ValueError('%s: %s must have shape %s, got shape %s (axis %d: %d, expected %d)'
                             % (method, where, _shape_text(expected), array.shape, axis,
                                array.shape[axis], expected[axis]))
    if 0 in array.shape:
        raise ValueError('%s: %s is empty (shape %s); it must hold at least one sample and '
                         'one step' % (method, where, array.shape))


def _shape_text(shape):
    return '(%s)' % ', '.join('batch' if axis == 0 else ('any' if d is None else str(d))
                              for axis, d in enumerate(shape))


def check_finite(method, where, array):
    """Refuse NaN, inf and values beyond Keras' floatx (one pass: min, max)."""
    if array.dtype.kind != 'f':
        return
    from keras import backend as K
    limit = np.finfo(K.floatx()).max
    with np.errstate(invalid='ignore', over='ignore'):
        low, high = array.min(), array.max()
        if np.isfinite(low) and np.isfinite(high) and -low <= limit and high <= limit:
            return
        bad = ~np.isfinite(array) | (np.abs(array) > limit)
    position = _first(bad)
    raise ValueError('%s: %s must hold finite numbers within +-%g (%s), got %r at index %s '
                     '(%d such entries); NaN or inf would reach the loss, the weights and any '
                     'remembered state' % (method, where, limit, K.floatx(), array[position],
                                           _index(position), int(bad.sum())))


def check_ids(method, where, array, limit, what):
    """Refuse ids that are not whole numbers in [0, limit)."""
    if array.dtype.kind == 'b':
        raise TypeError('%s: %s must hold integer %s, got booleans' % (method, where, what))
    if array.dtype.kind == 'f':
        with np.errstate(invalid='ignore'):
            bad = ~np.isfinite(array) | (array != np.floor(array))
        if bad.any():
            position = _first(bad)
            raise ValueError('%s: %s must hold whole-number %s in [0, %d), got %r at index %s'
                             % (method, where, what, limit, array[position], _index(position)))
    low, high = array.min(), array.max()
    if low >= 0 and (limit is None or high < limit):
        return
    bad = (array < 0) if limit is None else ((array < 0) | (array >= limit))
    position = _first(bad)
    raise ValueError('%s: %s must hold %s in [0, %s), got %r at index %s'
                     % (method, where, what, 'classes' if limit is None else limit,
                        array[position].item(), _index(position)))


# -- inputs and targets ------------------------------------------------------------------
def check_inputs(model, plan, method, argument, x):
    """x as the list of checked arrays, one per model input."""
    if x is None:
        raise ValueError('%s: %s is None; the model takes %d input array(s): %s'
                         % (method, argument, len(model._feed_input_names),
                            ', '.join(model._feed_input_names)))
    names = model._feed_input_names
    arrays = as_array_list(method, argument, x, names)
    shapes, shorter = feed_shapes(model, 'input')
    for i, (array, shape) in enumerate(zip(arrays, shapes)):
        where = _argument(argument, names, i)
        _check_shape(method, where, array, shape, shorter)
        if i in plan.embeddings:
            layer, vocabulary = plan.embeddings[i]
            check_ids(method, where, array, vocabulary,
                      "token ids (Embedding '%s' has input_dim=%d)" % (layer, vocabulary))
        else:
            check_finite(method, where, array)
    return arrays


def check_source_values(model, arrays, method='decoding', argument='x'):
    """The value checks of `check_inputs` on arrays already checked for
    shape, one per model input in order (trailing inputs may be left out):
    token ids within their Embedding's vocabulary, finite floats
    (`seq2seq.inference` checks the sources of a search with it)."""
    plan = model_plan(model)
    embeddings = plan.embeddings if plan is not None else {}
    names = list(getattr(model, '_feed_input_names', None) or
                 [tensor.name for tensor in model.inputs])
    for i, array in enumerate(arrays):
        where = _argument(argument, names, i) if len(arrays) > 1 else \
            "%s ('%s')" % (argument, names[i])
        if i in embeddings:
            layer, vocabulary = embeddings[i]
            check_ids(method, where, array, vocabulary,
                      "token ids (Embedding '%s' has input_dim=%d)" % (layer, vocabulary))
        else:
            check_finite(method, where, array)


def _loss_function(loss):
    return getattr(loss, 'fn', loss)


def _sparse_loss_name(loss):
    """The name of a sparse (integer-target) loss this module checks, else None."""
    import keras.losses
    from . import losses
    function = _loss_function(loss)
    if function in (losses.sparse_softmax_crossentropy,
                    losses.masked_sparse_softmax_crossentropy) \
            or function is keras.losses.sparse_categorical_crossentropy \
            or isinstance(loss, keras.losses.SparseCategoricalCrossentropy):
        return getattr(function, '__name__', type(loss).__name__)
    return None


def check_targets(model, method, argument, y):
    """y as the list of checked arrays, one per output with a loss; sparse
    targets of shape (batch, length) become (batch, length, 1)."""
    names = list(getattr(model, '_feed_output_names', None) or [])
    if not getattr(model, '_is_compiled', False):
        raise ValueError('%s: the model must be compiled first (model.compile(optimizer, '
                         'loss))' % method)
    if y is None:
        raise ValueError('%s: y is None; the model takes %d target array(s): %s'
                         % (method, len(names), ', '.join(names)))
    arrays = as_array_list(method, argument, y, names)
    shapes, shorter = feed_shapes(model, 'output')
    for i, (array, shape, loss) in enumerate(zip(arrays, shapes, model._feed_loss_fns)):
        where = _argument(argument, names, i)
        sparse = _sparse_loss_name(loss)
        if sparse is not None:
            if array.ndim == len(shape) - 1:
                array = arrays[i] = array[..., None]     # (batch, length) -> (batch, length, 1)
            _check_shape(method, where, array, tuple(shape[:-1]) + (1,), shorter)
            check_ids(method, where, array, shape[-1],
                      'class ids (the output has %s classes; loss %s)'
                      % (shape[-1], sparse))
        else:
            _check_shape(method, where, array, shape, shorter)
            check_finite(method, where, array)
    return arrays


def feed_shapes(model, kind):
    """(the shapes the model's 'input' or 'output' arrays are checked against,
    whether their time axis may be shorter): inside
    `seq2seq.data.variable_length_batches`, which relaxes Keras' own check,
    the declared shapes and True."""
    declared = getattr(model, DECLARED_FEED_SHAPES, None)
    if declared is not None:
        return declared[kind], True
    return getattr(model, '_feed_%s_shapes' % kind), False


def check_sample_weight(method, argument, sample_weight, samples):
    if sample_weight is None or isinstance(sample_weight, dict):
        return
    weights = sample_weight if isinstance(sample_weight, (list, tuple)) else [sample_weight]
    for i, weight in enumerate(weights):
        if weight is None:
            continue
        where = argument if len(weights) == 1 else '%s[%d]' % (argument, i)
        array = _as_array(weight, '%s: %s' % (method, where))
        if len(array) != samples:
            raise ValueError('%s: %s must hold one weight per sample (%d), got shape %s'
                             % (method, where, samples, np.shape(weight)))
        check_finite(method, where, array)


def check_sample_counts(method, named_arrays):
    """Every array of [(name, array)] holds the same number of samples."""
    counts = [(name, len(array)) for name, array in named_arrays]
    if len(set(count for _, count in counts)) > 1:
        raise ValueError('%s: every input and target must hold the same number of samples, '
                         'got %s' % (method, ', '.join('%s: %d' % item for item in counts)))
    return counts[0][1] if counts else 0


# -- the batch size -------------------------------------------------------------------------
def _state_batch_size(plan, method):
    sizes = set(plan.state_batch_sizes.values())
    if len(sizes) > 1:
        raise ValueError('%s: the layers of this model remember states for different batch '
                         'sizes (%s); they cannot run together'
                         % (method, ', '.join('%s: %d' % item
                                              for item in sorted(plan.state_batch_sizes.items()))))
    return sizes.pop()


def _state_layers_text(plan):
    return ', '.join("'%s'" % name for name in sorted(plan.state_batch_sizes))


def check_batch_size_argument(model, plan, method, arguments):
    """The `batch_size` argument: a positive int; with remembered state the
    state's batch size B (None becomes B)."""
    batch_size = arguments.get('batch_size')
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(
            batch_size, (int, np.integer)) or batch_size <= 0):
        raise (TypeError if not isinstance(batch_size, (int, np.integer)) else ValueError)(
            '%s: batch_size must be a positive int or None, got %r' % (method, batch_size))
    static = model._feed_input_shapes[0][0] if model._feed_input_shapes else None
    if plan.remembers:
        state = _state_batch_size(plan, method)
        if batch_size is None:
            if arguments.get('steps', arguments.get('steps_per_epoch')) is None:
                arguments['batch_size'] = state
            return state
        if batch_size != state:
            raise ValueError('%s: batch_size=%d, but the model remembers hidden states for '
                             'batch_size=%d (%s): every batch must hold exactly %d sequences; '
                             'pass batch_size=%d or leave it out'
                             % (method, batch_size, state, _state_layers_text(plan), state, state))
        return state
    if batch_size is not None and static is not None and batch_size != static:
        raise ValueError('%s: batch_size=%d, but the model\'s input has the fixed batch size %d'
                         % (method, batch_size, static))
    return None


def check_sample_count(plan, method, argument, samples, exact=False):
    """With remembered state of B rows: `samples` a multiple of B (or B)."""
    if not plan.remembers:
        return
    state = _state_batch_size(plan, method)
    if exact and samples != state:
        raise ValueError('%s: %s holds %d samples, but the model remembers hidden states for '
                         'batch_size=%d (%s): a batch must hold exactly %d sequences'
                         % (method, argument, samples, state, _state_layers_text(plan), state))
    if samples % state:
        raise ValueError('%s: %s holds %d samples, not a multiple of %d, the batch size of the '
                         'remembered state (%s): the last batch would hold %d; give a multiple '
                         'of %d samples' % (method, argument, samples, state,
                                            _state_layers_text(plan), samples % state, state))


# -- the entry points ------------------------------------------------------------------------
def _is_generator(value):
    from keras.engine import training_utils
    return training_utils.is_generator_or_sequence(value)


def _check_data(model, plan, method, arguments, needs_y=True):
    """The checked x (and y) of `arguments`, and their sample count."""
    xs = check_inputs(model, plan, method, 'x', arguments['x'])
    named = [(_argument('x', model._feed_input_names, i), array) for i, array in enumerate(xs)]
    ys = None
    if needs_y:
        ys = check_targets(model, method, 'y', arguments['y'])
        named += [(_argument('y', model._feed_output_names, i), array)
                  for i, array in enumerate(ys)]
    samples = check_sample_counts(method, named)
    return xs, ys, samples


def check_fit(model, plan, method, arguments):
    if _is_generator(arguments['x']):
        return      # Keras hands it to fit_generator, checked there
    xs, ys, samples = _check_data(model, plan, method, arguments)
    check_sample_weight(method, 'sample_weight', arguments.get('sample_weight'), samples)
    check_batch_size_argument(model, plan, method, arguments)
    split = arguments.get('validation_split') or 0.0
    if plan.remembers and 0.0 < split < 1.0:
        train = int(samples * (1.0 - split))
        check_sample_count(plan, method, 'x without its validation_split', train)
        check_sample_count(plan, method, 'the validation_split of x', samples - train)
    else:
        check_sample_count(plan, method, 'x', samples)
    check_validation_data(model, plan, method, arguments)
    arguments['x'], arguments['y'] = xs, ys


def check_validation_data(model, plan, method, arguments):
    """`validation_data` of fit and fit_generator, when it holds arrays."""
    validation = arguments.get('validation_data')
    if validation is None or _is_generator(validation):
        return
    if not isinstance(validation, (list, tuple)) or len(validation) not in (2, 3):
        raise ValueError('%s: validation_data must be (x, y) or (x, y, sample_weight), got %s'
                         % (method, _describe(validation)))
    val_x = check_inputs(model, plan, method, 'validation_data[0]', validation[0])
    val_y = check_targets(model, method, 'validation_data[1]', validation[1])
    val_samples = check_sample_counts(method, [('validation_data[0]', val_x[0]),
                                               ('validation_data[1]', val_y[0])])
    if len(validation) == 3:
        check_sample_weight(method, 'validation_data[2]', validation[2], val_samples)
    check_sample_count(plan, method, 'validation_data[0]', val_samples)
    arguments['validation_data'] = (val_x, val_y) + tuple(validation[2:])


def check_evaluate(model, plan, method, arguments):
    if _is_generator(arguments['x']):
        return
    xs, ys, samples = _check_data(model, plan, method, arguments)
    check_sample_weight(method, 'sample_weight', arguments.get('sample_weight'), samples)
    check_batch_size_argument(model, plan, method, arguments)
    check_sample_count(plan, method, 'x', samples)
    arguments['x'], arguments['y'] = xs, ys


def check_predict(model, plan, method, arguments):
    if _is_generator(arguments['x']):
        return
    xs, _, samples = _check_data(model, plan, method, arguments, needs_y=False)
    check_batch_size_argument(model, plan, method, arguments)
    check_sample_count(plan, method, 'x', samples)
    arguments['x'] = xs


def check_on_batch(model, plan, method, arguments):
    needs_y = method != 'predict_on_batch'
    xs, ys, samples = _check_data(model, plan, method, arguments, needs_y=needs_y)
    if needs_y:
        check_sample_weight(method, 'sample_weight', arguments.get('sample_weight'), samples)
        arguments['y'] = ys
    check_sample_count(plan, method, 'x', samples, exact=True)
    arguments['x'] = xs


def check_generator(model, plan, method, arguments):
    """The last batch of a `keras.utils.Sequence`, before the first runs;
    every batch is checked again when it runs (the *_on_batch checks).
    Validation arrays of fit_generator, before the first batch."""
    from keras.utils import Sequence
    if method == 'fit_generator':
        check_validation_data(model, plan, method, arguments)
    sequence = arguments.get('generator')
    if not plan.remembers or not isinstance(sequence, Sequence):
        return
    steps = arguments.get('steps', arguments.get('steps_per_epoch'))
    length = len(sequence)
    last = min(length, steps) - 1 if steps else length - 1
    if last < 0:
        return
    batch = sequence[last]
    x = batch[0] if isinstance(batch, tuple) else batch
    xs = check_inputs(model, plan, method, 'batch %d of the generator' % last, x)
    check_sample_count(plan, method, 'batch %d (the last) of the generator' % last,
                       len(xs[0]), exact=True)


CHECKS = {'fit': check_fit, 'evaluate': check_evaluate, 'predict': check_predict,
          'train_on_batch': check_on_batch, 'test_on_batch': check_on_batch,
          'predict_on_batch': check_on_batch, 'fit_generator': check_generator,
          'evaluate_generator': check_generator, 'predict_generator': check_generator}


def _check_states_after(model):
    """`seq2seq.layers.state_checks.check_states_finite(model)`, when that module is there."""
    if 'module' not in _state_checks:
        try:
            _state_checks['module'] = importlib.import_module('seq2seq.layers.state_checks')
        except ImportError:
            _state_checks['module'] = None
    module = _state_checks['module']
    check = getattr(module, 'check_states_finite', None)
    if check is not None:
        check(model)


def _keywords(signature, arguments):
    """The bound arguments but the first (self) as keywords (Keras' legacy
    wrappers take few positional arguments)."""
    keywords = {}
    for name, value in list(arguments.items())[1:]:
        if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            keywords.update(value)
        else:
            keywords[name] = value
    return keywords


def guarded(method, original):
    """`original` (Keras' `Model.<method>`) with the checks in front."""
    signature = inspect.signature(original)
    check = CHECKS[method]

    @functools.wraps(original)
    def wrapper(self, *args, **kwargs):
        plan = model_plan(self)
        if plan is None:
            return original(self, *args, **kwargs)
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError as error:
            raise TypeError('%s: %s' % (method, error))
        bound.apply_defaults()
        check(self, plan, method, bound.arguments)
        result = original(self, **_keywords(signature, bound.arguments))
        if plan.remembers:
            _check_states_after(self)
        return result

    setattr(wrapper, ORIGINAL_ATTRIBUTE, original)
    return wrapper


def install():
    """Wrap Keras' Model entry points (idempotent)."""
    from keras.engine.training import Model
    for method in ENTRY_POINTS:
        current = getattr(Model, method)
        if getattr(current, ORIGINAL_ATTRIBUTE, None) is None:
            setattr(Model, method, guarded(method, current))
    return True


def is_installed():
    from keras.engine.training import Model
    return all(getattr(getattr(Model, method), ORIGINAL_ATTRIBUTE, None) is not None
               for method in ENTRY_POINTS)
