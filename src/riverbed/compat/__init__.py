"""The seed systems' own APIs as thin dialects over riverbed's public API.

Each module maps one earlier system's names onto riverbed (docs/compat.md): a user of that
system changes the import line and keeps the code; the logic lives in riverbed's native
capabilities. ``riverbed.compat.reflow``, ``.ebbs_and_flows``, ``.flowforge``, ``.flowkit``
and ``.framework``.
"""
