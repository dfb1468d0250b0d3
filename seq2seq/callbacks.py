"""Training callbacks: checkpoints that survive a crash, early stopping,
the history as CSV and the loss curve, and resuming.

Every file is written to a temporary file in the same folder, flushed,
fsynced and renamed, so the model directory never holds half a file.
"""
from __future__ import absolute_import, print_function

import csv
import io
import json
import math
import os
import sys

from keras.callbacks import Callback

from .vocab import write_text_atomically

LAST_CHECKPOINT = 'last.h5'
BEST_MODEL = 'model.h5'
TRAIN_STATE = 'train_state.json'
HISTORY_CSV = 'history.csv'
LOSS_CURVE = 'loss.png'
HISTORY_FIELDS = ('epoch', 'loss', 'val_loss', 'val_token_accuracy')


def _fsync_file(path):
    with open(path, 'rb+') as f:
        os.fsync(f.fileno())


def save_model_atomically(model, path, include_optimizer=True):
    """`model.save(path)` through a temporary file in the same folder."""
    folder = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(folder, '.%s.tmp%d' % (os.path.basename(path), os.getpid()))
    try:
        model.save(temporary, include_optimizer=include_optimizer)
        _fsync_file(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def load_train_state(model_dir):
    """The state a run left in `model_dir` (None when there is none)."""
    path = os.path.join(model_dir, TRAIN_STATE)
    if not os.path.exists(path):
        return None
    with io.open(path, encoding='utf-8') as f:
        try:
            return json.load(f)
        except ValueError as error:
            raise ValueError('%s is not a training state file: %s' % (path, error))


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
    vectors, which neither training nor beam search does); with dropout,
    the scores then include its noise. Other models run as in `predict`.
    """
    import numpy as np
    from keras import backend as K
    forward = K.function(model.inputs + [K.learning_phase()], [model.output])
    phase = 1 if teacher_force else 0

    def score():
        total_loss = total_right = total_weight = 0.0
        for index in range(len(batches)):
            inputs, targets, weights = batches[index]
            inputs = inputs if isinstance(inputs, list) else [inputs]
            probs = forward(inputs + [phase])[0]                     # (batch, T, vocab)
            targets = targets[..., 0]
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
    """

    def __init__(self, model_dir, patience=None, state=None, validation=None,
                 accuracy_key='val_token_accuracy', stream=None):
        super(CheckpointAndEarlyStopping, self).__init__()
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

    def path(self, name):
        return os.path.join(self.model_dir, name)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        if self.validation is not None:
            logs['val_loss'], logs['val_token_accuracy'] = self.validation()
        val_loss = logs.get('val_loss')
        row = {'epoch': epoch + 1, 'loss': float(logs['loss']),
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
        save_model_atomically(self.model, self.path(LAST_CHECKPOINT))
        write_text_atomically(self.path(TRAIN_STATE), json.dumps(
            {'epoch': epoch + 1, 'best_val_loss': self.best, 'wait': self.wait,
             'stopped_early': self.stopped_early, 'history': self.history}, indent=1))
        write_history_csv(self.history, self.path(HISTORY_CSV))
        from .plots import plot_loss_curve
        plot_loss_curve(self.history, self.path(LOSS_CURVE))
        summary = 'epoch %d: loss %.4f' % (row['epoch'], row['loss'])
        if row['val_loss'] is not None:
            summary += ', validation loss %.4f' % row['val_loss']
        if row['val_token_accuracy'] is not None:
            summary += ', validation token accuracy %.4f' % row['val_token_accuracy']
        summary += ' (best, saved)' if improved else ' (%d without improvement)' % self.wait
        if self.stopped_early:
            summary += '; stopping early (patience %d)' % self.patience
        print(summary, file=self.stream)
        self.stream.flush()
