"""Keras' own crossentropy losses on a softmax output, computed by the fused
loss Ops of `seq2seq.ops.fused_softmax`, with Keras' values.

A model compiled with `loss='sparse_categorical_crossentropy'` on a
`Dense(vocab, activation='softmax')` output (inside `TimeDistributed` or not,
or `Activation('softmax')` / `K.softmax` after a Dense) gets from Keras 2.3.1's
Theano backend, per position:

    y_pred = softmax(x W + b)                               (positions, classes)
    one_hot = to_one_hot(flatten(y_true))                   (positions, classes)
    nll = -sum(one_hot * log(clip(y_pred / sum(y_pred), eps, 1 - eps)), -1)

five passes over a (positions, classes) array and their gradients. In exact
maths `y_pred / sum(y_pred)` is `y_pred` and the one-hot product picks the
target's probability p, so this is

    nll = -log(clip(p, eps, 1 - eps))
        = log(sum(exp(z))) - z_y            where eps <= p <= 1 - eps,
        = -log(eps), or -log(1 - eps)       where the clip binds,

and the gradient with respect to the logits z = x W + b is
`d nll * (softmax(z) - one_hot(y))`, or 0 on a row where the clip binds (the
clip's gradient is zero there, and only the target's probability reaches the
loss). That is `SoftmaxCrossEntropy(clip=(eps, 1 - eps))`: the same values
(up to float rounding: the fused Op computes the log-probability from the
logits, Keras takes the log of a rounded probability) and the same gradient.

The rewrite is applied in two places, because Keras differentiates the loss
before Theano optimizes anything:

* `keras.backend.gradients` (what Keras' optimizers call) rewrites the loss
  before `theano.grad`, so that the gradient graph is the fused gradient Op's;
* a local optimizer in Theano's optimizer database (`seq2seq_keras_loss`,
  before canonicalization, where Keras' graph is still as built) rewrites the
  loss of every compiled function: `evaluate`, and the loss output of the
  training function, which Theano's merge pass then shares with the gradient.

A pattern it does not recognise in full (probabilities that are not a
softmax of logits, another clip, a target that is not Keras' one-hot) is left
as it is. One-hot (dense) targets, `loss='categorical_crossentropy'`, are left
as well: a target matrix may hold any distribution, which the integer-target
Op cannot take.

Off: `SEQ2SEQ_PATCH_KERAS_LOSS=0` in the environment before `import seq2seq`,
`seq2seq._theano.install({'keras_loss': False})`, or, in a running process,
`set_enabled(False)` or `with disabled(): ...` around the compile and the first
`fit` / `train_on_batch` (where Keras builds its training function).
"""
from __future__ import absolute_import

import contextlib
import warnings

THEANO_VERSION = '1.0.11'
OPTIMIZER_NAME = 'seq2seq_keras_loss'

# Before canonicalize (position 1 in theano.compile.optdb), which rewrites the
# negation, sums and products of Keras' graph beyond recognition.
OPTIMIZER_POSITION = 0.5

_state = {'installed': False, 'enabled': True, 'local_optimizer': None}


def is_enabled():
    """Whether the rewrite applies to graphs differentiated and compiled now."""
    return _state['installed'] and _state['enabled']


def set_enabled(on):
    """Turn the rewrite on or off for the graphs differentiated and compiled
    from now on (functions already compiled keep what they have)."""
    if not isinstance(on, bool):
        raise TypeError('set_enabled: on must be True or False, got %r' % (on,))
    _state['enabled'] = on


@contextlib.contextmanager
def disabled():
    """Keras' own graph for what is differentiated and compiled inside."""
    saved = _state['enabled']
    _state['enabled'] = False
    try:
        yield
    finally:
        _state['enabled'] = saved


