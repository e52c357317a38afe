"""Dataset access, progress targets and annotation I/O."""
