"""Run the nose suite and end with a one-line summary.

    python -m tests.runner [nose arguments]

The last line reads 'nose: N passed, N failed, N skipped', so a CI log says
what ran even to a reader that does not know nose's own format.
"""
import sys

import nose
from nose.plugins import Plugin


class Summary(Plugin):
    """Print 'nose: N passed, N failed, N skipped' after the report."""

    name = 'summary'
    enabled = True

    def configure(self, options, conf):
        self.enabled = True

    def finalize(self, result):
        failed = len(result.failures) + len(result.errors)
        skipped = len(result.skipped)
        passed = result.testsRun - failed - skipped
        sys.stderr.write('nose: %d passed, %d failed, %d skipped\n' % (passed, failed, skipped))


def main(argv=None):
    argv = list(sys.argv if argv is None else argv)
    if len(argv) == 1:
        argv += ['tests', '--verbosity=2']
    return nose.run(argv=argv, addplugins=[Summary()])


if __name__ == '__main__':
    sys.exit(0 if main() else 1)
