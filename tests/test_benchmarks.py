"""Smoke test of the benchmark harness (benchmarks/): its Theano rows in
--quick mode (tiny models, one epoch), the structure of what it reports, and
its messages for bad options. The PyTorch rows are left out: they need the
separate venv that `make bench` creates."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from nose.plugins.attrib import attr

from benchmarks import report, runner

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THEANO_TRAIN_ROWS = ['seq2seq_scan', 'seq2seq_fused', 'attention', 'keras_repeat',
                     'keras_state', 'seq2seq_fused_xent', 'keras_state_xent']
ROWS = THEANO_TRAIN_ROWS + ['decode_greedy']
# No C compilation and little graph optimisation: seconds per row, not minutes.
FAST_THEANO = 'cxx=,optimizer=fast_compile'


def run_bench(*arguments):
    """`python -m benchmarks ARGUMENTS` from the repository: (exit code, output)."""
    completed = subprocess.run([sys.executable, '-m', 'benchmarks'] + list(arguments),
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True)
    return completed.returncode, completed.stdout


@attr('slow')
class QuickTheanoRowsTest(unittest.TestCase):
    """One --quick run of the Theano rows, shared by the tests."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='seq2seq-bench-test-')
        cls.json_path = os.path.join(cls.tmp, 'results.json')
        cls.md_path = os.path.join(cls.tmp, 'RESULTS.md')
        cls.code, cls.output = run_bench(
            '--quick', '--size', 'small', '--rows', ','.join(ROWS), '--no-cold',
            '--theano-flags', FAST_THEANO, '--results', cls.md_path, '--json', cls.json_path)
        if not os.path.exists(cls.json_path):
            raise AssertionError('the benchmark wrote no results:\n' + cls.output)
        with open(cls.json_path) as handle:
            cls.results = json.load(handle)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_exit_code_and_table(self):
        self.assertEqual(self.code, 0, self.output)
        self.assertIn('| size ', self.output)
        self.assertIn('train samples/s', self.output)
        self.assertIn('sequences/s', self.output)

    def test_every_row_reported(self):
        rows = [r['row'] for r in self.results['rows']]
        self.assertEqual(rows, ROWS)
        for result in self.results['rows']:
            self.assertIn(result['status'], ('ok', 'unavailable'), result)
            self.assertEqual(result['size'], 'small-quick')
        statuses = {r['row']: r['status'] for r in self.results['rows']}
        for row in ('seq2seq_scan', 'keras_repeat', 'keras_state', 'keras_state_xent',
                    'decode_greedy'):
            self.assertEqual(statuses[row], 'ok', self.results['rows'])

    def test_measurements(self):
        for result in self.results['rows']:
            if result['status'] != 'ok':
                self.assertTrue(result['note'])
                continue
            self.assertGreater(result['peak_rss_mib'], 0)
            self.assertGreater(result['params'], 0)
            if result['row'] == 'decode_greedy':
                self.assertGreater(result['sequences_per_s'], 0)
                self.assertGreater(result['compile_cold_s'], 0)   # one child, fresh dir
                continue
            self.assertGreater(result['samples_per_s'], 0)
            self.assertEqual(len(result['epoch_s']), 1)
            # --no-cold and a fresh compile dir per row: the one compile,
            # in the training child, is reported as the cold one.
            self.assertGreater(result['compile_cold_s'], 0)
            self.assertIsNone(result['compile_warm_s'])

    def test_machine_description(self):
        versions = self.results['capabilities']['versions']
        self.assertEqual(versions['keras'], '2.3.1')
        self.assertEqual(versions['floatX'], 'float32')
        with open(self.md_path) as handle:
            text = handle.read()
        self.assertIn('blas.ldflags', text)
        self.assertIn('seq2seq_scan', text)
        self.assertNotIn(REPO, text)


class OptionsTest(unittest.TestCase):

    def test_unknown_row(self):
        code, output = run_bench('--rows', 'seq2seq_scan,nonsense')
        self.assertEqual(code, 2)
        self.assertIn('unknown row(s) nonsense', output)

    def test_bad_size_and_epochs(self):
        code, output = run_bench('--size', 'huge')
        self.assertEqual(code, 2)
        self.assertIn("invalid choice: 'huge'", output)
        code, output = run_bench('--epochs', '0')
        self.assertEqual(code, 2)
        self.assertIn('expected a positive integer, got 0', output)

    def test_missing_torch_venv(self):
        code, output = run_bench('--rows', 'torch_cell', '--torch-python', '/nonexistent/python')
        self.assertEqual(code, 2)
        self.assertIn('make bench', output)


