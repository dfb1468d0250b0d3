"""Pictures of a training run: the loss curve and an attention heatmap.

matplotlib with the Agg backend (no display needed); each PNG is written to
a temporary file in the same folder and renamed.
"""
from __future__ import absolute_import

import os


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _save(figure, path):
    plt = _pyplot()
    folder = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(folder, '.%s.tmp%d' % (os.path.basename(path), os.getpid()))
    try:
        with open(temporary, 'wb') as f:
            figure.savefig(f, format='png', dpi=100, bbox_inches='tight')
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        plt.close(figure)
        if os.path.exists(temporary):
            os.remove(temporary)


def plot_loss_curve(history, path):
    """Training and validation loss per epoch.

    # Arguments
        history: a list of dicts with 'epoch', 'loss' and (optionally)
            'val_loss', as in the model directory's history.csv.
        path: the PNG to write.
    """
    if not history:
        raise ValueError('history holds no epoch to plot')
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 4))
    epochs = [row['epoch'] for row in history]
    axes.plot(epochs, [row['loss'] for row in history], 'o-', label='training loss')
    if all(row.get('val_loss') is not None for row in history):
        axes.plot(epochs, [row['val_loss'] for row in history], 's-', label='validation loss')
    axes.set_xlabel('epoch')
    axes.set_ylabel('cross-entropy per token')
    axes.grid(alpha=0.3)
    axes.legend()
    _save(figure, path)


def plot_attention(weights, source_tokens, output_tokens, path):
    """A heatmap of attention weights: one row per output token, one column
    per source token.

    # Arguments
        weights: (len(output_tokens), len(source_tokens)) array.
        source_tokens, output_tokens: the axis labels.
        path: the PNG to write.
    """
    import numpy as np
    weights = np.asarray(weights)
    if weights.shape != (len(output_tokens), len(source_tokens)):
        raise ValueError('weights must be (len(output_tokens), len(source_tokens)) = (%d, %d), '
                         'got %s' % (len(output_tokens), len(source_tokens), weights.shape))
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(1 + 0.45 * max(len(source_tokens), 4),
                                         1 + 0.4 * max(len(output_tokens), 4)))
    image = axes.imshow(weights, cmap='Greys', vmin=0.0, vmax=max(float(weights.max()), 1e-6),
                        aspect='auto')
    axes.set_xticks(range(len(source_tokens)))
    axes.set_xticklabels(source_tokens)
    axes.set_yticks(range(len(output_tokens)))
    axes.set_yticklabels(output_tokens)
    axes.set_xlabel('source')
    axes.set_ylabel('output')
    figure.colorbar(image, ax=axes)
    _save(figure, path)
