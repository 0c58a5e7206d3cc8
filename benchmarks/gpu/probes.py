"""Preflight: what each framework sees, each imported in its own process (a CUDA library clash in one
cannot hide another), all at once, within one deadline; and the GPU as the driver reports it.

Each probe prints one JSON line. Keras travels as wheels (.whl/, from fetch-wheels.sh) and is installed
offline into a scratch folder first; its probes then import it on each engine, each in its own process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TORCH = """
import json, time
t = time.perf_counter()
import torch
info = {"version": torch.__version__, "cuda": torch.version.cuda, "gpu": torch.cuda.is_available()}
if info["gpu"]:
    p = torch.cuda.get_device_properties(0)
    info.update(name=p.name, capability=f"{p.major}.{p.minor}", memory_gib=round(p.total_memory / 2**30, 1),
                sms=p.multi_processor_count, cudnn=torch.backends.cudnn.version(),
                works=float(torch.ones(4, device="cuda").sum().item()) == 4.0)
info["import_s"] = round(time.perf_counter() - t, 2)
print(json.dumps(info))
"""

JAX = """
import json, time
t = time.perf_counter()
import jax, jaxlib, optax
devices = jax.devices()
gpus = [d for d in devices if d.platform == "gpu"]
info = {"version": jax.__version__, "jaxlib": jaxlib.__version__, "optax": optax.__version__,
        "platforms": sorted({d.platform for d in devices}), "gpu": bool(gpus)}
if gpus:
    info.update(name=gpus[0].device_kind, works=float(jax.device_put(jax.numpy.ones(4), gpus[0]).sum()) == 4.0)
info["import_s"] = round(time.perf_counter() - t, 2)
print(json.dumps(info))
"""

KERAS = """
import json, time
t = time.perf_counter()
import keras
print(json.dumps({"version": keras.__version__, "engine": keras.backend.backend(),
                  "import_s": round(time.perf_counter() - t, 2)}))
"""

SMI_FIELDS = ("name", "driver_version", "memory.total", "clocks.sm", "clocks.max.sm", "clocks.mem", "clocks.max.mem",
              "pstate", "temperature.gpu", "power.draw")


def _python(code: str, python: str, env: dict[str, str], timeout: float) -> dict:
    """One probe's JSON, or {"error": the last line it printed}."""
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env,
                              timeout=max(timeout, 1), check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"no answer within {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode == 0 and lines:
        return json.loads(lines[-1])
    said = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
    return {"error": said[-1] if said else f"exit {done.returncode}"}


