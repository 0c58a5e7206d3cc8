"""The conformance suite (harness/conformance): the NumPy example and the built-in backends pass it,
and each deliberately broken backend below is caught by the check meant for its fault."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from bench_numpy.backend import NumpyBackend  # noqa: E402,I001
from bench_numpy.optimizers import Optimizer  # noqa: E402,I001

from tests.test_numpy_plugin import EXAMPLE, install_numpy_plugin  # first: it puts the example on sys.path

REPO = Path(__file__).resolve().parent.parent


# -- deliberately broken backends: each is the NumPy example with one realistic fault ----------------

class TransposedWeights(NumpyBackend):
    """get_weights hands back kernels in the (out, in) layout it would compute in: forgot the inverse mapping."""

    def get_weights(self, state):
        return [{k: (v.T.copy() if k == "kernel" else v) for k, v in p.items()} for p in super().get_weights(state)]


class ReshapedKernels(NumpyBackend):
    """Converts Dense kernels with reshape where a transpose was meant, and back the same way: the round
    trip is exact, but the network computes with scrambled weights."""

    def build(self, task, cell, data, weights):
        scrambled = [{k: (v.reshape(v.shape[::-1]).T.copy() if k == "kernel" else v) for k, v in p.items()}
                     for p in weights]
        return super().build(task, cell, data, scrambled)

    def get_weights(self, state):
        return [{k: (v.T.reshape(v.shape).copy() if k == "kernel" else v) for k, v in p.items()}
                for p in super().get_weights(state)]


class AsyncNumpy(NumpyBackend):
    """Trains on a background thread, the way an accelerator queues work; reads wait for the result.
    Its sync is honest: it waits for the queued epoch."""

    def import_framework(self, cell):
        super().import_framework(cell)
        self._queue = ThreadPoolExecutor(max_workers=1)

    def train_epoch(self, state, order):
        state.pending = self._queue.submit(NumpyBackend.train_epoch, self, state, order)
        return state

    def _wait(self, state):
        pending = getattr(state, "pending", None)
        if pending is not None:
            pending.result()

    def sync(self, state):
        self._wait(state)

    def predict(self, state, split):
        self._wait(state)
        return super().predict(state, split)

    def loss(self, state, indices):
        self._wait(state)
        return super().loss(state, indices)

    def get_weights(self, state):
        self._wait(state)
        return super().get_weights(state)


class LyingSync(AsyncNumpy):
    """Returns from sync at once, so the harness's clock stops while the epoch is still running."""

    def sync(self, state):
        return None


class UnseededShuffle(NumpyBackend):
    """Reshuffles the harness's batches with an unseeded generator."""

    def train_epoch(self, state, order):
        return super().train_epoch(state, order[np.random.default_rng().permutation(len(order))])


class KeptOptimizerState(NumpyBackend):
    """Keeps one optimizer (moments, step count) at class level, so a build inherits the previous run's."""

    _kept = None

    def build(self, task, cell, data, weights):
        state = super().build(task, cell, data, weights)
        if KeptOptimizerState._kept is None:
            KeptOptimizerState._kept = state.optimizer
        state.optimizer = KeptOptimizerState._kept
        return state


class _EpsilonHatAdam(Optimizer):
    def _update(self, hp, w, g, s):
        if hp.optimizer != "adam":
            return super()._update(hp, w, g, s)
        g += hp.weight_decay * w
        s["m"] *= hp.beta1
        s["m"] += (1 - hp.beta1) * g
        s["v"] *= hp.beta2
        s["v"] += (1 - hp.beta2) * g * g
        lr_t = hp.lr * math.sqrt(1 - hp.beta2 ** self.t) / (1 - hp.beta1 ** self.t)
        w -= lr_t * s["m"] / (np.sqrt(s["v"]) + hp.eps)


class EpsilonHatAdam(NumpyBackend):
    """Adam as Keras writes it (epsilon added to the uncorrected sqrt(v)): not the rule bench specifies."""

    def build(self, task, cell, data, weights):
        state = super().build(task, cell, data, weights)
        state.optimizer = _EpsilonHatAdam(cell.hp, state.network.params)
        return state


