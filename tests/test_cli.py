"""The `seq2seq` command line, in-process through `seq2seq.cli.main(argv)`.

A tiny reversal task as a TSV file: train a few epochs, predict, evaluate,
resume; every bad-file case exits with status 2 and one line naming the file
and the line.
"""
import contextlib
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from nose.plugins.attrib import attr
from nose.tools import assert_equal, assert_in, assert_not_in, assert_raises, assert_true
from numpy.testing import assert_allclose

from seq2seq.app import cli

WORDS = ['abc', 'bca', 'cab', 'abcd', 'dcb', 'bad', 'dab', 'cd', 'dc', 'acd', 'bdca', 'cbad']


@contextlib.contextmanager
def captured():
    """(stdout, stderr) StringIOs in place of sys.stdout and sys.stderr."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = io.StringIO(), io.StringIO()
    try:
        yield sys.stdout, sys.stderr
    finally:
        sys.stdout, sys.stderr = saved


def run(*argv):
    """(exit status, stdout, stderr) of `seq2seq argv`."""
    with captured() as (out, err):
        status = cli.main(list(argv))
    return status, out.getvalue(), err.getvalue()


def write(path, data):
    with open(path, 'wb') as f:
        f.write(data if isinstance(data, bytes) else data.encode('utf-8'))
    return path


def reversal_tsv(path, words=WORDS):
    return write(path, ''.join('%s\t%s\n' % (w, w[::-1]) for w in words))


def copy_with_other_target_vocabulary(model_dir, other):
    """A copy of a model directory whose target vocabulary gives two tokens
    each other's ids."""
    shutil.copytree(model_dir, other)
    with open(os.path.join(other, 'target_vocab.json')) as f:
        tokens = json.load(f)['tokens']
    tokens[-2:] = tokens[:-3:-1]
    write(os.path.join(other, 'target_vocab.json'), json.dumps({'tokens': tokens}))
    return other


TINY_MODEL = ['--hidden-dim', '8', '--embedding-dim', '4', '--batch-size', '4', '--quiet']