def _ok_row(name, speed):
    """A training row that ran, as the runner records it."""
    return {'row': name, 'size': 'small', 'status': 'ok', 'samples_per_s': speed,
            'compile_cold_s': None, 'compile_warm_s': 1.0, 'peak_rss_mib': 100.0,
            'params': 10, 'load': 1.0}


class ReportTest(unittest.TestCase):

    def test_ratios(self):
        results = {'rows': [_ok_row('seq2seq_scan', 300.0), _ok_row('keras_state', 200.0),
                            _ok_row('torch_cell', 600.0),
                            {'row': 'seq2seq_fused', 'size': 'small', 'status': 'unavailable',
                             'note': 'no fused op'}]}
        text = report.tables(results)
        line = [l for l in text.splitlines() if 'seq2seq_scan' in l][0]
        self.assertIn('1.50', line)     # ours / Keras
        self.assertIn('0.50', line)     # ours / PyTorch
        self.assertIn('seq2seq_fused: unavailable', text)

    def test_fused_loss_row_compared_with_the_same_loss(self):
        """A `*_xent` row's Keras ratio is taken against keras_state_xent."""
        results = {'rows': [_ok_row('seq2seq_fused_xent', 600.0), _ok_row('keras_state', 100.0),
                            _ok_row('keras_state_xent', 200.0), _ok_row('torch_cell', 400.0)]}
        line = [l for l in report.tables(results).splitlines() if 'seq2seq_fused_xent' in l][0]
        self.assertIn('| 3.00 ', line)   # 600 / keras_state_xent's 200, not / 100
        self.assertIn('| 1.50 ', line)   # ours / PyTorch

    def test_attention_rows_compared_with_their_own_twin(self):
        """The two-cell attention rows are taken against the two-cell PyTorch
        twin, the one-cell rows against the one-cell twin."""
        results = {'rows': [_ok_row('attention_g2p_fused', 600.0),
                            _ok_row('attention_g2p2_fused', 400.0),
                            _ok_row('torch_attention_g2p', 300.0),
                            _ok_row('torch_attention_g2p2', 100.0)]}
        lines = report.tables(results).splitlines()
        one = [l for l in lines if 'attention_g2p_fused' in l][0]
        two = [l for l in lines if 'attention_g2p2_fused' in l][0]
        self.assertIn('| 2.00 ', one)    # 600 / 300
        self.assertIn('| 4.00 ', two)    # 400 / 100, not / 300
        # The GRU teacher-forced rows against the nn.GRU twin, the LSTM ones
        # against the nn.LSTM twin.
        results = {'rows': [_ok_row('teacher_g2p_gru_fused', 900.0),
                            _ok_row('teacher_g2p_fused', 800.0),
                            _ok_row('torch_teacher_g2p_gru', 300.0),
                            _ok_row('torch_teacher_g2p', 400.0)]}
        lines = report.tables(results).splitlines()
        self.assertIn('| 3.00 ', [l for l in lines if 'teacher_g2p_gru_fused' in l][0])
        self.assertIn('| 2.00 ', [l for l in lines if '| teacher_g2p_fused' in l][0])
        # The GRU attention row against the GRU attention twin (its name
        # starts like the LSTM rows').
        results = {'rows': [_ok_row('attention_g2p_gru_fused', 600.0),
                            _ok_row('torch_attention_g2p', 100.0),
                            _ok_row('torch_attention_g2p_gru', 200.0)]}
        lines = report.tables(results).splitlines()
        self.assertIn('| 3.00 ', [l for l in lines if 'attention_g2p_gru_fused' in l][0])
        # The free-running attention row against its own twin, not torch_cell.
        results = {'rows': [_ok_row('attention', 500.0), _ok_row('torch_attention', 250.0),
                            _ok_row('torch_cell', 1000.0)]}
        line = [l for l in report.tables(results).splitlines() if '| attention ' in l][0]
        self.assertIn('| 2.00 ', line)   # 500 / 250

    def test_parse_rows(self):
        self.assertEqual(runner.parse_rows(['keras_state,seq2seq_scan']),
                         ['seq2seq_scan', 'keras_state'])


if __name__ == '__main__':
    unittest.main()
