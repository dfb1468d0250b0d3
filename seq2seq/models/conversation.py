"""Conversations: training across exchanges, and laying conversations out
for models that remember their state.

A conversation is a list of exchanges (an input sequence and its answer).
A `Seq2seq` layer with `remember_state=True` carries the encoder's state
from one exchange (one batch) to the next, but a model trained one exchange
per batch cannot *learn* to keep what only a later exchange needs: the
gradient of exchange t's loss stops at the state exchange t-1 left behind.

    ConversationWindow    k consecutive exchanges of each conversation in one
                          graph: the states flow symbolically from exchange to
                          exchange, so exchange t's loss reaches the encoding of
                          exchanges t-1 .. t-k+1 (truncated back-propagation
                          through the conversation); with remember_state=True
                          the states also carry over from window to window.
    conversation_model    ids (batch, k, input_length) -> softmax
                          (batch, k, output_length, vocab), around a window.
    one_exchange_model    the same layer objects (the same weights) with a
                          window of one exchange and its own state: a chat.
    ConversationLayout    many conversations in the rows of fixed-size batches,
                          each row continuing its conversation from batch to
                          batch, and the rows to reset before each batch.
    ConversationResets    a Keras callback applying those resets in fit,
                          evaluate and predict.
    fit_conversations / evaluate_conversations / predict_conversations
                          Keras' fit / evaluate / predict with a layout (in
                          order: shuffling would scramble the rows).
    reset_hidden_state    every remembered state of a model, or some rows.
    get_hidden_state / set_hidden_state
                          every remembered state of a model, by layer name.
    save_hidden_state / load_hidden_state
                          the same to and from a file (written atomically), so a
                          conversation survives a restart.

What carries from one exchange to the next is what `Seq2seq.call` carries
with remember_state=True (the 2015 design): the encoder LSTMs' states, and
the states of the LSTMs stacked above the decoder. The decoder itself starts
every exchange from the top encoder LSTM's final state of that exchange, so
its own final state (after the answer) is not carried: an answer reaches the
next exchange only if it is part of the next input. This keeps training
through a window and running one exchange at a time with the same weights
exactly equal (tested), and leaves the remembered-state path unchanged.
"""
from __future__ import absolute_import

import os
import warnings

import numpy as np
import theano.tensor as T
from keras import backend as K
from keras.callbacks import Callback
from keras.layers import Activation, Embedding, Input
from keras.models import Model

from ..layers.arguments import (check_cell_arguments, check_keywords, constructor_keywords,
                                keyword_names)
from ..layers.base import StatefulRNN
from ..util.checks import check_bool, check_depth, check_positive_int
from ..layers.seq2seq_layer import Seq2seq


