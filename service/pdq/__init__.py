"""PDQ perceptual hashes (Meta's, via ``pdqhash``) and a near-duplicate index over them."""
