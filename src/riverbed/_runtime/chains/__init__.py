"""Chain execution, shared by every runner: what happens to a batch of events inside one
chain of fused stages (the generated loop, async stages with bounded concurrency,
processors, runner-owned operators, the policy slow path, the step cache). A runner moves
batches between chains; how it does so (tasks and channels in one process, actors on a
cluster) is its own business, and never this package's."""
