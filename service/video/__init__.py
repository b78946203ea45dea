"""Video checks: decoding, sampling, face tracks, the combining rule, jobs."""
