"""riverbed's version, declared here only: the package metadata (``[tool.hatch.version]``
in pyproject.toml), ``riverbed.__version__`` and the store's messages all read it."""

__version__ = "0.1.0"
