"""Prediction: device and precision, the sliding window, whole images, huge images, batches."""
