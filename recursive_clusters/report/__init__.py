"""The self-contained HTML report of a tree (the "deck"), for people who never open Dagster.

``model`` loads what is shown, ``maps`` draws the plotly figures, ``build`` lays them out
with the Jinja2 templates under ``templates/`` and the CSS/JS under ``static/``.
"""

from recursive_clusters.report.build import render_report, write_report
from recursive_clusters.report.model import leaf_summary

__all__ = ["leaf_summary", "render_report", "write_report"]