@attr('slow')
class TestTrainPredictEvaluate(unittest.TestCase):
    """One tiny attention model trained for 3 epochs, then resumed to 4."""

    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.mkdtemp()
        cls.train = reversal_tsv(os.path.join(cls.folder, 'train.tsv'))
        cls.model_dir = os.path.join(cls.folder, 'model')
        cls.status, cls.out, cls.err = run(
            'train', '--train', cls.train, '--valid', cls.train, '--model-dir', cls.model_dir,
            '--epochs', '3', *TINY_MODEL)
        with open(os.path.join(cls.model_dir, 'history.csv')) as f:
            cls.history_after_3 = list(csv.DictReader(f))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.folder)

    def test_train_writes_what_predict_needs(self):
        assert_equal(self.status, 0, self.err)
        for name in ('config.json', 'source_vocab.json', 'target_vocab.json', 'model.h5',
                     'history.csv', 'loss.png'):
            assert_true(os.path.exists(os.path.join(self.model_dir, name)), name)
        assert_equal([row['epoch'] for row in self.history_after_3], ['1', '2', '3'])
        assert_in('validation token accuracy', self.out)
        with open(os.path.join(self.model_dir, 'loss.png'), 'rb') as f:
            assert_equal(f.read(8), b'\x89PNG\r\n\x1a\n')

    def test_the_saved_model_loads_with_keras(self):
        import keras
        model = keras.models.load_model(os.path.join(self.model_dir, 'model.h5'), compile=False)
        assert_equal(model.input_shape[0][1:], (4,))     # source ids, the longest source

    def test_loading_skips_the_initializers_not_the_weights(self):
        import keras
        from keras.engine.base_layer import Layer
        from seq2seq.app.model_dir import load_model_dir
        original = Layer.add_weight
        model = load_model_dir(self.model_dir)[3]
        assert_true(Layer.add_weight is original)
        reference = keras.models.load_model(os.path.join(self.model_dir, 'model.h5'),
                                            compile=False)
        assert_equal(model.get_config(), reference.get_config())    # initializers kept
        for loaded, saved in zip(model.get_weights(), reference.get_weights()):
            assert_allclose(loaded, saved, rtol=0, atol=0)

    def test_predict_writes_one_line_per_input_in_order(self):
        inputs = ['abc', 'dcb', '', 'cab', 'abc', 'bd']
        path = write(os.path.join(self.folder, 'in.txt'), '\n'.join(inputs) + '\n')
        status, out, err = run('predict', '--model-dir', self.model_dir, '--input', path,
                               '--batch-size', '2')
        assert_equal(status, 0, err)
        lines = out.split('\n')[:-1]
        assert_equal(len(lines), len(inputs))
        assert_equal(lines[0], lines[4])                 # same source, same output
        # Each line is what the source decodes to alone.
        for i in (1, 3):
            single = write(os.path.join(self.folder, 'one.txt'), inputs[i] + '\n')
            assert_equal(run('predict', '--model-dir', self.model_dir, '--input',
                             single)[1], lines[i] + '\n')
        assert_in('line 3: empty source', err)
        # --output: the same lines, written to a temporary file and renamed.
        output = os.path.join(self.folder, 'out', 'predicted.txt')
        os.mkdir(os.path.dirname(output))
        status, _, err = run('predict', '--model-dir', self.model_dir, '--input', path,
                             '--batch-size', '2', '--output', output)
        assert_equal(status, 0, err)
        with open(output) as f:
            assert_equal(f.read(), out)
        assert_equal(os.listdir(os.path.dirname(output)), ['predicted.txt'])

    def test_n_best_writes_n_lines_per_input_with_scores(self):
        path = write(os.path.join(self.folder, 'in2.txt'), 'abc\ncd\n')
        status, out, err = run('predict', '--model-dir', self.model_dir, '--input', path,
                               '--beam-size', '3', '--n-best', '2')
        assert_equal(status, 0, err)
        lines = out.split('\n')[:-1]
        assert_equal(len(lines), 4)
        scores = [float(line.split('\t')[1]) for line in lines]
        assert_true(scores[0] >= scores[1] and scores[2] >= scores[3], scores)
        assert_true(all(s <= 0 for s in scores), scores)

    def test_length_penalty_ranks_the_n_best_by_normalised_log_probability(self):
        """--length-penalty ALPHA: the n-best lines come in the order of
        log-prob / ((5 + length) / 6) ** ALPHA, length counting EOS; 0 is the
        default ranking."""
        path = write(os.path.join(self.folder, 'in5.txt'), 'abc\ncd\nbdca\ndab\n')
        with open(os.path.join(self.model_dir, 'config.json')) as f:
            output_length = json.load(f)['output_length']
        common = ['predict', '--model-dir', self.model_dir, '--input', path,
                  '--beam-size', '4', '--n-best', '4']
        assert_equal(run(*common + ['--length-penalty', '0']), run(*common))
        for alpha in (1.0, 8.0):
            status, out, err = run(*common + ['--length-penalty', str(alpha)])
            assert_equal(status, 0, err)
            lines = out.split('\n')[:-1]
            assert_equal(len(lines), 16)
            for first in range(0, 16, 4):
                ranking = []
                for line in lines[first:first + 4]:
                    text, log_prob = line.split('\t')
                    # A hypothesis shorter than the output length ended with EOS.
                    length = min(len(text) + 1, output_length)
                    ranking.append(float(log_prob) / ((5.0 + length) / 6.0) ** alpha)
                # The log-probabilities are printed to 4 decimals.
                assert_true(all(a >= b - 1e-3 for a, b in zip(ranking, ranking[1:])),
                            (alpha, lines[first:first + 4], ranking))
        status, _, err = run(*common + ['--length-penalty', '-1'])
        assert_equal(status, 2)
        assert_in('--length-penalty', err)
        status, out, err = run('evaluate', '--model-dir', self.model_dir, '--test', self.train,
                               '--beam-size', '2', '--length-penalty', '0.6')
        assert_equal(status, 0, err)
        assert_in('beam size 2, length penalty 0.6', out.splitlines()[0])

    def test_an_ensemble_of_a_model_with_itself_decodes_as_the_model(self):
        path = write(os.path.join(self.folder, 'in4.txt'), 'abc\ncd\nbdca\n')
        alone = run('predict', '--model-dir', self.model_dir, '--input', path,
                    '--beam-size', '3', '--n-best', '2')
        twice = run('predict', '--model-dir', self.model_dir, self.model_dir, '--input', path,
                    '--beam-size', '3', '--n-best', '2')
        assert_equal(alone[0], 0, alone[2])
        assert_equal(twice[0], 0, twice[2])
        assert_equal([line.split('\t')[0] for line in alone[1].split('\n')],
                     [line.split('\t')[0] for line in twice[1].split('\n')])
        status, out, err = run('evaluate', '--model-dir', self.model_dir, self.model_dir,
                               '--test', self.train, '--metric', 'wer', 'perplexity')
        assert_equal(status, 0, err)
        assert_equal(out.replace(self.model_dir, ''),
                     run('evaluate', '--model-dir', self.model_dir, '--test', self.train,
                         '--metric', 'wer', 'perplexity')[1].replace(self.model_dir, ''))

    def test_an_ensemble_of_models_with_other_vocabularies_is_refused(self):
        other = copy_with_other_target_vocabulary(self.model_dir,
                                                  os.path.join(self.folder, 'other_vocabulary'))
        status, _, err = run('evaluate', '--model-dir', self.model_dir, other,
                             '--test', self.train)
        assert_equal(status, 2)
        assert_in('%s and %s cannot decode together: their target vocabularies differ'
                  % (self.model_dir, other), err)
        assert_not_in('Traceback', err)

    def test_unknown_tokens_and_long_sources_warn_naming_the_line(self):
        path = write(os.path.join(self.folder, 'in3.txt'), 'abc\nxyz\nabcdabcd\n')
        status, out, err = run('predict', '--model-dir', self.model_dir, '--input', path)
        assert_equal(status, 0, err)
        assert_equal(len(out.split('\n')[:-1]), 3)
        assert_in('line 2: unknown token(s)', err)
        assert_in('line 3: 8 tokens, the model reads 4', err)
        assert_not_in('Traceback', err)

    def test_evaluate_prints_every_metric(self):
        status, out, err = run('evaluate', '--model-dir', self.model_dir, '--test', self.train,
                               '--metric', 'wer', 'per', 'bleu', 'accuracy', 'perplexity',
                               '--beam-size', '2')
        assert_equal(status, 0, err)
        names = [line.split('\t')[0] for line in out.splitlines()[1:]]
        assert_equal(names, ['WER', 'PER', 'BLEU', 'exact match', 'token accuracy',
                             'perplexity'])
        perplexity = float(out.splitlines()[-1].split('\t')[1])
        assert_true(1.0 < perplexity < 50, perplexity)   # a vocabulary of 7

    def test_attention_writes_a_heatmap(self):
        path = os.path.join(self.folder, 'att.png')
        status, out, err = run('attention', '--model-dir', self.model_dir, '--source', 'abc',
                               '--out', path)
        assert_equal(status, 0, err)
        with open(path, 'rb') as f:
            assert_equal(f.read(8), b'\x89PNG\r\n\x1a\n')

    def test_z_resume_continues_from_the_checkpoint(self):
        # Named to run last: it changes the model directory.
        status, out, err = run('train', '--train', self.train, '--valid', self.train,
                               '--model-dir', self.model_dir, '--epochs', '4', '--resume',
                               '--lr-decay', '0.5', '--learning-rate', '0.0005', '--quiet')
        assert_equal(status, 0, err)
        assert_in('epochs 4 to 4', out)
        with open(os.path.join(self.model_dir, 'history.csv')) as f:
            history = list(csv.DictReader(f))
        assert_equal([row['epoch'] for row in history], ['1', '2', '3', '4'])
        assert_equal(history[:3], self.history_after_3)
        # --learning-rate on resuming: the rate from the next epoch on.
        assert_allclose([float(row['learning_rate']) for row in history],
                        [0.001, 0.001, 0.001, 0.0005], rtol=1e-6)
        # A schedule given on resuming is recorded for the next resume.
        with open(os.path.join(self.model_dir, 'config.json')) as f:
            assert_equal(json.load(f)['lr_decay'], 0.5)
        # Training again without --resume into the same directory is refused.
        status, _, err = run('train', '--train', self.train, '--model-dir', self.model_dir)
        assert_equal(status, 2)
        assert_in('--resume', err)


