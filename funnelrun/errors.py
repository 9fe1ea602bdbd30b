"""The one exception type for user-facing problems: the CLI prints its message and exits non-zero."""


class FunnelrunError(Exception):
    """A problem with the user's input (config, data, checkpoint, output directory), with its fix."""


class RunInterrupted(FunnelrunError):
    """The run was stopped by a signal after saving a checkpoint it can resume from."""

    exit_code = 143  # 128 + SIGTERM, as shells report a SIGTERM'd process
