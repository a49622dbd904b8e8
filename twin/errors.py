"""The one exception tree of twinstream.

Bad *data* is never an exception: a reading that cannot be used becomes a dead letter in the
stream. Exceptions are kept for bugs and for configuration that cannot work::

    TwinstreamError
     ├── ConfigurationError      a setting, URL or flag that cannot work
     │    └── ProfileError        a device profile that contradicts itself
     ├── StoreError               a store did not take a write
     │    ├── StoreUnavailable    it could not be reached (retried with backoff)
     │    └── StoreRejected       it refused the content (retrying will not change that)
     ├── AlertActionError        a change an alert's (or recommendation's) status does not allow
     │    └── UnknownItem         no alert, recommendation, rule, route or key of that id
     └── DeliveryError           a notification receiver did not take a notification (retried)
"""

from __future__ import annotations


class TwinstreamError(Exception):
    """Base of every error twinstream raises on purpose."""


class ConfigurationError(TwinstreamError):
    """A setting, URL or command-line value that cannot work."""


class ProfileError(ConfigurationError):
    """A device profile whose ranges or thresholds contradict each other."""


class StoreError(TwinstreamError):
    """A store did not take a write: see the two kinds below, which callers treat apart."""


class StoreUnavailable(StoreError):
    """A store could not be reached; the caller retries with backoff."""


class StoreRejected(StoreError):
    """A store refused a write for its content; retrying will not change that."""


class AlertActionError(TwinstreamError):
    """A change an alert's or a recommendation's status does not allow."""


class UnknownItem(AlertActionError):
    """No alert, recommendation, rule, route or API key of that id (the API answers 404)."""


class DeliveryError(TwinstreamError):
    """A notification receiver did not take a notification; the dispatcher retries."""
