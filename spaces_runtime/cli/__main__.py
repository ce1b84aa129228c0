"""`python -m spaces_runtime.cli` runs the `spaces` command."""

from spaces_runtime.cli import main

main()
