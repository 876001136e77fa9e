"""The dynamic-mu handler (hand-computed epochs, guards, clamping, DDP sums) and the metric handlers in a
MONAI SupervisedEvaluator."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from monai.engines import SupervisedEvaluator
from monai.handlers import from_engine

from hkafusion_monai.handlers import FUSION_METRIC_HANDLERS, DynamicMuHandler
from hkafusion_monai.handlers import dynamic_mu as dynamic_mu_module
from hkafusion_monai.losses import PER_SAMPLE_KEYS, FusionLoss
from hkafusion_monai.metrics import METRIC_NAMES, compute_fusion_metrics
from hkafusion_monai.utils import quantise

KEY_A, KEY_B = PER_SAMPLE_KEYS


def output(a, b) -> dict:
    return {KEY_A: torch.tensor(a, dtype=torch.float64), KEY_B: torch.tensor(b, dtype=torch.float64)}


def run_epochs(handler: DynamicMuHandler, epochs: list[list[dict]]) -> list[float]:
    """Run one engine epoch per list of outputs; return mu after each epoch."""
    engine = Engine(lambda e, batch: epochs[e.state.epoch - 1][batch])
    handler.attach(engine)
    mus = []
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: mus.append(handler.mu))
    engine.run(range(len(epochs[0])), max_epochs=len(epochs))
    return mus


# --- dynamic mu ------------------------------------------------------------------------------------------------


def test_mu_after_an_epoch_of_known_outputs():
    loss = FusionLoss()
    handler = DynamicMuHandler(loss)
    # epoch 1: sum_A = .2 + .4 + .1 = .7, sum_B = .3 + .5 + .6 = 1.4 -> mu = 2
    # epoch 2 (sums restart): sum_A = .5 + .5 + .0 = 1.0, sum_B = .1 + .2 + .2 = .5 -> mu = .5
    epochs = [
        [output([0.2, 0.4], [0.3, 0.5]), output([0.1], [0.6])],
        [output([0.5, 0.5], [0.1, 0.2]), output([0.0], [0.2])],
    ]
    mus = run_epochs(handler, epochs)
    assert mus == pytest.approx([2.0, 0.5], rel=1e-12)
    assert loss.mu == pytest.approx(0.5, rel=1e-12)


def test_mu_is_logged_in_engine_metrics():
    loss = FusionLoss()
    handler = DynamicMuHandler(loss, metric_name="mu")
    engine = Engine(lambda e, batch: output([0.2, 0.2], [0.3, 0.5]))
    handler.attach(engine)
    engine.run([0], max_epochs=1)
    assert engine.state.metrics["mu"] == pytest.approx(2.0)


@pytest.mark.parametrize(
    "a, b, start, expected",
    [
        ([0.01, 0.01], [1.0, 1.0], 1.0, 10.0),  # ratio 100, clamped to the upper bound
        ([1.0, 1.0], [0.001, 0.001], 1.0, 0.1),  # ratio 1e-3, clamped to the lower bound
        ([0.0, 0.0], [0.3, 0.1], 1.0, 10.0),  # sum_A = 0: the limit of the ratio, the upper bound
        ([0.0, 0.0], [0.0, 0.0], 1.7, 1.7),  # 0 / 0: mu stays as it is
    ],
)
def test_mu_guards_and_clamp(a, b, start, expected):
    loss = FusionLoss(mu=start)
    assert run_epochs(DynamicMuHandler(loss, mu_range=(0.1, 10.0)), [[output(a, b)]]) == [pytest.approx(expected)]


def test_mu_range_is_validated():
    with pytest.raises(ValueError):
        DynamicMuHandler(FusionLoss(), mu_range=(2.0, 1.0))


def test_decollated_outputs():
    """MONAI engines decollate their output into a list of per-sample dicts of scalars."""
    loss = FusionLoss()
    decollated = [
        {KEY_A: torch.tensor(0.25), KEY_B: torch.tensor(0.5)},
        {KEY_A: torch.tensor(0.25), KEY_B: torch.tensor(0.25)},
    ]
    assert run_epochs(DynamicMuHandler(loss), [[decollated]]) == [pytest.approx(1.5)]


def test_sums_are_all_reduced(monkeypatch):
    """Under DDP the handler adds the other ranks' sums before dividing."""
    other_rank = torch.tensor([0.3, 2.6, 2.0], dtype=torch.float64)  # sum_A, sum_B, count of another process
    monkeypatch.setattr(dynamic_mu_module.idist, "all_reduce", lambda t: t + other_rank)
    mus = run_epochs(DynamicMuHandler(FusionLoss()), [[output([0.2, 0.5], [0.1, 0.3])]])
    assert mus == [pytest.approx((0.4 + 2.6) / (0.7 + 0.3))]


def test_with_the_loss_in_a_training_loop():
    torch.manual_seed(0)
    loss = FusionLoss(win_size=7)
    batches = [(torch.rand(2, 3, 16, 16), torch.rand(2, 2, 16, 16)) for _ in range(3)]
    engine = Engine(lambda e, batch: loss.forward_terms(*batch))
    DynamicMuHandler(loss).attach(engine)
    engine.run(batches, max_epochs=1)
    sum_a = sum(loss.forward_terms(p, i)["l_ssim_a_per_sample"].sum().item() for p, i in batches)
    sum_b = sum(loss.forward_terms(p, i)["l_ssim_b_per_sample"].sum().item() for p, i in batches)
    assert loss.mu == pytest.approx(min(max(sum_b / sum_a, 0.1), 10.0), rel=1e-6)


