"""Does a conversational model keep a conversation's context? A controlled test.

    python examples/context.py [--fillers 0 1 3] [--epochs N] [--conversations N]

Synthetic conversations in which the last answer depends on the first
exchange only:

    "my name is grace"     -> "ok"        (or "i am grace", "call me grace")
    "how are you"          -> "fine"      } 0 or more filler exchanges
    "do you like tea"      -> "yes"       }
    "what is my name"      -> "grace"     (or "who am i", "what do you call me")

8 names; the held-out conversations introduce each name in a way never
seen with that name in training. The same model (Embedding, the
`Seq2seq` layer, a softmax) is trained three ways:

* no state: every exchange on its own (remember_state=False);
* state, per exchange: remember_state=True, one exchange per batch, each row
  a conversation (`ConversationLayout` and `fit_conversations`); gradients
  stop at every exchange;
* across exchanges: `ConversationWindow` over the whole conversation, so the
  question's loss reaches the encoding of the introduction.

Each is then run one exchange at a time over the held-out conversations
(`one_exchange_model`: the trained weights, with remembered state except for
"no state"), and the accuracy of the name answered to the question is
printed for each number of filler exchanges (chance: 1/8).
"""
from __future__ import print_function

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

import seq2seq  # noqa: E402,F401  (selects Keras' Theano backend)
from keras.optimizers import Adam  # noqa: E402
from seq2seq.models.conversation import (ConversationLayout, conversation_model,  # noqa: E402
                                         fit_conversations, one_exchange_model,
                                         predict_conversations)

NAMES = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi']
INTRODUCTIONS = ['my name is {}', 'i am {}', 'call me {}']
QUESTIONS = ['what is my name', 'who am i', 'what do you call me']
FILLERS = [('how are you', 'fine'), ('do you like tea', 'yes'),
           ('what time is it', 'late'), ('where do you live', 'home'),
           ('is it raining', 'no')]
INPUT_LENGTH = 5
METHODS = ('no state', 'state, per exchange', 'across exchanges')


def vocabulary():
    """Token -> id, 0 being padding."""
    words = set(NAMES) | {'ok'}
    for text in INTRODUCTIONS + QUESTIONS:
        words.update(text.format('').split())
    for question, answer in FILLERS:
        words.update(question.split() + [answer])
    return {word: i + 1 for i, word in enumerate(sorted(words))}


def combinations(split):
    """The (name, introduction, question) index triples of 'train' or 'test'.

    One (name, introduction) pair per name is held out ("call me grace" is
    never seen in training, "my name is grace" is), with every question: the
    question alone then says nothing about the name in either split, so a
    model without the context is at chance (1/8)."""
    triples = [(n, i, q) for n in range(len(NAMES)) for i in range(len(INTRODUCTIONS))
               for q in range(len(QUESTIONS))]
    held_out = [(n, i, q) for n, i, q in triples if i == n % len(INTRODUCTIONS)]
    return held_out if split == 'test' else [t for t in triples if t not in held_out]


def make_conversations(n, fillers, split, seed):
    """n conversations of `fillers` + 2 exchanges, each a list of (input
    text, answer word)."""
    rng = np.random.RandomState(seed)
    triples = combinations(split)
    conversations = []
    for _ in range(n):
        name, introduction, question = triples[rng.randint(len(triples))]
        exchanges = [(INTRODUCTIONS[introduction].format(NAMES[name]), 'ok')]
        exchanges += [FILLERS[rng.randint(len(FILLERS))] for _ in range(fillers)]
        exchanges.append((QUESTIONS[question], NAMES[name]))
        conversations.append(exchanges)
    return conversations


def encode(conversations, vocab):
    """All exchanges in order: ids (n_exchanges, INPUT_LENGTH) padded on the
    left, answers (n_exchanges, 1, 1), and the conversations' lengths."""
    exchanges = [exchange for conversation in conversations for exchange in conversation]
    ids = np.zeros((len(exchanges), INPUT_LENGTH), dtype='int32')
    answers = np.zeros((len(exchanges), 1, 1), dtype='int32')
    for i, (text, answer) in enumerate(exchanges):
        tokens = [vocab[word] for word in text.split()]
        ids[i, INPUT_LENGTH - len(tokens):] = tokens
        answers[i, 0, 0] = vocab[answer]
    return ids, answers, [len(c) for c in conversations]


