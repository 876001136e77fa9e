"""The batch inference evaluator: MONAI's ``SupervisedEvaluator`` that fuses every pair it can.

A datalist of a thousand pairs whose pair 500 is broken (a corrupt file, a refused pair, a failed write) should
not leave 500 pairs unfused: each pair that fails, while it is loaded, fused or written, is logged with its
item and files and skipped, the others are fused, and at the end :class:`PairsFailedError` names every one
and how to continue the run (``--skip_existing true``). A run of one pair ends with that pair's own error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ignite.engine import Engine, Events
from monai.engines import SupervisedEvaluator

from hkafusion_monai.utils.cli import QuietRefusedInput, debug_enabled, error_line, one_line, project_error
from hkafusion_monai.utils.errors import PairsFailedError, StorageError

__all__ = ["FusionEvaluator", "PairFailure"]

logger = logging.getLogger(__name__)


@dataclass
class PairFailure:
    """A pair the run could not fuse: its item number in the run's list, its files and the error."""

    index: int
    item: Mapping[str, Any]
    error: Exception

    def describe(self) -> str:
        """``"item 3 (mri.png, pet.png): <the error's message>"``."""
        files = ", ".join(str(self.item[k]) for k in ("mri", "other") if k in self.item)
        message = error_line(self.error)
        message = message[len("error: ") :] if message else one_line(self.error)
        return f"item {self.index} ({files}): {message}"


@dataclass
class _FailedBatch:
    """What the data loader yields in place of a batch it could not load."""

    index: int
    error: Exception


class _Loader(Protocol):
    """A data loader with a length: a torch ``DataLoader``, or a list of batches."""

    def __iter__(self) -> Iterator[Any]: ...

    def __len__(self) -> int: ...


class _EachBatch:
    """The data loader, yielding a :class:`_FailedBatch` for a batch whose loading raised instead of stopping:
    torch's loader iterator moves on to the next batch after an error in one."""

    def __init__(self, loader: _Loader) -> None:
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        batches = iter(self.loader)
        for index in range(len(self)):
            try:
                yield next(batches)
            except StopIteration:
                return
            except Exception as e:
                yield _FailedBatch(index, e)


class FusionEvaluator(SupervisedEvaluator):
    """``SupervisedEvaluator`` for batch inference (``bundle/configs/inference.json``) that fuses every pair it
    can (batch size 1, in the data loader's order).

    A pair whose loading (the data loader), fusion or postprocessing (the writer) raises an ``Exception`` is
    logged with its item number and files, kept in :attr:`failures`, and skipped. At the end of the run
    (``EPOCH_COMPLETED``, after the other handlers and before the MLflow run is closed, so that it ends FAILED)
    :class:`~hkafusion_monai.utils.errors.PairsFailedError` names every failed pair; with a single pair in the
    run, that pair's own error is raised instead. Interruptions (Ctrl-C, SIGTERM) are no pair's failure: they stop
    the run, and so does a :class:`~hkafusion_monai.utils.errors.StorageError` (a full or read-only disk), which
    every later pair would meet too.

    Args:
        device, val_data_loader, network: as for ``SupervisedEvaluator``.
        items: the run's data items (``mri``, ``other``), to name a failed pair; default the data loader's
            dataset's ``data``. An :class:`~hkafusion_monai.inference.InferenceItems` also gives each item's
            number in the split, the split's size (``--skip_existing`` leaves pairs out) and whether the run is
            of one pair; a plain list is one pair when it holds one.
        kwargs: as for ``SupervisedEvaluator``.
    """

    def __init__(
        self,
        device: Any,
        val_data_loader: _Loader,
        network: Any,
        items: Sequence[Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("epoch_length", len(val_data_loader))  # MONAI asks it of a loader that is not a DataLoader
        super().__init__(device=device, val_data_loader=_EachBatch(val_data_loader), network=network, **kwargs)
        if items is None:
            items = getattr(getattr(val_data_loader, "dataset", None), "data", None) or []
        self.items = list(items)
        # an inference run's items say which pairs of the split they are (--skip_existing leaves some out)
        self.numbers: list[int] = list(getattr(items, "numbers", range(len(self.items))))
        self.total: int = getattr(items, "total", len(self.items))
        self.single: bool = getattr(items, "single", len(self.items) <= 1)
        self.failures: list[PairFailure] = []
        QuietRefusedInput.attach(self)  # a refused input ends with its one line, not ignite's two ERROR lines too
        self.add_event_handler(Events.STARTED, lambda engine: self.failures.clear())
        self.add_event_handler(Events.EPOCH_COMPLETED, self._raise_failures)

    def _iteration(self, engine: Any, batchdata: Any) -> Any:
        index = engine.state.iteration - 1
        if isinstance(batchdata, _FailedBatch):
            return self._failed(batchdata.index, batchdata.error)
        try:
            return super()._iteration(engine, batchdata)
        except Exception as e:
            return self._failed(index, e)

    def _failed(self, index: int, error: Exception) -> list:
        if self.single:  # a single pair ends with its own error, at once
            raise error
        if isinstance(project_error(error), StorageError):  # a full or read-only disk fails every pair after it
            raise error
        item = self.items[index] if 0 <= index < len(self.items) else {}
        failure = PairFailure(self.numbers[index] if 0 <= index < len(self.numbers) else index, item, error)
        self.failures.append(failure)
        logger.error("could not fuse %s; going on with the next pair", failure.describe(), exc_info=debug_enabled())
        return []  # no output: the iteration's handlers see no pair

    def _raise_failures(self, engine: Engine) -> None:
        if not self.failures:
            return
        n, total, kept = len(self.failures), self.total, self.total - len(self.items)
        listed = "; ".join(f.describe() for f in self.failures)
        earlier = f" ({kept} of them by an earlier run, kept with --skip_existing)" if kept else ""
        raise PairsFailedError(
            f"{n} of {total} pair(s) could not be fused, the other {total - n} were{earlier}: {listed}. Fix them and "
            "rerun with --skip_existing true to fuse only the pairs without an output"
        ) from self.failures[0].error
