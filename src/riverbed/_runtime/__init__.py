"""Runners: what executes a flow. Each depends on the model, never the other way."""