def _ddp_rank(local_rank: int, out_dir: str) -> None:
    import ignite.distributed as idist

    rank = idist.get_rank()
    loss = FusionLoss()
    values = [output([0.1, 0.3], [0.2, 0.2])] if rank == 0 else [output([0.6], [2.4])]
    run_epochs(DynamicMuHandler(loss), [values])
    with open(f"{out_dir}/rank{rank}.json", "w") as fh:
        json.dump(loss.mu, fh)


@pytest.mark.slow
def test_ddp_ranks_agree(tmp_path):
    """Two gloo processes with different samples set the same mu, from the global sums (2.8 / 1.0)."""
    import ignite.distributed as idist

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with idist.Parallel(backend="gloo", nproc_per_node=2, master_addr="127.0.0.1", master_port=port) as parallel:
        parallel.run(_ddp_rank, str(tmp_path))
    mus = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert mus == [pytest.approx(2.8), pytest.approx(2.8)]


# --- metric handlers in a SupervisedEvaluator ------------------------------------------------------------------


class AverageSources(torch.nn.Module):
    """A trivial fusion network: the mean of the two source channels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1, keepdim=True)


def test_metric_handlers_in_supervised_evaluator():
    g = torch.Generator().manual_seed(0)
    images = [torch.nn.functional.avg_pool2d(torch.rand(2, 52, 52, generator=g), 5, stride=1) for _ in range(3)]
    loader = torch.utils.data.DataLoader([{"image": x} for x in images], batch_size=2)
    handlers = {
        name: cls(output_transform=from_engine(["pred", "image"])) for name, cls in FUSION_METRIC_HANDLERS.items()
    }
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=loader,
        network=AverageSources(),
        key_val_metric={"MI": handlers.pop("MI")},
        additional_metrics=handlers,
    )
    evaluator.run()

    expected = {name: [] for name in METRIC_NAMES}
    for x in images:
        fused = quantise(x.mean(dim=0))
        values = compute_fusion_metrics(fused, quantise(x[0]), quantise(x[1]))
        for name in METRIC_NAMES:
            expected[name].append(values[name])
    for name in METRIC_NAMES:
        assert evaluator.state.metrics[name] == pytest.approx(float(np.mean(expected[name])), rel=1e-6), name
        details = evaluator.state.metric_details[name].flatten().tolist()
        assert details == pytest.approx(expected[name], rel=1e-12), name


def test_missing_per_sample_values_are_named():
    engine = Engine(lambda e, batch: {"loss": torch.tensor(1.0)})
    DynamicMuHandler(FusionLoss()).attach(engine)
    with pytest.raises(KeyError, match="l_ssim_a_per_sample"):
        engine.run([0], max_epochs=1)


def test_validation_grid_is_labelled_and_shows_pet_in_colour(tmp_path) -> None:
    """Column titles above MRI | PET | average | max | laplacian | HKAFusion, and the PET's pseudo-colour."""
    from types import SimpleNamespace

    import numpy as np
    from monai.data import MetaTensor
    from PIL import Image

    from hkafusion_monai.handlers.fusion_grid import FusionGridHandler

    rng = np.random.default_rng(0)
    pet_rgb = np.zeros((32, 32, 3), np.uint8)
    pet_rgb[..., 0] = rng.integers(0, 255, (32, 32))  # red pseudo-colour
    pet_file = tmp_path / "pet.png"
    Image.fromarray(pet_rgb).save(pet_file)
    image = MetaTensor(torch.rand(2, 2, 32, 32), meta={"other_filename": [str(pet_file)] * 2, "modality": ["PET"] * 2})
    handler = FusionGridHandler(tmp_path / "figures", max_pairs=2)
    engine = SimpleNamespace(state=SimpleNamespace(output={"image": image, "pred": torch.rand(2, 1, 32, 32)}, epoch=1))
    handler._reset(engine)
    handler._collect(engine)
    handler._write(engine)
    grid = np.asarray(Image.open(handler.last_path))
    top, left = 14 + 8, grid.shape[1] - (6 * 32 + 5 * 2)  # the titles' band, the row labels' margin
    assert grid.shape[0] == top + 2 * 32 + 2 and left > 30
    assert (grid[:top, left:] < 128).any(), "column titles"
    assert (grid[top:, :left] < 128).any(), "row labels"
    pet_column = grid[top : top + 32, left + 34 : left + 66].astype(int)
    assert (pet_column[..., 0] - pet_column[..., 2]).mean() > 20, "PET shown in its colours"
    fused_column = grid[top : top + 32, left + 5 * 34 : left + 5 * 34 + 32].astype(int)
    assert (fused_column[..., 0] != fused_column[..., 2]).any(), "fused columns carry the PET's chroma"
    assert FusionGridHandler(tmp_path, enabled="false").enabled is False


def test_evaluating_scores_the_training_run_in_its_output_folder_else_the_shipped_weights(tmp_path) -> None:
    from hkafusion_monai.handlers import checkpoint_label, trained_or_shipped
    from hkafusion_monai.utils import file_sha256

    shipped = tmp_path / "bundle" / "models" / "model.pt"
    shipped.parent.mkdir(parents=True)
    shipped.write_bytes(b"shipped")
    ckpt_dir = tmp_path / "runs" / "my_pairs" / "checkpoints"
    assert trained_or_shipped(ckpt_dir, shipped) == str(shipped)
    ckpt_dir.mkdir(parents=True)
    (ckpt_dir / "model.pt").write_bytes(b"trained")
    assert trained_or_shipped(ckpt_dir, shipped) == str(ckpt_dir / "model.pt")
    label = checkpoint_label(ckpt_dir / "model.pt")
    assert label == f"my_pairs/checkpoints/model.pt (sha256 {file_sha256(ckpt_dir / 'model.pt')[:12]})"
    assert str(tmp_path) not in label  # the user's folders stay out of a report that travels
