"""The ``riverbed`` command line, one module per job (public as ``riverbed.cli``):

- ``app``: the command put together, ``--version``, ``graph``, ``version``
- ``run``: ``riverbed run TARGET``
- ``runs``: ``runs list | show | cancel | prune``
- ``again``: ``runs resume | rerun`` (running a stored run again)
- ``recover``: ``runs recover``
- ``letters``: ``dead-letters list | replay``
- ``queue``: ``schedule`` and ``worker``
- ``render``: the one renderer (text, and JSON through the records' ``to_dict``)
- ``failure``: where a failed run failed in the user's code
- ``exits``: the one enum of exit codes, and one-line errors
- ``options``: shared options and the parsing of what users type
- ``targets``, ``store``, ``stored``: the flow of a TARGET, the store, stored runs' flows

Like every interface it uses only what ``riverbed`` exports (and ``riverbed._targets``,
the loading of a TARGET that workers share).
"""

from riverbed._cli.app import GraphFormat, app, main
from riverbed._cli.exits import ExitCode, exit_code

__all__ = ["ExitCode", "GraphFormat", "app", "exit_code", "main"]