def test_learning_rate_decays_after_epochs_without_improvement():
    """--lr-decay: the rate falls after each epoch whose validation loss is
    not the best so far, is written to history.csv, and a resumed run
    continues at the decayed rate."""
    from keras import backend as K
    from keras.layers import Dense
    from keras.models import Sequential
    from keras.optimizers import Adam
    from seq2seq.training.callbacks import CheckpointAndEarlyStopping
    folder = tempfile.mkdtemp()
    try:
        model = Sequential([Dense(2, input_shape=(3,))])
        model.compile(Adam(lr=0.01), 'mse')
        losses = iter([1.0, 0.9, 0.95, 0.97, 0.8])

        def epoch_callback(state=None):
            callback = CheckpointAndEarlyStopping(
                folder, patience=3, state=state, stream=io.StringIO(), lr_decay=0.5,
                validation=lambda: (next(losses), 0.5))
            callback.set_model(model)
            callback.on_train_begin()
            return callback

        callback = epoch_callback()
        rates = []
        for epoch in range(3):
            callback.on_epoch_end(epoch, {'loss': 1.0})
            rates.append(float(K.get_value(model.optimizer.lr)))
        # Epochs 1 and 2 improve; epoch 3 does not: the 4th runs at half the rate.
        assert_allclose(rates, [0.01, 0.01, 0.005], rtol=1e-6)   # float32 rates
        with open(os.path.join(folder, 'train_state.json')) as f:
            state = json.load(f)
        K.set_value(model.optimizer.lr, 0.01)      # as a freshly loaded optimizer might be
        callback = epoch_callback(state)
        assert_allclose(K.get_value(model.optimizer.lr), 0.005, rtol=1e-6)
        callback.on_epoch_end(3, {'loss': 1.0})    # no improvement again: a quarter
        callback.on_epoch_end(4, {'loss': 1.0})    # better: stays
        assert_allclose(K.get_value(model.optimizer.lr), 0.0025, rtol=1e-6)
        with open(os.path.join(folder, 'history.csv')) as f:
            history = [float(row['learning_rate']) for row in csv.DictReader(f)]
        assert_allclose(history, [0.01, 0.01, 0.01, 0.005, 0.0025], rtol=1e-6)
        assert_true(callback.wait == 0 and not callback.stopped_early)
    finally:
        shutil.rmtree(folder)


