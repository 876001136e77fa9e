"""A study's pairs each run their task's own model where one lies beside the default model, else the default
(joint) one; each task model is loaded once."""

from __future__ import annotations

from pathlib import Path

from hkafusion_monai.inference import TaskFusers


class _Recorder:
    def __init__(self, name: str, calls: list) -> None:
        self.name, self.calls = name, calls

    def fuse_volumes(self, mri, other, modality, **kwargs):
        self.calls.append((self.name, modality, kwargs))
        return self.name


def _models(folder: Path, suffix: str, *tasks: str) -> Path:
    folder.mkdir()
    for name in ("model", *(f"model_{t}" for t in tasks)):
        (folder / f"{name}{suffix}").write_bytes(b"weights")
    return folder / f"model{suffix}"


def test_each_pair_runs_its_tasks_own_model_else_the_default(tmp_path: Path) -> None:
    model = _models(tmp_path / "models", ".ts", "mri_ct")
    calls: list = []
    loaded: list = []

    def load(weights, task):
        loaded.append((Path(weights).name, task))
        return _Recorder(Path(weights).name, calls)

    fusers = TaskFusers(_Recorder("model.ts", calls), model, load)
    assert fusers.fuse_volumes("mri", "ct", modality="CT", register="auto") == "model_mri_ct.ts"
    assert fusers.fuse_volumes("mri", "ct", modality="CT") == "model_mri_ct.ts"
    assert fusers.fuse_volumes("mri", "pet", modality="PET") == "model.ts"
    assert fusers.fuse_volumes("mri", "nm", modality="SPECT") == "model.ts"
    assert loaded == [("model_mri_ct.ts", "mri_ct")]  # loaded once, for its own task
    assert calls[0] == ("model_mri_ct.ts", "CT", {"register": "auto"})


def test_a_model_named_otherwise_is_used_for_every_pair(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "model_mri_ct.pt").write_bytes(b"weights")
    mine = folder / "best.pt"
    mine.write_bytes(b"weights")
    fusers = TaskFusers(_Recorder("best.pt", []), mine, lambda w, t: _Recorder("other", []))
    assert fusers.model_for("CT") == mine and fusers.fuse_volumes("m", "c", modality="CT") == "best.pt"
