"""Learn to reverse random token sequences with the Seq2seq layer.

    python examples/reverse.py [--epochs N] [--length L] [--vocab V]

An Embedding, the Seq2seq layer (depth 1, as in the 2015 README) and a
softmax over the vocabulary at every output step. Prints Keras' progress bar,
then the token accuracy on held-out sequences.
"""
from __future__ import print_function

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

import seq2seq  # noqa: E402  (selects Keras' Theano backend)
from keras.layers import Activation, Embedding  # noqa: E402
from keras.models import Sequential  # noqa: E402
from seq2seq.training.data import one_hot, reversal_task  # noqa: E402
from seq2seq.training.metrics import sequence_accuracy, token_accuracy  # noqa: E402


def build_model(length, vocab_size, embedding_dim=32, hidden_dim=128, depth=1):
    model = Sequential()
    model.add(Embedding(vocab_size, embedding_dim, input_length=length))
    model.add(seq2seq.Seq2seq(input_length=length, input_dim=embedding_dim,
                              hidden_dim=hidden_dim, output_dim=vocab_size,
                              output_length=length, depth=depth))
    model.add(Activation('softmax'))
    model.compile(loss='categorical_crossentropy', optimizer='adam')
    return model


def train_and_evaluate(length=6, vocab_size=10, n_train=8000, n_test=1000, epochs=20,
                       batch_size=64, verbose=1, seed=0, **model_args):
    """Train on random sequences, return held-out (token, sequence) accuracy."""
    x_train, y_train = reversal_task(n_train, length, vocab_size, seed=seed)
    x_test, y_test = reversal_task(n_test, length, vocab_size, seed=seed + 1)
    model = build_model(length, vocab_size, **model_args)
    model.fit(x_train, one_hot(y_train, vocab_size), batch_size=batch_size,
              epochs=epochs, verbose=verbose)
    predicted = model.predict(x_test, batch_size=batch_size)
    return token_accuracy(predicted, y_test), sequence_accuracy(predicted, y_test)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--epochs', type=int, default=20)
    parser.add_argument('--length', type=int, default=6)
    parser.add_argument('--vocab', type=int, default=10)
    args = parser.parse_args(argv)
    print('Training Seq2seq to reverse sequences of %d tokens (vocabulary %d); '
          'the first run compiles Theano code and takes a few minutes.'
          % (args.length, args.vocab))
    tokens, sequences = train_and_evaluate(length=args.length, vocab_size=args.vocab,
                                           epochs=args.epochs)
    print('held-out token accuracy: %.3f   whole-sequence accuracy: %.3f'
          % (tokens, sequences))


if __name__ == '__main__':
    main()
