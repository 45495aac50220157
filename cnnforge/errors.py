"""The one base of what a command refuses to use: a checkpoint, data set or model file it was given."""


class Refused(Exception):
    """A file or data a command cannot use: the message says which and why, in one line, and the command exits
    with status 1 (cnnforge.use.command.run)."""