def install():
    """Register the rewrite in Theano's optimizer and wrap Keras'
    `gradients`. Idempotent. Skipped, with a warning, on a Theano other than
    1.0.11 (the graph Keras builds there was not checked)."""
    if _state['installed']:
        return True
    import theano
    if theano.__version__ != THEANO_VERSION:
        warnings.warn('seq2seq: the Keras loss rewrite was written for Theano %s, this is '
                      'Theano %s: not installed' % (THEANO_VERSION, theano.__version__))
        return False
    from theano import gof
    from theano.compile import optdb
    if OPTIMIZER_NAME not in optdb.__db__:
        optdb.register(OPTIMIZER_NAME,
                       gof.TopoOptimizer(local_optimizer(), order='out_to_in'),
                       OPTIMIZER_POSITION, 'fast_run', 'fast_compile')
    _wrap_keras_gradients()
    _state['installed'] = True
    return True


def _wrap_keras_gradients():
    """keras.backend.gradients(loss, variables) differentiates the rewritten
    loss. Keras' optimizers read `K.gradients` at call time."""
    import keras.backend
    from keras.backend import load_backend, theano_backend
    original = theano_backend.gradients
    if getattr(original, '_seq2seq_keras_loss', False):
        return

    def gradients(loss, variables):
        if is_enabled():
            loss = rewrite_loss(loss, keep=variables)
        return original(loss, variables)

    gradients.__doc__ = original.__doc__
    gradients._seq2seq_keras_loss = True
    for module in (theano_backend, load_backend, keras.backend):
        if getattr(module, 'gradients', None) is original:
            module.gradients = gradients


# ---------------------------------------------------------------------------
# The rewrite


def rewrite_loss(loss, keep=()):
    """`loss` with every Keras crossentropy it uses replaced by the fused Op;
    the other variables of its graph are the same objects. `loss` itself when
    there is nothing to replace, or when a variable of `keep` (what is being
    differentiated) depends on a replaced one."""
    import theano
    from theano.gof.graph import inputs, io_toposort
    if not isinstance(loss, theano.Variable):
        return loss
    nodes = io_toposort(inputs([loss]), [loss])
    replaced = {}
    for node in nodes:
        fused = fused_crossentropy(node)
        if fused is not None:
            replaced[node.outputs[0]] = fused
    if not replaced:
        return loss
    new = replace_downstream(loss, replaced, nodes)
    if any(variable in new for variable in _as_list(keep)):
        return loss
    return new.get(loss, loss)


def replace_downstream(output, replacements, nodes=None):
    """{old variable: new variable} for every variable of `output`'s graph
    that depends on a key of `replacements` (which it maps to its value): only
    those nodes are rebuilt, the rest of the graph stays the same objects."""
    from theano.gof.graph import inputs, io_toposort
    if nodes is None:
        nodes = io_toposort(inputs([output]), [output])
    new = dict(replacements)
    for node in nodes:
        if any(variable in replacements for variable in node.outputs):
            continue
        new_inputs = [new.get(variable, variable) for variable in node.inputs]
        if any(a is not b for a, b in zip(new_inputs, node.inputs)):
            clone = node.clone_with_new_inputs(new_inputs)
            new.update(zip(node.outputs, clone.outputs))
    return new


def _as_list(variables):
    return list(variables) if isinstance(variables, (list, tuple)) else [variables]


def _local_keras_crossentropy(node):
    if not is_enabled():
        return False
    fused = fused_crossentropy(node)
    return False if fused is None else [fused]


def local_optimizer():
    """The rewrite as a Theano local optimizer (of Elemwise nodes), built
    once."""
    if _state['local_optimizer'] is None:
        from theano import gof
        import theano.tensor as T
        _state['local_optimizer'] = gof.local_optimizer([T.Elemwise])(
            _local_keras_crossentropy)
    return _state['local_optimizer']


