"""How runs end when something small goes wrong (docs/failure_behaviour.md): a checkpoint refusal that teaches
nothing about running the blocked code, a SIGTERM during the interpreter's exit, and the batch summary of a
continued run."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tests.helpers import REPO, ending_line, infer, random_checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_checkpoint(tmp_path_factory)


class _Opens:
    """A pickle that calls ``io.open`` when loaded unsafely (torch's refusal then advises allow-listing it)."""

    def __reduce__(self):
        return (io.open, ("/dev/null",))


def test_a_refused_checkpoint_never_says_how_to_load_it(phantom: Path, tmp_path: Path) -> None:
    evil = tmp_path / "evil.pt"
    torch.save({"model": _Opens()}, evil)
    mri = sorted((phantom / "png/mri_pet/test/MRI").glob("*.png"))[0]
    other = mri.parent.parent / "PET" / mri.name
    line = ending_line(lambda: infer(evil, tmp_path / "out", mri=str(mri), other=str(other)))
    assert (
        line == f"error: {evil}: holds objects other than weights, refused for safety (the object io.open, "
        "which is no weight)"
    ), line


SIGTERM_AT_EXIT = textwrap.dedent(
    """
    import atexit, os, signal, time
    from hkafusion_monai.utils.cli import install_cli_handlers

    install_cli_handlers()

    def late():  # the outputs are published; the interpreter is exiting when SIGTERM arrives
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.5)

    atexit.register(late)
    print("published", flush=True)
    """
)


def test_a_sigterm_while_the_interpreter_exits_still_ends_non_zero() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SIGTERM_AT_EXIT], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "published" and result.returncode == 128 + signal.SIGTERM, result.stderr


def test_a_continued_batch_run_ends_with_the_summary(ckpt: Path, phantom: Path, tmp_path: Path) -> None:
    """Three pairs, two fused by an earlier run; the one left fails: the run names it as item 2 of 3, in the
    summary of a batch run, not as a run of one pair."""
    spec = json.loads((phantom / "datalists" / "png_ct.json").read_text())
    base = (phantom / "datalists" / spec.get("base_dir", ".")).resolve()
    items = [{**it, "mri": str(base / it["mri"]), "other": str(base / it["other"])} for it in spec["training"]]
    items += [{**it, "mri": str(base / it["mri"]), "other": str(base / it["other"])} for it in spec["test"][:1]]
    assert len(items) == 3
    datalist = tmp_path / "three.json"
    datalist.write_text(json.dumps({"training": [], "validation": [], "test": items}))
    out = tmp_path / "out"
    infer(ckpt, out, datalist=str(datalist))
    assert len(list(out.glob("*_fused.png"))) == 3
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    items[2] = {**items[2], "other": str(bad)}
    datalist.write_text(json.dumps({"training": [], "validation": [], "test": items}))
    (out / Path(items[2]["mri"]).with_suffix("").name).with_name(Path(items[2]["mri"]).stem + "_fused.png").unlink()
    line = ending_line(lambda: infer(ckpt, out, datalist=str(datalist), skip_existing="true"))
    assert line.startswith(
        "error: 1 of 3 pair(s) could not be fused, the other 2 were (2 of them by an earlier run, kept with "
        f"--skip_existing): item 2 ({items[2]['mri']}, {bad}): {bad}: "
    ), line
