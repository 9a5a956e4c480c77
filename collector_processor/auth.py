"""The ``bearertokenauth`` extension on the server side: check ``Authorization: Bearer <token>``."""

from __future__ import annotations

import hmac
import logging
from pathlib import Path
from typing import Optional, Tuple

from collector_processor.extension.config import BearerTokenAuthConfig

__all__ = ["BearerTokenAuth"]

logger = logging.getLogger(__name__)


class BearerTokenAuth:
    """Accepts any configured token; a ``filename`` is re-read when the file changes (rotation)."""

    def __init__(self, name: str, config: BearerTokenAuthConfig) -> None:
        self.name = name
        self.config = config
        self._tokens: Tuple[bytes, ...] = tuple(t.encode() for t in config.tokens)
        self._file_stamp: Optional[Tuple[float, int]] = None

    def _current_tokens(self) -> Tuple[bytes, ...]:
        if self.config.filename is None:
            return self._tokens
        path = Path(self.config.filename)
        try:
            stat = path.stat()
            stamp = (stat.st_mtime, stat.st_size)
            if stamp != self._file_stamp:
                lines = path.read_text(encoding="utf-8").splitlines()
                self._tokens = tuple(line.strip().encode() for line in lines if line.strip())
                self._file_stamp = stamp
        except OSError as exc:
            logger.error("bearertokenauth %s: cannot read %s: %s", self.name, path, exc.strerror)
        return self._tokens

    def authenticate(self, header: Optional[str]) -> bool:
        """True when ``header`` (the Authorization value) carries an accepted token."""
        if not header:
            return False
        scheme, _, token = header.strip().partition(" ")
        if self.config.scheme:
            if scheme.lower() != self.config.scheme.lower():
                return False
            presented = token.strip().encode()
        else:
            presented = header.strip().encode()
        # Compare with every token in constant time, so timing reveals nothing.
        matched = False
        for accepted in self._current_tokens():
            matched |= hmac.compare_digest(presented, accepted)
        return matched
