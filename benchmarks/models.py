"""The benchmarked models: one encoder-decoder, built in each framework.

Every row trains the same network, shaped like the `Seq2seq` layer:

    tokens (batch, input_length)
      -> Embedding(vocab, embed)
      -> encoder: (depth - 1) LSTMs of width `embed`, then an LSTM of width
         `hidden` whose final (h, c) start the decoder
      -> decoder: an LSTM of width `hidden` run `output_length` steps
      -> (depth - 1) LSTMs of width `hidden` over the decoder's outputs
      -> Dense(hidden -> vocab) and a softmax at every output step
    loss: softmax cross-entropy over the vocabulary at every output step,
    averaged; Adam (learning rate 0.001).

The rows differ only in what the decoder reads at each step:
- `seq2seq_*` and `torch_cell`: its own previous output (a Dense(hidden ->
  hidden) readout of h, fed back; the first input is a Dense bridge of the
  context), as the `Seq2seq` layer does.
- `keras_*` and `torch_lstm`: the context vector, repeated (`RepeatVector`).
  `keras_repeat` starts the decoder from zeros, the others from the encoder's
  final state.

The Theano rows use hard_sigmoid gates (the `Seq2seq` default, and Keras' LSTM
is told the same); PyTorch's LSTMs have sigmoid gates, which cost the same.

This module is imported by the Theano venv (Python 3.8) and by the PyTorch
venv (Python 3.11): each framework is imported inside its own functions.
"""
import collections
import inspect

Size = collections.namedtuple(
    'Size', 'name vocab embed hidden input_length output_length depth batch samples')

SIZES = {
    'small': Size('small', vocab=1000, embed=64, hidden=256, input_length=20,
                  output_length=20, depth=1, batch=64, samples=2048),
    'large': Size('large', vocab=1000, embed=64, hidden=512, input_length=50,
                  output_length=50, depth=2, batch=64, samples=2048),
}

# `--quick`: tiny stand-ins with the same structure (depth included).
QUICK_SIZES = {
    'small': Size('small-quick', vocab=50, embed=8, hidden=16, input_length=4,
                  output_length=4, depth=1, batch=8, samples=32),
    'large': Size('large-quick', vocab=50, embed=8, hidden=16, input_length=5,
                  output_length=5, depth=2, batch=8, samples=32),
}

