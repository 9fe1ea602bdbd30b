"""The optional torch.compile wrapper: off means eager, a failing compiler falls back cleanly."""
import pytest
import torch

from funnelrun.models.nsf import build_nsf
from funnelrun.training.compile import (
    MIN_COMPILE_SECONDS,
    PROBE_CALLS,
    WARMUP_CALLS,
    AutoCompiled,
    compile_pays_back,
    maybe_compile,
)

from conftest import TINY_NSF


def _model():
    torch.manual_seed(0)
    return build_nsf((3,), num_steps=2, hidden_features=8, num_blocks=1, num_bins=4)


def test_disabled_is_eager():
    model = _model()
    log_prob = maybe_compile(model.log_prob, enabled=False)
    x = torch.randn(5, 3)
    assert not log_prob.compiled
    assert torch.equal(log_prob(x), model.log_prob(x))


def _failing_backend(gm, example_inputs):
    raise RuntimeError("no compiler here")


def test_failing_compiler_falls_back_with_a_warning():
    model = _model()
    log_prob = maybe_compile(model.log_prob, backend=_failing_backend)
    x = torch.randn(5, 3)
    with pytest.warns(RuntimeWarning, match="running eagerly"):
        out = log_prob(x)
    assert not log_prob.compiled and log_prob.error is not None
    torch.testing.assert_close(out, model.log_prob(x))
    out.sum().backward()  # gradients flow through the eager fallback


def test_callers_error_is_raised_not_swallowed():
    model = _model()
    log_prob = maybe_compile(model.log_prob, backend="eager")
    with pytest.raises((RuntimeError, IndexError)):
        log_prob(torch.randn(5))  # no feature dimension: the model's own error
    assert log_prob.compiled  # a caller's error does not switch compilation off


def test_compiled_matches_eager_and_trains():
    """Dynamo tracing with the ``eager`` backend (fast; inductor is exercised by the benchmark)."""
    model = _model()
    log_prob = maybe_compile(model.log_prob, backend="eager")
    x = torch.randn(16, 3)
    out = log_prob(x)
    assert log_prob.compiled and log_prob.compile_seconds is not None
    torch.testing.assert_close(out, model.log_prob(x))
    (-out.mean()).backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.slow
def test_inductor_compiled_log_prob_matches_eager():
    model = _model()
    log_prob = maybe_compile(model.log_prob)
    x = torch.randn(16, 3)
    torch.testing.assert_close(log_prob(x), model.log_prob(x), rtol=1e-5, atol=1e-5)


# -- compile=auto ------------------------------------------------------------------------------
def test_compile_pays_back_only_on_long_runs():
    assert compile_pays_back(0.02, steps_left=100_000)[0]  # 400 s saved against a 72 s compile
    paid, why = compile_pays_back(0.02, steps_left=3000)  # 12 s saved against 72 s
    assert not paid and "3000 steps left" in why and "72 s" in why
    # a very fast step: the compile time's floor decides (2 s saved against the floor)
    paid, why = compile_pays_back(1e-4, steps_left=100_000)
    assert not paid and f"{MIN_COMPILE_SECONDS:.0f} s" in why


def test_compile_pays_back_on_the_table1_runs_not_on_short_ones():
    """The Table 1 MINIBOONE NSF steps at 53-62 ms eager on one thread (scripts/funnel_overhead.py):
    its 200,000 steps compile, a 5,000-step run of it does not (the estimate's worst
    cases, COMPILED_STEP_FRACTION and COMPILE_STEPS, are the benchmark's least favourable)."""
    assert compile_pays_back(0.06, steps_left=200_000 - 13)[0]
    assert not compile_pays_back(0.06, steps_left=5_000)[0]


def _auto(steps_left: int) -> tuple[AutoCompiled, torch.nn.Module]:
    model = _model()
    return AutoCompiled(model.log_prob, lambda: steps_left, backend="eager"), model


def test_auto_runs_eager_while_timing_then_compiles_a_long_run():
    log_prob, model = _auto(steps_left=10**9)
    x = torch.randn(16, 3)
    for _ in range(WARMUP_CALLS + PROBE_CALLS):
        torch.testing.assert_close(log_prob(x), model.log_prob(x))
        assert not log_prob.compiled and log_prob.decision.startswith("eager: the run ended")
    out = log_prob(x)  # the call that decides, already compiled
    assert log_prob.compiled and log_prob.decision.startswith("compiled: 1000000000 steps left")
    assert log_prob.compile_seconds is not None
    torch.testing.assert_close(out, model.log_prob(x))


def test_auto_stays_eager_on_a_short_run():
    log_prob, model = _auto(steps_left=20)
    x = torch.randn(16, 3)
    for _ in range(WARMUP_CALLS + PROBE_CALLS + 5):
        log_prob(x)
    assert not log_prob.compiled and log_prob.compile_seconds is None
    assert log_prob.decision.startswith("eager: 20 steps left")


def test_auto_is_the_default_and_its_decision_is_in_metrics(run_cli, tmp_path):
    result = run_cli(tmp_path / "run", *TINY_NSF, "model=nsf", "trainer.max_steps=20", "trainer.val_check_interval=20")
    assert result.code == 0, result.err
    m = result.metrics
    assert m["compile"] == "auto" and m["compile_seconds"] is None
    # 20 steps of a tiny model: 7 left after the 13 timed, never worth a compile
    assert m["compile_decision"].startswith("eager: 7 steps left")
