"""A model directory: everything `seq2seq predict` needs to decode text.

    config.json          the training command's configuration, with a
                         format version
    source_vocab.json    the vocabularies (seq2seq.vocab)
    target_vocab.json
    model.h5             the best model by validation loss
                         (`keras.models.load_model` after `import seq2seq`)
    last.h5              the last epoch's checkpoint: model, optimizer state,
                         training state, random states
                         (`seq2seq.callbacks.load_checkpoint`)
    train_state.json     where training stands (also in last.h5; read by
                         `train --resume` when last.h5, from an earlier
                         version, does not hold it)
    history.csv          loss, validation loss, token accuracy and learning
                         rate per epoch
    loss.png             the loss curve
    .lock                held (flock) by the `train` writing the directory;
                         the kernel drops it when that process ends

Also how a configuration becomes a model (`build_model`), with the decoder's
readout and the loss chosen in one place (`READOUT_ACTIVATION`, `LOSS`).
"""
from __future__ import absolute_import

import contextlib
import functools
import inspect
import io
import json
import os

from ..layers import losses
from ..training.checkpoints import BEST_MODEL
from ..training.vocab import Vocabulary
from ..util.files import FolderLock, LockedError, write_text_atomically

FORMAT = 'seq2seq model directory'
FORMAT_VERSION = 1
CONFIG = 'config.json'
SOURCE_VOCAB = 'source_vocab.json'
TARGET_VOCAB = 'target_vocab.json'

# The decoder's readout and the loss that goes with it. The decoders output
# probabilities, trained with the fused sparse cross-entropy (ids as
# targets, no one-hot matrix). Change both here to switch, e.g. to a linear
# readout and a loss on logits.
READOUT_ACTIVATION = 'softmax'
LOSS = losses.sparse_softmax_crossentropy
# Keras' name for the per-token accuracy metric (masked by the sample weights).
ACCURACY_METRIC = 'sparse_categorical_accuracy'

MODELS = ('attention', 'seq2seq', 'simple')
CELLS = ('lstm', 'gru')


class ModelDirError(ValueError):
    """A model directory that cannot be used: missing, half written or from
    another format version."""


def build_model(config, source_vocab_size, target_vocab_size):
    """The Keras model of a configuration: token ids in, probabilities over
    the target vocabulary out (batch, output_length, target_vocab_size).

    'attention' (AttentionSeq2Seq, bidirectional encoder) and 'seq2seq'
    (Seq2Seq) are teacher-forced: fit on [source ids, one-hot targets];
    'simple' (SimpleSeq2Seq) reads the source only.
    """
    from keras.layers import Activation
    from ..models.seq2seq_models import AttentionSeq2Seq, Seq2Seq, Seq2SeqModel, SimpleSeq2Seq
    common = dict(output_dim=target_vocab_size, output_length=config['output_length'],
                  hidden_dim=config['hidden_dim'], input_dim=config['embedding_dim'],
                  input_length=config['input_length'], source_vocab_size=source_vocab_size,
                  depth=config['depth'], dropout=config['dropout'], cell=config['cell'])
    kind = config['model']
    if kind == 'attention':
        return AttentionSeq2Seq(bidirectional=True, teacher_force=True,
                                readout_activation=READOUT_ACTIVATION, **common)
    if kind == 'seq2seq':
        return Seq2Seq(teacher_force=True, readout_activation=READOUT_ACTIVATION, **common)
    if kind == 'simple':
        model = SimpleSeq2Seq(**common)
        return Seq2SeqModel(model.inputs, Activation('softmax', name='probabilities')(
            model.output), name='simple_seq2seq')
    raise ValueError('model must be one of %s, got %r' % (MODELS, kind))


def compile_model(model, learning_rate=0.001):
    """Compile for training: Adam, `LOSS` weighted per target position."""
    from keras.optimizers import Adam
    model.compile(optimizer=Adam(learning_rate), loss=LOSS, sample_weight_mode='temporal',
                  weighted_metrics=[ACCURACY_METRIC])
    return model


def is_teacher_forced(config):
    return config['model'] in ('attention', 'seq2seq')


# -- files -----------------------------------------------------------------------------
def write_config(model_dir, config, source_vocab, target_vocab):
    """Vocabularies first, then the configuration, so a directory whose
    config.json exists has its vocabularies."""
    if not os.path.isdir(model_dir):
        os.makedirs(model_dir)
    source_vocab.save(os.path.join(model_dir, SOURCE_VOCAB))
    target_vocab.save(os.path.join(model_dir, TARGET_VOCAB))
    data = dict(config, format=FORMAT, format_version=FORMAT_VERSION)
    write_text_atomically(os.path.join(model_dir, CONFIG), json.dumps(data, indent=1,
                                                                      sort_keys=True))


LOCK = '.lock'


