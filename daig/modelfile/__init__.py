"""Uploaded Keras model files: checked without executing anything, then loaded safely."""