class _WithOptimizer(NumpyBackend):
    """The NumPy example with its optimizer replaced by the class attribute `optimizer_class`."""

    optimizer_class = Optimizer

    def build(self, task, cell, data, weights):
        state = super().build(task, cell, data, weights)
        state.optimizer = self.optimizer_class(cell.hp, state.network.params)
        return state


class _NoL1(Optimizer):
    def _update(self, hp, w, g, s):
        return super()._update(hp.replace(l1=0.0), w, g, s)


class _SignOfZeroIsOne(Optimizer):
    def _update(self, hp, w, g, s):
        g += hp.l1 * np.where(w >= 0, 1.0, -1.0).astype(w.dtype)  # jnp.abs's gradient: 1 at 0
        return super()._update(hp.replace(l1=0.0), w, g, s)


class L1Dropped(_WithOptimizer):
    """Declares L1 but its update leaves the l1 * sign(w) term out."""

    optimizer_class = _NoL1


class SignOfZeroIsOne(_WithOptimizer):
    """L1 whose subgradient is 1 at 0, as the gradient of jnp.abs is (Keras's L1 regularizer on JAX)."""

    optimizer_class = _SignOfZeroIsOne


class PenaltyFreeLoss(NumpyBackend):
    """Trains with both penalties but reports the data loss alone as its loss."""

    def loss(self, state, indices):
        outputs, _ = state.network.forward(state.data.x_train[indices])
        return state.loss_fn(outputs, state.data.y_train[indices])[0]


class L1Undeclared(NumpyBackend):
    """A backend written before L1: it declares only coupled L2, so cells with l1 are refused, not run without it."""

    penalties = frozenset({"weight_decay"})


class RowsSorted(NumpyBackend):
    """Predicts the rows asked for, but in the split's order rather than the order asked."""

    def predict_rows(self, state, split, rows):
        return super().predict_rows(state, split, np.sort(rows))


class CompilesTwice(NumpyBackend):
    """Pays a one-off cost in its second epoch (a sleep standing in for a second compilation)."""

    def train_epoch(self, state, order):
        state.epochs = getattr(state, "epochs", 0) + 1
        if state.epochs == 2:
            time.sleep(0.6)
        return super().train_epoch(state, order)


class ImportsFrameworkEarly(NumpyBackend):
    """Imports its framework (here the stdlib's `wave`, as a stand-in) when asked whether it is available."""

    module = "wave"

    @classmethod
    def availability(cls):
        import wave  # noqa: F401  - the fault: the parent process now loads the framework

        return super().availability()


class FrameworkFree(NumpyBackend):
    """A backend with no framework to import, as the plugin guide says to declare it: its own distribution
    gives the version."""

    module = None
    distributions = ("bench-numpy",)


class EmptyModuleName(NumpyBackend):
    """The declaration the guide rules out: an empty import name says nothing."""

    module = ""


class ReversedOrder(NumpyBackend):
    """Takes the harness's batches last to first: the update rule is right, the order is not."""

    def train_epoch(self, state, order):
        return super().train_epoch(state, order[::-1])


class DroppedLastBatch(NumpyBackend):
    """Drops the epoch's last batch, as a loader with drop_last on a shorter index would."""

    def train_epoch(self, state, order):
        return super().train_epoch(state, order[:-1])


class Float64Weights(NumpyBackend):
    """Hands the weights back as float64: the right values in the wrong dtype."""

    def get_weights(self, state):
        return [{k: v.astype(np.float64) for k, v in p.items()} for p in super().get_weights(state)]


class TerseReason(NumpyBackend):
    """Declines the CNN with a reason that tells a user nothing."""

    @classmethod
    def unsupported_reason(cls, task, cell):
        return "no" if task.name == "mnist_cnn" else super().unsupported_reason(task, cell)


