"""Where a download's bytes go: the destination seam (:mod:`.protocol`) and its implementations."""