def fused_crossentropy(node):
    """The fused replacement of `node`'s output when `node` is the last node
    (the negation) of Keras' crossentropy on a softmax of logits; else None.

    y_pred may also be `ifelse(learning_phase, a, b)` (`K.in_train_phase`, a
    teacher-forced decoder's output): each branch that is a softmax of
    logits gets the fused Op, the other keeps Keras' graph."""
    parts = match_keras_crossentropy(node)
    if parts is None:
        return None
    one_hot, clip, probabilities = parts
    return _fused_nll(node.outputs[0], one_hot, clip, probabilities)


def _fused_nll(keras_nll, one_hot, clip, probabilities):
    """`keras_nll` (Keras' loss of `probabilities`) from the fused Op, or None."""
    import theano.tensor as T
    from theano.ifelse import IfElse, ifelse
    from ..ops import fused_softmax
    logits_and_bias = softmax_logits(probabilities)
    if logits_and_bias is None:
        node = probabilities.owner
        if node is None or not isinstance(node.op, IfElse) or len(node.outputs) != 1:
            return None
        condition, branches = node.inputs[0], node.inputs[1:]
        fused = [_fused_nll(keras_nll, one_hot, clip, branch) for branch in branches]
        if all(nll is None for nll in fused):
            return None
        fused = [nll if nll is not None else
                 replace_downstream(keras_nll, {probabilities: branch})[keras_nll]
                 for nll, branch in zip(fused, branches)]
        return ifelse(condition, fused[0], fused[1])
    logits, bias = logits_and_bias
    if logits.dtype not in fused_softmax.DTYPES or bias.dtype != logits.dtype:
        return None
    logits = _assert_equal(logits, logits.shape[1], probabilities.shape[-1],
                           'the softmax and y_pred have different class axes')
    targets = _one_hot_targets(one_hot, probabilities)
    if targets is not None:
        nll = fused_softmax.softmax_crossentropy(logits, bias, targets, clip=clip)
    else:
        targets = _dense_targets(one_hot, probabilities)
        if targets is None or targets.dtype != logits.dtype:
            return None
        nll = fused_softmax.softmax_categorical_crossentropy(logits, bias, targets, clip=clip)
    nll = T.reshape(nll, probabilities.shape[:-1], ndim=probabilities.ndim - 1)
    return T.patternbroadcast(T.cast(nll, keras_nll.dtype), keras_nll.broadcastable)


def match_keras_crossentropy(node):
    """(y_true, (lo, hi), y_pred) when `node` is `-sum(y_true * log(clip(y_pred
    / sum(y_pred, -1), lo, hi)), -1)`, as Keras' Theano
    `categorical_crossentropy` (and so `sparse_categorical_crossentropy`,
    with y_true its one-hot of the integer targets) builds it; else None."""
    import theano.scalar as scalar
    if not _is_elemwise(node, scalar.Neg):
        return None
    total = node.inputs[0]                                      # (..., ) per position
    ndim = total.ndim + 1
    if not _is_last_axis_reduce(total.owner, 'sum', ndim):
        return None
    product = total.owner.inputs[0]                             # (..., classes)
    if product.ndim != ndim or not _is_elemwise(product.owner, scalar.Mul) \
            or len(product.owner.inputs) != 2:
        return None
    for one_hot, log in (product.owner.inputs, product.owner.inputs[::-1]):
        if _is_elemwise(log.owner, scalar.Log):
            break
    else:
        return None
    clipped = log.owner.inputs[0]
    if not _is_elemwise(clipped.owner, scalar.Clip):
        return None
    clip = _clip_bounds(clipped.owner)
    probabilities = _renormalised(clipped.owner.inputs[0], ndim)
    if clip is None or probabilities is None:
        return None
    return one_hot, clip, probabilities


def _is_elemwise(node, scalar_class):
    import theano.tensor as T
    return (node is not None and isinstance(node.op, T.Elemwise)
            and isinstance(node.op.scalar_op, scalar_class))


