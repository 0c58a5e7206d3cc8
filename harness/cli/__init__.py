"""The `bench` command: `main` parses argv and maps errors to exit codes; `commands` does each subcommand."""