# -- training across exchanges --------------------------------------------------------
class ConversationWindow(StatefulRNN):
    """k consecutive exchanges of each conversation through one `Seq2seq`
    layer, the states passed from exchange to exchange inside the graph.

        S_0 = zeros, or the remembered states (remember_state=True)
        Y_t, S_t = layer.run_exchange(X_t, S_{t-1})        t = 1 .. k
        output = [Y_1, ..., Y_k];   S_k is remembered for the next window

    The gradient of Y_t's loss flows back through S_{t-1} .. S_1 into the
    exchanges before it (back-propagation through the conversation,
    truncated at the window's start). The wrapped layer holds the weights;
    the window holds the states, so the same `Seq2seq` layer can serve a
    training window (batch 32, k exchanges) and a chat (batch 1, one
    exchange; `one_exchange_model`) at the same time.

    # Arguments
        layer: a `Seq2seq` layer (its own remember_state is not used).
        window: k, the number of exchanges per sample.
        batch_size: sequences per batch; required with `remember_state=True`.
        remember_state: carry the states over from one window (batch) to the
            next, as `Seq2seq(remember_state=True)` does from one exchange
            to the next; `reset_hidden_state(rows=None)` ends conversations.
        hidden_state: initial remembered states (see `get_hidden_state()`,
            one [h, c] per LSTM in the order of `layer.recurrent_cells()`).

    Input (batch, window, input_length, input_dim), with an optional mask
    (batch, window, input_length) such as `Embedding(mask_zero=True)` gives:
    an exchange all padding passes the encoder's state through unchanged.
    Output (batch, window, output_length, output_dim).
    """

    def __init__(self, layer, window, batch_size=None, remember_state=False,
                 hidden_state=None, **kwargs):
        if not isinstance(layer, Seq2seq):
            raise TypeError('ConversationWindow wraps a Seq2seq layer, got %r' % (layer,))
        check_positive_int('window', window)
        super(ConversationWindow, self).__init__(batch_size=batch_size,
                                                 remember_state=remember_state,
                                                 hidden_state=hidden_state, **kwargs)
        self.layer = layer      # tracked by Keras: its weights are this layer's weights
        self.window = int(window)
        self.supports_masking = True
        if not getattr(layer, '_lower_width_pending', False):
            self._create_state_variables()

    def recurrent_cells(self):
        return self.layer.recurrent_cells()

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError('ConversationWindow expects input of shape (batch, window, '
                             'input_length, input_dim), got %s' % (input_shape,))
        if input_shape[1] is not None and input_shape[1] != self.window:
            raise ValueError('ConversationWindow(window=%d) got %s exchanges per sample '
                             '(input shape %s)' % (self.window, input_shape[1], input_shape))
        if not self.layer.built:
            self.layer.build((input_shape[0],) + tuple(input_shape[2:]))
        if self.remember_state and self._state_variables is None:
            self._create_state_variables()    # the cells' widths are known only now
        self.built = True

    def call(self, inputs, mask=None):
        n_cells = len(self.recurrent_cells())
        states = [self.initial_states(i, inputs) for i in range(n_cells)]
        outputs = []
        for t in range(self.window):
            # One exchange of every conversation, from the states the previous
            # exchange left: in the graph, so gradients reach back.
            mask_t = mask[:, t] if mask is not None else None    # (batch, input_length)
            output_t, states = self.layer.run_exchange(
                inputs[:, t], states, mask=mask_t)               # (batch, out_len, out_dim)
            outputs.append(output_t)
        self.remember(states, inputs)
        return T.stack(outputs, axis=1)                          # (batch, k, out_len, out_dim)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.window, self.layer.output_length, self.layer.output_dim)

    def compute_mask(self, inputs, mask=None):
        return None

    # -- step-by-step decoding of one exchange (seq2seq.search.model_search) ------------
    # With these, a window of one exchange (`one_exchange_model`) is a decoder
    # layer to `seq2seq.search.model_search`: `greedy_decode(chat, ids)` and
    # `beam_decode(chat, ids)` answer from the remembered states.
    @property
    def output_dim(self):
        return self.layer.output_dim

    @property
    def output_length(self):
        return self.layer.output_length

    @property
    def decoder(self):
        """The wrapped layer's `Decoder` (what the search's fused-step
        check reads)."""
        return self.layer.decoder

    def step_cells(self):
        return self.layer.step_cells()

    def decode_start(self, inputs, mask=None):
        """(first input, initial states per step cell, constants) of the
        answer to one exchange, inputs (batch, 1, input_length, input_dim):
        the encoder starts from the window's states (the remembered ones
        with remember_state=True, else zeros), as `call` starts it. The
        remembered states are read, not written: after the search, `predict`
        on the same exchange moves them on. The decoder feeds back its own
        readout (it is not teacher-forced), so its states, and so the states
        `call` remembers, do not depend on the tokens a search chooses."""
        if self.window != 1:
            raise ValueError('%s decodes step by step one exchange at a time, but has window=%d: '
                             'decode with one_exchange_model(model)' % (self.name, self.window))
        layer = self.layer
        n_encoders = len(layer.encoder_cells)
        states = [self.initial_states(i, inputs) for i in range(len(self.recurrent_cells()))]
        context, encoder_finals = layer.encode(inputs[:, 0], mask[:, 0] if mask is not None
                                               else None, states[:n_encoders])
        # As `Seq2seq.run_exchange`: the decoder LSTM starts from the top
        # encoder LSTM's final state, the upper ones from the window's states.
        decoder_states = [list(encoder_finals[-1])] + [list(s) for s in states[n_encoders + 1:]]
        vector = layer.bridge(context)                           # (batch, output_dim)
        return vector, decoder_states, layer.decoder.start(vector)

    def decode_step(self, x_tm1, states_tm1, constants):
        """One step of the wrapped layer's decoder (`Seq2seq.decode_step`)."""
        return self.layer.decode_step(x_tm1, states_tm1, constants)

    def get_config(self):
        config = {'layer': {'class_name': self.layer.__class__.__name__,
                            'config': self.layer.get_config()},
                  'window': self.window}
        base = super(ConversationWindow, self).get_config()
        base.pop('truncate_gradient', None)   # the wrapped layer's setting applies
        return dict(list(base.items()) + list(config.items()))

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from keras.layers import deserialize
        config = dict(config)
        objects = dict(custom_objects or {}, Seq2seq=Seq2seq)
        config['layer'] = deserialize(config['layer'], custom_objects=objects)
        return cls(**config)


