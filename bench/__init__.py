"""abasto benchmarks: each figure is reported beside its limit measured in the same run."""