def lock_model_dir(model_dir):
    """The lock of a model directory (a `FolderLock`, to `release` or use
    in a `with`), taken by whatever writes into it, so that two runs never
    write the same directory (the later would overwrite the better model).
    ModelDirError when another running process holds it; the lock of a
    process that died is free (flock), whatever file it left."""
    if not os.path.isdir(model_dir):
        raise ModelDirError('%s: no such model directory' % model_dir)
    try:
        lock = FolderLock(model_dir, LOCK)
    except LockedError as error:
        raise ModelDirError('%s is being written by another run (%s): wait for it to end, or '
                            'choose another --model-dir' % (model_dir, error.strerror))
    except OSError as error:
        raise ModelDirError('%s: cannot lock the model directory (%s)'
                            % (model_dir, error.strerror or error))
    return lock


# The settings a configuration must hold to build and train its model.
REQUIRED_CONFIG = ('model', 'cell', 'hidden_dim', 'depth', 'embedding_dim', 'dropout',
                   'batch_size', 'learning_rate', 'patience', 'seed', 'input_length',
                   'output_length', 'source_tokens', 'target_tokens')


def check_config_complete(model_dir, config):
    """ModelDirError naming the settings config.json lacks to build the model."""
    missing = [name for name in REQUIRED_CONFIG if name not in config]
    if missing:
        raise ModelDirError('%s: lacks %s, needed to build the model'
                            % (os.path.join(model_dir, CONFIG), ', '.join(missing)))


def read_config(model_dir):
    """(config, source vocabulary, target vocabulary) of a model directory.

    Raises ModelDirError for a missing directory or file, a file that does
    not parse, or another format version.
    """
    if not os.path.isdir(model_dir):
        raise ModelDirError('%s: no such model directory' % model_dir)
    path = os.path.join(model_dir, CONFIG)
    if not os.path.exists(path):
        raise ModelDirError('%s is not a model directory (no %s): train one with '
                            '`seq2seq train --model-dir %s ...`' % (model_dir, CONFIG, model_dir))
    try:
        with io.open(path, encoding='utf-8') as f:
            config = json.load(f)
    except ValueError as error:
        raise ModelDirError('%s: not a model configuration (%s)' % (path, error))
    if not isinstance(config, dict) or config.get('format') != FORMAT:
        raise ModelDirError('%s: not a model configuration written by seq2seq' % path)
    if config.get('format_version') != FORMAT_VERSION:
        raise ModelDirError('%s: model directory format version %r, this seq2seq reads version '
                            '%d: retrain the model with this version'
                            % (path, config.get('format_version'), FORMAT_VERSION))
    # Directories written before --reverse-target existed generate left to right.
    config.setdefault('reverse_target', False)
    vocabs = []
    for name in (SOURCE_VOCAB, TARGET_VOCAB):
        vocab_path = os.path.join(model_dir, name)
        if not os.path.exists(vocab_path):
            raise ModelDirError('%s is half written: %s is missing' % (model_dir, name))
        try:
            vocabs.append(Vocabulary.load(vocab_path))
        except ValueError as error:
            raise ModelDirError(str(error))
    return config, vocabs[0], vocabs[1]


def check_trained(model_dir, name=BEST_MODEL):
    """`read_config`, and a ModelDirError when the model file is missing."""
    config, source_vocab, target_vocab = read_config(model_dir)
    if not os.path.exists(os.path.join(model_dir, name)):
        raise ModelDirError('%s holds no trained model yet (%s is missing: training stopped '
                            'before its first epoch ended?)' % (model_dir, name))
    return config, source_vocab, target_vocab


def _zeros(shape, dtype=None):
    import numpy as np
    from keras import backend as K
    return np.zeros(shape, dtype=dtype or K.floatx())


@contextlib.contextmanager
def initial_weights_skipped():
    """While Keras builds a model whose weights a file then overwrites:
    every `add_weight` starts from zeros instead of its initializer. Keras'
    `load_model` runs them all first, and the orthogonal ones are an SVD
    per recurrent kernel: most of the loading time of a wide model. The
    layers keep their initializers in their configurations."""
    from keras.engine.base_layer import Layer
    original = Layer.add_weight
    signature = inspect.signature(original)

    @functools.wraps(original)
    def add_weight(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.arguments['initializer'] = _zeros
        return original(*bound.args, **bound.kwargs)

    Layer.add_weight = add_weight
    try:
        yield
    finally:
        Layer.add_weight = original


def load_model_dir(model_dir, name=BEST_MODEL):
    """(config, source vocabulary, target vocabulary, Keras model) of a
    trained model directory."""
    config, source_vocab, target_vocab = check_trained(model_dir, name)
    path = os.path.join(model_dir, name)
    import keras
    try:
        with initial_weights_skipped():
            model = keras.models.load_model(path, compile=False)
    except Exception as error:  # h5py and Keras raise many kinds
        raise ModelDirError('%s: cannot load the model (%s: %s)'
                            % (path, type(error).__name__, error))
    return config, source_vocab, target_vocab, model
