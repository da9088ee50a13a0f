"""Real servers and a fault-injecting proxy for the tests, the demo and the benchmarks."""
