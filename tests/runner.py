"""Run the nose suite and end with a one-line summary.

    python -m tests.runner [--fast] [nose arguments]

The last line reads 'nose: N passed, N failed, N skipped', so a CI log says
what ran even to a reader that does not know nose's own format; the slowest
tests are listed just before it.

Two tiers:

* `python -m tests.runner` (`make test`, CI): every test.
* `python -m tests.runner --fast` (`make test-fast`): every test not marked
  slow; a few minutes on 2 cores once `~/.theano` is warm, and every module
  still has tests in it.

Marking a test slow (long training, a cold compile in a child process, a
full-size model) is one decorator from nose's attrib plugin:

    from nose.plugins.attrib import attr

    @attr('slow')
    def test_learns_to_reverse_sequences():
        ...

(on a `unittest.TestCase` class it marks every method). Mark a test slow
when it takes more than about 10 seconds with a warm cache, and keep a
faster test of the same module in the fast tier.
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
