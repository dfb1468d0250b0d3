"""Data sets that ship inside PyPI packages (no download at run time)."""
