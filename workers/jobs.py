"""RQ job entry points: thin wrappers that build the app and call into the package."""



def ping(value):
    """Return what it was given (a trivial job to prove a worker runs)."""
    return value
