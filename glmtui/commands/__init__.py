"""The command line's commands, one module per group. Heavy imports stay inside the functions."""
