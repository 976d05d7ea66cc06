"""The server: config, wiring, listeners, jobs and the `tetra` command. Knows no certificate rules."""
