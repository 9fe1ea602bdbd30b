"""The optional torch.compile wrapper: off means eager, a failing compiler falls back cleanly."""
import pytest
import torch

from funnelrun.models.nsf import build_nsf
from funnelrun.training.compile import maybe_compile


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