# -- running the suite -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def numpy_site(tmp_path_factory) -> Path:
    return install_numpy_plugin(tmp_path_factory.mktemp("bench-numpy"))


def conformance(backend: str, tmp_path: Path, *modules: str, site: Path | None = None,
                timeout: float = 600, select: str | None = None) -> tuple[int, dict[str, str], str]:
    """Run the suite (or some of its modules; `select`: a pytest -k expression) in a fresh pytest; returns
    exit code, outcome per test, output."""
    targets = [f"harness.conformance.{m}" for m in modules] or ["harness.conformance"]
    targets += ["-k", select] if select else []
    report = tmp_path / f"conformance-{len(list(tmp_path.glob('conformance-*')))}.xml"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*([str(site)] if site else []), str(REPO), str(EXAMPLE)])
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "harness.conformance.plugin", "--pyargs", *targets,
                          "--bench-backend", backend, "-p", "no:cacheprovider", "-q", f"--junitxml={report}"],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)
    outcomes = {}
    if report.exists():
        for case in ET.parse(report).getroot().iter("testcase"):
            kinds = {child.tag for child in case} & {"failure", "error", "skipped"}
            outcomes[case.get("name")] = kinds.pop() if kinds else "passed"
    return out.returncode, outcomes, out.stdout + out.stderr


def failed(outcomes: dict[str, str]) -> set[str]:
    return {name for name, outcome in outcomes.items() if outcome in ("failure", "error")}


def test_numpy_example_passes_by_its_registered_name(numpy_site, tmp_path):
    code, outcomes, output = conformance("numpy", tmp_path, site=numpy_site)
    assert code == 0, output
    assert not failed(outcomes)
    assert sum(o == "passed" for o in outcomes.values()) >= 20, output
    assert "test_sync_waits_for_the_work[eager]" in outcomes


def test_an_unknown_backend_is_a_usage_error(tmp_path):
    code, _, output = conformance("no_such_backend", tmp_path, "test_contract")
    assert code == pytest.ExitCode.USAGE_ERROR
    assert "no backend named 'no_such_backend' is registered" in output


def test_a_kernel_returned_transposed_fails_the_round_trip(tmp_path):
    code, outcomes, output = conformance("tests.test_conformance:TransposedWeights", tmp_path, "test_weights")
    assert code == 1, output
    # The layout is get_weights's fault alone: the loss, computed with the weights build loaded, is right.
    assert failed(outcomes) == {"test_get_weights_returns_the_weights_given_to_build[mnist_mlp-eager]"}, output
    assert "get_weights is not the inverse of build's layout mapping" in output


@pytest.mark.parametrize("backend, cause", [("ReversedOrder", "the batches were taken in reverse order"),
                                            ("DroppedLastBatch", "the last batch was dropped")])
def test_a_batch_order_fault_is_blamed_on_the_order_not_the_optimizer(backend, cause, tmp_path):
    code, outcomes, output = conformance(f"tests.test_conformance:{backend}", tmp_path, "test_optimizers",
                                         select="test_optimizer_follows_the_update_rule")
    assert code == 1, output
    assert f"{cause}: the update rule is right, the batch order is not" in output
    assert "differs from the rule in harness.api.Hyperparams" not in output


def test_float64_weights_are_blamed_on_get_weights_dtype_not_on_loss(tmp_path):
    code, outcomes, output = conformance("tests.test_conformance:Float64Weights", tmp_path, "test_weights")
    assert code == 1, output
    assert "dtype float64, expected float32 (get_weights returns the float32 arrays" in output
    assert "loss() changed the weights" not in output
    assert not any(name.startswith("test_initial_loss_matches_the_reference") for name in failed(outcomes)), output


def test_a_reason_that_says_nothing_is_not_a_sentence(tmp_path):
    code, outcomes, output = conformance("tests.test_conformance:TerseReason", tmp_path, "test_contract")
    assert code == 1, output
    assert "reason 'no' is not None or a sentence saying why" in output


