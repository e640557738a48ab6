"""Errors a user can fix: the CLI turns them into one line and exit status 2."""


class ConfigError(ValueError):
    """A bad option, spec or file; the message names the problem and the fix."""
