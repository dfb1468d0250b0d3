"""Training: data, vocabularies, input checks, checkpoints, callbacks, metrics.

    data.py         reading TSV files, tokens, padding, teacher-forced batches
    vocab.py        Vocabulary: tokens <-> ids with PAD, EOS, UNK
    seeding.py      set_seed
    checkpoints.py  checkpoints that survive a crash, resuming bit-identically
    callbacks.py    Checkpoint, CheckpointAndEarlyStopping, history.csv, loss.png
    metrics.py      WER, PER (token error rate), BLEU, accuracy, perplexity
    plots.py        the loss curve and attention heatmaps
"""
