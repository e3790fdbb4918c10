"""The shipped Grafana dashboard's PromQL, for the rule tests and the real-Prometheus test."""

from __future__ import annotations

import json
from pathlib import Path

DASHBOARD = (
    Path(__file__).resolve().parents[1]
    / "helm-free-deploy"
    / "prometheus"
    / "grafana-dashboard.json"
)


def dashboard_queries(*, concrete: bool) -> list[str]:
    """Every query of every panel and annotation; ``concrete`` fills in Grafana's variables."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    queries += [a["expr"] for a in dashboard["annotations"]["list"] if "expr" in a]
    if not concrete:
        return queries
    fill = {
        "$__rate_interval": "1m",
        "$__interval": "1m",
        "$__range": "1h",
        "$job": ".*",
        "$release": ".*",
    }
    out = []
    for query in queries:
        for variable, value in fill.items():
            query = query.replace(variable, value)
        assert "$" not in query, query
        out.append(query)
    return out
