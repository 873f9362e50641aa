"""Names vulture reports as unused in src/aar that are used all the same (read by vulture, never run).

Vulture matches names, not objects, so naming one here marks every definition of that name as used.
Frameworks that find code by decorator or by name (FastAPI routes, typer commands, MCP and researcher
tools, pydantic validators and settings hooks, Alembic revisions) are configured in [tool.vulture] of
pyproject.toml instead. Each entry says who uses the name.
"""

# ruff: noqa

# Fields of JSON records: pydantic response models (server/schemas.py), report data
# (campaign/report_data.py) and result dataclasses serialised with asdict/model_dump.
privileged_supervisor  # SandboxSupport, in sandbox reports
n_seeds, n_examples, p_two_sided  # metrics estimates, in result JSON and API responses
log_tail  # worker.IsolatedRun, for callers that show why a run failed
revoked, released_accuracy, public_accuracy, private_accuracy, audit_verdict
best_private_submission_id, artifact_sha256s, best_agent, best_agent_private_pgr, body_html
entry_submission_id, usd_per_agent_hour, token_detail, model_calls, weak_private_acc
ceiling_private_acc, best_private_pgr_ci, best_public_selected_private_pgr
best_baseline_private_pgr_ci, beats_best_baseline, ranking, ci

# SQLAlchemy columns and connection settings, set or read by the ORM and SQL
token_sha256, n_updates, isolation_level
AGENTS, ARTIFACTS, LADDER, SUBS  # table objects unpacked together in server/routers/submissions.py

# Attributes set on third-party objects (tokenizers, model configs, peft configs)
pad_token, padding_side, use_cache, base_model_name_or_path

# Part of a public interface, used by method files, tests or benchmarks
clone  # JudgeModel.clone (README: the JudgeModel interface)
raw_scores  # TinyJudge, tests/w2s/test_testbeds.py
n_params  # GPT, benchmarks/bench_hf.py
tool_error  # SandboxResult, agents/llm/loop.py and the README
resets_at, me, upload_file  # the HTTP client (README, tests)
paired_ladder_step, assign_halves  # server scoring and vault (tests/server)
app_from_env  # the uvicorn factory "aar.server.app:app_from_env" (cli)
pygments_css  # web/code.py: how static/pygments.css is made (not called from src)
placements  # report.json: where each run of a Ray campaign agent took place (report.py reads it as a dict)
summarize  # agents/timing.summarize: seconds per kind of an agent's spans (benchmarks/bench_campaign.py)
warm_experiments  # ResearcherSettings: read by run_agent from agent.json's settings before the settings load