def test_lr_decay_must_be_a_fraction():
    for bad in ('0', '1', '1.5', 'half'):
        status, _, err = run('train', '--train', 'x.tsv', '--model-dir', 'm', '--lr-decay', bad)
        assert_equal(status, 2)
        assert_in('--lr-decay', err)
        assert_in(repr(bad), err)


def test_depth_must_be_n_or_a_pair():
    parser = cli.build_parser()
    for text, depth in (('2', 2), ('2,1', [2, 1]), ('1,3', [1, 3])):
        args = parser.parse_args(['train', '--train', 'x.tsv', '--model-dir', 'm',
                                  '--depth', text])
        assert_equal(args.depth, depth)
    for bad in ('0', '2,0', '2,1,1', 'two', '2,', ''):
        status, _, err = run('train', '--train', 'x.tsv', '--model-dir', 'm', '--depth', bad)
        assert_equal(status, 2)
        assert_in('--depth', err)
        assert_in(repr(bad), err)


def test_maxibatch_must_be_a_count():
    args = cli.build_parser().parse_args(['train', '--train', 'x.tsv', '--model-dir', 'm'])
    assert_equal(args.maxibatch, 20)
    for bad in ('-1', 'many', '2.5'):
        status, _, err = run('train', '--train', 'x.tsv', '--model-dir', 'm', '--maxibatch', bad)
        assert_equal(status, 2)
        assert_in('--maxibatch', err)
        assert_in(repr(bad), err)


@attr('slow')
def test_encoder_and_decoder_depths_can_differ():
    """--depth 2,1: two encoder layers under a one-cell decoder, which keeps
    the fused attention decoder; the pair survives the model directory."""
    from seq2seq.search import model_search as inference
    from seq2seq.layers.decoders import AttentionDecoder
    from seq2seq.layers.encoders import BidirectionalEncoder
    from seq2seq.app.model_dir import load_model_dir
    folder = tempfile.mkdtemp()
    try:
        train = reversal_tsv(os.path.join(folder, 'train.tsv'))
        model_dir = os.path.join(folder, 'model')
        status, out, err = run('train', '--train', train, '--model-dir', model_dir,
                               '--depth', '2,1', '--epochs', '1', *TINY_MODEL)
        assert_equal(status, 0, err)
        with open(os.path.join(model_dir, 'config.json')) as f:
            assert_equal(json.load(f)['depth'], [2, 1])
        model = load_model_dir(model_dir)[-1]
        encoders = [l for l in model.layers if isinstance(l, BidirectionalEncoder)]
        decoder = inference.find_decoder(model)
        assert_true(isinstance(decoder, AttentionDecoder))
        assert_equal((len(encoders), decoder.depth), (2, 1))
        assert_equal(inference.fused_step_reason(model), None)
        inputs = write(os.path.join(folder, 'in.txt'), 'abc\ndcb\n')
        status, out, err = run('predict', '--model-dir', model_dir, '--input', inputs)
        assert_equal((status, len(out.splitlines())), (0, 2), err)
    finally:
        shutil.rmtree(folder)


