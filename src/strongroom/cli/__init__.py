"""The command line: parses, calls one action, renders its result, maps errors to exit codes."""
