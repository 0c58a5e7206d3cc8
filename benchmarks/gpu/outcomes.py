"""A backend's verdict in the honesty phase, from the outcomes pytest_outcomes.py wrote.

PASS only when every collected check ran and passed. A skipped check is a failure here: on the GPU a skip
means the device could not be used, so the check proved nothing. So is a check that never ran (the
backend's share of the phase ran out) and a pytest that collected nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

CHECKS = {"test_sync_waits_for_the_work": "sync", "test_initial_loss_matches_the_reference": "initial loss"}


@dataclass
class Verdict:
    passed: bool
    text: str  # e.g. "PASS: sync 2/2, initial loss 8/8"


def _check(nodeid: str) -> str:
    name = nodeid.rsplit("::", 1)[-1].split("[", 1)[0]
    return CHECKS.get(name, name)


def read(path: Path) -> tuple[list[str], dict[str, dict]]:
    """(collected node ids, the final outcome of each test that reported one)."""
    collected: list[str] = []
    final: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            if "collected" in entry:
                collected = entry["collected"]
            elif final.get(entry["test"], {}).get("outcome") != "failed":  # a failed teardown does not pass
                final[entry["test"]] = entry
    return collected, final


def verdict(path: Path, exit_code: int | None, cut_at_s: float | None) -> Verdict:
    """`exit_code` None: pytest was stopped at `cut_at_s` seconds."""
    collected, final = read(path)
    if not collected:
        why = f"stopped at its {cut_at_s:.0f} s share" if exit_code is None else f"pytest exit {exit_code}"
        return Verdict(False, f"FAIL: no check collected ({why})")
    parts, problems = [], []
    for check in dict.fromkeys(_check(n) for n in collected):
        ids = [n for n in collected if _check(n) == check]
        passed = sum(final.get(n, {}).get("outcome") == "passed" for n in ids)
        parts.append(f"{check} {passed}/{len(ids)}")
    failed = [final[n] for n in collected if final.get(n, {}).get("outcome") == "failed"]
    skipped = [final[n] for n in collected if final.get(n, {}).get("outcome") == "skipped"]
    missing = [n for n in collected if n not in final]
    if failed:
        problems.append(f"{len(failed)} failed ({failed[0]['test'].rsplit('::', 1)[-1]}: {failed[0]['reason']})")
    if skipped:
        problems.append(f"{len(skipped)} skipped, which proves nothing ({skipped[0]['reason']})")
    if missing:
        why = f"stopped at its {cut_at_s:.0f} s share" if exit_code is None else f"pytest exit {exit_code}"
        problems.append(f"{len(missing)} not run ({why})")
    ok = not problems
    return Verdict(
        ok, ("PASS: " if ok else "FAIL: ") + ", ".join(parts) + ("; " + "; ".join(problems) if problems else "")
    )