@attr('slow')
def test_simple_model_decodes_without_a_step_decoder():
    """--model simple (SimpleSeq2Seq, no step-by-step decoder): beam search
    runs over the table of per-step probabilities; n-best lists are sorted."""
    folder = tempfile.mkdtemp()
    try:
        train = reversal_tsv(os.path.join(folder, 'train.tsv'))
        model_dir = os.path.join(folder, 'model')
        status, out, err = run('train', '--train', train, '--model-dir', model_dir,
                               '--model', 'simple', '--cell', 'gru', '--epochs', '1',
                               *TINY_MODEL)
        assert_equal(status, 0, err)
        assert_in('best training loss', out)        # no --valid
        inputs = write(os.path.join(folder, 'in.txt'), 'abc\ndcb\nab\n')
        status, out, err = run('predict', '--model-dir', model_dir, '--input', inputs,
                               '--beam-size', '3', '--n-best', '3')
        assert_equal(status, 0, err)
        scores = [float(line.split('\t')[1]) for line in out.splitlines()]
        assert_equal(len(scores), 9)
        for i in range(0, 9, 3):
            assert_equal(scores[i:i + 3], sorted(scores[i:i + 3], reverse=True))
    finally:
        shutil.rmtree(folder)


class TestBadFiles(unittest.TestCase):
    """Each bad file: exit status 2, one line naming the file (and the line)."""

    def setUp(self):
        self.folder = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.folder)

    def path(self, name):
        return os.path.join(self.folder, name)

    def assert_error(self, argv, *words):
        status, out, err = run(*argv)
        assert_equal(status, 2, (out, err))
        assert_equal(len(err.strip().splitlines()), 1, err)
        assert_not_in('Traceback', err)
        for word in words:
            assert_in(word, err)

    def predict_argv(self, model_dir):
        return ['predict', '--model-dir', model_dir, '--input',
                write(self.path('in.txt'), 'abc\n')]

    def train_on(self, path):
        return ['train', '--train', path, '--model-dir', self.path('model')]

    def test_missing_file(self):
        self.assert_error(self.train_on(self.path('nothing.tsv')), 'nothing.tsv')

    def test_empty_file(self):
        path = write(self.path('empty.tsv'), '')
        self.assert_error(self.train_on(path), 'empty.tsv, line 1', 'empty')

    def test_line_without_a_tab(self):
        path = write(self.path('notab.tsv'), 'ab\tba\ncd\tdc\nef fe\n')
        self.assert_error(self.train_on(path), 'notab.tsv, line 3', 'tab')

    def test_undecodable_bytes(self):
        path = write(self.path('latin1.tsv'), b'ab\tba\ncaf\xe9\tefac\n')
        self.assert_error(self.train_on(path), 'latin1.tsv, line 2', 'UTF-8')

    def test_control_characters(self):
        for text, code in ((u'ab\tba\nc\x00d\tdc\n', 'U+0000'),
                           (u'ab\tba\ncd\tdc\x1b[0m\n', 'U+001B')):
            path = write(self.path('control.tsv'), text)
            self.assert_error(self.train_on(path), 'control.tsv, line 2', code)

    def test_bad_validation_file(self):
        train = reversal_tsv(self.path('train.tsv'))
        valid = write(self.path('valid.tsv'), 'ab\tba\n\nonly source\n')
        self.assert_error(self.train_on(train) + ['--valid', valid], 'valid.tsv, line 3')

    def test_predict_input_that_is_not_utf8(self):
        self.write_model_dir()
        write(os.path.join(self.path('model'), 'model.h5'), b'')   # never loaded
        path = write(self.path('in.txt'), b'abc\n\xff\xfe\n')
        self.assert_error(['predict', '--model-dir', self.path('model'), '--input', path],
                          'in.txt, line 2')

    def test_missing_model_dir(self):
        self.assert_error(self.predict_argv(self.path('none')), 'none')

    def test_half_written_model_dir(self):
        self.write_model_dir()
        self.assert_error(self.predict_argv(self.path('model')), 'model.h5')
        os.remove(os.path.join(self.path('model'), 'target_vocab.json'))
        self.assert_error(self.predict_argv(self.path('model')), 'target_vocab.json')

    def test_model_dir_of_another_version(self):
        self.write_model_dir()
        config_path = os.path.join(self.path('model'), 'config.json')
        with open(config_path) as f:
            config = json.load(f)
        config['format_version'] = 99
        write(config_path, json.dumps(config))
        self.assert_error(['evaluate', '--model-dir', self.path('model'), '--test',
                           config_path], 'version 99')
        write(config_path, '{"format": ')
        self.assert_error(self.predict_argv(self.path('model')), 'config.json')

    def test_resume_from_a_damaged_checkpoint(self):
        train = reversal_tsv(self.path('train.tsv'))
        argv = self.train_on(train) + ['--resume']
        self.write_model_dir()
        # No last.h5: a run stopped in its first epoch resumes from epoch 1
        # (tests/test_reliability.py), with the settings of its config.json,
        # which this one lacks: named in one line.
        self.assert_error(argv, 'config.json', 'lacks')
        write(os.path.join(self.path('model'), 'last.h5'), b'\x89HDF\r\n\x1a\n cut short')
        self.assert_error(argv, 'last.h5', 'cannot load the checkpoint')

    def write_model_dir(self):
        """A directory as `train` leaves it before its first epoch ends."""
        from seq2seq.app.model_dir import write_config
        from seq2seq.training.vocab import Vocabulary
        config = {'source_tokens': 'chars', 'target_tokens': 'chars', 'input_length': 4,
                  'output_length': 5, 'reverse_source': False, 'model': 'attention'}
        write_config(self.path('model'), config, Vocabulary('abc'), Vocabulary('abc'))


