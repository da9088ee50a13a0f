"""Moving bytes fast: pipelined requests, bytes in flight, segments and worker processes."""
