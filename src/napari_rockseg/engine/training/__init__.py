"""Training from painted labels: data, sampler, losses, the trainer, checkpoints, distributed."""
