"""Errors a user can fix: the CLI turns them into one line and exit status 2."""


class ConfigError(ValueError):
    """A bad option, spec or file; the message names the problem and the fix."""


class AgreedConfigError(ConfigError):
    """A ConfigError that every rank raised together, having compared notes: rank 0 prints it and every
    rank exits 2, with no MPI_Abort (which would print a second, louder message naming one rank)."""
