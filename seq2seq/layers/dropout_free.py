"""Teacher forcing without dropout: a graph rewrite for scoring.

A teacher-forced decoder reads the reference tokens only in Keras' training
phase (learning phase 1), and so do the dropout masks: scoring a model on
references (the validation loss of `seq2seq train`, `evaluate --metric
perplexity`, the attention heatmap) in phase 1 would include the dropout's
noise, a higher and noisier loss than the model's.

`without_dropout(outputs)` gives the same graph with every dropout mask
replaced by its expected value. `K.dropout(x, level)` (Theano backend) is

    x * cast(uniform(shape) < retain, dtype) / retain

and the mask `cast(uniform < retain)` becomes `retain` everywhere, so the
product is exactly x, as in the test phase. The random draws then leave the
graph: a function compiled from it neither reads nor advances any random
stream.
"""
from __future__ import absolute_import

import theano
import theano.tensor as T
from theano.sandbox.rng_mrg import mrg_uniform_base
from theano.scalar import Cast
from theano.tensor.elemwise import Elemwise


def _is_elemwise(node, scalar_type):
    return (node is not None and isinstance(node.op, Elemwise)
            and isinstance(node.op.scalar_op, scalar_type))


def dropout_masks(outputs):
    """{mask: (retain probability, shape)} of every `cast(uniform < retain)` draw
    that `outputs` depend on (scan bodies are not searched; our layers draw
    their masks outside the loops and pass them in)."""
    masks = {}
    for node in theano.gof.graph.io_toposort(theano.gof.graph.inputs(outputs), outputs):
        if not _is_elemwise(node, Cast):
            continue
        compare = node.inputs[0].owner
        if not _is_elemwise(compare, theano.scalar.LT):
            continue
        sample, retain = compare.inputs
        draw = _uniform_draw(sample)
        if draw is not None:
            masks[node.outputs[0]] = (retain, draw.inputs[1])   # (p, the draw's shape)
    return masks


def _uniform_draw(sample, depth=4):
    """The mrg_uniform node `sample` comes from, through the elementwise
    ops that scale it to [low, high) (`low + u * (high - low)`), or None."""
    node = sample.owner
    if node is None or depth == 0:
        return None
    if isinstance(node.op, mrg_uniform_base):
        return node
    if isinstance(node.op, Elemwise):
        for variable in node.inputs:
            found = _uniform_draw(variable, depth - 1)
            if found is not None:
                return found
    return None


def without_dropout(outputs):
    """`outputs` (a list of Theano variables) with every dropout mask set to
    its retain probability: the graph without the dropout's noise."""
    outputs = list(outputs)
    # A mask is filled from its draw's shape argument, and that shape (of a
    # stacked layer's input) may itself depend on a lower layer's mask, which
    # `theano.clone` leaves in the replacement: repeat until none is left.
    for _ in range(100):
        masks = dropout_masks(outputs)
        if not masks:
            return outputs
        replace = {mask: T.cast(T.alloc(retain, *[shape[i] for i in range(mask.ndim)]),
                                mask.dtype)
                   for mask, (retain, shape) in masks.items()}
        outputs = theano.clone(outputs, replace=replace)
    raise RuntimeError('dropout masks left after 100 rewrites')