def test_a_scrambled_kernel_fails_parity_though_its_round_trip_is_exact(tmp_path):
    code, outcomes, output = conformance("tests.test_conformance:ReshapedKernels", tmp_path, "test_weights")
    assert code == 1, output
    assert failed(outcomes) == {"test_initial_loss_matches_the_reference[mnist_mlp-eager]",
                                "test_initial_loss_with_penalties_matches_the_reference[mnist_mlp-eager]",
                                "test_predictions_match_the_reference[mnist_mlp-eager]"}, output
    assert outcomes["test_get_weights_returns_the_weights_given_to_build[mnist_mlp-eager]"] == "passed"


def test_a_sync_that_returns_before_the_work_is_done_is_caught(tmp_path):
    code, outcomes, output = conformance("tests.test_conformance:LyingSync", tmp_path, "test_sync")
    assert code == 1, output
    assert failed(outcomes) == {"test_sync_waits_for_the_work[eager]"}
    assert "sync returns before the work is done" in output


def test_an_asynchronous_backend_with_an_honest_sync_passes(tmp_path):
    code, outcomes, output = conformance("tests.test_conformance:AsyncNumpy", tmp_path, "test_sync")
    assert code == 0, output
    assert set(outcomes.values()) == {"passed"}


@pytest.mark.parametrize("backend", ["UnseededShuffle", "KeptOptimizerState"])
def test_nondeterminism_is_caught(backend, tmp_path):
    code, outcomes, output = conformance(f"tests.test_conformance:{backend}", tmp_path, "test_determinism")
    assert code == 1, output
    assert failed(outcomes) == {"test_same_seed_same_weights_and_predictions[eager]"}
    assert "seed 0 trained twice gave different weights" in output


def test_an_optimizer_off_the_spec_is_caught(tmp_path):
    code, outcomes, output = conformance("tests.test_conformance:EpsilonHatAdam", tmp_path, "test_optimizers")
    assert code == 1, output
    assert failed(outcomes) == {"test_optimizer_follows_the_update_rule[eager-adam]",
                                "test_l1_follows_the_update_rule[eager-adam]"}, output
    assert sum(o == "passed" for o in outcomes.values()) == 8


L1_CHECKS = {f"test_l1_follows_the_update_rule[eager-{o}]" for o in ("sgd", "momentum", "adam", "rmsprop", "adagrad")}


@pytest.mark.parametrize("backend", ["L1Dropped", "SignOfZeroIsOne"])
def test_an_l1_off_the_rule_is_caught_for_every_optimizer(backend, tmp_path):
    code, outcomes, output = conformance(f"tests.test_conformance:{backend}", tmp_path, "test_optimizers")
    assert code == 1, output
    assert failed(outcomes) == L1_CHECKS, output
    assert sum(o == "passed" for o in outcomes.values()) == 5  # the rules without L1 still hold


def test_a_loss_without_the_penalties_is_caught(tmp_path):
    code, outcomes, output = conformance("tests.test_conformance:PenaltyFreeLoss", tmp_path, "test_weights")
    assert code == 1, output
    assert failed(outcomes) == {"test_initial_loss_with_penalties_matches_the_reference[linear_regression-eager]",
                                "test_initial_loss_with_penalties_matches_the_reference[mnist_mlp-eager]"}, output
    assert "Backend.loss must add both penalties" in output


def test_rows_predicted_out_of_order_are_caught(tmp_path):
    code, outcomes, output = conformance("tests.test_conformance:RowsSorted", tmp_path, "test_weights")
    assert code == 1, output
    assert failed(outcomes) == {"test_predict_rows_are_the_splits_predictions_at_those_rows[linear_regression-eager]",
                                "test_predict_rows_are_the_splits_predictions_at_those_rows[mnist_mlp-eager]"}, output


