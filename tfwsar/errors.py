"""The one exception type that bad input raises.

Every reader, converter and command-line tool raises `DataError` with a message that names the
file and line (or the video) at fault. Command-line tools catch it, print `error: <message>` to
stderr and exit with status 1, leaving no partial output behind.
"""


class DataError(ValueError):
    """Input data (an annotation file, a feature file, a prediction file) is malformed."""
