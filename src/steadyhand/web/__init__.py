"""The web dashboard for people on call: overview, workflows, each workflow's story, operator
actions and Prometheus metrics. `create_app(store, options)` builds the Starlette app.
"""

from steadyhand.web.app import DashboardOptions, create_app

__all__ = ["DashboardOptions", "create_app"]
