"""One try of a transfer from plan to publish: download, upload, many files, remote post-actions."""