def _smi(timeout: float) -> dict:
    """The GPU as nvidia-smi reports it: name, driver, memory, clocks now and at most."""
    if shutil.which("nvidia-smi") is None:
        return {"error": "nvidia-smi not found"}
    try:
        done = subprocess.run(["nvidia-smi", f"--query-gpu={','.join(SMI_FIELDS)}", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=max(timeout, 1), check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"nvidia-smi: no answer within {timeout:.0f} s"}
    rows = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not rows:
        said = (done.stderr or done.stdout).strip().splitlines()
        return {"error": f"nvidia-smi: {said[-1] if said else f'exit {done.returncode}'}"}
    return {"gpus": [dict(zip(SMI_FIELDS, (v.strip() for v in row.split(",")))) for row in rows]}


def _install_keras(wheels: Path, site: Path, python: str, timeout: float) -> str | None:
    """pip install --target of the carried wheels, offline; None when done, else why not."""
    found = sorted(wheels.glob("*.whl"))
    if not any(w.name.startswith("keras-") for w in found):
        return f"no {wheels.name}/keras-*.whl (run benchmarks/gpu/fetch-wheels.sh here and carry .whl)"
    try:
        done = subprocess.run([python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                               "--no-cache-dir", "--upgrade", "--target", str(site), *map(str, found)],
                              capture_output=True, text=True, timeout=max(timeout, 1), check=False)
    except subprocess.TimeoutExpired:
        return f"installing the wheels took over {timeout:.0f} s"
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return f"the wheels did not install: {lines[-1] if lines else done.returncode}"
    return None


def probe(deadline: float, python: str, env: dict[str, str], device: str, wheels: Path, site: Path) -> dict:
    """Every probe, in parallel, each within what is left before `deadline`."""
    left = lambda: deadline - time.monotonic()
    # JAX would otherwise take 75% of the GPU's memory while torch's probe shares the GPU with it.
    base = {**env, "TF_CPP_MIN_LOG_LEVEL": "2", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    if device == "cpu":  # a rehearsal: JAX is to look no further than the CPU
        base["JAX_PLATFORMS"] = "cpu"

    def keras() -> dict:
        problem = _install_keras(wheels, site, python, left())
        if problem:
            return {"error": problem}
        keras_env = {**base, "PYTHONPATH": os.pathsep.join([str(site), base.get("PYTHONPATH", "")])}
        with ThreadPoolExecutor(2) as pool:
            engines = {engine: pool.submit(_python, KERAS, python, {**keras_env, "KERAS_BACKEND": engine}, left())
                       for engine in ("jax", "torch")}
            return {"site": str(site), **{engine: f.result() for engine, f in engines.items()}}

    with ThreadPoolExecutor(4) as pool:
        jobs = {"torch": pool.submit(_python, TORCH, python, base, left()),
                "jax": pool.submit(_python, JAX, python, base, left()),
                "keras": pool.submit(keras),
                "nvidia-smi": pool.submit(_smi, left())}
        return {name: job.result() for name, job in jobs.items()}


def backends_seen(found: dict, device: str) -> list[str]:
    """The backends this device can run, natives first: a framework counts where it imported and, on cuda,
    saw the GPU and ran an operation there; a Keras engine where Keras imported on it and the engine counts."""
    def usable(info: dict) -> bool:
        return "error" not in info and (device == "cpu" or bool(info.get("gpu") and info.get("works")))

    natives = [name for name in ("torch", "jax") if usable(found.get(name, {}))]
    keras = found.get("keras", {})
    return natives + [f"keras-{engine}" for engine in ("jax", "torch")
                      if engine in natives and "error" not in keras.get(engine, {"error": ""})]


def describe(found: dict) -> list[str]:
    """One short line per probe, for the summary."""
    lines = []
    torch, jax, keras, smi = (found.get(k, {}) for k in ("torch", "jax", "keras", "nvidia-smi"))
    if "error" in torch:
        lines.append(f"torch: {torch['error']}")
    else:
        gpu = f"{torch['name']}, sm {torch['capability']}, cuDNN {torch['cudnn']}" if torch.get("gpu") else "no GPU"
        lines.append(f"torch {torch['version']} (CUDA {torch['cuda']}; {gpu}; import {torch['import_s']} s)")
    if "error" in jax:
        lines.append(f"jax: {jax['error']}")
    else:
        lines.append(f"jax {jax['version']}, jaxlib {jax['jaxlib']}, optax {jax['optax']} "
                     f"({', '.join(jax['platforms'])}{'; ' + jax['name'] if jax.get('name') else ''}; "
                     f"import {jax['import_s']} s)")
    if "error" in keras:
        lines.append(f"keras: {keras['error']}")
    else:
        lines.append("keras " + "; ".join(f"on {e}: " + (info["error"] if "error" in info else
                                                          f"{info['version']} (import {info['import_s']} s)")
                                          for e, info in keras.items() if e != "site"))
    if "error" in smi:
        lines.append(f"nvidia-smi: {smi['error']}")
    else:
        for g in smi["gpus"]:
            lines.append(f"GPU {g['name']}, driver {g['driver_version']}, {g['memory.total']}, SM clock "
                         f"{g['clocks.sm']} (max {g['clocks.max.sm']}), memory clock {g['clocks.mem']} "
                         f"(max {g['clocks.max.mem']}), {g['pstate']}, {g['temperature.gpu']} C, {g['power.draw']}")
    return lines
