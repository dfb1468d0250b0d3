"""`python -m benchmarks`: see benchmarks/runner.py and README.md."""
import sys

from benchmarks.runner import main

sys.exit(main())
