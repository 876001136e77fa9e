"""The bundle's training and evaluation workflows, run through ``monai.bundle.ConfigWorkflow`` on small
generated pairs, with their MLflow records read back."""

from __future__ import annotations

import csv
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.bundle import ConfigWorkflow
from PIL import Image

from hkafusion_monai.io.mlflow_store import experiment_address
from hkafusion_monai.losses import TERM_KEYS
from hkafusion_monai.metrics import compute_fusion_metrics
from hkafusion_monai.utils import quantise
from tests.helpers import REPO, Browser, Page, require_tool, stop_process

BUNDLE = REPO / "bundle"
TRAIN_JSON = str(BUNDLE / "configs" / "train.json")
EVALUATE_JSON = str(BUNDLE / "configs" / "evaluate.json")
METRIC_NAMES = ("MI", "SF", "VIF", "AG", "Qabf", "Qcv", "CC", "SSIM")
OVERFIT_ITERATIONS = 40
LOSS_DROP_FACTOR = 1.5  # the total loss of the last iterations is at least this much below the first's


def _write_pairs(root: Path, n: int, size: int = 48, seed: int = 0) -> list[dict]:
    """n pairs of a grey 'MRI' (texture in a head disc) and a pseudo-colour 'PET' (hot spot), as PNG."""
    rng = np.random.default_rng(seed)
    (root / "MRI").mkdir(parents=True, exist_ok=True)
    (root / "PET").mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:size, :size] / size
    items = []
    for i in range(n):
        cx, cy = 0.5 + rng.uniform(-0.05, 0.05, 2)
        head = ((xx - cx) / 0.4) ** 2 + ((yy - cy) / 0.45) ** 2 < 1
        mri = head * (0.45 + 0.3 * np.sin(14 * xx + i) * np.cos(11 * yy))
        hot = head * np.exp(-((xx - cx - 0.12) ** 2 + (yy - cy) ** 2) / 0.01)
        pet = np.stack([hot, hot**2, 0.6 * (1 - hot) * head], -1)
        name = f"{i:03d}.png"
        Image.fromarray(np.round(mri * 255).astype(np.uint8)).save(root / "MRI" / name)
        Image.fromarray(np.round(pet * 255).astype(np.uint8)).save(root / "PET" / name)
        items.append({"mri": f"MRI/{name}", "other": f"PET/{name}", "modality": "PET"})
    return items


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("pairs")
    items = _write_pairs(root, 8)
    datalist = root / "datalist.json"
    datalist.write_text(json.dumps({"training": items[:4], "validation": items[4:6], "test": items[6:]}))
    out = tmp_path_factory.mktemp("run")
    return {"datalist": str(datalist), "output_dir": str(out), "tracking_uri": f"sqlite:///{out}/mlruns.db"}


def _overrides(demo: dict, **extra) -> dict:
    base = {
        "bundle_root": str(BUNDLE),
        "datalist": demo["datalist"],
        "output_dir": demo["output_dir"],
        "tracking_uri": demo["tracking_uri"],
        "task": "test",
        "image_size": [48, 48],
        "roi_size": [48, 48],
        "rotate_prob": 0.0,
        "rotate90_prob": 0.0,
        "flip_prob": 0.0,
        "batch_size": 4,
        "val_batch_size": 2,
        "num_workers": 0,
        "learning_rate": 0.003,
        "epochs": OVERFIT_ITERATIONS,
        "val_interval": OVERFIT_ITERATIONS // 2,
    }
    base.update(extra)
    return base


@pytest.fixture(scope="module", autouse=True)
def no_tracking_env():
    """The tests name their tracking URI; a user's MLFLOW_TRACKING_URI (which takes priority) must not leak in."""
    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield
    mp.undo()


