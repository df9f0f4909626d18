"""The built-in processors: windows, joins, collecting and sampling (one module per family)."""
