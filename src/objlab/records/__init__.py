"""Records that cross stage boundaries and that the results store holds: metric rows and item records (``items``)."""
