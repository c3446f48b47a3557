"""citypulse: smart city portal and real-time city data platform."""

__version__ = "0.1.0"
