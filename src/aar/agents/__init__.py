"""Automated researchers: the tool layer shared by every backend, starting directions, and the
built-in offline researcher (no LLM)."""