def test_a_byte_order_mark_is_not_a_token():
    """Windows editors start UTF-8 files with U+FEFF; read_tsv (train,
    evaluate, score) and read_lines (predict) drop it."""
    from seq2seq.training.data import DataFileError, read_lines, read_tsv
    folder = tempfile.mkdtemp()
    try:
        path = write(os.path.join(folder, 'bom.tsv'), b'\xef\xbb\xbfab\tba\ncd\tdc\n')
        assert_equal(read_tsv(path), [(1, ['a', 'b'], ['b', 'a']), (2, ['c', 'd'], ['d', 'c'])])
        assert_equal(read_lines(path)[0], (1, 'ab\tba'))
        # Further down, the mark is what joining two such files leaves: refused.
        joined = write(os.path.join(folder, 'joined.tsv'),
                       b'\xef\xbb\xbfab\tba\n\xef\xbb\xbfcd\tdc\n')
        with assert_raises(DataFileError) as refused:
            read_tsv(joined)
        assert_in('joined.tsv, line 2: byte-order mark U+FEFF at column 1', str(refused.exception))
    finally:
        shutil.rmtree(folder)


def test_an_outlier_length_is_named_and_can_be_dropped():
    """One 300-character line among short words would set the model's
    input_length alone: train warns naming the line, and
    --max-source-length drops it (counted), here and on --resume."""
    folder = tempfile.mkdtemp()
    try:
        train = write(os.path.join(folder, 'train.tsv'), ''.join(
            '%s\t%s\n' % (w, w[::-1]) for w in WORDS + ['ab' * 150]))
        argv = ['train', '--train', train, '--epochs', '1', '--model', 'simple'] + TINY_MODEL
        status, out, err = run(*(argv + ['--model-dir', os.path.join(folder, 'long')]))
        assert_equal(status, 0, err)
        assert_in('train.tsv, line 13: a source of 300 tokens, where 99% of the sources have '
                  'at most 4', err)
        assert_in('--max-source-length N drops the longer pairs', err)
        model_dir = os.path.join(folder, 'short')
        status, out, err = run(*(argv + ['--model-dir', model_dir, '--max-source-length', '10']))
        assert_equal(status, 0, err)
        assert_not_in('warning', err)
        assert_in('1 pair(s) longer than --max-source-length 10 dropped, first on line 13', out)
        with open(os.path.join(model_dir, 'config.json')) as f:
            config = json.load(f)
        assert_equal((config['input_length'], config['max_source_length']), (4, 10))
        status, out, err = run('train', '--train', train, '--model-dir', model_dir, '--resume',
                               '--epochs', '2', '--quiet')
        assert_equal(status, 0, err)
        assert_in('1 pair(s) longer than --max-source-length 10 dropped', out)
        assert_in('12 training pairs', out)
    finally:
        shutil.rmtree(folder)


def test_progress_is_a_line_per_epoch_unless_on_a_terminal():
    """A progress bar in a log file is a line per batch."""
    class Terminal(io.StringIO):
        def isatty(self):
            return True
    assert_equal(cli.progress_verbosity(False, Terminal()), 1)
    assert_equal(cli.progress_verbosity(False, io.StringIO()), 2)
    assert_equal(cli.progress_verbosity(True, Terminal()), 0)


