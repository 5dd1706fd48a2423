"""Explaining a node leaves nothing of its caller alive: the CLI grows a 10,000,000-row tree's
next level in workers, and any table its own process still held would count twice."""

import subprocess
import sys

FRESH_PROCESS = """
import gc
import numpy as np
import pandas as pd
from recursive_clusters.core.explain import explain_with_shap, train_classifiers
from recursive_clusters.core.settings import ExplanationSettings

freed = []

class Table:  # stands for the run's feature table, a local of the step that explains
    def __del__(self):
        freed.append(True)

def step():
    table = Table()
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 60)
    features = pd.DataFrame(rng.normal(labels[:, None] * 3.0, 1.0, (120, 4)), columns=list("abcd"))
    settings = ExplanationSettings(shap_sample_per_child=20, top_k=2)
    models = train_classifiers(features, labels, settings, random_state=0)
    explain_with_shap(models, features, labels, np.arange(120), settings, random_state=0)
    return table is not None

assert step()
gc.collect()
print("freed" if freed else "held")
"""


def test_the_callers_table_is_freed_once_the_node_is_explained():
    """In a fresh interpreter, where the first SHAP values are computed as in a run."""
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "freed", result.stderr[-2000:]
