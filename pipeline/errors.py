"""The exceptions a user meets as one line on stderr, never a traceback. No Beam or
TensorFlow in here: the command line and the table queries import it before (or
instead of) a job."""


class UserError(ValueError):
    """A mistake the user can fix (a flag, a path, an output already committed):
    one line, exit status 2."""


class RunFailure(RuntimeError):
    """A run-time failure the user did not cause by a flag (the output device full, the
    output claimed by another run, a model directory gone): one line, exit status 1."""