def test_usage_errors_are_one_line_with_exit_status_2():
    # argparse's errors too: one line naming the option, not the usage block.
    status, _, err = run('train', '--train', 'x.tsv')
    assert_equal(status, 2)
    assert_in('--model-dir', err)
    assert_equal(len(err.strip().splitlines()), 1, err)
    for seed in ('-1', '4294967296', 'one'):
        status, _, err = run('train', '--train', 'x.tsv', '--model-dir', 'm', '--seed', seed)
        assert_equal(status, 2)
        assert_in('--seed', err)
        assert_equal(err.strip().splitlines(), [err.strip()])
        assert_true(err.startswith('seq2seq train: error: argument --seed: '), err)
    for argv in (['predict', '--model-dir', 'm', '--beam-size', '0'], ['frobnicate'], []):
        status, _, err = run(*argv)
        assert_equal((status, len(err.strip().splitlines())), (2, 1), err)
        assert_in('--help lists the options', err)


def test_console_script_and_module_entry_point():
    """`seq2seq` (console script) and `python -m seq2seq`: a missing file is
    one error line and exit status 2."""
    script = os.path.join(os.path.dirname(sys.executable), 'seq2seq')
    commands = [[sys.executable, '-m', 'seq2seq']]
    if os.path.exists(script):
        commands.append([script])
    for command in commands:
        process = subprocess.Popen(command + ['predict', '--model-dir', '/nonexistent/dir'],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = process.communicate()
        assert_equal(process.returncode, 2, err)
        assert_equal(err.decode().strip().splitlines(),
                     ['seq2seq predict: error: /nonexistent/dir: no such model directory'])


# -- the options: defined once, in groups; validation errors ------------------------------
def _add_argument_calls(path):
    """(option string, enclosing function) of every `add_argument('--x', ...)` of a module."""
    import ast
    with open(path) as f:
        tree = ast.parse(f.read())
    calls = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef):
            continue
        for node in ast.walk(function):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == 'add_argument'):
                names = [arg.s for arg in node.args if isinstance(arg, ast.Str)]
                assert names, 'add_argument without a literal option string in %s' % (
                    function.name)
                calls.extend((name, function.name) for name in names)
    return calls


def _command_parsers():
    return cli.build_parser()._subparsers._group_actions[0].choices


def test_each_option_is_defined_once_in_the_groups_of_opts():
    from seq2seq.app import opts
    calls = _add_argument_calls(opts.__file__)
    names = [name for name, _ in calls]
    assert_equal(sorted(set(n for n in names if names.count(n) > 1)), [])
    groups = set(group.__name__ for group in opts.GROUPS)
    assert_equal([(name, function) for name, function in calls if function not in groups], [])
    assert_equal(_add_argument_calls(cli.__file__), [])
    # Every option a command takes is one of these, and each is taken somewhere.
    taken = set()
    for command in _command_parsers().values():
        taken.update(o for o in command._option_string_actions if o not in ('-h', '--help'))
    assert_equal(taken, set(names))
    # A command gets each option from one group.
    for command, _ in opts.COMMANDS:
        seen = {}
        for group in opts.GROUPS:
            parser = opts.argparse.ArgumentParser(add_help=False)
            group(parser, command)
            for option in parser._option_string_actions:
                assert_not_in(option, seen, (command, group.__name__, seen))
                seen[option] = group.__name__


def test_help_lists_every_option_with_its_default():
    for name, command in _command_parsers().items():
        text = ' '.join(command.format_help().split())
        for action in command._actions:
            for option in action.option_strings:
                assert_in(option, text, name)
            if action.option_strings and action.nargs != 0 and action.default is not None:
                assert_in('(default: %s)' % (action.default,), text, (name, action.dest))
    learning_rate = _command_parsers()['train']._option_string_actions['--learning-rate']
    assert_in('default: 0.001', learning_rate.help)     # None is what --resume keeps