# How each model row is built, for the table and the README.
ARRANGEMENTS = {
    'seq2seq_scan': 'Embedding -> Seq2seq(output_dim=hidden) -> TimeDistributed(Dense(vocab, softmax)); scan loops',
    'seq2seq_fused': 'as seq2seq_scan, implementation="fused"',
    'attention': 'Embedding -> AttentionSeq2Seq(output_dim=hidden, bidirectional encoder) -> '
                 'TimeDistributed(Dense(vocab, softmax)); implementation "auto"',
    'keras_repeat': 'Embedding -> LSTM -> RepeatVector -> LSTM(return_sequences) -> TimeDistributed(Dense(vocab, softmax)); decoder from zeros',
    'keras_state': 'as keras_repeat, decoder LSTM(initial_state=encoder [h, c]) (functional API)',
    'torch_lstm': 'nn.Embedding -> nn.LSTM -> nn.LSTM fed the context every step, from the encoder state -> nn.Linear',
    'torch_cell': 'nn.Embedding -> nn.LSTM -> nn.LSTMCell loop feeding back a Linear readout of h -> nn.Linear',
    'torch_attention': 'PyTorch twin of attention: nn.Embedding, bidirectional nn.LSTM encoder '
                       '(hidden / 2 per direction), x_0 = tanh(Linear(final h of both '
                       'directions)), a Python loop of nn.LSTMCell reading [x_{t-1}, context], '
                       'additive attention from the previous h, a Linear readout of [h, context] '
                       'fed back, nn.Linear(hidden, vocab)',
    'seq2seq_fused_xent': 'as seq2seq_fused, trained with loss=seq2seq.losses.sparse_softmax_crossentropy '
                          '(fused softmax cross-entropy) instead of Keras\' sparse_categorical_crossentropy',
    'keras_state_xent': 'as keras_state, with loss=seq2seq.losses.sparse_softmax_crossentropy',
    'decode_greedy': 'the seq2seq_scan model (untrained): seq2seq.inference.greedy_decode '
                     '(compiled start and step functions of the Seq2seq layer, kept on the '
                     'model), eos_id=None (every sequence runs output_length steps); the step '
                     'feeds back the continuous output, the chosen token only picks the hypothesis',
    'decode_beam5': 'as decode_greedy, with seq2seq.inference.beam_decode(beam_size=5)',
    'decode_g2p_greedy': 'AttentionSeq2Seq at G2P shapes as the command line builds it (letter ids '
                         'of 28 through Embedding(mask_zero=True), up to 20 letters, mean 7.5; 19 '
                         'phonemes of 41 out; hidden 256, bidirectional encoder, teacher-forced: '
                         'the chosen phoneme is fed back), untrained; '
                         'seq2seq.inference.greedy_decode, 128 words per call, eos_id=None (all 19 '
                         'steps); sequences/s = words/s',
    'attention_g2p_fused': 'AttentionSeq2Seq at G2P shapes as the command line builds it (letter ids '
                           'through Embedding(mask_zero=True), bidirectional encoder, teacher_force=True, '
                           'readout_activation="softmax"), trained with fit([letters, one-hot phonemes], '
                           'phoneme ids) and seq2seq.losses.sparse_softmax_crossentropy, batch 64; '
                           'implementation "auto": the fused attention decoder Op and the fused loss',
    'attention_g2p_scan': 'as attention_g2p_fused, implementation="scan" (the decoder\'s scan loop)',
    'torch_attention_g2p': 'PyTorch twin of attention_g2p_*: nn.Embedding, bidirectional nn.LSTM '
                           'encoder, x_0 = tanh(Linear(final h of both directions)), a Python loop of '
                           'nn.LSTMCell reading [previous target one-hot, context], additive attention '
                           '(masked padding) from the previous h, Linear readout of [h, context], '
                           'CrossEntropyLoss over the logits',
    'decode_g2p_beam5': 'as decode_g2p_greedy, with beam_decode(beam_size=5)',
    'attention_g2p2_fused': 'as attention_g2p_fused with a decoder of two LSTM cells '
                            '(depth=(1, 2)): the query reads the top cell, the context feeds '
                            'the bottom one; the fused attention decoder Op runs the stack',
    'attention_g2p2_scan': 'as attention_g2p2_fused, implementation="scan"',
    'teacher_g2p_fused': 'Seq2Seq at G2P shapes as `seq2seq train --model seq2seq` builds it '
                         '(no attention: the encoder\'s state starts the decoder; '
                         'teacher_force=True, readout_activation="softmax"), trained as '
                         'attention_g2p_fused; implementation "auto": each decoder cell one '
                         'fused LSTM Op over the sequence',
    'teacher_g2p_scan': 'as teacher_g2p_fused, implementation="scan"',
    'teacher_g2p_gru_fused': 'as teacher_g2p_fused with cell="gru" (Keras 2.3.1\'s GRU): each '
                             'encoder and decoder cell one fused GRU Op over the sequence',
    'teacher_g2p_gru_scan': 'as teacher_g2p_gru_fused, implementation="scan"',
    'torch_teacher_g2p': 'PyTorch twin of teacher_g2p_*: nn.Embedding, nn.LSTM encoder whose '
                         'final state starts an nn.LSTM decoder over [x_0 = Linear(final h), '
                         'previous target one-hots], Linear readout, CrossEntropyLoss',
    'torch_teacher_g2p_gru': 'PyTorch twin of teacher_g2p_gru_*: torch_teacher_g2p with nn.GRU',
    'torch_attention_g2p2': 'PyTorch twin of attention_g2p2_*: as torch_attention_g2p with two '
                            'nn.LSTMCell per step, the second reading the first\'s h, the '
                            'attention queried by the second\'s previous h',
    'attention_g2p_gru_fused': 'as attention_g2p_fused with cell="gru" (Keras 2.3.1\'s GRU, '
                               'encoder and decoder): the fused GRU encoder and the fused '
                               'attention decoder Op with GRU cells',
    'attention_g2p_gru_scan': 'as attention_g2p_gru_fused, implementation="scan"',
    'torch_attention_g2p_gru': 'PyTorch twin of attention_g2p_gru_*: torch_attention_g2p with '
                               'a bidirectional nn.GRU encoder and an nn.GRUCell decoder',
}

SEQ2SEQ_IMPLEMENTATIONS = ('scan', 'fused')

# Rows named `<row>_xent` are `<row>` trained with seq2seq's fused loss.
XENT_SUFFIX = '_xent'


