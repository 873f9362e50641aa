"""Campaigns: N automated researchers in parallel on one testbed, with budgets, live progress,
kill-and-resume, a server-side timeline and a final report."""
