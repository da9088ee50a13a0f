"""What survives a try: sidecars, local files, locks, checkpoints, verification of kept bytes, hashing."""
