"""Model weights as lists of numpy arrays: their schema, their wire format, their ``.h5`` home."""
