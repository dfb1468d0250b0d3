"""The import paths of the first releases, kept for users' code.

The package was one flat folder; its modules now live in subpackages, one
layer of the design each (see docs/architecture.md). Each old path below
names the same module object as its new one, so `import seq2seq.decoding`,
`from seq2seq.conversation import ConversationWindow` and monkeypatching
through either path keep working. `install()` (run by `import seq2seq`)
puts the finder on `sys.meta_path`; nothing is imported until an old path is.
"""
from __future__ import absolute_import

import importlib
import importlib.abc
import importlib.util
import sys

# old module -> new module
ALIASES = {
    'seq2seq.callbacks': 'seq2seq.training.callbacks',
    'seq2seq.cells': 'seq2seq.layers.cells',
    'seq2seq.cli': 'seq2seq.app.cli',
    'seq2seq.conversation': 'seq2seq.models.conversation',
    'seq2seq.conversational': 'seq2seq.legacy.conversational',
    'seq2seq.data': 'seq2seq.training.data',
    'seq2seq.decoders': 'seq2seq.layers.decoders',
    'seq2seq.decoding': 'seq2seq.search.numpy_search',
    'seq2seq.guards': 'seq2seq.layers.input_checks',
    'seq2seq.inference': 'seq2seq.search.model_search',
    'seq2seq.losses': 'seq2seq.layers.losses',
    'seq2seq.lstm_decoder': 'seq2seq.legacy.lstm_decoder',
    'seq2seq.lstm_encoder': 'seq2seq.legacy.lstm_encoder',
    'seq2seq.metrics': 'seq2seq.training.metrics',
    'seq2seq.model_dir': 'seq2seq.app.model_dir',
    'seq2seq.nbest': 'seq2seq.app.nbest',
    'seq2seq.plots': 'seq2seq.training.plots',
    'seq2seq.recurrent': 'seq2seq.layers.recurrent',
    'seq2seq.rescoring': 'seq2seq.app.rescoring',
    'seq2seq.seq2seq': 'seq2seq.layers.seq2seq_layer',
    'seq2seq.state_checks': 'seq2seq.layers.state_checks',
    'seq2seq.stateful_rnn': 'seq2seq.legacy.stateful_rnn',
    'seq2seq.translator': 'seq2seq.app.translator',
    'seq2seq.vocab': 'seq2seq.training.vocab',
}


class AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old path of `ALIASES` and loads it as its new module."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in ALIASES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        # The new module itself: old and new path give one module object.
        return importlib.import_module(ALIASES[spec.name])

    def exec_module(self, module):
        pass  # already executed under its new name


def install():
    """Put the finder first on `sys.meta_path`, once."""
    if not any(isinstance(finder, AliasFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, AliasFinder())