# The arguments of the Seq2seq layer conversation_model does not set itself.
_SEQ2SEQ_KEYWORDS = tuple(sorted(
    set(constructor_keywords(Seq2seq)) - set(['input_length', 'input_dim', 'hidden_dim',
                                              'output_dim', 'output_length', 'depth', 'name',
                                              'input_shape', 'batch_input_shape'])))


def conversation_model(vocab_size, input_length, output_length, embedding_dim, hidden_dim,
                       window, batch_size=None, remember_state=False, target_vocab_size=None,
                       depth=1, **seq2seq_kwargs):
    """Token ids of k exchanges in, a softmax over the vocabulary out:

        ids (batch, window, input_length), 0 = padding
          -> Embedding(vocab_size, embedding_dim, mask_zero=True)
          -> ConversationWindow(Seq2seq(..., output_dim=target vocabulary), window)
          -> softmax                      (batch, window, output_length, vocab)

    Compile it with `loss='sparse_categorical_crossentropy'` and targets
    (batch, window, output_length, 1).

    # Arguments
        vocab_size: input token ids are in [0, vocab_size); 0 is padding.
        input_length, output_length: tokens per input and per answer.
        embedding_dim, hidden_dim: the embedding and the LSTMs' sizes.
        window: exchanges per sample (k); 1 trains exchange by exchange.
        batch_size, remember_state: as `ConversationWindow`'s.
        target_vocab_size: the answers' vocabulary (default vocab_size).
        depth: the `Seq2seq` layer's depth.
        seq2seq_kwargs: any other `Seq2seq` argument (implementation, ...).
    """
    owner = 'conversation_model'
    target_vocab_size = vocab_size if target_vocab_size is None else target_vocab_size
    for name, value in [('vocab_size', vocab_size), ('target_vocab_size', target_vocab_size),
                        ('window', window), ('input_length', input_length),
                        ('output_length', output_length), ('embedding_dim', embedding_dim),
                        ('hidden_dim', hidden_dim)]:
        check_positive_int(name, value, owner=owner)
    check_positive_int('batch_size', batch_size, allow_none=True, owner=owner)
    remember_state = check_bool('remember_state', remember_state, owner=owner)
    check_depth(depth, owner=owner)
    # The Seq2seq layer's other arguments, refused here rather than by the
    # layer in its own name (or by Python, for one this function sets).
    check_keywords(owner, seq2seq_kwargs, _SEQ2SEQ_KEYWORDS,
                   known=set(_SEQ2SEQ_KEYWORDS) | set(keyword_names(conversation_model)))
    check_cell_arguments(owner, seq2seq_kwargs)
    if remember_state and batch_size is None:
        raise ValueError('conversation_model: remember_state=True needs batch_size')
    ids = Input(batch_shape=(batch_size, window, input_length), dtype='int32', name='ids')
    embedded = Embedding(vocab_size, embedding_dim, mask_zero=True, name='embedding')(ids)
    layer = Seq2seq(input_length=input_length, input_dim=embedding_dim, hidden_dim=hidden_dim,
                    output_dim=target_vocab_size, output_length=output_length, depth=depth,
                    name='seq2seq', **seq2seq_kwargs)
    outputs = ConversationWindow(layer, window, batch_size=batch_size,
                                 remember_state=remember_state, name='window')(embedded)
    return Model(ids, Activation('softmax', name='softmax')(outputs))


