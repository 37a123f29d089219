"""A Ctrl-C or SIGTERM that Python swallowed, raised again where refcomp can act on it.

The CLI turns SIGINT / SIGTERM into an exception raised in the main thread.
CPython runs a signal handler between two bytecodes of whatever the main
thread is executing; when that is a weakref callback or a ``__del__`` (the
garbage collector can run either anywhere), the exception is printed as
"Exception ignored in ..." and dropped, and the command would run on to the
end and write its outputs.  So the handler also records the exception here,
and the places that wait for work or are about to publish a file call
:func:`check`, which raises it (once) if it is still pending.
"""

_pending = None

__all__ = ["set_pending", "clear", "check"]


def set_pending(exc):
    """Record ``exc`` (a BaseException instance) as the signal to deliver."""
    global _pending
    _pending = exc


def clear():
    """Forget any pending signal (the command has ended)."""
    global _pending
    _pending = None


def check():
    """Raise the pending signal's exception, if any, and forget it."""
    global _pending
    exc, _pending = _pending, None
    if exc is not None:
        raise exc
