"""Study files: the whole pipeline (sources, filters, taxonomy, classifier, report) in YAML,
run by `bugatlas run STUDY.yaml`, resumably."""

from bugatlas.study.runner import STEPS, StepResult, Study, load_study_file, run_study

__all__ = ["STEPS", "StepResult", "Study", "load_study_file", "run_study"]