def train(method, conversations, vocab, epochs, batch_size=32, embedding_dim=16,
          hidden_dim=32, learning_rate=0.003, window=None, verbose=0, seed=0):
    """A model trained one of the METHODS ways on `conversations`; `window`:
    the exchanges per window 'across exchanges' (default: the whole
    conversation; shorter, the state carries from window to window without
    gradient)."""
    np.random.seed(seed)
    ids, answers, lengths = encode(conversations, vocab)
    sizes = dict(vocab_size=len(vocab) + 1, input_length=INPUT_LENGTH, output_length=1,
                 embedding_dim=embedding_dim, hidden_dim=hidden_dim)
    if method == 'no state':
        model = conversation_model(window=1, **sizes)
        model.compile(loss='sparse_categorical_crossentropy', optimizer=Adam(learning_rate))
        model.fit(ids[:, None], answers[:, None], batch_size=batch_size, epochs=epochs,
                  shuffle=True, verbose=verbose)
        return model
    if method == 'state, per exchange':
        window = None
    else:
        window = window or max(lengths)
    model = conversation_model(window=window or 1, batch_size=batch_size,
                               remember_state=True, **sizes)
    model.compile(loss='sparse_categorical_crossentropy', optimizer=Adam(learning_rate),
                  sample_weight_mode='temporal')
    layout = ConversationLayout(lengths, batch_size, window=window or 1)
    fit_conversations(model, layout, layout.arrange(ids), layout.arrange(answers),
                      epochs=epochs, verbose=verbose)
    return model


def context_accuracy(model, method, conversations, vocab, batch_size=32):
    """Accuracy of the last answer (the name) of each conversation, the model
    run one exchange at a time with its trained weights."""
    ids, answers, lengths = encode(conversations, vocab)
    chat = one_exchange_model(model, batch_size=batch_size,
                              remember_state=method != 'no state')
    layout = ConversationLayout(lengths, batch_size, window=1)
    predicted = predict_conversations(chat, layout, layout.arrange(ids))  # (n, 1, vocab)
    last = np.cumsum(lengths) - 1
    guesses = predicted[last, 0].argmax(axis=-1)
    return float(np.mean(guesses == answers[last, 0, 0]))


def run(fillers=(0, 1, 3), methods=METHODS, n_train=1024, n_test=256, epochs=30,
        verbose=0, seed=0, **model_args):
    """{(method, fillers): held-out accuracy of the context-dependent answer}."""
    vocab = vocabulary()
    results = {}
    for f in fillers:
        training = make_conversations(n_train, f, 'train', seed)
        held_out = make_conversations(n_test, f, 'test', seed + 1)
        for method in methods:
            model = train(method, training, vocab, epochs, verbose=verbose, seed=seed,
                          **model_args)
            results[method, f] = context_accuracy(model, method, held_out, vocab)
            if verbose:
                print('%-22s %d fillers: %.3f' % (method, f, results[method, f]))
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--fillers', type=int, nargs='+', default=[0, 1, 3])
    parser.add_argument('--epochs', type=int, default=30)
    parser.add_argument('--conversations', type=int, default=1024)
    parser.add_argument('--hidden', type=int, default=32)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--window', type=int, default=None,
                        help='exchanges per window when training across exchanges '
                             '(default: the whole conversation)')
    args = parser.parse_args(argv)
    print('Training 3 ways x %d filler settings; the first run compiles Theano code.'
          % len(args.fillers))
    results = run(args.fillers, n_train=args.conversations, epochs=args.epochs,
                  hidden_dim=args.hidden, seed=args.seed, window=args.window, verbose=1)
    print('\n| training | ' + ' | '.join('%d fillers' % f for f in args.fillers) + ' |')
    print('|---|' + '---|' * len(args.fillers))
    for method in METHODS:
        print('| %s | ' % method + ' | '.join('%.3f' % results[method, f]
                                             for f in args.fillers) + ' |')


if __name__ == '__main__':
    main()
