"""Log lines a client can trigger, rate-limited and summarised (issue 26).

A client must not be able to fill the server's log: one line per malformed HTTP request (aiohttp's
report) or per gRPC request with a non-UTF-8 string (libprotobuf's C++ `LOG(ERROR)`: 548 lines in one
fuzz run) would. `RepeatLimiter` lets `BURST` lines of a kind through per `WINDOW_SECONDS`, counts the
rest, and says how many were left out on the next line of that kind it lets through.

libprotobuf's C++ lines are written to descriptor 2 by its default log handler, under no Python logger;
`route_protobuf_log` replaces that handler (google::protobuf::SetLogHandler, exported by the protobuf
"cpp" implementation's `_message` extension) with one feeding the `tfxp.serving.protobuf` logger through
a RepeatLimiter. With another implementation (upb, python) protobuf logs nothing there: nothing to do.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Hashable

log = logging.getLogger(__name__)
protobuf_log = logging.getLogger("tfxp.serving.protobuf")

BURST = 5  # lines of one kind let through per window
WINDOW_SECONDS = 60.0
# protobuf 3.x stubs/common.h LogLevel -> logging levels.
_PROTOBUF_LEVELS = {0: logging.INFO, 1: logging.WARNING, 2: logging.ERROR, 3: logging.CRITICAL}
# void SetLogHandler(void (*)(LogLevel, const char* filename, int line, const std::string& message)), as
# exported by protobuf 3.20's pyext/_message (std::string of the pre-C++11 ABI: "Ss").
_SET_LOG_HANDLER = "_ZN6google8protobuf13SetLogHandlerEPFvNS0_8LogLevelEPKciRKSsE"
_LogHandler = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p)


class RepeatLimiter:
    """Per key: the first BURST events of each WINDOW_SECONDS pass, the others are counted."""

    def __init__(self, burst: int = BURST, window_seconds: float = WINDOW_SECONDS):
        self._burst, self._window = burst, window_seconds
        self._lock = threading.Lock()
        self._state: dict[Hashable, list] = {}  # key -> [window start, passed, suppressed]

    def admit(self, key: Hashable) -> tuple[bool, int]:
        """(whether this event may be logged, how many of its kind were left out before it)."""
        now = time.monotonic()
        with self._lock:
            state = self._state.get(key)
            if state is None or now - state[0] >= self._window:
                suppressed = state[2] if state is not None else 0
                self._state[key] = [now, 1, 0]
                return True, suppressed
            if state[1] < self._burst:
                state[1] += 1
                suppressed, state[2] = state[2], 0
                return True, suppressed
            state[2] += 1
            return False, 0


def summarised(message: str, suppressed: int) -> str:
    if not suppressed:
        return message
    return f"{message} (and {suppressed} more like it in the last {WINDOW_SECONDS:g} s, not logged)"


_protobuf_limiter = RepeatLimiter()
_installed: list = []  # keeps the ctypes callback alive for as long as protobuf may call it


def _on_protobuf_log(level: int, filename: bytes | None, line: int, message_address: int | None) -> None:
    """libprotobuf's log handler: never raises (it runs inside C++)."""
    try:
        text = ctypes.c_char_p.from_address(message_address).value if message_address else b""
        where = f"{(filename or b'?').decode(errors='replace')}:{line}"
        admitted, suppressed = _protobuf_limiter.admit(where)
        if admitted:
            message = f"[libprotobuf {where}] {(text or b'').decode(errors='replace').strip()}"
            protobuf_log.log(_PROTOBUF_LEVELS.get(level, logging.ERROR), "%s", summarised(message, suppressed))
    except Exception:  # noqa: BLE001 - an exception must not unwind into C++
        pass


def route_protobuf_log() -> bool:
    """Sends libprotobuf's C++ log lines through the `tfxp.serving.protobuf` logger, rate-limited.
    Returns whether it could (the cpp implementation of protobuf 3.x is loaded)."""
    if _installed:
        return True
    try:
        from google.protobuf.internal import api_implementation
        from google.protobuf.pyext import _message  # type: ignore[attr-defined]

        if api_implementation.Type() != "cpp":
            return False
        set_handler = getattr(ctypes.CDLL(_message.__file__), _SET_LOG_HANDLER)
    except (ImportError, OSError, AttributeError) as exc:
        log.debug("libprotobuf's log lines stay as they are: %s", exc)
        return False
    set_handler.argtypes, set_handler.restype = [_LogHandler], ctypes.c_void_p
    handler = _LogHandler(_on_protobuf_log)
    set_handler(handler)
    _installed.append(handler)
    return True
