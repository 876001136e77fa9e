"""What a run reports, beside its handlers: the evaluation's HTML page and its figures (``html_report``), and how
a workflow run ends, FAILED/KILLED in MLflow when it does not finish, and where it left its outputs
(``run_status``). None of these is an ignite handler: the bundle configs call them in their run steps, and the
handlers (the evaluation report, the validation grids) render with them.
"""

from hkafusion_monai.reports.run_status import describe_initial_weights, mark_runs_ended, report_outputs, run_tracked

__all__ = ["describe_initial_weights", "mark_runs_ended", "report_outputs", "run_tracked"]
