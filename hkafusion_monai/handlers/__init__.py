"""Ignite/MONAI handlers, one handler (and its helpers) per module, as in ``monai/handlers``:

- ``dynamic_mu``: :class:`DynamicMuHandler`, the loss's dynamic weight mu;
- ``fusion_metrics``: the eight fusion-metric handlers; ``fusion_checks``: the reader's checks;
- ``checkpoint_saver``: the resumable training state and the output-folder check; ``checkpoint_loader``: the
  one weights loader and the training-state loader (MONAI's ``CheckpointLoader``, subclassed);
- ``mlflow_run``: :class:`MLflowRun`, the one adapter through which the package writes to the MLflow run of a
  MONAI ``MLFlowHandler``;
- ``mlflow_store``: where runs are kept (one SQLite store per user, built whole under a lock) and run names;
- ``run_record``: :class:`MLflowRunRecorder`, the reproducibility record of a training or evaluation run;
- ``inference_record``: :class:`InferenceRunRecorder`, the record of an inference run;
- ``inference_checks``: :class:`InferenceChecksHandler`, the hot-spot guard and the registration record of
  each pair an inference run fuses;
- ``learning_rate``: :class:`LearningRateRecorder`; ``fusion_grid``: :class:`FusionGridHandler`;
- ``evaluation``: the side-by-side evaluation report, rendered by :mod:`hkafusion_monai.reports.html_report`.

What is not a handler lives in :mod:`hkafusion_monai.reports`: the HTML page and figures, how a run ends.
"""

from hkafusion_monai.handlers.checkpoint_loader import TrainingStateLoader, WeightsLoader
from hkafusion_monai.handlers.checkpoint_saver import (
    TrainingStateSaver,
    check_output_dir,
    checkpoint_label,
    resume_run_name,
    trained_or_shipped,
)
from hkafusion_monai.handlers.dynamic_mu import DynamicMuHandler
from hkafusion_monai.handlers.evaluation import FusionEvaluationReport, MethodMetricsCollector
from hkafusion_monai.handlers.fusion_checks import FusionChecksHandler
from hkafusion_monai.handlers.fusion_grid import FusionGridHandler
from hkafusion_monai.handlers.fusion_metrics import (
    FUSION_METRIC_HANDLERS,
    VIF,
    AverageGradient,
    CorrelationCoefficient,
    FusionMetricHandler,
    FusionSSIM,
    MutualInformation,
    Qabf,
    Qcv,
    SpatialFrequency,
    fusion_metric_handlers,
)
from hkafusion_monai.handlers.inference_checks import InferenceChecksHandler
from hkafusion_monai.handlers.inference_record import InferenceRunRecorder
from hkafusion_monai.handlers.learning_rate import LearningRateRecorder
from hkafusion_monai.handlers.mlflow_run import MLflowRun
from hkafusion_monai.handlers.run_record import MLflowRunRecorder
from hkafusion_monai.io.mlflow_store import default_tracking_uri, run_name, tracking_uri

__all__ = [
    "DynamicMuHandler",
    "FusionChecksHandler",
    "FusionEvaluationReport",
    "MethodMetricsCollector",
    "TrainingStateLoader",
    "TrainingStateSaver",
    "WeightsLoader",
    "check_output_dir",
    "default_tracking_uri",
    "checkpoint_label",
    "fusion_metric_handlers",
    "resume_run_name",
    "trained_or_shipped",
    "FusionGridHandler",
    "FusionMetricHandler",
    "InferenceChecksHandler",
    "InferenceRunRecorder",
    "LearningRateRecorder",
    "MLflowRun",
    "default_tracking_uri",
    "timestamped",
    "MLflowRunRecorder",
    "MutualInformation",
    "SpatialFrequency",
    "VIF",
    "AverageGradient",
    "Qabf",
    "Qcv",
    "CorrelationCoefficient",
    "FusionSSIM",
    "FUSION_METRIC_HANDLERS",
    "report_outputs",
    "run_name",
    "run_tracked",
    "tracking_uri",
]
