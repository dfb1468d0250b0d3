"""Keras models built from the layers.

    seq2seq_models.py  SimpleSeq2Seq, Seq2Seq, AttentionSeq2Seq (the
                       farizrahman4u models) and Seq2SeqModel, the Model
                       subclass they return
    conversation.py    ConversationWindow and the remembered state of a model:
                       training across exchanges, reset, save and load
"""
from __future__ import absolute_import

from .seq2seq_models import AttentionSeq2Seq, Seq2Seq, Seq2SeqModel, SimpleSeq2Seq  # noqa: F401
