"""Argument parsing for each `distill` subcommand group; the work itself lives in the library."""
