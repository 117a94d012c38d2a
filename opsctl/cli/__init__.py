"""The typer front end. Commands parse options, call one service, render the result.

Keep module tops light: ``opsctl --help`` must not import dvc, docker, git or
textual, so services are imported inside the command functions.
"""
