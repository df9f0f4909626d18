"""The Ray runner: a flow's chains in Ray actors, its workflows' steps as Ray tasks (see
``runner`` for what a user creates, ``driver`` for how a stream runs)."""
