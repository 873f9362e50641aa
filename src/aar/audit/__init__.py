"""The audit: operator-side re-runs of the code behind submissions, ablations, a static scan, verdicts.

A score counts only after the audit re-ran the cited code in a fresh sandbox. Modules:

    config.py      thresholds and the audit-config version (resume skips what the same version audited)
    selection.py   which submissions to audit (agents' entries, top K by private PGR, flagged ones)
    views.py       the operator-side views: the agents' view, the audit view (hidden seeds, final inputs),
                   and its ablations (random strong model, shuffled teacher)
    runner.py      one artifact run in a fresh bubblewrap sandbox, through the shipped worker
    scan.py        static scan of an artifact's Python sources (flags for a person to read)
    verdicts.py    checks -> ok / flagged / disqualified with reasons
    core.py        the whole audit of a campaign or a server (parallel runs, progress, resume, store)
    store.py       per-audit JSON files and the server's audit records
    generalise.py  the top audited methods re-run on other built-in testbeds
    report.py      the report's Audit section, audited ranking and headline
"""
