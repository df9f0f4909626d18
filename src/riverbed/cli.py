"""The ``riverbed`` command line: run a flow, draw it, look after stored runs.

    riverbed run app:flow               run a flow on the local engine, print its summary
    riverbed graph app:flow             its Mermaid flowchart (--format text | json)
    riverbed runs list                  stored runs (show, resume, rerun, cancel, recover, prune)
    riverbed dead-letters list          events stages could not process (replay)
    riverbed schedule app:flow          into the store's queue; `riverbed worker` runs it
    riverbed ui                         the web dashboard of the store (the serve extra)
    riverbed --version

TARGET is ``module:attr`` or ``path/to/file.py:attr`` (see ``load_flow``). Exit codes
(``ExitCode``): 0 done (a run SUCCEEDED), 1 the run FAILED, the action was refused or the
store failed, 2 the command was wrong (a bad TARGET, option or store URL, a malformed
flow), 4 no such run, 130 the run was CANCELLED (Ctrl-C). The commands live in
``riverbed._cli``, one module per job; like every interface they use only what
``riverbed`` exports.
"""

from __future__ import annotations

from riverbed._cli import ExitCode, GraphFormat, app, exit_code, main
from riverbed._serve.command import ui
from riverbed._serve.serve_command import serve
from riverbed._targets import load_flow

app.command()(ui)  # the dashboard's command, kept beside it (see riverbed._serve.command)
app.command()(serve)  # likewise: _cli never imports _serve, which imports _cli

__all__ = ["ExitCode", "GraphFormat", "app", "exit_code", "load_flow", "main"]

if __name__ == "__main__":
    main()
