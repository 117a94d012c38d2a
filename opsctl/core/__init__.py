"""Services: plain Python that the CLI and the dashboard call.

Nothing here imports typer, rich or textual; results are dataclasses (named tuples where a hot path builds them).
"""
