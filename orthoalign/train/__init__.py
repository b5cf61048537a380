"""The trainer: state, the pure train step, the loop, checkpoints and sharding."""
