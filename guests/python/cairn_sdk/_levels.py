"""Log levels shared by orchestrators and activities."""

import enum

from . import _host


class LogLevel(enum.Enum):
    """Severity of a log line."""

    TRACE = "trace"
    DEBUG = "debug"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"


_ALIASES = {"warning": "warn", "critical": "error", "fatal": "error"}


def to_wit(level):
    """The WIT log level for a :class:`LogLevel` or its name (``"info"``)."""
    if isinstance(level, LogLevel):
        name = level.value
    else:
        name = str(level).lower()
        name = _ALIASES.get(name, name)
    try:
        return _host.WitLogLevel[name.upper()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r}: use one of trace, debug, info, warn, error") from None


class LogMethods:
    """``log_debug`` ... ``log_error`` for a class with ``log(level, message)``."""

    def log_debug(self, message):
        self.log(LogLevel.DEBUG, message)

    def log_info(self, message):
        self.log(LogLevel.INFO, message)

    def log_warn(self, message):
        self.log(LogLevel.WARN, message)

    def log_error(self, message):
        self.log(LogLevel.ERROR, message)
