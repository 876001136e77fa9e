"""Two-process DDP training on the CPU (gloo) through bundle/configs/multi_gpu_train.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import torch

from hkafusion_monai.handlers import default_tracking_uri
from tests.integration.test_bundle_workflows import BUNDLE, TRAIN_JSON, _free_port, _write_pairs

MULTI_GPU_JSON = str(BUNDLE / "configs" / "multi_gpu_train.json")


def test_two_process_gloo_training_keeps_ranks_identical(tmp_path: Path) -> None:
    items = _write_pairs(tmp_path / "pairs", 10, size=48)
    datalist = tmp_path / "pairs" / "datalist.json"
    datalist.write_text(json.dumps({"training": items[:8], "validation": items[8:], "test": items[8:]}))
    out = tmp_path / "out"
    overlay = tmp_path / "overlay.json"
    overlay.write_text(
        json.dumps(
            {
                "bundle_root": str(BUNDLE),
                "datalist": str(datalist),
                "output_dir": str(out),
                "task": "ddp",
                "image_size": [48, 48],
                "roi_size": [48, 48],
                "batch_size": 2,
                "num_workers": 0,
                "epochs": 2,
                "val_interval": 2,
                "log_figures": False,
                # each rank saves its own weights before the process group goes away
                "finalize": [
                    "$torch.save(@network.module.state_dict(), @output_dir + '/rank' + os.environ['RANK'] + '.pt')",
                    "$dist.is_initialized() and dist.destroy_process_group()",
                ],
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port",
        str(_free_port()),
        "-m",
        "monai.bundle",
        "run",
        "training",
        "--config_file",
        f"['{TRAIN_JSON}','{MULTI_GPU_JSON}','{overlay}']",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]

    rank0 = torch.load(out / "rank0.pt", weights_only=True)
    rank1 = torch.load(out / "rank1.pt", weights_only=True)
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0), "DDP ranks diverged"

    # only rank 0 saves checkpoints (loadable into the plain network) and logs one MLflow run
    from hkafusion_monai.networks import HKAFusion

    HKAFusion().load_state_dict(torch.load(out / "checkpoints" / "model_final.pt", weights_only=True)["model"])
    client = mlflow.MlflowClient(default_tracking_uri())
    runs = client.search_runs([client.get_experiment_by_name("hkafusion").experiment_id])
    assert len(runs) == 1
    # 8 pairs, 2 ranks, batch 2: 2 iterations per epoch on each rank
    assert len(client.get_metric_history(runs[0].info.run_id, "loss")) == 4
    assert "val_qabf" in runs[0].data.metrics and "mu" in runs[0].data.metrics
