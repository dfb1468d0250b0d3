"""Real dialogues: held-out perplexity with and without remembered state, and a chat.

    python examples/conversation.py train --model-dir DIR [--epochs N]
    python examples/conversation.py chat --model-dir DIR      (reads stdin)

The English conversations of the `chatterbot-corpus` package (multi-turn
YAML files, read from the installed package, which `requirements.txt`
installs; no network at run time). Lines alternate between
two speakers; each (line 2i, line 2i+1) is one exchange. Every fifth
conversation is held out.

`train` fits the same model (Embedding, `Seq2seq`, softmax over the words)
twice: without state (every exchange on its own) and with state (windows of
exchanges of each conversation, `ConversationWindow`, state remembered from
window to window), then prints the held-out perplexity of the answers
(their words and end of sentence), each model run one exchange at a time
over the held-out conversations. It saves the model with state to DIR
(`model.h5`, `vocab.json`; remembered states are not saved).

`chat` loads it and answers each line of stdin (greedy: the argmax of every
output step), keeping the state from line to line; a line `/reset` clears
it; end of input exits.
"""
from __future__ import print_function

import argparse
import glob
import math
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

import seq2seq.models.conversation as conversation  # noqa: E402  (selects Keras' Theano backend)
from keras.optimizers import Adam  # noqa: E402
from seq2seq.training.vocab import EOS_ID, PAD_ID, Vocabulary  # noqa: E402

INPUT_LENGTH = 12
OUTPUT_LENGTH = 12
BATCH_SIZE = 16
WINDOW = 3


def load_corpus():
    """The English conversations of chatterbot-corpus: lists of lines."""
    try:
        import chatterbot_corpus
        import yaml
    except ImportError as error:
        raise SystemExit('this example reads the chatterbot-corpus package: pip install '
                         'chatterbot-corpus==1.2.2 pyyaml (%s)' % error)
    folder = os.path.join(os.path.dirname(chatterbot_corpus.__file__), 'data', 'english')
    conversations = []
    for path in sorted(glob.glob(os.path.join(folder, '*.yml'))):
        with open(path) as f:
            for lines in yaml.safe_load(f).get('conversations', []):
                lines = [str(line) for line in lines]
                if len(lines) >= 2:
                    conversations.append(lines)
    return conversations


def tokenize(text):
    return re.findall(r"[a-z0-9']+|[?.!,]", text.lower())


def exchanges_of(lines):
    """(input tokens, answer tokens) for each pair of lines."""
    return [(tokenize(lines[i]), tokenize(lines[i + 1])) for i in range(0, len(lines) - 1, 2)]


def split(conversations):
    """(training, held-out): every fifth conversation is held out."""
    return ([c for i, c in enumerate(conversations) if i % 5],
            [c for i, c in enumerate(conversations) if i % 5 == 0])


def encode_input(vocab, tokens):
    """Ids (INPUT_LENGTH,), the last tokens, padded on the left."""
    ids = vocab.encode(tokens)[-INPUT_LENGTH:]
    row = np.zeros(INPUT_LENGTH, dtype='int32')
    if ids:
        row[INPUT_LENGTH - len(ids):] = ids
    return row


def encode(vocab, conversations):
    """All exchanges in order: inputs (n, INPUT_LENGTH), answers (n,
    OUTPUT_LENGTH, 1) ending with EOS then padding, and the lengths."""
    exchanges = [exchanges_of(c) for c in conversations]
    flat = [e for c in exchanges for e in c]
    inputs = np.array([encode_input(vocab, source) for source, _ in flat])
    answers = np.zeros((len(flat), OUTPUT_LENGTH, 1), dtype='int32')
    for i, (_, target) in enumerate(flat):
        ids = (vocab.encode(target)[:OUTPUT_LENGTH - 1]) + [EOS_ID]
        answers[i, :len(ids), 0] = ids
    return inputs, answers, [len(c) for c in exchanges]


