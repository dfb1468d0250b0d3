"""Training callbacks: checkpoints after every epoch, early stopping, the
history as CSV and the loss curve.

    Checkpoint(path)                    a Keras callback writing a checkpoint
                                        (`seq2seq.training.checkpoints`) after
                                        every epoch
    CheckpointAndEarlyStopping(...)     what `seq2seq train` runs: the last and
                                        the best checkpoint, early stopping,
                                        the learning-rate schedule, history.csv
                                        and loss.png

The checkpoint I/O (`save_checkpoint`, `load_checkpoint`, ...) and `set_seed`
are importable from here too, where the first release had them.
"""
from __future__ import absolute_import, print_function

import csv
import io
import json
import math
import os
import sys

import numpy as np
from keras import backend as K
from keras.callbacks import Callback

from ..util.files import FileWriteError, write_text_atomically
# The names of the first release's seq2seq.callbacks, defined in the modules below.
from .checkpoints import (BEST_MODEL, CHECKPOINT_GROUP, LAST_CHECKPOINT,  # noqa: F401
                          SAMPLE_ORDER, TRAIN_STATE, CheckpointWriteError, load_checkpoint,
                          load_train_state, read_checkpoint_state, remove_stale_temporaries,
                          save_checkpoint, save_model_atomically)
from .seeding import random_streams, set_seed  # noqa: F401

HISTORY_CSV = 'history.csv'
LOSS_CURVE = 'loss.png'
HISTORY_FIELDS = ('epoch', 'loss', 'val_loss', 'val_token_accuracy', 'learning_rate')
class Checkpoint(Callback):
    """Write a checkpoint (`save_checkpoint`) after every `period` epochs,
    for `load_checkpoint` to resume from:

        model.fit(x, y, epochs=10, callbacks=[Checkpoint('run.h5')])
        # ... the process dies; later, in a new one:
        model, state = load_checkpoint('run.h5')
        model.fit(x, y, epochs=10, initial_epoch=state['epoch'],
                  callbacks=[Checkpoint('run.h5')])

    gives the weights of the uninterrupted run (to float rounding).

    Keras' `fit(shuffle=True)` shuffles the previous epoch's order again
    each epoch, an order it keeps to itself. With `shuffle=True` here too
    the callback follows it (replaying each epoch's shuffle from numpy's
    state at the epoch's start) and saves it as state['sample_order']; the
    resumed fit then reads the samples in that order:

        model.fit(x, y, epochs=10, shuffle=True,
                  callbacks=[Checkpoint('run.h5', shuffle=True)])
        # ... later:
        model, state = load_checkpoint('run.h5')
        order = state['sample_order']
        model.fit(x[order], y[order], epochs=10, shuffle=True,
                  initial_epoch=state['epoch'],
                  callbacks=[Checkpoint('run.h5', shuffle=True, state=state)])

    (without `validation_split`, which Keras takes from the end of x before
    shuffling; pass `validation_data`.)

    # Arguments
        path: the checkpoint file (replaced atomically each time).
        period: epochs between checkpoints.
        shuffle: True when `fit` is called with shuffle=True.
        state: the state `load_checkpoint` returned, when resuming with
            shuffle=True (its sample order is where the next one starts).
    """

    def __init__(self, path, period=1, shuffle=False, state=None):
        super(Checkpoint, self).__init__()
        if not isinstance(period, int) or isinstance(period, bool) or period < 1:
            raise ValueError('period must be a positive int, got %r' % (period,))
        if shuffle not in (True, False):
            raise ValueError('shuffle must be True or False (as given to fit; Keras\' '
                             'shuffle=\'batch\' is not followed), got %r' % (shuffle,))
        if state is not None and not isinstance(state, dict):
            raise TypeError('state must be the dict load_checkpoint returns, got %s'
                            % type(state).__name__)
        self.path = path
        self.period = period
        self.shuffle = shuffle
        order = None if state is None else state.get(SAMPLE_ORDER)
        self.sample_order = None if order is None else np.asarray(order)
        self._epoch_start_random_state = None

    def on_train_begin(self, logs=None):
        samples = (self.params or {}).get('samples')
        if not self.shuffle:
            return
        if samples is None:
            raise ValueError('Checkpoint(shuffle=True) follows fit\'s shuffling of arrays; '
                             'this fit has no sample count (a generator?)')
        if self.sample_order is None:
            self.sample_order = np.arange(samples)
        elif len(self.sample_order) != samples:
            raise ValueError('state holds the order of %d samples, fit has %d'
                             % (len(self.sample_order), samples))

    def on_epoch_begin(self, epoch, logs=None):
        if self.shuffle:        # called just before fit shuffles
            self._epoch_start_random_state = np.random.get_state()

    def on_epoch_end(self, epoch, logs=None):
        if self.shuffle:
            replay = np.random.RandomState()
            replay.set_state(self._epoch_start_random_state)
            positions = np.arange(len(self.sample_order))
            replay.shuffle(positions)               # what fit did to its order
            self.sample_order = self.sample_order[positions]
        if (epoch + 1) % self.period == 0:
            logs = logs or {}
            state = {'epoch': epoch + 1,
                     'logs': {k: float(v) for k, v in logs.items()
                              if isinstance(v, (int, float, np.floating, np.integer))}}
            if self.shuffle:
                state[SAMPLE_ORDER] = self.sample_order
            save_checkpoint(self.model, self.path, state)


