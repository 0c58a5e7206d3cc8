"""The report as Markdown: the run's environment, then every section as a table with its notes."""

from __future__ import annotations

from typing import Any

from harness.report.format import md_escape, md_table
from harness.report.tables import Report, differences_line


def to_markdown(report: Report) -> str:
    parts = ["### bench results", "", md_escape(f"Runs shown: {report.runs}.") + "  "]
    if report.s.empty and report.inference.empty:
        return "\n".join([*parts, "", "No records: no cell of these runs has finished yet.", ""])
    for env in report.environments:
        parts.append(md_escape(f"Run {env['run_id']}: " + env_line(env)) + "  ")
    for line in (report.busy, report.machine, differences_line(report.differences), report.digest_note):
        if line:
            parts += ["", md_escape(line)]
    for section in report.sections:
        parts += ["", f"#### {md_escape(section.title)}", "", md_table(section.header, section.rows, section.numeric),
                  ""]
        if section.note:
            parts += [md_escape(section.note), ""]
        if section.kind == "results":
            parts += [md_escape(f"Target of {task}: {target}.") + "  " for task, target in report.targets.items()]
            if report.compile_sources:
                parts += ["", md_escape("Compile measured by: " + "; ".join(report.compile_sources) + ".")]
            parts.append("")
    return "\n".join(parts) + "\n"


def env_line(env: dict[str, Any]) -> str:
    """One line: CPU, cores, RAM, GPU, OS, Python and the framework versions."""
    bits = [f"{env.get('cpu_model') or 'unknown CPU'} ({env.get('usable_cores') or '?'} usable cores)"]
    if env.get("ram_gb"):
        bits.append(f"{env['ram_gb']} GB RAM")
    if env.get("gpu"):
        bits.append(f"GPU {env['gpu']} (driver {env.get('gpu_driver') or '?'}, CUDA {env.get('cuda') or '?'})")
    else:
        bits.append("no GPU")
    bits.append(f"Python {env.get('python') or '?'}")
    bits += [f"{dist} {version}" for dist, version in sorted(env.get("versions", {}).items())
             if dist not in ("pandas", "pluggy")]
    if env.get("git_commit"):  # a run resumed at another commit lists each
        commits = " / ".join(commit[:12] for commit in str(env["git_commit"]).split(" / "))
        bits.append(f"bench {env.get('harness_version') or ''} @ {commits}")
    if env.get("hostname"):
        bits.append(f"host {env['hostname']}")
    return ", ".join(bits)