def test_validation_errors_are_one_line_naming_the_option():
    """Checked before any file is read or model loaded (the paths here do
    not exist): exit status 2, one line naming the option."""
    nbest = ['--rescore-nbest', 'none.nbest']
    cases = [
        (['train', '--train', 'none.tsv', '--model-dir', 'm', '--hidden-dim', '7'],
         '--model attention needs an even --hidden-dim'),
        (['predict', '--model-dir', 'm', '--rescore-union', '--beam-size', '2'],
         '--rescore-union needs --rescore-model-dir'),
        (['predict', '--model-dir', 'm', '--rescore-model-dir', 'r'],
         '--rescore-model-dir reranks the beam\'s hypotheses: it needs --beam-size > 1, got 1'),
        (['evaluate', '--model-dir', 'm', '--test', 'none.tsv'] + nbest,
         '--rescore-nbest reranks the beam\'s hypotheses: it needs --beam-size > 1, got 1'),
        (['evaluate', '--model-dir', 'm', '--test', 'none.tsv', '--beam-size', '2',
          '--rescore-model-dir', 'r', '--rescore-weight', '0.6', '--rescore-nbest-weight',
          '0.5'] + nbest, '--rescore-weight + --rescore-nbest-weight must be at most 1'),
        (['attention', '--model-dir', 'm', '--source', '  ', '--out', 'a.png'],
         '--source is empty'),
        (['predict', '--model-dir', 'm', '--beam-size', '2', '--n-best', '5'],
         '--n-best 5 needs --beam-size >= 5'),
    ]
    from seq2seq.app import opts
    for argv, message in cases:
        status, out, err = run(*argv)
        assert_equal((status, out), (2, ''), err)
        assert_equal(len(err.splitlines()), 1, err)
        assert_true(err.startswith('seq2seq %s: error: %s' % (argv[0], message)), err)
        with assert_raises(opts.CommandError) as caught:
            opts.VALIDATORS[argv[0]](cli.build_parser().parse_args(argv))
        assert_equal(len(str(caught.exception).splitlines()), 1)
    # What validation lets through: without --beam-size, the beam is as wide
    # as --n-best (the rule of Translator.translate), and rescoring then has
    # a beam; a resumed run's model options are its config.json's.
    args = cli.build_parser().parse_args(['predict', '--model-dir', 'm', '--n-best', '3',
                                          '--rescore-model-dir', 'r'])
    opts.validate_predict_args(args)
    assert_equal(args.beam_size, 3)
    for argv, beam_size in ((['predict', '--model-dir', 'm'], 1),
                            (['evaluate', '--model-dir', 'm', '--test', 't'], 1),
                            (['predict', '--model-dir', 'm', '--beam-size', '4', '--n-best', '2'],
                             4)):
        args = cli.build_parser().parse_args(argv)
        opts.VALIDATORS[argv[0]](args)
        assert_equal(args.beam_size, beam_size, argv)
    args = cli.build_parser().parse_args(['train', '--train', 't', '--model-dir', 'm',
                                          '--hidden-dim', '7', '--resume'])
    opts.validate_train_args(args)
    assert_equal(args.learning_rate, None)
    args = cli.build_parser().parse_args(['train', '--train', 't', '--model-dir', 'm'])
    opts.validate_train_args(args)
    assert_equal(args.learning_rate, 0.001)


def test_training_and_decoding_encode_pairs_alike():
    """`encode_pairs` (train) and Translator.encode_sources/encode_targets
    (predict, score) are one function: cut, reversed, EOS, padding."""
    from seq2seq.training.data import encode_pairs, encode_sources, encode_targets
    from seq2seq.training.vocab import Vocabulary
    vocab = Vocabulary('abcd')          # ids: a 3, b 4, c 5, d 6
    config = {'input_length': 3, 'output_length': 4, 'reverse_source': True,
              'reverse_target': True}
    pairs = [(1, list('ab'), list('abc')), (2, list('abcd'), list('a')),
             (4, list('a'), list('abcd'))]
    x, y, cut = encode_pairs(pairs, config, vocab, vocab)
    assert_equal(x.tolist(), [[4, 3, 0], [5, 4, 3], [3, 0, 0]])
    assert_equal(y.tolist(), [[5, 4, 3, 1], [3, 1, 0, 0], [6, 5, 4, 1]])
    assert_equal(cut, [2, 4])
    assert_equal(encode_sources([p[1] for p in pairs], config, vocab).tolist(), x.tolist())
    del config['reverse_target']        # a model directory of an earlier version
    assert_equal(encode_targets([list('abc')], config, vocab).tolist(), [[3, 4, 5, 1]])


def test_predict_input_keeps_blank_lines():
    """What predict reads (a file or standard input, bytes or text): every
    line, blank ones included, each to get an output line."""
    from seq2seq.training.data import DataFileError, read_lines
    expected = [(1, 'ab'), (2, ''), (3, 'c d')]
    assert_equal(read_lines('<stdin>', io.BytesIO(b'ab\n\r\nc d\n'), keep_blank=True), expected)
    assert_equal(read_lines('<stdin>', io.StringIO(u'ab\n\nc d'), keep_blank=True), expected)
    assert_equal(read_lines('<stdin>', io.BytesIO(b'ab\n\nc d\n')), [expected[0], expected[2]])
    with assert_raises(DataFileError) as caught:
        read_lines('<stdin>', io.BytesIO(b''), keep_blank=True)
    assert_equal(str(caught.exception), '<stdin>, line 1: the file is empty; expected lines of '
                 'text')