def write_history_csv(history, path):
    rows = io.StringIO()
    writer = csv.DictWriter(rows, fieldnames=HISTORY_FIELDS, extrasaction='ignore',
                            lineterminator='\n')
    writer.writeheader()
    for row in history:
        writer.writerow({k: ('' if row.get(k) is None else row[k]) for k in HISTORY_FIELDS})
    write_text_atomically(path, rows.getvalue())


def make_validation_scorer(model, batches, teacher_force):
    """A function () -> (loss, token accuracy) on `batches` (a
    `seq2seq.data.TeacherForcedBatches`): the cross-entropy per target token
    (EOS included, padding not) and the fraction of those tokens that are
    the most probable one.

    A teacher-forced model is scored as it is trained, reading the previous
    reference tokens (Keras' own validation would run it on its own output
    vectors, which neither training nor beam search does), but without
    dropout (`seq2seq.layers.dropout_free`): the scores are the model's,
    the same at every call. Other models run as in `predict`.
    """
    from keras import backend as K
    from ..layers.dropout_free import without_dropout
    forward = K.function(model.inputs + [K.learning_phase()], without_dropout([model.output]))
    phase = 1 if teacher_force else 0

    def score():
        total_loss = total_right = total_weight = 0.0
        for index in range(len(batches)):
            inputs, targets, weights = batches[index]
            inputs = inputs if isinstance(inputs, list) else [inputs]
            probs = forward(inputs + [phase])[0]                     # (batch, T, vocab)
            targets = targets[..., 0]
            # Trimmed batches scale their weights for Keras' mean over every
            # position; here each target token counts once.
            weights = (weights > 0).astype('float64')
            picked = np.take_along_axis(probs, targets[..., None], axis=-1)[..., 0]
            total_loss += float((weights * -np.log(np.maximum(picked, 1e-7))).sum())
            total_right += float((weights * (probs.argmax(-1) == targets)).sum())
            total_weight += float(weights.sum())
        return total_loss / total_weight, total_right / total_weight
    return score


