"""aar: automated alignment research on weak-to-strong supervision."""

__version__ = "0.1.0"
