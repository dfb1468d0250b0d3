"""Trimmed, length-sorted training batches (`TeacherForcedBatches(trim=True,
maxibatch=N)` with `variable_length_batches`): the loss and the gradients of
a trimmed batch equal those of the padded batch, for every model the command
line builds; the batches hold every sequence once per epoch."""
import numpy as np
from keras import backend as K
from nose.plugins.attrib import attr
from nose.tools import assert_equal, assert_raises, assert_true
from numpy.testing import assert_allclose

from seq2seq.training.data import TeacherForcedBatches, targets_with_eos, variable_length_batches
from seq2seq.app.model_dir import READOUT_ACTIVATION, build_model, compile_model
from seq2seq.models import AttentionSeq2Seq

EOS = 2
VOCAB = 7
SOURCE_LENGTH, TARGET_LENGTH = 9, 8


def ragged_pairs(n, seed=0):
    """Sources of 1..5 ids and targets of 1..4 ids (then EOS), padded to
    lengths well beyond the longest: trimming has columns to cut."""
    rng = np.random.RandomState(seed)
    sources = [rng.randint(3, VOCAB, size=rng.randint(1, 6)) for _ in range(n)]
    targets = [rng.randint(3, VOCAB, size=rng.randint(1, 5)) for _ in range(n)]
    x = np.zeros((n, SOURCE_LENGTH), dtype='int32')
    for row, source in enumerate(sources):
        x[row, :len(source)] = source
    return x, targets_with_eos(targets, TARGET_LENGTH, EOS)


# -- the batches ----------------------------------------------------------------------
def test_trimmed_batches_cut_only_padding_and_rescale_the_weights():
    x, y = ragged_pairs(10)
    full = TeacherForcedBatches(x, y, VOCAB, 4, teacher_force=True, eos_id=EOS)
    cut = TeacherForcedBatches(x, y, VOCAB, 4, teacher_force=True, eos_id=EOS, trim=True)
    for index in range(len(full)):
        (source, teacher), targets, weights = full[index]
        (t_source, t_teacher), t_targets, t_weights = cut[index]
        steps, target_steps = t_source.shape[1], t_targets.shape[1]
        assert_true(steps < SOURCE_LENGTH and target_steps < TARGET_LENGTH)
        # What is cut is padding, what is kept is unchanged.
        assert_true((source[:, steps:] == 0).all() and (weights[:, target_steps:] == 0).all())
        assert_equal(t_source.tolist(), source[:, :steps].tolist())
        assert_equal(t_teacher.tolist(), teacher[:, :target_steps].tolist())
        assert_equal(t_targets.tolist(), targets[:, :target_steps].tolist())
        # The longest sequence of the batch is kept whole.
        assert_true((source[:, steps - 1] != 0).any() and (weights[:, target_steps - 1] > 0).any())
        # Keras' mean over every position is that of the padded batch.
        assert_allclose(t_weights.sum() / t_weights.size, weights.sum() / weights.size,
                        rtol=1e-6)


def test_a_model_without_teacher_forcing_keeps_its_full_targets():
    x, y = ragged_pairs(6)
    batches = TeacherForcedBatches(x, y, VOCAB, 3, teacher_force=False, eos_id=EOS, trim=True)
    source, targets, weights = batches[0]
    assert_true(source.shape[1] < SOURCE_LENGTH)
    assert_equal((targets.shape[1], weights.tolist()),
                 (TARGET_LENGTH, batches.weights[:3].tolist()))


def test_maxibatches_group_similar_lengths_and_keep_every_sequence_once():
    x, y = ragged_pairs(103, seed=1)
    batches = TeacherForcedBatches(x, y, VOCAB, 8, teacher_force=True, eos_id=EOS,
                                   shuffle_seed=3, trim=True, maxibatch=4)
    plain = TeacherForcedBatches(x, y, VOCAB, 8, teacher_force=True, eos_id=EOS,
                                 shuffle_seed=3, trim=True)
    for epoch in range(3):
        rows = np.concatenate([batches.batch_rows(i) for i in range(len(batches))])
        assert_equal(sorted(rows.tolist()), list(range(103)))
        # Every batch full but the last, which trails (a partial one).
        sizes = [len(batches.batch_rows(i)) for i in range(len(batches))]
        assert_equal(sizes, [8] * 12 + [7])

        def steps(b):
            return sum(b[i][0][0].shape[1] + b[i][1].shape[1] for i in range(len(b)))
        assert_true(steps(batches) < steps(plain), (steps(batches), steps(plain)))
        batches.on_epoch_end()
        plain.on_epoch_end()
    # Each epoch's order differs, and a rebuilt generator repeats it.
    again = TeacherForcedBatches(x, y, VOCAB, 8, teacher_force=True, eos_id=EOS,
                                 shuffle_seed=3, trim=True, maxibatch=4)
    for _ in range(3):
        again.on_epoch_end()
    assert_equal(again.order.tolist(), batches.order.tolist())


def test_maxibatch_must_be_a_positive_int():
    x, y = ragged_pairs(4)
    for bad in (0, -1, 2.5, True, '4'):
        with assert_raises(ValueError) as caught:
            TeacherForcedBatches(x, y, VOCAB, 2, teacher_force=True, eos_id=EOS, maxibatch=bad)
        assert_true('maxibatch' in str(caught.exception))


