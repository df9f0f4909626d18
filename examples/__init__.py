"""Example flows; each module has a module-level ``flow`` (``riverbed run examples.NAME:flow``)."""
