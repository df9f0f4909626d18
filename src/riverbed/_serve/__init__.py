"""riverbed over HTTP: the interfaces that a browser or another program reach (the
dashboard in ``riverbed._serve.ui``). They use riverbed's public API and the one JSON form
of its records, as any program would."""
