"""The one exception type a user can act on. No Beam or TensorFlow in here: the
command line and the table queries import it before (or instead of) a job."""


class UserError(ValueError):
    """A mistake the user can fix; the CLI prints it as one line, no traceback."""
