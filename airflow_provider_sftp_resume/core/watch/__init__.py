"""Watching remote files: the size+mtime quiet period behind the stability sensor and trigger."""
