"""The seed article's claims about torch.optim.LBFGS, each run against torch to show what really happens.

The article (Japanese; checked in docs/seed-article.md) explains ``LBFGS.load_state_dict``. Its code calls
``optimizer.step()`` without a closure, reads ``state_dict['params']`` and ``state_dict['lr']``, loads an
L-BFGS state into SGD, and builds regression data with 9 weights for 10 features. Its prose claims that
``load_state_dict`` restores the hyperparameters and the optimization history. These tests describe torch
(not a target); the restore claim is also a target property (``seed.load_restores_hyperparameters``).
Account of torch's behaviour: docs/torch-2.13-lbfgs.md.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from lbfgs_verify.compare.bitwise import first_difference


def _article_model() -> tuple[torch.nn.Linear, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Linear(10, 1)
    x = torch.randn(100, 10)
    y = x @ torch.arange(2.0, 12.0) + 10
    return model, x, y.unsqueeze(1)


def _closure(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor):
    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss.detach()

    return closure


def _trained_lbfgs(steps: int = 3) -> tuple[torch.nn.Linear, torch.optim.LBFGS, torch.Tensor, torch.Tensor]:
    model, x, y = _article_model()
    optimizer = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=4, history_size=3)
    for _ in range(steps):
        optimizer.step(_closure(model, optimizer, x, y))
    return model, optimizer, x, y


def test_step_without_closure_raises_type_error() -> None:
    """Article: ``loss.backward(); optimizer.step()`` in the training loop. Torch: LBFGS.step needs the closure."""
    model, x, y = _article_model()
    optimizer = torch.optim.LBFGS(model.parameters())
    loss = torch.nn.functional.mse_loss(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    with pytest.raises(TypeError, match="closure"):
        optimizer.step()


@pytest.mark.parametrize("key", ["params", "lr"])
def test_state_dict_has_no_params_or_lr_key(key: str) -> None:
    """Article: ``state_dict['params']`` (manual restore) and ``SGD(..., lr=state_dict['lr'])``. Torch: the only
    top-level keys are ``state`` and ``param_groups``; ``lr`` lives in ``param_groups[0]``, no parameter values."""
    _, optimizer, _, _ = _trained_lbfgs()
    state = optimizer.state_dict()
    assert set(state) == {"state", "param_groups"}
    with pytest.raises(KeyError):
        state[key]
    assert state["param_groups"][0]["lr"] == 0.5
    assert state["param_groups"][0]["params"] == [0, 1]  # indices, not tensors


def test_sgd_cannot_continue_from_an_lbfgs_state() -> None:
    """Article: "use torch.optim.SGD ... it has the same load_state_dict interface". Torch: the load succeeds (the
    group sizes match), but the loaded param_groups lack SGD's keys and the first step raises KeyError 'momentum'."""
    model, optimizer, x, y = _trained_lbfgs()
    saved = optimizer.state_dict()
    sgd = torch.optim.SGD(model.parameters(), lr=saved["param_groups"][0]["lr"])
    sgd.load_state_dict(saved)
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    with pytest.raises(KeyError, match="momentum"):
        sgd.step()


def test_article_regression_data_has_a_shape_error() -> None:
    """Article: ``y = np.dot(X, np.array([2, 3, 4, 5, 6, 7, 8, 9, 10])) + 10`` with ``X`` of shape (100, 10): nine
    weights for ten features. numpy refuses the product."""
    x = np.random.default_rng(0).standard_normal((100, 10))
    with pytest.raises(ValueError, match="not aligned"):
        np.dot(x, np.array([2, 3, 4, 5, 6, 7, 8, 9, 10]))


def test_load_state_dict_restores_hyperparameters() -> None:
    """Article: load_state_dict restores the hyperparameters (learning rate ...). Torch: yes, from the saved
    param_groups, overriding the constructor's arguments."""
    model, optimizer, _, _ = _trained_lbfgs()
    saved = optimizer.state_dict()
    fresh = torch.optim.LBFGS(model.parameters(), lr=0.01, max_iter=50, history_size=100,
                              line_search_fn="strong_wolfe")
    fresh.load_state_dict(saved)
    group = fresh.param_groups[0]
    assert (group["lr"], group["max_iter"], group["history_size"], group["line_search_fn"]) == (0.5, 4, 3, None)


