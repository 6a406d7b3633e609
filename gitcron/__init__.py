"""A thin, git-native pipeline runner for scheduled batch jobs."""

__version__ = "0.1.0"