def split_loss(row):
    """(the row's model, whether it trains with seq2seq's fused loss)."""
    if row.endswith(XENT_SUFFIX):
        return row[:-len(XENT_SUFFIX)], True
    return row, False


def encoder_widths(size):
    """Widths of the encoder LSTMs, bottom first (as in `Seq2seq`)."""
    return [size.embed] * (size.depth - 1) + [size.hidden]


# -- data -----------------------------------------------------------------------

def token_data(size, seed=0):
    """Random token sequences: inputs (samples, input_length) and targets
    (samples, output_length), int32 numpy arrays in [1, vocab)."""
    import numpy as np
    rng = np.random.RandomState(seed)
    x = rng.randint(1, size.vocab, size=(size.samples, size.input_length)).astype('int32')
    y = rng.randint(1, size.vocab, size=(size.samples, size.output_length)).astype('int32')
    return x, y


# -- Theano: our Seq2seq layer ------------------------------------------------------

def seq2seq_implementations():
    """The values of the layers' `implementation` argument that construct.

    [None] when the layers have no such argument (only the scan loops exist).
    """
    from seq2seq import Seq2seq
    if not _accepts_argument(Seq2seq, 'implementation'):
        return [None]
    available = []
    for implementation in SEQ2SEQ_IMPLEMENTATIONS:
        try:
            Seq2seq(input_length=2, input_dim=2, hidden_dim=2, output_dim=2,
                    output_length=2, implementation=implementation)
        except (TypeError, ValueError, ImportError, NotImplementedError, RuntimeError):
            continue
        available.append(implementation)
    return available


def _accepts_argument(layer_class, name):
    """Whether `name` is a named argument of an __init__ in the class' MRO."""
    for klass in inspect.getmro(layer_class):
        init = klass.__dict__.get('__init__')
        if init is not None and name in inspect.signature(init).parameters:
            return True
    return False


def build_seq2seq(size, implementation=None):
    """Sequential([Embedding, Seq2seq(output_dim=hidden), TimeDistributed(
    Dense(vocab, softmax))]): the softmax reads a `hidden`-wide vector, as in
    the other rows."""
    from keras.layers import Dense, Embedding, TimeDistributed
    from keras.models import Sequential
    from seq2seq import Seq2seq
    kwargs = {} if implementation is None else {'implementation': implementation}
    return Sequential([
        Embedding(size.vocab, size.embed, input_length=size.input_length),
        Seq2seq(input_length=size.input_length, input_dim=size.embed,
                hidden_dim=size.hidden, output_dim=size.hidden,
                output_length=size.output_length, depth=size.depth, **kwargs),
        TimeDistributed(Dense(size.vocab, activation='softmax')),
    ])


def build_attention(size):
    """Embedding -> seq2seq.models.AttentionSeq2Seq -> TimeDistributed(Dense(
    vocab, softmax)): a bidirectional encoder (hidden / 2 per direction) and
    an attentive decoder of width `hidden`, the layers' default
    implementation."""
    from keras.layers import Dense, Embedding, Input, TimeDistributed
    from keras.models import Model
    from seq2seq.models import AttentionSeq2Seq
    tokens = Input(shape=(size.input_length,), dtype='int32')
    sequence = Embedding(size.vocab, size.embed)(tokens)
    attention = AttentionSeq2Seq(output_dim=size.hidden, output_length=size.output_length,
                                 hidden_dim=size.hidden, input_dim=size.embed,
                                 input_length=size.input_length, depth=size.depth)
    probabilities = TimeDistributed(Dense(size.vocab, activation='softmax'))(attention(sequence))
    return Model(tokens, probabilities)


# -- Theano: Keras 2.3.1's own LSTM ---------------------------------------------------

def _keras_lstm(units, **kwargs):
    from keras.layers import LSTM
    return LSTM(units, recurrent_activation='hard_sigmoid', **kwargs)