# -- the models -----------------------------------------------------------------------
def cli_model(kind, depth=1, implementation=None):
    """The model `seq2seq train` builds; with `implementation`, the
    attention model with every loop built that way ('scan': the reference)."""
    if implementation is None:
        config = dict(model=kind, cell='lstm', hidden_dim=6, embedding_dim=4, depth=depth,
                      dropout=0.0, input_length=SOURCE_LENGTH, output_length=TARGET_LENGTH)
        return compile_model(build_model(config, VOCAB, VOCAB))
    return compile_model(AttentionSeq2Seq(
        output_dim=VOCAB, output_length=TARGET_LENGTH, hidden_dim=6, input_dim=4,
        input_length=SOURCE_LENGTH, source_vocab_size=VOCAB, depth=depth,
        teacher_force=True, readout_activation=READOUT_ACTIVATION,
        implementation=implementation))


def loss_and_gradients(model):
    """A function (inputs, targets, weights) -> [loss] + gradients, in the
    training phase (a teacher-forced model reads its targets)."""
    inputs = model._feed_inputs + model._feed_targets + model._feed_sample_weights
    outputs = [model.total_loss] + K.gradients(model.total_loss, model.trainable_weights)
    function = K.function(inputs + [K.learning_phase()], outputs)

    def run(batch):
        source, targets, weights = batch
        source = source if isinstance(source, list) else [source]
        return function(source + [targets, weights, 1])
    return run


def check_trimmed_batch_is_exact(kind, depth=1, implementation=None):
    np.random.seed(0)
    model = cli_model(kind, depth, implementation)
    x, y = ragged_pairs(6, seed=2)
    forced = kind != 'simple'
    full = TeacherForcedBatches(x, y, VOCAB, 6, teacher_force=forced, eos_id=EOS)[0]
    cut = TeacherForcedBatches(x, y, VOCAB, 6, teacher_force=forced, eos_id=EOS, trim=True)[0]
    assert_true(cut[0][0].shape[1] < SOURCE_LENGTH if forced else cut[0].shape[1] < SOURCE_LENGTH)
    run = loss_and_gradients(model)
    for a, b in zip(run(full), run(cut)):
        assert_allclose(b, a, rtol=2e-5, atol=1e-6)
    # Keras' own training step takes the trimmed batch inside the block.
    with variable_length_batches(model):
        loss = model.train_on_batch(*cut)
    assert_true(np.isfinite(loss).all())


@attr('slow')
def test_trimmed_batch_is_exact_for_the_attention_model():
    check_trimmed_batch_is_exact('attention')                   # fused decoder


@attr('slow')
def test_trimmed_batch_is_exact_for_the_attention_model_with_two_encoder_layers():
    check_trimmed_batch_is_exact('attention', depth=[2, 1])


@attr('slow')
def test_trimmed_batch_is_exact_for_the_scan_loops():
    check_trimmed_batch_is_exact('attention', depth=2)          # the decoder's scan
    check_trimmed_batch_is_exact('attention', implementation='scan')


@attr('slow')
def test_trimmed_batch_is_exact_for_seq2seq_and_simple_models():
    check_trimmed_batch_is_exact('seq2seq')
    check_trimmed_batch_is_exact('simple')


def test_variable_length_batches_refuse_longer_inputs_and_restore_the_checks():
    model = cli_model('attention')
    declared = list(model._feed_input_shapes)
    x, y = ragged_pairs(2)
    (source, teacher), targets, weights = TeacherForcedBatches(
        x, y, VOCAB, 2, teacher_force=True, eos_id=EOS)[0]
    longer = np.zeros((2, SOURCE_LENGTH + 1), dtype='int32')
    with variable_length_batches(model):
        with assert_raises(ValueError) as caught:
            model.train_on_batch([longer, teacher], targets, weights)
        assert_true("'source'" in str(caught.exception) and str(SOURCE_LENGTH) in
                    str(caught.exception), caught.exception)
    assert_equal(model._feed_input_shapes, declared)
    with assert_raises(ValueError):     # Keras' own check is back
        model.train_on_batch([source[:, :3], teacher], targets, weights)


@attr('slow')
def test_training_on_trimmed_batches_follows_the_padded_trajectory():
    """Two epochs of fit_generator, same initial weights and batch order:
    the weights after training on trimmed batches are those after training
    on the padded ones (float32 rounding apart)."""
    x, y = ragged_pairs(12, seed=4)
    trained = []
    for trim in (False, True):
        np.random.seed(1)
        model = cli_model('attention')
        batches = TeacherForcedBatches(x, y, VOCAB, 4, teacher_force=True, eos_id=EOS,
                                       shuffle_seed=5, trim=trim)
        with variable_length_batches(model):
            model.fit_generator(batches, epochs=2, verbose=0, workers=0, shuffle=False)
        trained.append(model.get_weights())
    for padded, trimmed in zip(*trained):
        assert_allclose(trimmed, padded, rtol=1e-4, atol=1e-5)
    assert_true(any(not np.allclose(w, v) for w, v in zip(trained[0], cli_weights_at_start())))


def cli_weights_at_start():
    np.random.seed(1)
    return cli_model('attention').get_weights()


@attr('slow')
def test_validation_scores_of_trimmed_batches_are_those_of_padded_ones():
    from seq2seq.training.callbacks import make_validation_scorer
    np.random.seed(0)
    model = cli_model('attention')
    x, y = ragged_pairs(10, seed=6)
    scores = [make_validation_scorer(model, TeacherForcedBatches(
        x, y, VOCAB, 4, teacher_force=True, eos_id=EOS, trim=trim), teacher_force=True)()
        for trim in (False, True)]
    assert_allclose(scores[1], scores[0], rtol=1e-5)
