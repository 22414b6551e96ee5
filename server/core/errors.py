"""The project's errors: one base, so callers can catch everything mentee raises on purpose."""

from __future__ import annotations


class MenteeError(Exception):
    """Base of every error mentee raises on purpose; its message is meant for a person."""


class ConfigError(MenteeError, ValueError):
    """A setting has a bad value; the message names the setting and the value."""


class ModelPrepareError(MenteeError):
    """The student model folder could not be prepared."""


class StudentError(MenteeError):
    """The student (vLLM) failed to start, crashed, or refused a request."""


class InvalidRequestError(MenteeError, ValueError):
    """A question or conversation is malformed (empty, wrong role, not text)."""