def test_a_backend_without_l1_refuses_its_cells_and_the_checks_skip(tmp_path):
    code, outcomes, output = conformance("tests.test_conformance:L1Undeclared", tmp_path, "test_optimizers",
                                         "test_weights", "test_contract")
    assert code == 0, output
    assert {outcomes[name] for name in L1_CHECKS} == {"skipped"}, output
    assert "penalty l1 not implemented" in output or "L1 not supported" in output
    from harness.api import Cell
    from tasks.mnist_tasks import MnistMLP

    hp = MnistMLP().hyperparams(l1=1e-4)
    assert "penalty l1 not implemented" in L1Undeclared.unsupported_reason(MnistMLP(), Cell("x", "mnist_mlp", "eager",
                                                                                            "cpu", hp))


def test_a_framework_imported_by_class_methods_is_caught(tmp_path):
    code, outcomes, output = conformance("tests.test_conformance:ImportsFrameworkEarly", tmp_path, "test_contract")
    assert code == 1, output
    assert failed(outcomes) == {"test_class_methods_do_not_import_the_framework"}, output


def test_a_second_compilation_is_caught(tmp_path):
    code, outcomes, output = conformance("tests.test_conformance:CompilesTwice", tmp_path, "test_steady_state")
    assert code == 1, output
    assert failed(outcomes) == {"test_no_compilation_after_the_first_epoch[eager]"}
    assert "compiled again after the first epoch" in output


FULL_ENV = "BENCH_CONFORMANCE_BUILTINS"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "tensorflow", "jax", "keras-tensorflow", "keras-jax", "keras-torch"])
def test_builtin_backend_conforms(backend, tmp_path):
    """The contract checks always (seconds); the whole suite with BENCH_CONFORMANCE_BUILTINS=1 (minutes each)."""
    from harness.plugins.registry import build_registry

    registry, plugins = build_registry()
    if backend not in registry.backends:
        pytest.skip(f"{backend} backend not registered: "
                    + "; ".join(f"{n}: {i.broken}" for n, i in plugins.infos.items() if i.broken))
    if not registry.backends[backend].availability().ok:
        pytest.skip(registry.backends[backend].availability().reason)
    modules = () if os.environ.get(FULL_ENV) == "1" else ("test_contract",)
    code, outcomes, output = conformance(backend, tmp_path, *modules, timeout=1200)
    assert code == 0, output
    assert not failed(outcomes)


def test_a_framework_free_backend_declares_module_none_as_the_guide_says(numpy_site, tmp_path):
    code, outcomes, output = conformance("tests.test_conformance:FrameworkFree", tmp_path, "test_contract",
                                         site=numpy_site)
    assert code == 0, output
    assert outcomes["test_class_methods_do_not_import_the_framework"] == "skipped"
    assert "`module = None`" in (REPO / "docs" / "plugin-guide.md").read_text()


def test_an_empty_module_name_fails_the_contract(numpy_site, tmp_path):
    code, outcomes, output = conformance("tests.test_conformance:EmptyModuleName", tmp_path, "test_contract",
                                         site=numpy_site)
    assert code == 1, output
    assert failed(outcomes) == {"test_name_module_and_distributions", "test_is_available_with_a_version"}, output
    assert "cannot look for module ''" in output


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["keras-tensorflow", "keras-jax", "keras-torch"])
def test_keras_backend_maps_weights_and_follows_every_update_rule(backend, tmp_path):
    """Always, for the Keras backends, whose layouts and optimizers are mapped onto Keras's own: every task's
    weights round-trip and give the float64 reference's loss and outputs, and each optimizer follows its rule
    (coupled weight decay, with and without L1, the harness's batch order) over six fit steps, and its loss is the
    objective with both penalties; eager mode, to keep it to seconds."""
    from harness.plugins.registry import build_registry

    registry, _ = build_registry()
    if backend not in registry.backends or not registry.backends[backend].availability().ok:
        pytest.skip(f"{backend} is not available here")
    code, outcomes, output = conformance(backend, tmp_path, "test_weights", "test_optimizers", select="eager")
    assert code == 0, output
    assert not failed(outcomes)
    assert sum(o == "passed" for o in outcomes.values()) == 4 * 5 + 5 * 2, output
