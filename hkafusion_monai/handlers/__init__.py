"""Ignite/MONAI handlers, one handler (and its helpers) per module, as in ``monai/handlers``:

- ``dynamic_mu``: :class:`DynamicMuHandler`, the loss's dynamic weight mu;
- ``fusion_metrics``: the eight fusion-metric handlers; ``fusion_checks``: the reader's checks;
- ``checkpoint``: resumable training state, safe weights loading, the output-folder check;
- ``mlflow_run``: :class:`MLflowRun`, the one adapter through which the package writes to the MLflow run of a
  MONAI ``MLFlowHandler``;
- ``run_record``: :class:`MLflowRunRecorder`, the reproducibility record of a training or evaluation run;
- ``inference_record``: :class:`InferenceRunRecorder`, the record of an inference run;
- ``inference_checks``: :class:`InferenceChecksHandler`, the hot-spot guard and the registration record of
  each pair an inference run fuses;
- ``learning_rate``: :class:`LearningRateRecorder`; ``fusion_grid``: :class:`FusionGridHandler`;
- ``evaluation``: the side-by-side evaluation report, rendered by ``html_report``;
- ``run_status``: runs that end FAILED/KILLED, and where a run left its outputs.
"""

from hkafusion_monai.handlers.checkpoint import (
    TrainingStateLoader,
    TrainingStateSaver,
    WeightsLoader,
    check_output_dir,
    checkpoint_label,
    resume_run_name,
    trained_or_shipped,
)
from hkafusion_monai.handlers.dynamic_mu import DynamicMuHandler
from hkafusion_monai.handlers.evaluation import FusionEvaluationReport
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
from hkafusion_monai.handlers.run_status import report_outputs, run_tracked

__all__ = [
    "DynamicMuHandler",
    "FusionChecksHandler",
    "FusionEvaluationReport",
    "TrainingStateLoader",
    "TrainingStateSaver",
    "WeightsLoader",
    "check_output_dir",
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
    "run_tracked",
]
