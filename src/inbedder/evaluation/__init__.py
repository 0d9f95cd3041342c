"""Evaluate embedders on local data: standard tasks, instruction awareness and robustness, latency.

Each task is a frozen dataclass with ``evaluate(model, instruction=None, settings=None) -> dict[str, float]``
and a ``primary`` metric name; ``load_*`` functions build one from a ``.jsonl`` / ``.json`` / ``.csv`` /
``.tsv`` file (``load_beir`` from a BEIR folder). scikit-learn (and matplotlib, for heatmaps) come with
``pip install "inbedder[eval]"``.

>>> from inbedder import load                                                            # doctest: +SKIP
>>> from inbedder.evaluation import load_sts, load_awareness, heatmap                     # doctest: +SKIP
>>> model = load("minilm")                                                               # doctest: +SKIP
>>> load_sts("sts-test.jsonl").evaluate(model)                                           # doctest: +SKIP
{'spearman': 0.82, 'pearson': 0.83, 'n': 1379.0}
>>> task = load_awareness("data.csv", {"category": "What aspect is discussed?",
...                                    "polarity": "What is the sentiment?"})            # doctest: +SKIP
>>> result = task.run(model); result.summary, result.matrix                              # doctest: +SKIP
"""

from __future__ import annotations

from ..io.table import read_table
from .awareness import AwarenessResult, AwarenessTask, heatmap, load_awareness
from .classification import ClassificationTask, load_classification
from .clustering import ClusteringTask, load_clustering
from .common import EvalSettings, Task
from .latency import measure_latency
from .results import make_result, read_result, report, write_result
from .retrieval import RetrievalTask, load_beir
from .robustness import RobustnessResult, robustness
from .sts import STSTask, load_sts
from .text_evaluation import TextEvaluationTask, load_text_evaluation
from .triplet import TripletTask, load_triplets

__all__ = [
    "AwarenessResult", "AwarenessTask", "ClassificationTask", "ClusteringTask", "EvalSettings", "RetrievalTask",
    "RobustnessResult", "STSTask", "Task", "TextEvaluationTask", "TripletTask", "heatmap", "load_awareness",
    "load_beir", "load_classification", "load_clustering", "load_sts", "load_text_evaluation", "load_triplets",
    "make_result", "measure_latency", "read_result", "read_table", "report", "robustness", "write_result",
]
