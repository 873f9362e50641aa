"""Groups of `aar` sub-commands (``aar server ...``, ``aar testbed ...``) that :mod:`aar.cli` adds."""