def _window_layer(model):
    windows = [layer for layer in model.layers if isinstance(layer, ConversationWindow)]
    if len(windows) != 1:
        raise ValueError('model must hold one ConversationWindow layer, found %d'
                         % len(windows))
    return windows[0]


def one_exchange_model(model, batch_size=1, remember_state=True):
    """A model with the layers (so the very weights) of `model`, a chain of
    layers around one `ConversationWindow`, reading one exchange at a time:
    ids (batch_size, 1, input_length) -> (batch_size, 1, output_length, vocab).

    Its window has its own remembered states (remember_state=True): a chat
    keeps the conversation's context from one call of `predict` to the next
    until `reset_hidden_state(chat)`. Training `model` further changes the
    chat's weights too, since they are the same variables.
    """
    window = _window_layer(model)
    check_positive_int('batch_size', batch_size)
    source = model.inputs[0]
    shape = (batch_size, 1) + tuple(K.int_shape(source)[2:])
    ids = Input(batch_shape=shape, dtype=K.dtype(source), name='ids')
    tensor = ids
    for layer in model.layers:
        if layer.__class__.__name__ == 'InputLayer':
            continue
        if isinstance(layer.get_input_at(0), list):
            raise ValueError('one_exchange_model needs a chain of single-input layers; '
                             '%s takes several inputs' % layer.name)
        if layer is window:
            layer = ConversationWindow(window.layer, 1, batch_size=batch_size,
                                       remember_state=remember_state,
                                       name=window.name + '_one_exchange')
        tensor = layer(tensor)
    return Model(ids, tensor)


# -- remembered state of a whole model ---------------------------------------------------
def stateful_layers(model):
    """Every layer of `model` (nested models included) that remembers states."""
    found = []
    for layer in getattr(model, 'layers', [model]):
        if isinstance(layer, StatefulRNN):
            if layer.remember_state:
                found.append(layer)
        elif hasattr(layer, 'layers'):
            found.extend(stateful_layers(layer))
    return found


class ShuffledStateWarning(UserWarning):
    """A model with remembered state is fit with its samples shuffled."""


def warn_if_shuffled(model, shuffle):
    """Warn when `model` remembers states and `shuffle` (Keras' fit
    argument) is not False: shuffling scrambles which conversation each row
    of a batch continues."""
    layers = stateful_layers(model)
    if isinstance(shuffle, np.bool_):
        shuffle = bool(shuffle)
    if shuffle is not False and layers:
        warnings.warn('%s remembers its hidden state from batch to batch (%s), but fit '
                      'shuffles the samples (shuffle=%r, Keras\' default), so a row no longer '
                      'continues the same conversation: pass shuffle=False, or use '
                      'seq2seq.conversation.fit_conversations'
                      % (model.name, layers[0].name, shuffle), ShuffledStateWarning,
                      stacklevel=3)


def reset_hidden_state(model, rows=None):
    """`reset_hidden_state(rows)` on every layer of `model` that remembers
    states: rows=None clears every row, a list of ints only those rows (the
    rows whose conversation ends; the others keep their states exactly)."""
    for layer in stateful_layers(model):
        layer.reset_hidden_state(rows)


def get_hidden_state(model):
    """{layer name: `layer.get_hidden_state()`} of every layer of `model`
    that remembers states."""
    return {layer.name: layer.get_hidden_state() for layer in stateful_layers(model)}


