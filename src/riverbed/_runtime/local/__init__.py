"""The local runner: one process, one asyncio loop, fused stage loops over batches."""