@pytest.fixture(scope="module")
def trained(demo: dict) -> dict:
    """Overfit the 4 training pairs (one batch) for a few dozen iterations through the bundle's train.json."""
    workflow = ConfigWorkflow(
        config_file=TRAIN_JSON, workflow_type="train", logging_file=False, **_overrides(demo, run_name="overfit")
    )
    workflow.initialize()
    trainer = workflow.parser.get_parsed_content("train#trainer")
    losses: list[float] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(float(e.state.output["loss"])))
    mu_start = workflow.parser.get_parsed_content("loss").mu
    workflow.run()
    workflow.finalize()
    return {
        "losses": losses,
        "mu_start": mu_start,
        "mu_end": workflow.parser.get_parsed_content("loss").mu,
        "trainer": trainer,
    }


def _run(client: mlflow.MlflowClient, name: str) -> mlflow.entities.Run:
    experiment = client.get_experiment_by_name("hkafusion")
    runs = [r for r in client.search_runs([experiment.experiment_id]) if r.info.run_name == name]
    assert len(runs) == 1, f"expected one MLflow run named {name!r}"
    return runs[0]


def test_overfit_one_batch_loss_falls_and_mu_moves(trained: dict) -> None:
    losses = trained["losses"]
    assert len(losses) == OVERFIT_ITERATIONS
    first, last = np.mean(losses[:3]), np.mean(losses[-3:])
    assert first / last >= LOSS_DROP_FACTOR, f"total loss fell only from {first:.3f} to {last:.3f}"
    assert trained["mu_end"] != trained["mu_start"]
    assert 0.1 <= trained["mu_end"] <= 10.0


