"""Each model learns to reverse sequences to a stated held-out accuracy.

Inputs and targets are one-hot vectors of 5 tokens out of 8; the models
output logits, trained with softmax cross-entropy.
"""
import numpy as np
from nose.plugins.attrib import attr

from seq2seq.training.data import one_hot, reversal_task
from seq2seq.layers.losses import softmax_cross_entropy
from seq2seq.training.metrics import token_accuracy
from seq2seq.models import AttentionSeq2Seq, Seq2Seq, SimpleSeq2Seq

LENGTH, VOCAB = 5, 8


def _task(seed=0):
    # Keras draws the initial weights from numpy's global generator: seed it,
    # so that a test does not depend on which tests ran before it.
    np.random.seed(seed)
    x_train, y_train = reversal_task(4000, LENGTH, VOCAB, seed=seed)
    x_test, y_test = reversal_task(500, LENGTH, VOCAB, seed=seed + 1)
    return one_hot(x_train, VOCAB), one_hot(y_train, VOCAB), one_hot(x_test, VOCAB), y_test


def _train(model, x, y, epochs, inputs=None):
    model.compile(loss=softmax_cross_entropy, optimizer='adam')
    model.fit(inputs if inputs is not None else x, y, batch_size=50, epochs=epochs, verbose=0)


@attr('slow')
def test_simple_seq2seq_learns_to_reverse():
    x, y, x_test, y_test = _task()
    model = SimpleSeq2Seq(input_dim=VOCAB, input_length=LENGTH, hidden_dim=64,
                          output_length=LENGTH, output_dim=VOCAB)
    _train(model, x, y, epochs=15)
    accuracy = token_accuracy(model.predict(x_test), y_test)
    assert accuracy >= 0.85, 'SimpleSeq2Seq held-out token accuracy %.3f < 0.85' % accuracy


@attr('slow')
def test_seq2seq_learns_to_reverse():
    # An encoder whose final state starts a decoder fed back its own output:
    # the structure of the Seq2seq layer too (examples/reverse.py), here with
    # peek. The suite's one reversal test for that structure.
    x, y, x_test, y_test = _task(1)
    model = Seq2Seq(input_dim=VOCAB, input_length=LENGTH, hidden_dim=64, output_length=LENGTH,
                    output_dim=VOCAB, peek=True)
    _train(model, x, y, epochs=15)
    accuracy = token_accuracy(model.predict(x_test), y_test)
    assert accuracy >= 0.9, 'Seq2Seq(peek=True) held-out token accuracy %.3f < 0.9' % accuracy
    # Greedy search feeding back the readout gives the argmax of predict.
    tokens, _, _ = model.greedy_decode(x_test)
    assert (tokens == model.predict(x_test).argmax(axis=-1)).all()


@attr('slow')
def test_teacher_forced_seq2seq_learns_and_decodes_by_search():
    x, y, x_test, y_test = _task(2)
    model = Seq2Seq(input_dim=VOCAB, input_length=LENGTH, hidden_dim=64, output_length=LENGTH,
                    output_dim=VOCAB, teacher_force=True, readout_activation='softmax')
    model.compile(loss='categorical_crossentropy', optimizer='adam')
    model.fit([x, y], y, batch_size=50, epochs=15, verbose=0)
    tokens, _, _ = model.greedy_decode(x_test)            # one-hot feedback
    greedy = token_accuracy(tokens, y_test)
    assert greedy >= 0.9, 'teacher-forced greedy token accuracy %.3f < 0.9' % greedy
    best = [h[0].tokens for h in model.beam_decode(x_test[:100], beam_size=3)]
    beam = token_accuracy(best, y_test[:100])
    assert beam >= greedy - 0.05, 'beam %.3f much worse than greedy %.3f' % (beam, greedy)


@attr('slow')
def test_attention_seq2seq_learns_to_reverse():
    x, y, x_test, y_test = _task(3)
    model = AttentionSeq2Seq(input_dim=VOCAB, input_length=LENGTH, hidden_dim=32,
                             output_length=LENGTH, output_dim=VOCAB)
    _train(model, x, y, epochs=10)
    accuracy = token_accuracy(model.predict(x_test), y_test)
    assert accuracy >= 0.95, 'AttentionSeq2Seq held-out token accuracy %.3f < 0.95' % accuracy
    # Reversal is a monotone alignment: output step t attends most to input
    # step LENGTH - 1 - t.
    attention = model.get_attention(x_test[:50]).mean(axis=0)
    assert (attention.argmax(axis=-1) == list(range(LENGTH - 1, -1, -1))).all(), attention


@attr('slow')
def test_decoding_stops_at_the_end_of_sequence_token():
    # Variable-length targets ending with EOS (id 1), padded with 0: the
    # teacher-forced model learns where to stop, and search stops there.
    from seq2seq.training.data import targets_with_eos
    rng = np.random.RandomState(5)
    lengths = rng.randint(1, 4, size=3000)
    sources = [list(rng.randint(2, VOCAB, size=n)) for n in lengths]
    x = one_hot(targets_with_eos(sources, 4, eos_id=1), VOCAB)
    y = one_hot(targets_with_eos([s[::-1] for s in sources], 4, eos_id=1), VOCAB)
    model = Seq2Seq(input_dim=VOCAB, input_length=4, hidden_dim=48, output_length=4,
                    output_dim=VOCAB, teacher_force=True, readout_activation='softmax')
    model.compile(loss='categorical_crossentropy', optimizer='adam')
    model.fit([x[:2500], y[:2500]], y[:2500], batch_size=50, epochs=12, verbose=0)
    tokens, decoded_lengths, _ = model.greedy_decode(x[2500:], max_length=6, eos_id=1)
    expected_lengths = lengths[2500:] + 1                  # the tokens and EOS
    assert np.mean(decoded_lengths == expected_lengths) >= 0.9
    for hypotheses in model.beam_decode(x[2500:2520], beam_size=3, max_length=6, eos_id=1):
        best = hypotheses[0]
        assert best.finished and best.tokens[-1] == 1 and 1 not in best.tokens[:-1]