def build(vocab, window, remember_state, hidden_dim=64):
    model = conversation.conversation_model(
        vocab_size=len(vocab), input_length=INPUT_LENGTH, output_length=OUTPUT_LENGTH,
        embedding_dim=32, hidden_dim=hidden_dim, window=window, batch_size=BATCH_SIZE,
        remember_state=remember_state)
    model.compile(loss='sparse_categorical_crossentropy', optimizer=Adam(0.003),
                  sample_weight_mode='temporal')
    return model


def train(vocab, conversations, with_state, epochs, verbose=1):
    inputs, answers, lengths = encode(vocab, conversations)
    window = WINDOW if with_state else 1
    model = build(vocab, window, remember_state=with_state)
    layout = conversation.ConversationLayout(lengths, BATCH_SIZE, window=window)
    conversation.fit_conversations(model, layout, layout.arrange(inputs),
                                   layout.arrange(answers), epochs=epochs, verbose=verbose)
    return model


def perplexity(model, vocab, conversations, with_state):
    """exp(mean negative log-likelihood) of the held-out answers' tokens up
    to their EOS, the model run one exchange at a time."""
    inputs, answers, lengths = encode(vocab, conversations)
    chat = conversation.one_exchange_model(model, batch_size=BATCH_SIZE,
                                           remember_state=with_state)
    layout = conversation.ConversationLayout(lengths, BATCH_SIZE, window=1)
    predicted = conversation.predict_conversations(
        chat, layout, layout.arrange(inputs))                  # (n, OUTPUT_LENGTH, vocab)
    targets = answers[..., 0]
    real = targets != PAD_ID
    probabilities = np.take_along_axis(predicted, targets[..., None], axis=-1)[..., 0]
    return math.exp(-np.mean(np.log(np.maximum(probabilities[real], 1e-12))))


def run_train(model_dir, epochs):
    training, held_out = split(load_corpus())
    vocab = Vocabulary.build([t for c in training for pair in exchanges_of(c) for t in pair],
                             min_count=2)
    print('%d training conversations, %d held out, %d words'
          % (len(training), len(held_out), len(vocab)))
    results = {}
    for with_state in (False, True):
        model = train(vocab, training, with_state, epochs)
        results[with_state] = perplexity(model, vocab, held_out, with_state)
        print('held-out perplexity %s state: %.2f'
              % ('with' if with_state else 'without', results[with_state]))
    if not os.path.isdir(model_dir):
        os.makedirs(model_dir)
    temporary = os.path.join(model_dir, 'model.h5.tmp')
    model.save(temporary)
    os.replace(temporary, os.path.join(model_dir, 'model.h5'))
    vocab.save(os.path.join(model_dir, 'vocab.json'))
    print('| training | held-out perplexity |\n|---|---|')
    print('| without state | %.2f |\n| with state (window %d) | %.2f |'
          % (results[False], WINDOW, results[True]))
    return results


def run_chat(model_dir, lines, write):
    """Answer each of `lines`; '/reset' clears the state. Returns the chat model."""
    from keras.models import load_model
    vocab = Vocabulary.load(os.path.join(model_dir, 'vocab.json'))
    chat = conversation.one_exchange_model(load_model(os.path.join(model_dir, 'model.h5')),
                                           batch_size=1)
    for line in lines:
        line = line.strip()
        if line == '/reset':
            conversation.reset_hidden_state(chat)
            write('(conversation reset)\n')
            continue
        ids = encode_input(vocab, tokenize(line))[None, None]     # (1, 1, INPUT_LENGTH)
        reply = chat.predict(ids, batch_size=1)[0, 0].argmax(axis=-1)
        write(' '.join(vocab.decode(list(reply))) + '\n')
    return chat


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('mode', choices=['train', 'chat'])
    parser.add_argument('--model-dir', required=True)
    parser.add_argument('--epochs', type=int, default=30)
    args = parser.parse_args(argv)
    if args.mode == 'train':
        run_train(args.model_dir, args.epochs)
    else:
        run_chat(args.model_dir, sys.stdin, sys.stdout.write)
    return 0


if __name__ == '__main__':
    sys.exit(main())
