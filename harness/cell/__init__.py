"""One cell's process, both ends of its pipe, named by side.

Worker side (inside the cell's own process): `worker` (the entry point), `worker_phases` (what it measures,
phase by phase). Parent side (the process that started it, on the machine that runs it): `parent` (start,
follow, time out, kill), `parent_log` (the capped log), `parent_node` (where it ran: host, GPU, cells
sharing the machine). Both sides: `events` (what may cross the pipe), `lifetime` (nothing outlives the cell).
"""