def _is_last_axis_reduce(node, kind, ndim):
    """`node` reduces its `ndim`-d input over the last axis only, by `kind`
    ('sum' or 'max')."""
    import theano.scalar as scalar
    import theano.tensor as T
    from theano.tensor.basic import MaxAndArgmax
    if node is None or node.inputs[0].ndim != ndim:
        return False
    op = node.op
    if kind == 'max' and isinstance(op, MaxAndArgmax):
        return tuple(op.axis) == (ndim - 1,)
    wanted = {'sum': scalar.Add, 'max': scalar.Maximum}[kind]
    return (isinstance(op, T.elemwise.CAReduce) and isinstance(op.scalar_op, wanted)
            and op.axis is not None and tuple(op.axis) == (ndim - 1,)
            and (kind != 'sum' or isinstance(op, T.elemwise.Sum)))


def _keepdims_of(variable, kind, ndim):
    """The input `x` when `variable` is `kind(x, axis=-1, keepdims=True)` of an
    `ndim`-d x; else None."""
    import theano.tensor as T
    node = variable.owner
    if (node is None or not isinstance(node.op, T.DimShuffle)
            or tuple(node.op.new_order) != tuple(range(ndim - 1)) + ('x',)):
        return None
    reduced = node.inputs[0]
    if reduced.owner is None or reduced.owner.outputs[0] is not reduced \
            or not _is_last_axis_reduce(reduced.owner, kind, ndim):
        return None
    return reduced.owner.inputs[0]


def _renormalised(variable, ndim):
    """p when `variable` is `p / sum(p, axis=-1, keepdims=True)`; else None."""
    import theano.scalar as scalar
    node = variable.owner
    if not _is_elemwise(node, scalar.TrueDiv):
        return None
    probabilities, total = node.inputs
    if probabilities.ndim != ndim or _keepdims_of(total, 'sum', ndim) is not probabilities:
        return None
    return probabilities


def _clip_bounds(node):
    """(lo, hi) of an `Elemwise{clip}` with constant bounds 0 < lo <= hi <= 1,
    as floats of the clip's dtype (the comparisons Keras makes); else None."""
    import theano.tensor as T
    try:
        lo, hi = (T.get_scalar_constant_value(bound) for bound in node.inputs[1:])
    except T.NotScalarConstantError:
        return None
    lo, hi = float(lo), float(hi)
    if not 0.0 < lo <= hi <= 1.0:
        return None
    return (lo, hi)


def softmax_logits(probabilities):
    """(logits (positions, classes), bias (classes,)) when `probabilities` is a
    softmax over its last axis: Theano's 2-d softmax (Keras' for 2-d inputs,
    and inside TimeDistributed), reshaped or not, or Keras' N-d
    `exp(x - max(x)) / sum(exp(x - max(x)))`. A zero bias when none is found.
    Else None."""
    from ..ops import fused_softmax
    found = fused_softmax.softmax_input(probabilities)
    if found is not None:
        return found
    return _nd_softmax_logits(probabilities)


def _nd_softmax_logits(probabilities):
    import theano.scalar as scalar
    import theano.tensor as T
    ndim = probabilities.ndim
    if ndim < 3:
        return None
    node = probabilities.owner
    if not _is_elemwise(node, scalar.TrueDiv):
        return None
    exp, total = node.inputs
    if _keepdims_of(total, 'sum', ndim) is not exp or not _is_elemwise(exp.owner, scalar.Exp):
        return None
    shifted = exp.owner.inputs[0]
    if not _is_elemwise(shifted.owner, scalar.Sub):
        return None
    x, shift = shifted.owner.inputs
    if x.ndim != ndim or _keepdims_of(shift, 'max', ndim) is not x:
        return None
    classes = x.shape[-1]
    bias = _row_bias_vector(x)
    if bias is not None:
        rows, bias = bias
        return T.reshape(rows, (-1, classes), ndim=2), bias
    logits = T.reshape(x, (-1, classes), ndim=2)
    return logits, T.zeros_like(logits[0])