def build_keras(size, decoder_from_encoder_state):
    """Keras' LSTMs: Embedding -> LSTM encoder -> RepeatVector -> LSTM decoder
    -> TimeDistributed(Dense(vocab, softmax)), with the functional API.

    `decoder_from_encoder_state`: start the decoder from the encoder's final
    (h, c) (`return_state` / `initial_state`) rather than from zeros.
    """
    from keras.layers import Dense, Embedding, Input, RepeatVector, TimeDistributed
    from keras.models import Model
    tokens = Input(shape=(size.input_length,), dtype='int32')
    sequence = Embedding(size.vocab, size.embed)(tokens)
    for width in encoder_widths(size)[:-1]:
        sequence = _keras_lstm(width, return_sequences=True)(sequence)
    context, h, c = _keras_lstm(size.hidden, return_state=True)(sequence)
    repeated = RepeatVector(size.output_length)(context)
    initial_state = [h, c] if decoder_from_encoder_state else None
    sequence = _keras_lstm(size.hidden, return_sequences=True)(
        repeated, initial_state=initial_state)
    for _ in range(size.depth - 1):
        sequence = _keras_lstm(size.hidden, return_sequences=True)(sequence)
    probabilities = TimeDistributed(Dense(size.vocab, activation='softmax'))(sequence)
    return Model(tokens, probabilities)


def build_theano_model(row, size):
    """The Keras model of a Theano row, not yet compiled."""
    row = split_loss(row)[0]
    if row.startswith('seq2seq_'):
        implementation = row[len('seq2seq_'):]
        if seq2seq_implementations() == [None]:
            implementation = None      # the layers have only their scan loops
        return build_seq2seq(size, implementation)
    if row == 'attention':
        return build_attention(size)
    if row == 'keras_repeat':
        return build_keras(size, decoder_from_encoder_state=False)
    if row == 'keras_state':
        return build_keras(size, decoder_from_encoder_state=True)
    raise ValueError('not a Theano row: %r' % (row,))


def compile_keras_model(model, row=''):
    """Adam and softmax cross-entropy on integer targets (no metrics): Keras'
    own loss, or seq2seq's fused one for `*_xent` rows."""
    loss = 'sparse_categorical_crossentropy'
    if split_loss(row)[1]:
        from seq2seq.layers.losses import sparse_softmax_crossentropy as loss
    model.compile(optimizer='adam', loss=loss)
    return model


# -- PyTorch ---------------------------------------------------------------------------

