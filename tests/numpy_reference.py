"""Plain numpy loops: the reference the compiled Theano layers must match.

Written from the equations, one time step at a time, with no Theano. The
step of one LSTM and the masked softmax are the package's numpy references
(`seq2seq.ops.numpy_reference`), which the fused Ops are held to as well.
"""
import numpy as np

from seq2seq.ops import numpy_reference


def hard_sigmoid(x):
    return numpy_reference.activate(np.asarray(x, dtype='float64'), 'hard_sigmoid')


def lstm_step(x, h, c, kernel, recurrent_kernel, bias, context_term=0.0):
    """One LSTM step; weights stacked in gate order i, f, c, o."""
    z = x.dot(kernel) + h.dot(recurrent_kernel) + bias + context_term
    h_new, c_new, _ = numpy_reference.lstm_step(z, c, 'hard_sigmoid')
    return h_new, c_new


def lstm_encoder(x, weights, h0=None, c0=None, mask=None):
    """x (batch, time, dim) -> (sequence of h, final h, final c)."""
    kernel, recurrent_kernel, bias = weights
    batch, time, _ = x.shape
    units = recurrent_kernel.shape[0]
    h = np.zeros((batch, units)) if h0 is None else h0
    c = np.zeros((batch, units)) if c0 is None else c0
    outputs = []
    for t in range(time):
        h_new, c_new = lstm_step(x[:, t], h, c, kernel, recurrent_kernel, bias)
        if mask is not None:
            keep = mask[:, t][:, None].astype(bool)
            h_new = np.where(keep, h_new, h)
            c_new = np.where(keep, c_new, c)
        h, c = h_new, c_new
        outputs.append(h)
    return np.stack(outputs, axis=1), h, c


def lstm_decoder(v, weights, readout, n_steps, h0, c0, context_kernel=None):
    """Feedback decoder: x_0 = v, x_t = h_t W_x + b_x fed back as input."""
    kernel, recurrent_kernel, bias = weights
    readout_kernel, readout_bias = readout
    context_term = v.dot(context_kernel) if context_kernel is not None else 0.0
    x, h, c = v, h0, c0
    outputs = []
    for _ in range(n_steps):
        h, c = lstm_step(x, h, c, kernel, recurrent_kernel, bias, context_term)
        x = h.dot(readout_kernel) + readout_bias
        outputs.append(x)
    return np.stack(outputs, axis=1), h, c


def seq2seq(x, layer_weights, depth, output_length, states=None):
    """The Seq2seq layer's forward pass from its weight list (get_weights()).

    `states`: optional remembered [h, c] per LSTM (get_hidden_state()).
    Returns (outputs, final [h, c] per LSTM).
    """
    encoder_depth, decoder_depth = depth
    w = list(layer_weights)
    take = lambda n: [w.pop(0) for _ in range(n)]  # noqa: E731
    encoder = [take(3) for _ in range(encoder_depth)]
    bridge = take(2)
    decoder = take(3)
    readout = take(2)
    upper = [take(3) for _ in range(decoder_depth - 1)]
    assert not w, 'unused weights'
    states = states or [[None, None]] * (encoder_depth + decoder_depth)
    finals = []
    sequence = x
    for i, weights in enumerate(encoder):
        sequence, h, c = lstm_encoder(sequence, weights, *states[i])
        finals.append([h, c])
    v = h.dot(bridge[0]) + bridge[1]
    outputs, h, c = lstm_decoder(v, decoder, readout, output_length, h, c)
    finals.append([h, c])
    for i, weights in enumerate(upper):
        outputs, h, c = lstm_encoder(outputs, weights, *states[encoder_depth + 1 + i])
        finals.append([h, c])
    return outputs, finals


def gru_encoder(x, weights, h0=None):
    """GRU over x (batch, time, dim); gate order z, r, h. Returns (sequence, h)."""
    kernel, recurrent_kernel, bias = weights
    units = recurrent_kernel.shape[0]
    h = np.zeros((x.shape[0], units)) if h0 is None else h0
    outputs = []
    for t in range(x.shape[1]):
        projected = x[:, t].dot(kernel) + bias
        z = hard_sigmoid(projected[:, :units] + h.dot(recurrent_kernel[:, :units]))
        r = hard_sigmoid(projected[:, units:2 * units] +
                         h.dot(recurrent_kernel[:, units:2 * units]))
        candidate = np.tanh(projected[:, 2 * units:] + (r * h).dot(recurrent_kernel[:, 2 * units:]))
        h = z * h + (1 - z) * candidate
        outputs.append(h)
    return np.stack(outputs, axis=1), h


def named_weights(layer):
    """A layer's weights by their short names ('decoder_0_kernel', ...)."""
    return {w.name.split('/')[-1]: w.get_value() for w in layer.weights}


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def recurrent_decoder(first, w, depth, n_steps, states=None, peek=False, teacher=None,
                      memory=None, memory_mask=None, readout=lambda z: z):
    """RecurrentDecoder / AttentionDecoder (LSTM cells) from named weights.

    Returns (outputs (batch, n_steps, dim), attention (batch, n_steps, L) or None).
    """
    batch = first.shape[0]
    units = w['decoder_0_recurrent_kernel'].shape[0]
    zeros = np.zeros((batch, units))
    states = states or [(zeros, zeros)] * depth
    states = [list(s) for s in states]
    x = first
    outputs, attention = [], []
    for t in range(n_steps):
        layer_input = x if teacher is None or t == 0 else teacher[:, t - 1]
        extra = first.dot(w['peek_kernel']) if peek else 0.0
        readout_extra = 0.0
        if memory is not None:
            query = states[-1][0]
            mask = np.ones(memory.shape[:2]) if memory_mask is None else memory_mask
            alpha, _ = numpy_reference.attention_weights(
                memory.dot(w['attention_memory_kernel']), query.dot(w['attention_query_kernel']),
                w['attention_vector'], mask > 0)                    # (batch, L)
            context = (alpha[:, :, None] * memory).sum(axis=1)
            extra = extra + context.dot(w['context_kernel'])
            readout_extra = context.dot(w['context_readout_kernel'])
            attention.append(alpha)
        for k in range(depth):
            p = 'decoder_%d_' % k
            h, c = lstm_step(layer_input, states[k][0], states[k][1], w[p + 'kernel'],
                             w[p + 'recurrent_kernel'], w[p + 'bias'],
                             extra if k == 0 else 0.0)
            states[k] = [h, c]
            layer_input = h
        x = readout(layer_input.dot(w['readout_kernel']) + w['readout_bias'] + readout_extra)
        outputs.append(x)
    return np.stack(outputs, axis=1), (np.stack(attention, axis=1) if attention else None)
