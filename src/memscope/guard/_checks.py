"""Argument checks the guard primitives share beyond memscope._base.validate (same rule: a wrong
type is a TypeError naming the argument and what it accepts)."""

from __future__ import annotations

import logging
from typing import cast

__all__ = ["check_logger"]


def check_logger(logger: object) -> logging.Logger:
    """``logger`` if it is a logging.Logger or LoggerAdapter (a TypeError naming it otherwise)."""
    if not isinstance(logger, (logging.Logger, logging.LoggerAdapter)):
        raise TypeError(
            f"logger must be a logging.Logger, a logging.LoggerAdapter or None, "
            f"got {type(logger).__name__}"
        )
    # an adapter has every method the guard objects call on a logger
    return cast(logging.Logger, logger)
