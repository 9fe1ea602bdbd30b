"""Training: Lightning module, plots, W&B setup."""
