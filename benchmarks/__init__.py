"""On-demand benchmarks: agent overhead and accuracy against bare runs and peer profilers."""
