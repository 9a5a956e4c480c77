from contextvars import Context
from types import CodeType, FrameType
from typing import Any, Callable

def thread_context(ident: int, /) -> Context | None: ...
def walk_stack(
    frame: FrameType | None, max_depth: int, /
) -> tuple[tuple[int, ...], list[CodeType]]: ...
def thread_native_id(ident: int, /) -> int | None: ...
def walk_thread(ident: int, max_depth: int, /) -> tuple[tuple[int, ...], list[CodeType]] | None: ...
def thread_handles() -> dict[int, int]: ...
def span_clock_ns() -> int: ...
def span_clock_source() -> str: ...

class SpanHooks:
    first_ending: Callable[[], None] | None
    ending_seen: int
    untracked: int
    write_failures: int
    def __init__(
        self,
        live: dict[int, list[Any]],
        clock: Callable[[], int],
        running_loop: Callable[[], Any],
        bounded_type: type,
        slow_end: Callable[[Any, list[Any]], None],
        write: Callable[[Any, dict[str, Any]], None],
        on_error: Callable[[str], None],
        max_live: int,
        span_attributes: bool,
        pyroscope: bool,
    ) -> None: ...
    def on_start(self, span: Any, parent_context: Any = None) -> None: ...
    def on_ending(self, span: Any) -> None: ...
