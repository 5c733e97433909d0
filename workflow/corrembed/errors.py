"""Errors a user can hit.

Every error raised for bad input or configuration is a :class:`CorrEmbedError` (or subclass)
whose message says what is wrong and what to do, naming the file, row, column or model.
Workflow scripts let these propagate: Snakemake prints the message in the job's log.
"""


class CorrEmbedError(Exception):
    """Base class for problems with the user's inputs or configuration.

    Catch it to handle every expected failure at once; the subclasses say which stage's input
    is at fault (:class:`ConfigError`, :class:`ManifestError`, :class:`WeightsUnavailableError`,
    :class:`ScoringError`).

    Examples
    --------
    >>> from corrembed.tags import category_table
    >>> try:
    ...     category_table(None, [], "entropic")
    ... except CorrEmbedError as error:
    ...     print(type(error).__name__, error)
    ConfigError unknown weighting 'entropic'; use one of binary, entropy
    """


class ConfigError(CorrEmbedError):
    """A configuration value cannot work (unknown model, weights, layer, ...)."""


class ManifestError(CorrEmbedError):
    """The catalogue manifest or interactions log cannot be read as configured."""


class WeightsUnavailableError(CorrEmbedError):
    """Model weights are not in the cache and cannot be downloaded."""


class ScoringError(CorrEmbedError):
    """The inputs cannot give a meaningful score (too few usable items, ...)."""
