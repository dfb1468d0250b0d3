"""Run the nose suite and end with a one-line summary.

    python -m tests.runner [--fast] [nose arguments]

The last line reads 'nose: N passed, N failed, N skipped', so a CI log says
what ran even to a reader that does not know nose's own format; the slowest
tests are listed just before it.

Two tiers:

* `python -m tests.runner` (`make test`, CI): every test.
* `python -m tests.runner --fast` (`make test-fast`): every test not marked
  slow; what a developer runs after each change. Under 5 minutes on an idle
  2-core machine once `~/.theano` is warm.

What the fast tier covers: every public capability has at least one quick
test there, asserting something the code computed (values against
tests/numpy_reference.py, or a second path: step-by-step decoding equals
predict, loading equals saving, a training step lowers the loss):

* the layers (`Seq2seq` at each depth, the encoders, decoders and cells,
  masking, remembered state and its guards) against the numpy loops;
* each model class (`SimpleSeq2Seq`, `Seq2Seq` with peek, teacher forcing,
  GRU cells, reversed input, stateful, `AttentionSeq2Seq`): built, predicting
  the reference's values or a second path's, one small model trained a few
  steps with a falling loss, save and `load_model` giving the same outputs;
* the 2015 API (positional order, modules, `Conversational`);
* the losses and the rewrite of Keras' losses into the fused Ops, the fused
  Ops, greedy and beam search, ensembles, rescoring, the command line, the
  checkpoint and resume helpers, the saved-model fixtures, the README blocks;
* the Theano patches (switches, opt-out, import order; child processes that
  compile nothing) and the compile-speed machinery (in-process, warm cache).

Slow only (`@attr('slow')`): long trainings (tests/test_model_learning.py,
each model learning to reverse sequences to a stated accuracy; the command
line's training, resume and rescoring runs), full-size models (the 2015
README example in tests/test_learning.py, the depth-4 README snippets, every
model saved and trained on after loading), cold compiles in a child process
(tests/test_compile_speed.py, the opt-out layers in tests/test_install.py,
tests/test_compilation.py), finite-difference gradients of deep stacks, the
SIGKILL checkpoint test, and the property drawn over all four models in
tests/test_property.py. tests/test_learning.py and
tests/test_model_learning.py have no fast test: what they assert needs long
training; the fast tier's training tests are the falling losses of
tests/test_models.py, tests/test_legacy.py and tests/test_losses.py.

Marking a test slow is one decorator from nose's attrib plugin:

    from nose.plugins.attrib import attr

    @attr('slow')
    def test_seq2seq_learns_to_reverse():
        ...

(on a `unittest.TestCase` class it marks every method). Mark a test slow
when it takes more than about 10 seconds with a warm cache (count the Keras
functions it compiles: each costs seconds) and keep a quick test of the same
capability in the fast tier; where a test is slow only because its model is
needlessly big or it trains needlessly long, shrink it instead.
"""
import sys
import time

import nose
from nose.plugins import Plugin

FAST_FLAG = '--fast'
SLOWEST_SHOWN = 15


class Summary(Plugin):
    """Print the slowest tests, then 'nose: N passed, N failed, N skipped'."""

    name = 'summary'
    enabled = True

    def __init__(self):
        super(Summary, self).__init__()
        self.durations = []
        self._started = None

    def configure(self, options, conf):
        self.enabled = True

    def startTest(self, test):
        self._started = time.time()

    def stopTest(self, test):
        if self._started is not None:
            # A generated test (one per README block) is named by its description.
            name = test.id()
            if getattr(getattr(test, 'test', None), 'descriptor', None) is not None:
                name = test.shortDescription() or name
            self.durations.append((time.time() - self._started, name))
            self._started = None

    def finalize(self, result):
        slowest = sorted(self.durations, reverse=True)[:SLOWEST_SHOWN]
        if slowest:
            sys.stderr.write('slowest tests:\n')
            for seconds, name in slowest:
                sys.stderr.write('  %6.1f s  %s\n' % (seconds, name))
        failed = len(result.failures) + len(result.errors)
        skipped = len(result.skipped)
        passed = result.testsRun - failed - skipped
        sys.stderr.write('nose: %d passed, %d failed, %d skipped\n' % (passed, failed, skipped))


def nose_arguments(argv):
    """nose's argv for ours: the whole suite by default, `--fast` -> not slow."""
    argv = list(argv)
    fast = FAST_FLAG in argv
    argv = [a for a in argv if a != FAST_FLAG]
    if len(argv) == 1:
        argv += ['tests', '--verbosity=2']
    if fast:
        argv += ['--attr=!slow']
    return argv


def main(argv=None):
    argv = nose_arguments(sys.argv if argv is None else argv)
    return nose.run(argv=argv, addplugins=[Summary()])


if __name__ == '__main__':
    sys.exit(0 if main() else 1)