class CheckpointAndEarlyStopping(Callback):
    """After every epoch: the last checkpoint (model with optimizer state)
    and the training state for `--resume`; the best model by validation
    loss; the history CSV and loss curve; stop after `patience` epochs
    without a better validation loss.

    # Arguments
        model_dir: the folder to write into.
        patience: epochs without improvement before stopping (None: never).
        state: the state of an interrupted run to continue (from
            `load_train_state`), or None.
        validation: a function () -> (validation loss, validation token
            accuracy), e.g. from `make_validation_scorer`, run after every
            epoch; its values go into the logs as 'val_loss' and
            'val_token_accuracy'. None: Keras' own validation values, if any.
        accuracy_key: the logs key of the validation token accuracy.
        stream: where the one-line epoch summaries go.
        lr_decay: a factor in (0, 1): after an epoch without a better
            validation loss, the optimizer's learning rate is multiplied by
            it (the step size falls when progress stalls, as in Nematus and
            OpenNMT). None: a constant learning rate.
    """

    def __init__(self, model_dir, patience=None, state=None, validation=None,
                 accuracy_key='val_token_accuracy', stream=None, lr_decay=None):
        super(CheckpointAndEarlyStopping, self).__init__()
        if lr_decay is not None and not 0.0 < lr_decay < 1.0:
            raise ValueError('lr_decay: expected a factor in (0, 1) or None, got %r'
                             % (lr_decay,))
        self.lr_decay = lr_decay
        self.validation = validation
        self.model_dir = model_dir
        self.patience = patience
        state = state or {}
        self.history = list(state.get('history', []))
        self.best = state.get('best_val_loss')
        self.wait = state.get('wait', 0)
        self.accuracy_key = accuracy_key
        self.stream = stream or sys.stdout
        self.stopped_early = bool(state.get('stopped_early', False))
        # The rate the next epoch runs at, once decayed; None: the optimizer's.
        self.learning_rate = state.get('learning_rate')
        # The epoch last.h5 holds (None: none yet), for the message of a failed write.
        self.checkpointed_epoch = state.get('epoch')

    def on_train_begin(self, logs=None):
        if self.learning_rate is not None:
            K.set_value(self.model.optimizer.lr, self.learning_rate)

    def path(self, name):
        return os.path.join(self.model_dir, name)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        if self.validation is not None:
            logs['val_loss'], logs['val_token_accuracy'] = self.validation()
        try:
            self._end_epoch(epoch, logs)
        except OSError as error:
            # A full disk ends the run with one line, not a traceback from
            # deep in h5py or matplotlib; every file was written to a
            # temporary one, so the previous checkpoint is whole.
            if not isinstance(error, (FileWriteError, CheckpointWriteError)):
                error = FileWriteError(getattr(error, 'filename', None) or self.model_dir,
                                       error)
            if self.checkpointed_epoch is None:
                intact = ('no epoch was checkpointed yet: start again with '
                          '`seq2seq train --resume`')
            else:
                intact = ('the last checkpoint, %s (epoch %d), is intact: continue with '
                          '`seq2seq train --resume`' % (self.path(LAST_CHECKPOINT),
                                                        self.checkpointed_epoch))
            raise CheckpointWriteError('%s; %s' % (error, intact)) from error

    def _end_epoch(self, epoch, logs):
        val_loss = logs.get('val_loss')
        row = {'epoch': epoch + 1, 'loss': float(logs['loss']),
               'learning_rate': float(K.get_value(self.model.optimizer.lr)),
               'val_loss': None if val_loss is None else float(val_loss),
               'val_token_accuracy': (None if logs.get(self.accuracy_key) is None
                                      else float(logs[self.accuracy_key]))}
        self.history.append(row)
        monitored = row['val_loss'] if row['val_loss'] is not None else row['loss']
        improved = not math.isnan(monitored) and (self.best is None or monitored < self.best)
        if improved:
            self.best, self.wait = monitored, 0
            save_model_atomically(self.model, self.path(BEST_MODEL))
        else:
            self.wait += 1
        if self.patience is not None and self.wait >= self.patience:
            self.model.stop_training = True
            self.stopped_early = True
        elif not improved and self.lr_decay is not None:
            self.learning_rate = row['learning_rate'] * self.lr_decay
            K.set_value(self.model.optimizer.lr, self.learning_rate)
        state = {'epoch': epoch + 1, 'best_val_loss': self.best, 'wait': self.wait,
                 'stopped_early': self.stopped_early, 'history': self.history,
                 'learning_rate': float(K.get_value(self.model.optimizer.lr))}
        # The state goes into the checkpoint itself (one rename: the model and
        # its state never disagree), and into train_state.json for people.
        save_checkpoint(self.model, self.path(LAST_CHECKPOINT), state)
        self.checkpointed_epoch = epoch + 1
        write_text_atomically(self.path(TRAIN_STATE), json.dumps(state, indent=1))
        write_history_csv(self.history, self.path(HISTORY_CSV))
        from .plots import plot_loss_curve
        try:
            plot_loss_curve(self.history, self.path(LOSS_CURVE))
        except FileWriteError:
            raise
        except OSError as error:    # matplotlib's error names the temporary file
            raise FileWriteError(self.path(LOSS_CURVE), error) from error
        summary = 'epoch %d: loss %.4f' % (row['epoch'], row['loss'])
        if row['val_loss'] is not None:
            summary += ', validation loss %.4f' % row['val_loss']
        if row['val_token_accuracy'] is not None:
            summary += ', validation token accuracy %.4f' % row['val_token_accuracy']
        summary += ' (best, saved)' if improved else ' (%d without improvement)' % self.wait
        if state['learning_rate'] != row['learning_rate']:
            summary += '; learning rate %.3g from the next epoch' % state['learning_rate']
        if self.stopped_early:
            summary += '; stopping early (patience %d)' % self.patience
        print(summary, file=self.stream)
        self.stream.flush()
