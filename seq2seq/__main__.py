"""`python -m seq2seq`: the `seq2seq` command line (see seq2seq/cli.py)."""
import sys

from seq2seq.app.cli import main

sys.exit(main())