def test_training_run_is_logged_to_mlflow(trained: dict, demo: dict) -> None:
    client = mlflow.MlflowClient(demo["tracking_uri"])
    run = _run(client, "overfit")
    assert run.info.status == "FINISHED"
    # every loss term, per iteration
    for key in TERM_KEYS:
        assert len(client.get_metric_history(run.info.run_id, key)) == OVERFIT_ITERATIONS, key
    # mu and lr per epoch, the eight validation metrics per validation
    assert len(client.get_metric_history(run.info.run_id, "mu")) == OVERFIT_ITERATIONS
    assert len(client.get_metric_history(run.info.run_id, "lr")) == OVERFIT_ITERATIONS
    for name in ("mi", "sf", "vif", "ag", "qabf", "qcv", "cc", "ssim"):
        history = client.get_metric_history(run.info.run_id, f"val_{name}")
        assert [m.step for m in history] == [OVERFIT_ITERATIONS // 2, OVERFIT_ITERATIONS], name
    # params: resolved settings (no config expressions), the datalist by counts and hash (never its name or
    # item paths unless log_names), the commit; tags: commit, user and entry point
    params = run.data.params
    assert params["learning_rate"] == "0.003"
    assert params["network"] == "HKAFusion" and int(params["network_parameters"]) > 100_000
    assert params["loss.lambda_grad"] == str(float(params["loss.lambda_grad"]))
    assert not any(v.startswith(("$", "@")) for v in params.values()), "unresolved config expressions"
    assert "datalist_file" not in params and "data_root" not in params
    assert params["datalist_training_count"] == "4"
    assert len(params["datalist_sha256"]) == 64
    assert params["git_commit"] and run.data.tags["git_commit"] == params["git_commit"]
    assert run.data.tags["mlflow.user"] and run.data.tags["mlflow.source.name"]
    assert not any("MRI/" in v or "datalist.json" in v for v in params.values()), "file names must not be logged"
    executed = Path(demo["output_dir"]) / "executed_config.json"
    assert str(Path(demo["datalist"]).parent) not in executed.read_text(), "data paths are hashed"
    # artifacts: the best checkpoint and a validation grid per validation
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "model.pt" in artifacts
    figures = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
    assert figures == {
        f"figures/val_epoch_{OVERFIT_ITERATIONS // 2:04d}.png",
        f"figures/val_epoch_{OVERFIT_ITERATIONS:04d}.png",
    }


def test_checkpoint_loads_weights_only(trained: dict, demo: dict) -> None:
    state = torch.load(Path(demo["output_dir"]) / "checkpoints" / "model.pt", weights_only=True)
    from hkafusion_monai.networks import HKAFusion

    HKAFusion().load_state_dict(state)


def test_evaluate_writes_csv_json_grid_equal_to_function_api(trained: dict, demo: dict) -> None:
    workflow = ConfigWorkflow(
        config_file=[TRAIN_JSON, EVALUATE_JSON],
        workflow_type="eval",
        logging_file=False,
        run_id="evaluating",
        **_overrides(demo, run_name="evaluation", ckpt_path=str(Path(demo["output_dir"]) / "checkpoints" / "model.pt")),
    )
    workflow.initialize()
    network = workflow.parser.get_parsed_content("network")
    workflow.run()
    workflow.finalize()
    eval_dir = Path(demo["output_dir"]) / "evaluation" / "evaluation"
    rows = list(csv.DictReader((eval_dir / "metrics_per_pair.csv").open()))
    summary = json.loads((eval_dir / "summary.json").read_text())
    assert (eval_dir / "fusion_grid.png").is_file()
    assert sorted({r["method"] for r in rows}) == ["average", "hkafusion", "laplacian", "max"]
    assert set(summary["methods"]) == {"hkafusion", "average", "max", "laplacian"}
    # file names stay on the site: the CSV names pairs by index and hash, the local key maps them back
    key = {r["mri_file"]: r["pair"] for r in csv.DictReader((eval_dir / "pair_names.csv").open())}
    assert all(r["pair"].startswith("pair_") and r["pair"] in key.values() for r in rows)

    # recompute with the function API on the same quantised outputs
    items = json.loads(Path(demo["datalist"]).read_text())["test"]
    pre = workflow.parser.get_parsed_content("validate#preprocessing")
    network.eval()
    for item in items:
        sample = pre(
            {k: str(Path(demo["datalist"]).parent / v) if k in ("mri", "other") else v for k, v in item.items()}
        )
        image = torch.as_tensor(sample["image"])[None]
        with torch.no_grad():
            fused = network(image)
        a, b = quantise(image[0, 0]).double(), quantise(image[0, 1]).double()
        expected = {
            "hkafusion": compute_fusion_metrics(quantise(fused[0, 0]).double(), a, b),
            "average": compute_fusion_metrics(torch.div(a + b + 1, 2, rounding_mode="floor"), a, b),
            "max": compute_fusion_metrics(torch.maximum(a, b), a, b),
        }
        pair = key[Path(item["mri"]).name]
        for method, values in expected.items():
            row = next(r for r in rows if r["pair"] == pair and r["method"] == method)
            for name in METRIC_NAMES:
                assert float(row[name]) == pytest.approx(values[name], rel=1e-4, abs=1e-6), (method, pair, name)

    client = mlflow.MlflowClient(demo["tracking_uri"])
    run = _run(client, "evaluation")
    assert run.info.status == "FINISHED"
    assert "test_hkafusion_Qabf" in run.data.metrics and "test_max_MI" in run.data.metrics
    assert not any(k.startswith("val_") for k in run.data.metrics), "test-split metrics are named test_*"
    assert {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")} == {
        "evaluation/metrics_per_pair.csv",
        "evaluation/summary.json",
        "evaluation/report.html",
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_short_run_logs_to_a_real_mlflow_server(demo: dict, tmp_path: Path) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{tmp_path}/server.db",
            "--default-artifact-root",
            str(tmp_path / "art"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow server did not start on {uri}")
                time.sleep(0.5)
        workflow = ConfigWorkflow(
            config_file=TRAIN_JSON,
            workflow_type="train",
            logging_file=False,
            **_overrides(
                demo, tracking_uri=uri, run_name="over_http", epochs=2, val_interval=2, output_dir=str(tmp_path / "out")
            ),
        )
        workflow.initialize()
        workflow.run()
        workflow.finalize()
        client = mlflow.MlflowClient(uri)
        run = _run(client, "over_http")
        assert run.info.status == "FINISHED"
        assert len(client.get_metric_history(run.info.run_id, "loss")) == 2
        assert "val_qabf" in run.data.metrics
    finally:
        stop_process(server)


def _click(page: Page, label: str) -> None:
    """Click the button labelled ``label`` (a ``role=button`` element whose whole text it is)."""
    found = page.evaluate(
        f"(() => {{ const b = [...document.querySelectorAll('[role=button]')].find(e => e.textContent.trim() === "
        f"{label!r}); b?.click(); return Boolean(b) }})()"
    )
    assert found, f"no {label!r} button on {page.url}"


def _runs_table_listing(page: Page, experiment: str, run_name: str) -> None:
    """Wait until the page is the experiment's runs table and lists ``run_name``."""
    page.wait_for(
        f"location.hash.startsWith('#/experiments/{experiment}/runs')"
        f" && document.body.innerText.includes({run_name!r}) && document.body.innerText.includes('Run Name')"
    )


def test_mlflow_ui_shows_the_training_run(trained: dict, demo: dict, tmp_path: Path) -> None:
    """The README's UI command over a store written by a real training run, in headless Chromium: the address a
    run prints opens the experiment on its runs table, listing the run; a bare experiment address opens in the
    view the browser last chose, MLflow's GenAI view (a traces overview) until the user picks "Model training"
    in the sidebar once, and the runs table from then on; the run's page shows the loss terms and validation
    metrics, and a logged validation grid renders (the UI fetches the image and shows it from a blob URL)."""
    chromium = require_tool("chromium", "chromium")
    client = mlflow.MlflowClient(demo["tracking_uri"])
    run = _run(client, "overfit")
    figure = sorted(a.path for a in client.list_artifacts(run.info.run_id, "figures"))[-1]
    port = _free_port()
    # the command the README and every run's closing message print, on a free loopback port
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "ui",
            "--backend-store-uri",
            demo["tracking_uri"],
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow ui did not start on {base}")
            time.sleep(1)
        with urllib.request.urlopen(base, timeout=10) as response:
            assert b"Unable to display MLflow UI" not in response.read()
        experiment = run.info.experiment_id
        assert client.get_experiment(experiment).tags.get("mlflow.experimentKind") == "custom_model_development"
        address = experiment_address(demo["tracking_uri"], "hkafusion", ui=base)
        assert address == f"{base}/#/experiments/{experiment}?workflowType=machine_learning"
        bare = f"{base}/#/experiments/{experiment}"
        profile = tmp_path / "profile"  # one user's browser, as it keeps what the UI stores
        with Browser(chromium, profile) as browser:
            # the printed address, in a browser that has never opened MLflow: the runs table, listing the run
            page = browser.open(address)
            _runs_table_listing(page, experiment, "overfit")
            # the bare address there: MLflow's default view, GenAI, whatever the experiment's kind tag says (the
            # reason the printed address names its view; should this fail, MLflow has changed how it picks it)
            page = browser.open(bare)
            page.wait_for("/[?&]workflowType=/.test(location.hash)")
            assert "workflowType=genai" in page.url and "/runs" not in page.url, page.url
            assert "overfit" not in page.text
            # the user picks "Model training" in the sidebar once: the runs table
            _click(page, "Model training")  # the sidebar's switch between MLflow's two views
            _runs_table_listing(page, experiment, "overfit")
        with Browser(chromium, profile) as browser:
            # the same browser later: the bare address opens on the runs table, listing the run
            page = browser.open(bare)
            _runs_table_listing(page, experiment, "overfit")
            assert "workflowType=machine_learning" in page.url, page.url
            page = browser.open(f"{base}/#/experiments/{experiment}/runs/{run.info.run_id}")
            keys = ("loss", "l_grad", "val_qabf", "mu")
            page.wait_for(" && ".join(f"document.documentElement.outerHTML.includes({k!r})" for k in keys))
            page = browser.open(f"{base}/#/experiments/{experiment}/runs/{run.info.run_id}/artifacts/{figure}")
            page.wait_for(f"document.querySelector({f'img[alt={json.dumps(figure)}]'!r})?.src.startsWith('blob:')")
    finally:
        stop_process(server)
