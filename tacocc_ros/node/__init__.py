"""The occupancy node: parameters, synchronisation, frame assembly, the inference worker, output messages."""