def set_hidden_state(model, states):
    """Set the remembered states of `model`'s layers from what
    `get_hidden_state(model)` returned; every such layer must be in
    `states` (a ValueError names the missing ones, before any is set)."""
    layers = stateful_layers(model)
    if not isinstance(states, dict):
        raise TypeError('states must be a dict {layer name: hidden state} as '
                        'get_hidden_state(model) returns, got %s' % type(states).__name__)
    names = [layer.name for layer in layers]
    missing = [name for name in names if name not in states]
    unknown = sorted(set(states) - set(names))
    if missing or unknown:
        raise ValueError('states must hold the hidden state of exactly the layers %s that '
                         'remember states; missing %s, unknown %s' % (names, missing, unknown))
    saved = [layer.get_hidden_state() for layer in layers]
    try:
        for layer in layers:
            layer.set_hidden_state(states[layer.name])
    except Exception:
        for layer, old in zip(layers, saved):    # a refused layer leaves none changed
            layer.set_hidden_state(old)
        raise


def write_hidden_state(group, model):
    """Write `get_hidden_state(model)` into an h5py group: a subgroup per
    layer, a dataset 'cell_variable' (e.g. '0_1', the first cell's c) each."""
    for name, cells in get_hidden_state(model).items():
        layer_group = group.create_group(name)
        for i, cell in enumerate(cells):
            for j, array in enumerate(cell):
                layer_group.create_dataset('%d_%d' % (i, j), data=array)


def read_hidden_state(group, model):
    """Set `model`'s remembered states from an h5py group
    `write_hidden_state` wrote."""
    import h5py
    states = {}
    for name in group:
        layer_group = group[name]
        if not isinstance(layer_group, h5py.Group):
            raise ValueError('hidden state %r: expected a group per layer holding datasets '
                             'named CELL_VARIABLE (e.g. 0_1), found a dataset' % name)
        cells = {}
        for key in layer_group:
            parts = key.split('_')
            if len(parts) != 2 or not all(part.isdigit() for part in parts):
                raise ValueError('hidden state of layer %r: expected datasets named '
                                 'CELL_VARIABLE (e.g. 0_1, the first cell\'s c), found %r'
                                 % (name, key))
            i, j = (int(part) for part in parts)
            cells.setdefault(i, {})[j] = layer_group[key][()]
        states[name] = [[cells[i][j] for j in sorted(cells[i])] for i in sorted(cells)]
    if states or stateful_layers(model):
        set_hidden_state(model, states)


def save_hidden_state(model, path):
    """Save the remembered hidden states of `model` (every layer with
    remember_state=True) to an HDF5 file, written to a temporary file in the
    same folder, fsynced and renamed: a conversation interrupted by a
    restart continues with `load_hidden_state` where it stopped. (Keras'
    `model.save` does not save them; `seq2seq.callbacks.save_checkpoint`
    does.) A folder that is missing or not writable is a ValueError naming
    `path`, before anything is written; a failed write (disk full) a
    `seq2seq.util.files.FileWriteError` naming `path`, the old file kept."""
    import h5py
    from ..util.files import folder_problem, replaced_atomically
    if not stateful_layers(model):
        raise ValueError('model %r has no layer with remember_state=True: no hidden state '
                         'to save' % model.name)
    problem = folder_problem(path)
    if problem:
        raise ValueError('save_hidden_state: %s' % problem)
    with replaced_atomically(path) as temporary:
        with h5py.File(temporary, 'w') as f:
            write_hidden_state(f.create_group('hidden_state'), model)


HIDDEN_STATE_GROUP = 'hidden_state'


def load_hidden_state(model, path):
    """Set `model`'s remembered hidden states from a file `save_hidden_state`
    wrote (from a model with the same layer names and shapes). A file that
    is missing, not HDF5 (text, cut short) or laid out otherwise is a
    ValueError naming it, and the model's states are left as they were."""
    import h5py
    if not os.path.isfile(path):
        raise ValueError('load_hidden_state: %s: %s' % (
            path, 'is a folder, not a file' if os.path.isdir(path) else 'no such file'))
    try:
        f = h5py.File(path, 'r')
    except OSError as error:    # h5py's message names its internals, not the problem
        raise ValueError('load_hidden_state: %s is not a hidden state file written by '
                         'save_hidden_state (not a whole HDF5 file: %s)'
                         % (path, str(error).split('(')[0].strip() or type(error).__name__))
    with f:
        if HIDDEN_STATE_GROUP not in f or not isinstance(f[HIDDEN_STATE_GROUP], h5py.Group):
            raise ValueError('load_hidden_state: %s holds no group %r (expected a file '
                             'written by save_hidden_state; it holds %s)'
                             % (path, HIDDEN_STATE_GROUP, sorted(f) or 'nothing'))
        try:
            read_hidden_state(f[HIDDEN_STATE_GROUP], model)
        except ValueError as error:     # the file's layout, or another model's states
            raise ValueError('load_hidden_state: %s: %s' % (path, error))
        except (KeyError, OSError) as error:    # an HDF5 object that does not read
            raise ValueError('load_hidden_state: %s: the hidden state does not read (%s: %s)'
                             % (path, type(error).__name__, error))


