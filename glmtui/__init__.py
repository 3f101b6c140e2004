"""glmtui: AI coding work inside isolated Docker environments."""

__version__ = "0.1.0"
