"""Results of an evaluation: the result files, statistics (intervals, tests) and the paired comparison with the base model."""
