"""The shipped volume training: ``train.json`` with ``train_volumes.json`` trains slice by slice on DICOM series
and NIfTI volumes, its whole chain declared (the volume loader, ``DropEmptySlicesd``,
``RandSpatialCropSamplesd``, ``SqueezeDimd``, then the 2-D augmentation)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ignite.engine import Events
from monai.bundle import ConfigWorkflow

from tests.helpers import REPO

CONFIGS = REPO / "bundle" / "configs"
TRAIN = [str(CONFIGS / "train.json"), str(CONFIGS / "train_volumes.json")]


@pytest.mark.parametrize("source", ["dicom", "nifti"])
def test_two_iterations_on_the_phantoms_volumes(
    source: str, phantom: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    workflow = ConfigWorkflow(
        config_file=TRAIN,
        workflow_type="train",
        logging_file=False,
        bundle_root=str(REPO / "bundle"),
        dataset_dir=str(phantom),
        volume_source=source,
        task="mri_pet",
        output_dir=str(tmp_path),
        tracking_uri=f"sqlite:///{tmp_path}/mlruns.db",
        device="$torch.device('cpu')",
        image_size=[64, 64],
        roi_size=[64, 64],
        slices_per_volume=2,
        batch_size=1,
        val_batch_size=1,
        epochs=1,
        epoch_length=2,
        num_workers=0,
        cache_rate=1.0,
        log_figures=False,
        pretrained=False,
    )
    workflow.initialize()
    assert workflow.check_properties() == []
    trainer = workflow.parser.get_parsed_content("train#trainer")
    shapes: list[tuple[int, ...]] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: shapes.append(tuple(e.state.batch["image"].shape)))
    workflow.run()
    workflow.finalize()
    # two iterations, each two slices (one volume, two slices drawn) of the (2, 64, 64) 2-D contract
    assert shapes == [(2, 2, 64, 64), (2, 2, 64, 64)]
    assert trainer.state.iteration == 2 and (tmp_path / "checkpoints" / "model_final.pt").is_file()
    assert torch.isfinite(torch.as_tensor(trainer.state.output["loss"]))
