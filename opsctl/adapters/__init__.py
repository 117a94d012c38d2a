"""The only modules that import dvc, git (GitPython), docker and copier.

Each adapter turns its library's errors into opsctl errors, so services above
never see a foreign exception type.
"""