def test_load_state_dict_restores_history_and_continues_exactly() -> None:
    """Article: load_state_dict makes use of the past optimization history. Torch: the history (old_dirs, old_stps,
    ro, H_diag, d, t, counters) is restored, through torch.save/torch.load(weights_only=True), and the run continues
    bitwise as the uninterrupted one on the CPU."""
    torch.set_num_threads(1)
    model, optimizer, x, y = _trained_lbfgs(steps=2)
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)
    values = [p.detach().clone() for p in model.parameters()]
    optimizer.step(_closure(model, optimizer, x, y))
    expected = [p.detach().clone() for p in model.parameters()]

    resumed_model = torch.nn.Linear(10, 1)
    with torch.no_grad():
        for p, v in zip(resumed_model.parameters(), values, strict=True):
            p.copy_(v)
    resumed = torch.optim.LBFGS(resumed_model.parameters())
    resumed.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
    state = resumed.state_dict()["state"][0]
    assert len(state["old_dirs"]) == 3 and state["n_iter"] == 8
    resumed.step(_closure(resumed_model, resumed, x, y))
    assert first_difference(expected, [p.detach() for p in resumed_model.parameters()]) is None


def test_moving_the_model_keeps_the_parameter_objects() -> None:
    """Article: "load the model onto another device, create a new LBFGS, load_state_dict". On the CPU the same
    steps show what load_state_dict does with the saved tensors: they are cast to the dtype (and device) of the
    new parameters (torch/optim/optimizer.py, _process_value_according_to_param_policy)."""
    model, optimizer, _, _ = _trained_lbfgs()
    saved = optimizer.state_dict()
    model = model.to(torch.float64)
    fresh = torch.optim.LBFGS(model.parameters())
    fresh.load_state_dict(saved)
    state = fresh.state_dict()["state"][0]
    assert state["d"].dtype == torch.float64
    assert all(t.dtype == torch.float64 for t in state["old_dirs"])


def test_lbfgs_has_no_l2_regularization_hyperparameter() -> None:
    """Article: load_state_dict restores "the learning rate, the L2 regularization coefficient and other
    hyperparameters". Torch: LBFGS has no weight decay; its constructor refuses ``weight_decay``."""
    model, _, _ = _article_model()
    with pytest.raises(TypeError, match="weight_decay"):
        torch.optim.LBFGS(model.parameters(), weight_decay=1e-4)
    assert "weight_decay" not in torch.optim.LBFGS(model.parameters()).defaults


def test_default_lbfgs_does_no_line_search() -> None:
    """Article: L-BFGS "searches with an efficient line search". Torch: only with ``line_search_fn="strong_wolfe"``;
    the default (``None``) moves by the fixed step ``lr`` (the first iteration by ``min(1, 1/||g||_1)·lr``)."""
    model, x, y = _article_model()
    optimizer = torch.optim.LBFGS(model.parameters(), max_iter=1)
    assert optimizer.defaults["line_search_fn"] is None
    calls = []

    def closure() -> torch.Tensor:
        calls.append(1)
        return _closure(model, optimizer, x, y)()

    for _ in range(3):
        optimizer.step(closure)
    assert len(calls) == 3  # one evaluation per step: no trial points


def test_load_checks_the_parameter_count_not_the_shapes() -> None:
    """Article: load_state_dict works only when the optimizer and the state are compatible; a changed architecture
    must be updated first. Torch: a different number of parameters is refused at load time (ValueError), a
    different shape is not (the error comes later inside step(): docs/torch-2.13-lbfgs.md, defect 5)."""
    _, optimizer, _, _ = _trained_lbfgs()
    saved = optimizer.state_dict()
    with pytest.raises(ValueError, match="doesn't match the size"):
        torch.optim.LBFGS(torch.nn.Linear(10, 1, bias=False).parameters()).load_state_dict(saved)
    wider = torch.optim.LBFGS(torch.nn.Linear(12, 1).parameters())
    wider.load_state_dict(saved)
    assert wider.state_dict()["state"][0]["d"].numel() == 11  # the 11-unknown direction, now for 13 unknowns