def build_torch_model(row, size):
    """The PyTorch module of `row` ('torch_lstm', 'torch_cell' or
    'torch_attention'): it maps
    tokens (batch, input_length) to logits (batch, output_length, vocab)."""
    import torch
    from torch import nn

    class Encoder(nn.Module):
        """Embedding and the stacked encoder LSTMs; returns the top's (h, c)."""

        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(size.vocab, size.embed)
            widths = [size.embed] + encoder_widths(size)
            self.lstms = nn.ModuleList(nn.LSTM(i, o, batch_first=True)
                                       for i, o in zip(widths[:-1], widths[1:]))

        def forward(self, tokens):
            sequence = self.embedding(tokens)
            for lstm in self.lstms:
                sequence, (h, c) = lstm(sequence)
            return h[0], c[0]                                  # (batch, hidden)

    class Head(nn.Module):
        """The upper decoder LSTMs and the vocabulary projection."""

        def __init__(self):
            super().__init__()
            self.upper = (nn.LSTM(size.hidden, size.hidden, num_layers=size.depth - 1,
                                  batch_first=True) if size.depth > 1 else None)
            self.output = nn.Linear(size.hidden, size.vocab)

        def forward(self, sequence):
            if self.upper is not None:
                sequence, _ = self.upper(sequence)
            return self.output(sequence)                       # (batch, time, vocab)

    class ContextDecoder(nn.Module):
        """nn.LSTM decoder reading the context at every step."""

        def __init__(self):
            super().__init__()
            self.encoder, self.head = Encoder(), Head()
            self.decoder = nn.LSTM(size.hidden, size.hidden, batch_first=True)

        def forward(self, tokens):
            h, c = self.encoder(tokens)
            repeated = h.unsqueeze(1).expand(-1, size.output_length, -1)
            sequence, _ = self.decoder(repeated.contiguous(), (h.unsqueeze(0), c.unsqueeze(0)))
            return self.head(sequence)

    class FeedbackDecoder(nn.Module):
        """nn.LSTMCell loop feeding back a readout of its output (Seq2seq's
        structure: bridge, decoder cell, readout)."""

        def __init__(self):
            super().__init__()
            self.encoder, self.head = Encoder(), Head()
            self.bridge = nn.Linear(size.hidden, size.hidden)
            self.cell = nn.LSTMCell(size.hidden, size.hidden)
            self.readout = nn.Linear(size.hidden, size.hidden)

        def forward(self, tokens):
            h, c = self.encoder(tokens)
            x = self.bridge(h)
            outputs = []
            for _ in range(size.output_length):
                h, c = self.cell(x, (h, c))
                x = self.readout(h)
                outputs.append(x)
            return self.head(torch.stack(outputs, dim=1))

    class AttentionFeedbackDecoder(nn.Module):
        """The twin of the `attention` row (AttentionSeq2Seq free running):
        a bidirectional encoder of `depth` layers (hidden / 2 per
        direction), x_0 = tanh(Linear(final h of both directions)), a
        stack of `depth` nn.LSTMCell from zeros, the bottom one reading
        [x_{t-1}, context], additive attention queried by the top cell's
        previous h, and a linear readout of [h, context] fed back."""

        def __init__(self):
            super().__init__()
            hidden = size.hidden
            self.embedding = nn.Embedding(size.vocab, size.embed)
            self.encoder = nn.LSTM(size.embed, hidden // 2, num_layers=size.depth,
                                   batch_first=True, bidirectional=True)
            self.first = nn.Linear(hidden, hidden)
            self.memory_kernel = nn.Linear(hidden, hidden, bias=False)     # U_a
            self.query_kernel = nn.Linear(hidden, hidden, bias=False)      # W_a
            self.vector = nn.Linear(hidden, 1, bias=False)                 # v_a
            self.cells = nn.ModuleList([nn.LSTMCell(2 * hidden, hidden)] + [
                nn.LSTMCell(hidden, hidden) for _ in range(size.depth - 1)])
            self.readout = nn.Linear(2 * hidden, hidden)
            self.output = nn.Linear(hidden, size.vocab)

        def forward(self, tokens):
            memory, (h_n, _) = self.encoder(self.embedding(tokens))       # (batch, L, hidden)
            x = torch.tanh(self.first(torch.cat([h_n[-2], h_n[-1]], dim=1)))
            projection = self.memory_kernel(memory)
            zeros = memory.new_zeros(tokens.shape[0], size.hidden)
            states = [(zeros, zeros)] * len(self.cells)
            outputs = []
            for _ in range(size.output_length):
                query = self.query_kernel(states[-1][0]).unsqueeze(1)     # the top cell's h
                energy = self.vector(torch.tanh(projection + query)).squeeze(2)
                alpha = torch.softmax(energy, dim=1)
                context = torch.bmm(alpha.unsqueeze(1), memory).squeeze(1)  # (batch, hidden)
                h = torch.cat([x, context], dim=1)
                for k, cell in enumerate(self.cells):
                    states[k] = cell(h, states[k])
                    h = states[k][0]
                x = self.readout(torch.cat([h, context], dim=1))
                outputs.append(x)
            return self.output(torch.stack(outputs, dim=1))

    classes = {'torch_lstm': ContextDecoder, 'torch_cell': FeedbackDecoder,
               'torch_attention': AttentionFeedbackDecoder}
    if row not in classes:
        raise ValueError('not a PyTorch row: %r' % (row,))
    return classes[row]()


# -- Theano: step-by-step decoding ----------------------------------------------------------

# Grapheme-to-phoneme shapes, as `seq2seq train --model attention` builds the
# model: words of up to 20 letters (28 symbols; ids 1..28, 0 the padding) read
# through Embedding(29, 64, mask_zero=True), up to 19 phonemes out of 41, an
# AttentionSeq2Seq of width 256. Word lengths as in English dictionaries
# (mean about 7.5 letters).
G2P = {'letters': 28, 'embedding': 64, 'input_length': 20, 'phonemes': 41,
       'output_length': 19, 'hidden': 256, 'words': 1024, 'batch': 128}
QUICK_G2P = dict(G2P, embedding=4, hidden=8, words=16, batch=8)


def build_g2p_attention(g2p):
    """AttentionSeq2Seq at G2P shapes, teacher-forced (decoding feeds back
    the one-hot phoneme chosen), untrained: with eos_id=None every hypothesis
    runs all output_length steps, so the speed does not depend on the weights
    (a trained model stopping at EOS runs fewer steps)."""
    from seq2seq.models import AttentionSeq2Seq
    return AttentionSeq2Seq(output_dim=g2p['phonemes'], output_length=g2p['output_length'],
                            hidden_dim=g2p['hidden'], input_dim=g2p['embedding'],
                            input_length=g2p['input_length'],
                            source_vocab_size=g2p['letters'] + 1,
                            teacher_force=True, readout_activation='softmax')


