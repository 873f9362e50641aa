"""LLM-backed researchers: a backend-agnostic research loop over the agent tools, with Anthropic and
OpenAI-compatible backends, token and dollar accounting, context management and workspace tools."""
