"""Many runs, many machines, many versions: one history (docs/history.md).

store.py keeps published runs as a partitioned Parquet dataset (one folder per machine) that pandas and
DuckDB read as it is; sources.py and archives.py read the runs to publish (folders, records files, .tgz
archives made elsewhere); columns.py maps a record to the store's fixed columns and back; machine.py says
which machine a record ran on; calibrations.py carries `bench calibrate`'s noise figures into the store;
series.py folds records into one point per run of each cell; noise.py says how much a point moves by chance;
changepoints.py finds steps in a series and says which it cannot decide; render.py is `bench history`'s
answer; site.py, site_pages.py, leaderboard.py and trend_chart.py build the static site.
"""


class HistoryError(Exception):
    """A store, a run to publish or an archive can't be used; the message names it and says why."""
