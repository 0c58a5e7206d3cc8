"""bench compare: two runs (or two backends of one run) cell by cell, with intervals and a gate."""