# -- laying conversations out in the rows of batches --------------------------------
class ConversationLayout(object):
    """Many conversations in the rows of fixed-size batches, for a model that
    remembers its state from batch to batch.

    Each row of a batch carries one conversation, exchange after exchange
    (or window after window of `window` exchanges): row i of batch t+1
    continues row i of batch t. When a row's conversation ends, the row takes
    the next conversation not yet placed (in the order given; rows in
    order), and only that row's state must be cleared before the batch:
    `resets[t]`. Rows left with no conversation at the end are padding
    (weight 0). A conversation's last window is padded with empty exchanges
    (ids 0, weight 0), which pass the encoder's state through.

    # Arguments
        lengths: the number of exchanges of each conversation (each >= 1).
        batch_size: rows per batch (the model's batch size).
        window: None for a model reading one exchange per sample (arrays
            without a window axis), or k for a `ConversationWindow(window=k)`
            model (arrays with a window axis of k).

    # Attributes
        n_batches: the number of batches.
        exchange_index: int array (n_batches, batch_size, k): the index
            (into all exchanges, conversation after conversation) of the
            exchange at each place, -1 for padding (k is 1 without a window).
        conversation_index: int array (n_batches, batch_size): the
            conversation in each row of each batch, -1 for none.
        resets: per batch, the sorted list of rows to reset before it
            (batch 0: every row).
    """

    def __init__(self, lengths, batch_size, window=None):
        check_positive_int('batch_size', batch_size)
        check_positive_int('window', window, allow_none=True)
        lengths = list(lengths)
        for i, n in enumerate(lengths):
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
                raise ValueError('lengths must be positive ints (exchanges per conversation); '
                                 'lengths[%d] is %r' % (i, n))
        if not lengths:
            raise ValueError('lengths is empty: no conversation to lay out')
        self.lengths = [int(n) for n in lengths]
        self.batch_size = int(batch_size)
        self.window = window
        k = window or 1
        starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(int)
        self.n_exchanges = int(sum(self.lengths))
        steps = [-(-n // k) for n in self.lengths]               # windows per conversation
        next_conversation = 0
        row_conversation = [-1] * batch_size
        row_step = [0] * batch_size
        exchange_index, conversation_index, resets = [], [], []
        while True:
            reset = []
            for row in range(batch_size):
                ended = (row_conversation[row] < 0
                         or row_step[row] == steps[row_conversation[row]])
                if ended:
                    if next_conversation < len(lengths):
                        row_conversation[row], row_step[row] = next_conversation, 0
                        next_conversation += 1
                        reset.append(row)
                    else:
                        row_conversation[row] = -1
            if all(c < 0 for c in row_conversation):
                break
            places = -np.ones((batch_size, k), dtype=int)
            for row, conversation in enumerate(row_conversation):
                if conversation < 0:
                    continue
                first = row_step[row] * k
                for j in range(k):
                    if first + j < self.lengths[conversation]:
                        places[row, j] = starts[conversation] + first + j
                row_step[row] += 1
            exchange_index.append(places)
            conversation_index.append(list(row_conversation))
            resets.append(list(range(batch_size)) if not resets else reset)
        self.exchange_index = np.array(exchange_index, dtype=int)
        self.conversation_index = np.array(conversation_index, dtype=int)
        self.resets = resets
        self.n_batches = len(resets)

    @property
    def n_samples(self):
        """Rows over all batches: the number of samples `arrange` gives."""
        return self.n_batches * self.batch_size

    def _places(self):
        places = self.exchange_index.reshape(self.n_samples, -1)  # (samples, k)
        return places if self.window else places[:, 0]

    def arrange(self, per_exchange, fill=0):
        """An array with one entry per exchange (all conversations'
        exchanges in order, (n_exchanges, ...)) laid out in batches:
        (n_samples, ...) without a window, (n_samples, window, ...) with
        one; padding is `fill`. Fit, evaluate and predict with
        batch_size=self.batch_size and no shuffling."""
        per_exchange = np.asarray(per_exchange)
        if per_exchange.ndim < 1 or len(per_exchange) != self.n_exchanges:
            raise ValueError('arrange needs one entry per exchange: an array of length %d, '
                             'got shape %s' % (self.n_exchanges, per_exchange.shape))
        places = self._places()
        padded = np.concatenate([per_exchange, np.full((1,) + per_exchange.shape[1:], fill,
                                                       dtype=per_exchange.dtype)])
        return padded[places]                                    # -1 takes the fill row

    def sample_weights(self):
        """1 where a real exchange sits, 0 on padding: (n_samples,) without a
        window, (n_samples, window) with one (Keras' sample_weight_mode=
        'temporal' for a ConversationWindow model)."""
        return (self._places() >= 0).astype(K.floatx())

    def restore(self, arranged):
        """The inverse of `arrange`: one entry per exchange, in order."""
        arranged = np.asarray(arranged)
        places = self._places()
        if arranged.shape[:places.ndim] != places.shape:
            raise ValueError('restore needs an array laid out by this layout, of leading '
                             'shape %s, got shape %s' % (places.shape, arranged.shape))
        flat_places = places.ravel()
        flat = arranged.reshape((-1,) + arranged.shape[places.ndim:])
        result = np.zeros((self.n_exchanges,) + flat.shape[1:], dtype=arranged.dtype)
        real = flat_places >= 0
        result[flat_places[real]] = flat[real]
        return result


def check_batch_size(model, layout):
    """Raise ValueError unless every remembered state of `model` has the
    layout's batch size."""
    for layer in stateful_layers(model):
        if layer.batch_size != layout.batch_size:
            raise ValueError('the conversations are laid out in batches of %d but %s '
                             'remembers states for batch_size=%d: lay them out with '
                             'batch_size=%d' % (layout.batch_size, layer.name,
                                                layer.batch_size, layer.batch_size))


class ConversationResets(Callback):
    """Clears, before each batch of fit, evaluate or predict, the rows of the
    model's remembered states whose conversation starts there (the layout's
    `resets`; every row before the first batch).

    # Arguments
        layout: the `ConversationLayout` of the training (or predicted) data.
        test_layout: the layout of the data evaluated (fit's validation data,
            or `evaluate`); default `layout`.

    Fit and evaluate must run the batches in the layout's order: pass
    `shuffle=False` and `batch_size=layout.batch_size` (`fit_conversations`
    does). A callback cannot see Keras' `shuffle` argument, so it cannot
    catch `shuffle=True`; it checks the batch size and number of samples.
    """

    def __init__(self, layout, test_layout=None):
        super(ConversationResets, self).__init__()
        self.layout = layout
        self.test_layout = test_layout or layout

    def _check(self, layout, what):
        params = self.params or {}
        samples, batch_size = params.get('samples'), params.get('batch_size')
        if batch_size is not None and batch_size != layout.batch_size:
            raise ValueError('%s runs batches of %d but the conversations are laid out in '
                             'batches of %d: pass batch_size=%d'
                             % (what, batch_size, layout.batch_size, layout.batch_size))
        if samples is not None and samples != layout.n_samples:
            raise ValueError('%s got %d samples but the layout has %d (n_batches * batch_size)'
                             % (what, samples, layout.n_samples))

    def _reset(self, layout, batch):
        if batch == 0:
            check_batch_size(self.model, layout)
        if batch < layout.n_batches:
            reset_hidden_state(self.model, layout.resets[batch])

    def on_train_begin(self, logs=None):
        self._check(self.layout, 'fit')

    def on_train_batch_begin(self, batch, logs=None):
        self._reset(self.layout, batch)

    def on_test_batch_begin(self, batch, logs=None):
        self._reset(self.test_layout, batch)

    def on_predict_batch_begin(self, batch, logs=None):
        self._reset(self.layout, batch)

    def on_test_end(self, logs=None):
        # fit's validation leaves the states of the validation data behind.
        reset_hidden_state(self.model)


def _refuse_shuffle(kwargs, what):
    shuffle = kwargs.pop('shuffle', False)
    # numpy's booleans (np.False_, e.g. from a config array) are booleans.
    is_bool = isinstance(shuffle, (bool, np.bool_))
    if is_bool and not shuffle:
        pass
    elif is_bool or (isinstance(shuffle, str) and shuffle == 'batch'):
        raise ValueError('%s: shuffle=%r would scramble which conversation each row '
                         'continues (the layout\'s batches run in order; Keras\' default '
                         'shuffle=True and shuffle=\'batch\' both shuffle); leave shuffle out'
                         % (what, shuffle if isinstance(shuffle, str) else bool(shuffle)))
    else:
        raise TypeError('%s: shuffle must be False or left out (the layout\'s batches run in '
                        'order), got %r (%s)' % (what, shuffle, type(shuffle).__name__))
    for name in ('batch_size', 'steps_per_epoch'):
        if name in kwargs:
            raise ValueError('%s sets %s from the layout; do not pass it' % (what, name))


def fit_conversations(model, layout, x, y, sample_weight=None, validation=None,
                      callbacks=None, **kwargs):
    """Keras' `fit` over conversations laid out by `layout` (x, y from
    `layout.arrange`): batches in order (shuffle=True is refused), the
    layout's batch size, its resets between batches, padding weighted 0.

    # Arguments
        sample_weight: default `layout.sample_weights()` (needs
            sample_weight_mode='temporal' in compile for a window model).
        validation: optional (layout, x, y) of held-out conversations.
        (any other argument of `fit`, except shuffle and batch_size)
    """
    _refuse_shuffle(kwargs, 'fit_conversations')
    check_batch_size(model, layout)
    if sample_weight is None:
        sample_weight = layout.sample_weights()
    test_layout = None
    if validation is not None:
        test_layout, x_val, y_val = validation
        if test_layout.batch_size != layout.batch_size:
            raise ValueError('validation must be laid out with the same batch_size (%d), '
                             'got %d' % (layout.batch_size, test_layout.batch_size))
        kwargs['validation_data'] = (x_val, y_val, test_layout.sample_weights())
    resets = ConversationResets(layout, test_layout)
    return model.fit(x, y, batch_size=layout.batch_size, shuffle=False,
                     sample_weight=sample_weight, callbacks=[resets] + list(callbacks or []),
                     **kwargs)


def evaluate_conversations(model, layout, x, y, sample_weight=None, **kwargs):
    """Keras' `evaluate` over conversations laid out by `layout`."""
    _refuse_shuffle(kwargs, 'evaluate_conversations')
    check_batch_size(model, layout)
    if sample_weight is None:
        sample_weight = layout.sample_weights()
    callbacks = [ConversationResets(layout)] + list(kwargs.pop('callbacks', None) or [])
    return model.evaluate(x, y, batch_size=layout.batch_size, sample_weight=sample_weight,
                          callbacks=callbacks, **kwargs)


def predict_conversations(model, layout, x, **kwargs):
    """Keras' `predict` over conversations laid out by `layout`, with its
    resets; returns one prediction per exchange, in the order of the
    exchanges (`layout.restore`)."""
    _refuse_shuffle(kwargs, 'predict_conversations')
    check_batch_size(model, layout)
    callbacks = [ConversationResets(layout)] + list(kwargs.pop('callbacks', None) or [])
    predicted = model.predict(x, batch_size=layout.batch_size, callbacks=callbacks, **kwargs)
    return layout.restore(predicted)
