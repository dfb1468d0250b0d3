"""Keras models built from the layers.

    seq2seq_models.py  SimpleSeq2Seq, Seq2Seq, AttentionSeq2Seq (the
                       farizrahman4u models) and Seq2SeqModel, the Model
                       subclass they return
    conversation.py    ConversationWindow and the remembered state of a model:
                       training across exchanges, reset, save and load
    saving.py          load_model: Keras' with the package's custom objects,
                       and one-line errors naming the file
"""
from __future__ import absolute_import

from .saving import ModelFileError, load_model, package_custom_objects  # noqa: F401
from .seq2seq_models import (AttentionSeq2Seq, ProbabilityLossWarning, Seq2Seq,  # noqa: F401
                             Seq2SeqModel, SimpleSeq2Seq)
