"""The learning rate per epoch, for the epoch loggers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ignite.engine import Engine, Events

if TYPE_CHECKING:
    from monai.engines import SupervisedTrainer

__all__ = ["LearningRateRecorder"]


class LearningRateRecorder:
    """Put the optimiser's learning rate into ``engine.state.metrics`` at every epoch end, so that the epoch
    loggers (``MLFlowHandler``, ``StatsHandler``) record the lr per epoch. Attach it before them.

    ``MLFlowHandler(optimizer_param_names="lr")`` logs ``lr_group_0`` at every *iteration*; the training
    report and the tests read this per-epoch ``lr``, beside the epoch's metrics and mu.

    Args:
        name: the metrics key.
        group: the optimiser parameter group.
    """

    def __init__(self, name: str = "lr", group: int = 0) -> None:
        self.name = name
        self.group = group

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: SupervisedTrainer) -> None:
        engine.state.metrics[self.name] = float(engine.optimizer.param_groups[self.group]["lr"])
