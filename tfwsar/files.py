"""Atomic JSON writes: every JSON file tfwsar writes appears whole or not at all.

The document goes to a temporary file in the target's directory, which is renamed over the target
only once complete; a failure (a NaN refused by `allow_nan=False`, a full disk, an interrupt)
removes the temporary file and leaves any previous version untouched.
"""

import json
import os
import tempfile


def write_json_atomically(path, document, *, indent=2, sort_keys=False, allow_nan=False):
    """Writes `document` as JSON to `path` atomically, creating the parent directory.

    The file gets the permissions a plain `open(path, "w")` would give (tempfile's are 0600).
    """
    path = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=directory,
                                         prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                                         delete=False)
    try:
        with handle:
            json.dump(document, handle, indent=indent, sort_keys=sort_keys, allow_nan=allow_nan)
            handle.write("\n")
        umask = os.umask(0o022)
        os.umask(umask)
        os.chmod(handle.name, 0o666 & ~umask)
        os.replace(handle.name, path)
    except BaseException:
        if os.path.exists(handle.name):
            os.remove(handle.name)
        raise
