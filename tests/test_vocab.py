"""Vocabulary, text files and the batches the command line trains on."""
import os
import shutil
import tempfile

import numpy as np
from nose.tools import assert_equal, assert_raises, assert_true

from seq2seq.training.data import (TeacherForcedBatches, detokenize, group_references, pad_ids,
                                   target_weights, tokenize)
from seq2seq.training.vocab import EOS_ID, PAD_ID, UNK_ID, Vocabulary


def test_vocabulary_reserves_pad_eos_unk_and_orders_by_frequency():
    vocab = Vocabulary.build([list('abca'), list('cab'), list('a')])
    assert_equal(vocab.tokens, ['<pad>', '</s>', '<unk>', 'a', 'b', 'c'])
    assert_equal((PAD_ID, EOS_ID, UNK_ID), (0, 1, 2))
    assert_equal(vocab.encode(list('abz')), [3, 4, UNK_ID])
    assert_equal(vocab.unknown(list('abz')), ['z'])
    # decode drops padding and stops at EOS.
    assert_equal(vocab.decode([4, 3, EOS_ID, 5, PAD_ID]), ['b', 'a'])


def test_vocabulary_round_trips_through_json():
    folder = tempfile.mkdtemp()
    try:
        path = os.path.join(folder, 'vocab.json')
        vocab = Vocabulary.build([['HH', 'AH', 'L', 'OW'], [u'\u00e9t\u00e9']])
        vocab.save(path)
        assert_equal(Vocabulary.load(path), vocab)
        assert_equal(os.listdir(folder), ['vocab.json'])     # no temporary file left
        with open(path, 'w') as f:
            f.write('{"tokens": ["a"]}')
        assert_raises(ValueError, Vocabulary.load, path)
    finally:
        shutil.rmtree(folder)


def test_tokenize_and_detokenize():
    assert_equal(tokenize('hello', 'chars'), list('hello'))
    assert_equal(tokenize(' HH  AH L OW ', 'words'), ['HH', 'AH', 'L', 'OW'])
    assert_equal(detokenize(['HH', 'AH'], 'words'), 'HH AH')
    assert_equal(detokenize(list('ab'), 'chars'), 'ab')
    assert_raises(ValueError, tokenize, 'x', 'bytes')


def test_pad_ids_pads_right_reverses_and_cuts():
    assert_equal(pad_ids([[5, 6, 7], [8]], 4).tolist(), [[5, 6, 7, 0], [8, 0, 0, 0]])
    assert_equal(pad_ids([[5, 6, 7], [8]], 4, reverse=True).tolist(),
                 [[7, 6, 5, 0], [8, 0, 0, 0]])
    assert_equal(pad_ids([[5, 6, 7]], 2).tolist(), [[5, 6]])


def test_target_weights_count_tokens_up_to_eos():
    targets = np.array([[4, 5, EOS_ID, 0, 0], [4, EOS_ID, 0, 0, 0]])
    assert_equal(target_weights(targets, EOS_ID).tolist(),
                 [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]])


def test_group_references_keeps_first_seen_order():
    pairs = [(1, ['a'], ['EY']), (2, ['b'], ['B', 'IY']), (3, ['a'], ['AH'])]
    assert_equal(group_references(pairs), [(['a'], [['EY'], ['AH']]), (['b'], [['B', 'IY']])])


def test_teacher_forced_batches_give_one_hot_targets_per_batch():
    x = np.arange(10).reshape(5, 2)
    y = np.array([[3, EOS_ID, 0]] * 5)
    batches = TeacherForcedBatches(x, y, vocab_size=4, batch_size=2, teacher_force=True,
                                   eos_id=EOS_ID, shuffle_seed=0)
    assert_equal(len(batches), 3)
    (source, teacher), targets, weights = batches[2]
    assert_equal(source.shape, (1, 2))
    assert_equal(teacher.shape, (1, 3, 4))
    assert_true((teacher.argmax(-1) == y[:1]).all())
    assert_equal(targets.shape, (1, 3, 1))
    assert_equal(weights.tolist(), [[1, 1, 0]])
    # Every sequence once per epoch, in a shuffled order.
    rows = np.concatenate([batches[i][0][0][:, 0] for i in range(len(batches))])
    assert_equal(sorted(rows.tolist()), [0, 2, 4, 6, 8])
    plain = TeacherForcedBatches(x, y, 4, 2, teacher_force=False, eos_id=EOS_ID)
    assert_equal(plain[0][0].tolist(), x[:2].tolist())
