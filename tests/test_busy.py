"""Reports say up front when figures were taken on a busy machine, from what each cell saw while it trained."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.report.busy import busy_line


def _records(**epoch) -> pd.DataFrame:
    quiet = {"cpu_s": 0.9, "involuntary": 3, "steal_s": 0.0, "load": 1.2, "other_cells": 0}
    rows = [{"node_cells": 1, "epoch_s": [0.5, 0.5], "env_cpu_count": 2, "env_usable_cores": 2,
             "interference": [quiet, {**quiet, **epoch}]}, {"node_cells": 1, "epoch_s": [0.5, 0.5],
                                                            "env_cpu_count": 2, "env_usable_cores": 2,
                                                            "interference": [quiet, quiet]}]
    return pd.DataFrame(rows)


def test_a_quiet_machine_says_nothing():
    assert busy_line(_records()) == ""
    assert busy_line(pd.DataFrame()) == ""


@pytest.mark.parametrize("epoch, says", [
    ({"other_cells": 2}, "1 of 2 cells ran beside other bench cells (up to 3 at once)"),
    ({"steal_s": 0.1}, "the hypervisor took up to 10% of the machine's CPU time during an epoch (1 cells)"),
    ({"load": 3.5}, "load average up to 3.5 on 2 cores (1 cells)"),
])
def test_each_sign_of_other_work_is_named(epoch, says):
    line = busy_line(_records(**epoch))
    assert line.startswith("Busy machine: ") and says in line


def test_node_cells_alone_say_a_cell_shared_its_machine():
    df = _records()
    df.loc[0, "node_cells"] = 2
    assert "1 of 2 cells ran beside other bench cells (up to 2 at once)" in busy_line(df)


@pytest.mark.parametrize("value", [None, "x", float("nan"), [1], {"load": "high"}, -1, True])
def test_nulled_or_forged_readings_never_raise(value):
    df = _records().astype(object)
    df.at[0, "interference"] = value
    df.at[1, "epoch_s"] = value
    df.at[1, "node_cells"] = value if not isinstance(value, (list, dict)) else None
    assert isinstance(busy_line(df), str)
