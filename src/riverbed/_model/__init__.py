"""The flow model: stages, flows, policies, sources, sinks. Knows nothing of runners."""