# The attention training rows: the G2P model, 2,048 words in batches of 64.
G2P_TRAIN = dict(G2P, words=2048, batch=64)
QUICK_G2P_TRAIN = dict(QUICK_G2P, words=16, batch=8)
# Row -> (model, implementation, decoder cells, cell).
G2P_TRAIN_ROWS = {'attention_g2p_fused': ('attention', 'auto', 1, 'lstm'),
                  'attention_g2p_scan': ('attention', 'scan', 1, 'lstm'),
                  'attention_g2p2_fused': ('attention', 'auto', 2, 'lstm'),
                  'attention_g2p2_scan': ('attention', 'scan', 2, 'lstm'),
                  'teacher_g2p_fused': ('seq2seq', 'auto', 1, 'lstm'),
                  'teacher_g2p_scan': ('seq2seq', 'scan', 1, 'lstm'),
                  'teacher_g2p_gru_fused': ('seq2seq', 'auto', 1, 'gru'),
                  'teacher_g2p_gru_scan': ('seq2seq', 'scan', 1, 'gru'),
                  'attention_g2p_gru_fused': ('attention', 'auto', 1, 'gru'),
                  'attention_g2p_gru_scan': ('attention', 'scan', 1, 'gru')}
# The PyTorch twins: row -> (model, decoder cells, cell).
TORCH_G2P_ROWS = {'torch_attention_g2p': ('attention', 1, 'lstm'),
                  'torch_attention_g2p2': ('attention', 2, 'lstm'),
                  'torch_teacher_g2p': ('seq2seq', 1, 'lstm'),
                  'torch_teacher_g2p_gru': ('seq2seq', 1, 'gru'),
                  'torch_attention_g2p_gru': ('attention', 1, 'gru')}


def build_g2p_training(row, g2p):
    """The compiled model of an attention training row (`G2P_TRAIN_ROWS`)."""
    from seq2seq.layers.losses import sparse_softmax_crossentropy
    from seq2seq.models import AttentionSeq2Seq, Seq2Seq
    kind, implementation, decoder_cells, cell = G2P_TRAIN_ROWS[row]
    model_class = AttentionSeq2Seq if kind == 'attention' else Seq2Seq
    model = model_class(output_dim=g2p['phonemes'], output_length=g2p['output_length'],
                        hidden_dim=g2p['hidden'], input_dim=g2p['embedding'],
                        input_length=g2p['input_length'],
                        source_vocab_size=g2p['letters'] + 1, depth=(1, decoder_cells),
                        teacher_force=True, readout_activation='softmax',
                        implementation=implementation, cell=cell)
    model.compile(optimizer='adam', loss=sparse_softmax_crossentropy)
    return model


def g2p_training_data(g2p, seed=0):
    """(letters, phonemes) as lists of lists of ints, the same in both venvs
    (the PyTorch one has no numpy): letter ids in [1, letters] right-padded
    with 0 to input_length (lengths around 7.5, 2 .. input_length), phoneme
    ids in [1, phonemes), output_length per word."""
    import random
    rng = random.Random(seed)
    letters, phonemes = [], []
    for _ in range(g2p['words']):
        length = min(max(int(round(rng.gauss(7.5, 2.5))), 2), g2p['input_length'])
        letters.append([rng.randint(1, g2p['letters']) for _ in range(length)]
                       + [0] * (g2p['input_length'] - length))
        phonemes.append([rng.randint(1, g2p['phonemes'] - 1)
                         for _ in range(g2p['output_length'])])
    return letters, phonemes


