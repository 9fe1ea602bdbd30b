"""The one exception type for user-facing problems: the CLI prints its message and exits non-zero."""


class FunnelrunError(Exception):
    """A problem with the user's input (config, data, checkpoint, output directory), with its fix."""
