"""PDQ perceptual hashes (Meta's algorithm, in NumPy: `service.pdq.algorithm`) and a
near-duplicate index over them."""
