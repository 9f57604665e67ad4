"""Model kinds (U-Net, bag, ensemble, forest, LDA), their metadata and the model file format."""
