"""Exceptions users are meant to read: each names the file, row or field at fault."""

from __future__ import annotations


class OkapiError(Exception):
    """Base class; the CLI prints these as one clear message and exits non-zero."""


class UnknownLanguageError(OkapiError, ValueError):
    """A language code that is not in the registry."""


class DataError(OkapiError, ValueError):
    """Raw data that cannot be read or does not match the expected schema."""


class DownloadError(OkapiError, OSError):
    """A download that failed, stopped early, or does not match its checksum."""


class ConfigError(OkapiError, ValueError):
    """A training option or recipe value that cannot work with this model or data."""
