"""The steady epoch of work too short to time one epoch at a time (timeit's autorange, for epochs).

An epoch of linear regression takes 0.2 ms compiled: one clock read and one device sync around it weigh as
much as the epoch, and the machine's jitter more. When a steady epoch measured during training is shorter
than BLOCK_FROM_S, this phase (after training and its scoring) times blocks of k epochs between two synced
clock reads, k the smallest of 1, 2, 5, 10, 20, ... that makes a block last BLOCK_AT_LEAST_S, and the record's
steady epoch becomes the median over BLOCKS blocks of block / k, saying so in `steady_epoch_method`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.measure.stats import median

if TYPE_CHECKING:
    from harness.cell.worker_phases import Measurement

BLOCK_FROM_S = 0.1  # steady epochs shorter than this are timed in blocks
BLOCK_AT_LEAST_S = 0.2
BLOCKS = 5
# In lockstep each block is a turn, and the pair's ratio is the median over turns (harness.compare.paired
# .turn_ratio): more of them outvote the machine's short slow bursts, which catch one side of a turn and not the other.
BLOCKS_IN_LOCKSTEP = 15
MAX_PER_BLOCK = 10_000


def _sizes() -> list[int]:
    sizes, scale = [], 1
    while scale <= MAX_PER_BLOCK:
        sizes += [n * scale for n in (1, 2, 5) if n * scale <= MAX_PER_BLOCK]
        scale *= 10
    return sizes


def time_steady_blocks(m: Measurement) -> None:
    # The fastest steady epoch decides, not the median: on a shared machine a stretch of time can double every
    # epoch, and two cells of one lockstep group, seeing the same stretches a turn apart, must be timed alike.
    if m.values.get("status") != "ok" or len(m.epoch_s) < 2 or min(m.epoch_s[1:]) >= BLOCK_FROM_S:
        return
    m.phase("steady epoch in blocks")
    next_epoch = m.cell.hp.epochs + m.cell.latency_steps + 2  # orders no other phase uses

    def block(k: int) -> float:
        nonlocal next_epoch
        orders = [m.order(next_epoch + i) for i in range(k)]  # drawn outside the clock
        next_epoch += k

        def run() -> object:
            for order in orders:
                m.phases.state = m.backend.train_epoch(m.phases.state, order)
            return m.phases.state

        _, seconds = m.phases.run(run, new_state=True)
        m.turns.pass_on()  # in lockstep, each block is a turn of its own, as each epoch is
        return seconds

    k = next((k for k in _sizes() if block(k) >= BLOCK_AT_LEAST_S), MAX_PER_BLOCK)
    blocks = BLOCKS_IN_LOCKSTEP if m.turns.group else BLOCKS
    seconds = [block(k) for _ in range(blocks)]
    m.values["steady_epoch_s"] = median([s / k for s in seconds])
    m.values["steady_epoch_method"] = (f"median of {blocks} blocks of {k} epochs, each block timed between two "
                                       f"synced clock reads (one epoch, under {BLOCK_FROM_S * 1e3:.0f} ms, is too "
                                       "short to time alone)")
    m.values["steady_epoch_blocks_s"] = seconds
