"""Joining a Ray cluster, or starting a local Ray instance: the one module that imports
``ray`` first, with a clear error when the extra is not installed."""

from __future__ import annotations

import logging
import os
from types import ModuleType
from typing import Any

__all__ = ["connect", "ray_module"]

logger = logging.getLogger("riverbed")


def ray_module() -> ModuleType:
    """The ``ray`` package, or an ``ImportError`` that says which extra to install."""
    # Ray's driver replaces builtins.print with its own (tqdm_ray's safe_print) the first
    # time it shows a worker's output, unless told not to: a flow built before that with
    # sink(print) would then name a print that is no longer builtins.print, and could not
    # be saved as JSON. A process that runs riverbed keeps Python's print (unless the user
    # set the variable).
    os.environ.setdefault("RAY_TQDM_PATCH_PRINT", "0")
    try:
        import ray
    except ImportError as error:
        raise ImportError(
            "the Ray runner needs the ray package, which is not installed: install "
            "riverbed's ray extra (pip install 'riverbed[ray]')"
        ) from error
    return ray


def connect(address: str | None, init_options: dict[str, Any]) -> ModuleType:
    """Ray, connected: to the instance this process already joined, else to the cluster
    at ``address`` (``"auto"``, ``"ray://host:10001"``, ``"host:port"``), else to a new
    local instance that uses every core of this machine (``address`` None)."""
    ray = ray_module()
    if ray.is_initialized():
        return ray
    options = {"include_dashboard": False, "log_to_driver": True, **init_options}
    logger.info("joining Ray at %s", address or "a new local instance")
    # "local": a new instance of this process's own, even where another Ray cluster runs
    # on the machine (ray.init without an address would join that one).
    ray.init(address=address or "local", **options)
    return ray