def _row_bias_vector(x):
    """(y, b) when `x` is `y + b` with b a vector broadcast along the last axis
    (Keras' bias_add), else None."""
    import theano.scalar as scalar
    import theano.tensor as T
    node = x.owner
    if not _is_elemwise(node, scalar.Add) or len(node.inputs) != 2:
        return None
    for rows, other in (node.inputs, node.inputs[::-1]):
        if rows.ndim != x.ndim or any(rows.broadcastable) \
                or tuple(other.broadcastable) != (True,) * (x.ndim - 1) + (False,):
            continue
        source = other.owner
        if source is not None and isinstance(source.op, (T.DimShuffle, T.Reshape)) \
                and source.inputs[0].ndim == 1:
            return rows, source.inputs[0]
    return None


def _one_hot_targets(one_hot, probabilities):
    """The int32 targets t when `one_hot` is Keras' `reshape(to_one_hot(t,
    classes), shape(y_pred))`; else None. The shapes Keras' graph relies on
    are checked when the function runs."""
    import theano.tensor as T
    from theano.tensor.basic import Alloc, ARange
    from theano.tensor.subtensor import AdvancedIncSubtensor
    node = one_hot.owner
    if node is None or not isinstance(node.op, T.Reshape) or node.inputs[0].ndim != 2:
        return None
    setter = node.inputs[0].owner
    if (setter is None or not isinstance(setter.op, AdvancedIncSubtensor)
            or not setter.op.set_instead_of_inc or len(setter.inputs) != 4):
        return None
    zeros, one, rows, targets = setter.inputs
    if zeros.owner is None or not isinstance(zeros.owner.op, Alloc) \
            or len(zeros.owner.inputs) != 3 or rows.owner is None \
            or not isinstance(rows.owner.op, ARange) or targets.ndim != 1 \
            or targets.dtype not in T.integer_dtypes:
        return None
    if not (_constant_equals(zeros.owner.inputs[0], 0) and _constant_equals(one, 1)
            and _constant_equals(rows.owner.inputs[0], 0)
            and _constant_equals(rows.owner.inputs[2], 1)):
        return None
    _, alloc_rows, alloc_classes = zeros.owner.inputs
    positions = T.prod(probabilities.shape[:-1])
    conditions = [T.eq(alloc_classes, probabilities.shape[-1]),
                  T.eq(alloc_rows, targets.shape[0]),
                  T.eq(rows.owner.inputs[1], targets.shape[0]),
                  T.eq(targets.shape[0], positions)]
    checked = _assert_all(T.cast(targets, 'int32'), conditions,
                          "Keras' one-hot targets do not match y_pred's positions and classes")
    return checked


def _dense_targets(targets, probabilities):
    """`targets` as a (positions, classes) matrix when it is a float tensor of
    y_pred's shape (Keras' `categorical_crossentropy`); else None."""
    import theano.tensor as T
    if (targets.ndim != probabilities.ndim or targets.dtype not in ('float32', 'float64')
            or targets.broadcastable != probabilities.broadcastable):
        return None
    targets = _assert_all(targets, [T.eq(targets.shape[axis], probabilities.shape[axis])
                                    for axis in range(targets.ndim)],
                          'y_true and y_pred have different shapes')
    return T.reshape(targets, (-1, probabilities.shape[-1]), ndim=2)


def _constant_equals(variable, value):
    import theano.tensor as T
    try:
        return T.get_scalar_constant_value(variable) == value
    except T.NotScalarConstantError:
        return False


def _assert_equal(variable, a, b, message):
    import theano.tensor as T
    return _assert_all(variable, [T.eq(a, b)], message)


def _assert_all(variable, conditions, message):
    from theano.tensor.opt import Assert
    return Assert('seq2seq keras_loss: ' + message)(variable, *conditions)