def build_torch_g2p_attention(g2p, decoder_cells=1, cell='lstm'):
    """The PyTorch twin of the attention training rows: (letters, one-hot
    previous targets) -> logits (batch, output_length, phonemes), with a
    stack of `decoder_cells` LSTM or GRU cells (`cell`) in the decoder and
    an encoder of the same kind."""
    import torch
    from torch import nn
    recurrent, step_cell = (nn.LSTM, nn.LSTMCell) if cell == 'lstm' else (nn.GRU, nn.GRUCell)

    class AttentionG2P(nn.Module):
        def __init__(self):
            super().__init__()
            hidden, phonemes = g2p['hidden'], g2p['phonemes']
            self.embedding = nn.Embedding(g2p['letters'] + 1, g2p['embedding'], padding_idx=0)
            self.encoder = recurrent(g2p['embedding'], hidden // 2, batch_first=True,
                                     bidirectional=True)
            self.first = nn.Linear(hidden, phonemes)
            self.memory_kernel = nn.Linear(hidden, hidden, bias=False)     # U_a
            self.query_kernel = nn.Linear(hidden, hidden, bias=False)      # W_a
            self.vector = nn.Linear(hidden, 1, bias=False)                 # v_a
            self.cells = nn.ModuleList([step_cell(phonemes + hidden, hidden)] + [
                step_cell(hidden, hidden) for _ in range(decoder_cells - 1)])
            self.readout = nn.Linear(2 * hidden, phonemes)

        def forward(self, letters, targets):
            padding = letters == 0                                         # (batch, L)
            memory, final = self.encoder(self.embedding(letters))          # (batch, L, hidden)
            h_n = final[0] if cell == 'lstm' else final                    # (2, batch, hidden / 2)
            first = torch.tanh(self.first(torch.cat([h_n[0], h_n[1]], dim=1)))
            inputs = torch.cat([first.unsqueeze(1), targets[:, :-1]], dim=1)
            projection = self.memory_kernel(memory)
            zeros = memory.new_zeros(letters.shape[0], g2p['hidden'])
            # An LSTM cell's state is (h, c), a GRU cell's h.
            states = [(zeros, zeros) if cell == 'lstm' else zeros] * len(self.cells)

            def top_h(state):
                return state[0] if cell == 'lstm' else state

            outputs = []
            for t in range(g2p['output_length']):
                query = self.query_kernel(top_h(states[-1])).unsqueeze(1)    # the top cell's h
                energy = self.vector(torch.tanh(projection + query))
                alpha = torch.softmax(energy.squeeze(2).masked_fill(padding, float('-inf')), dim=1)
                context = torch.bmm(alpha.unsqueeze(1), memory).squeeze(1)  # (batch, hidden)
                h = torch.cat([inputs[:, t], context], dim=1)
                for k, step in enumerate(self.cells):
                    states[k] = step(h, states[k])
                    h = top_h(states[k])
                outputs.append(torch.cat([h, context], dim=1))
            return self.readout(torch.stack(outputs, dim=1))

    return AttentionG2P()


def build_torch_g2p_teacher(g2p, cell='lstm'):
    """The PyTorch twin of the teacher_g2p rows (Seq2Seq without attention):
    (letters, one-hot previous targets) -> logits. An `nn.LSTM` or `nn.GRU`
    encoder whose final state starts an `nn.LSTM` / `nn.GRU` decoder over
    [x_0, targets[:-1]], x_0 = Linear(final h), a Linear readout. The padding
    runs through the encoder unpacked, as in `build_torch_g2p_attention`."""
    from torch import nn
    import torch
    recurrent = nn.LSTM if cell == 'lstm' else nn.GRU

    class TeacherG2P(nn.Module):
        def __init__(self):
            super().__init__()
            hidden, phonemes = g2p['hidden'], g2p['phonemes']
            self.embedding = nn.Embedding(g2p['letters'] + 1, g2p['embedding'], padding_idx=0)
            self.encoder = recurrent(g2p['embedding'], hidden, batch_first=True)
            self.first = nn.Linear(hidden, phonemes)
            self.decoder = recurrent(phonemes, hidden, batch_first=True)
            self.readout = nn.Linear(hidden, phonemes)

        def forward(self, letters, targets):
            _, state = self.encoder(self.embedding(letters))
            h = state[0] if cell == 'lstm' else state                      # (1, batch, hidden)
            inputs = torch.cat([self.first(h[0]).unsqueeze(1), targets[:, :-1]], dim=1)
            sequence, _ = self.decoder(inputs, state)
            return self.readout(sequence)

    return TeacherG2P()


def g2p_words(g2p, seed=0):
    """Random 'words': letter ids (words, input_length) int32 in [1, letters],
    right-padded with 0; lengths drawn around 7.5 letters (2 .. input_length)."""
    import numpy as np
    rng = np.random.RandomState(seed)
    x = rng.randint(1, g2p['letters'] + 1, size=(g2p['words'], g2p['input_length']))
    lengths = np.clip(np.round(rng.normal(7.5, 2.5, size=g2p['words'])), 2, g2p['input_length'])
    x[np.arange(g2p['input_length'])[None, :] >= lengths[:, None]] = 0
    return x.astype('int32')
