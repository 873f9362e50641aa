"""The built-in offline researcher: a research loop over the method library that needs no LLM.

It acts only through the agent tools (:mod:`aar.agents.tools`), like any other backend. Its decision
rule, one step at a time:

1. **Read.** New ``finding`` posts by other agents: an idea whose linked submission the server shows
   at or above my best public figure is queued as is, and combined with my incumbent. Every other
   step my direction's next starting point goes first, so imports never starve my own direction.
2. **Propose.** With an empty queue: my direction's starting points first, then one-step mutations of
   my incumbent along my direction's knobs (occasionally any knob); once its neighbourhood is used
   up, mutations of my other best-screened configurations, then wider and two-step moves.
3. **Screen.** Run the next candidate on one seed (dev + test inputs). Drop it when its label-free
   diagnostics look degenerate: one class for over 90% of inputs (when the teacher is not itself that
   lopsided), or a copy of the teacher.
4. **Submit.** When a screened candidate scores above my incumbent's screen score, or after
   ``batch`` screens without a submission: confirm the best pending one on a second seed (it must agree
   with itself; skipped when too little time is left) and submit it, while the budget lasts.
5. **Learn.** A better public figure makes the candidate my incumbent and is posted with its evidence
   (what I tried, what changed, the public figure, code hash, config). After ``patience`` submissions
   without progress I post the negative results, drop my queue and widen the next proposals to any knob.

Screen score (no labels): agreement with the teacher plus agreement with the strong model's zero-shot
prior (two views with different errors), plus half the seed agreement once measured. See
:func:`screen_score`. The teacher's outputs exist for ``train_unlabel`` only (the original study's
protocol), so the teacher agreement is measured on a fixed held-out slice of ``train_unlabel`` that the
run's method never sees (see :mod:`aar.agents.diagnostics`); the prior agreement on dev and test.

Deterministic given its seed and the forum it reads. Its state lives in ``state.json`` in the workspace,
so a killed researcher resumes where it stopped; the server's record of its submissions wins over
its own notes.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import asdict, field
from typing import Any

from pydantic import ConfigDict
from pydantic.dataclasses import dataclass

from aar.agents import timing
from aar.agents.notes import NOTES_VERSION, validate_notes
from aar.agents.space import Config, combine, mutate
from aar.agents.tools import AgentEnv, call_tool
from aar.fileio import write_json_atomic

JSON_BLOCK = re.compile(r"```json\s*(\{.*?\})\s*```", re.S)


@dataclass(config=ConfigDict(extra="forbid"))  # a misspelt setting is an error, not ignored
class ResearcherSettings:
    """Knobs of the loop (the defaults are what campaigns use)."""

    batch: int = 3  # screens after which the best pending candidate is submitted anyway
    patience: int = 4  # submissions without progress before a restart and a negative-results post
    explore: float = 0.25  # chance a mutation may move any knob, not only the direction's
    max_cost: int = 2  # trainings per run (ensemble x rounds)
    min_seed_agreement: float = 0.7
    min_balance: float = 0.1  # a run predicting one class for more than 90% of inputs has collapsed
    min_step_seconds: float = 20.0  # stop when less time than this is left
    warm_experiments: bool = True  # one long-lived experiment worker (False: a process per run)


@dataclass
class Record:
    """What the researcher knows about one candidate."""

    method: str
    params: dict[str, Any]
    origin: str
    run_id: str | None = None
    diag: dict[str, Any] | None = None
    score: float | None = None
    status: str = "queued"  # queued, rejected, pending, unstable, submitted, failed
    note: str = ""
    submission_id: int | None = None
    released_pgr: float | None = None
    improved: bool | None = None
    artifact: str | None = None
    seed_agreement: float | None = None

    @property
    def config(self) -> Config:
        return Config.of(self.method, self.params)


@dataclass
class State:
    """Everything needed to resume (the researcher's notes, ``state.json``)."""

    seed: int
    rng: list[Any] | None = None
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # config key -> a Record as a dict
    queue: list[str] = field(default_factory=list)
    incumbent: str | None = None
    best_released: float | None = None
    seen_post: int = 0
    start_index: int = 0
    since_submit: int = 0
    since_progress: list[str] = field(default_factory=list)
    posted: list[int] = field(default_factory=list)  # submission ids already posted about
    replied: list[int] = field(default_factory=list)
    n_submitted: int = 0
    steps: int = 0
    last_run_s: float = 0.0
    wide: int = 0  # proposals left that may move any knob (after a run of failures)
    version: int = NOTES_VERSION


def screen_score(d: dict[str, Any]) -> float:
    """Label-free score of a screened run: higher is more promising.

    Agreement with the teacher plus agreement with the strong model's zero-shot prior: two views whose
    errors differ, so a run that agrees with both where they agree and picks well where they differ
    scores high, without assuming which view is better. Plus half the seed agreement when measured.
    The teacher agreement comes from the held-out slice of ``train_unlabel`` (the method never saw its
    inputs or teacher outputs), the prior agreement from dev/test; a missing signal counts 0.5.
    """
    teacher = d.get("agreement_with_teacher")
    score: float = d.get("agreement_with_prior", 0.5) + (0.5 if teacher is None else teacher)
    if d.get("seed_agreement") is not None:
        score += 0.5 * d["seed_agreement"]
    return round(score, 4)


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


class OfflineResearcher:
    """The offline research loop for one agent; :meth:`run` until the deadline or the budget ends."""

    def __init__(
        self,
        env: AgentEnv,
        name: str,
        direction: dict[str, Any],
        seed: int,
        deadline: float,
        max_submissions: int,
        settings: ResearcherSettings | None = None,
        log: Callable[[str], None] = print,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Researcher ``name`` starting from ``direction`` (a :class:`~aar.agents.directions.Direction`
        as a dict), researching until the epoch time ``deadline``."""
        self.env, self.name, self.direction = env, name, direction
        self.region = direction.get("region", {})
        self.deadline, self.max_submissions = deadline, max_submissions
        self.s = settings or ResearcherSettings()
        self.log, self.clock = log, clock
        self.path = env.workspace / "state.json"
        self.state = self._load(seed)
        self.rng = random.Random(seed)
        if self.state.rng is not None:
            self.rng.setstate(_rng_state(self.state.rng))

    # -- persistence -------------------------------------------------------------------------------
    def _load(self, seed: int) -> State:
        if self.path.exists():
            return validate_notes(json.loads(self.path.read_text()), State, self.path)
        return State(seed=seed)

    def save(self) -> None:
        """Write the state atomically."""
        with timing.span("notes"):
            self.state.rng = _jsonable(self.rng.getstate())
            # atomic, not fsynced: a power cut loses a step or two, and the server's record wins anyway
            write_json_atomic(self.path, asdict(self.state), indent=1, durable=False)

    def rec(self, key: str) -> Record:
        return Record(**self.state.records[key])

    def put(self, r: Record) -> None:
        self.state.records[r.config.key] = asdict(r)

    def tool(self, name: str, **args: Any) -> dict[str, Any]:
        out = call_tool(self.env, name, args)
        if out.get("error"):
            self.log(f"tool {name} failed: {str(out['error'])[:300]}")
        return out

    def time_left(self) -> float:
        return self.deadline - self.clock()

    def experiment(self, r: Record, **args: Any) -> dict[str, Any]:
        """``run_experiment`` within the time left; remembers how long runs take."""
        t0 = self.clock()
        timeout = max(5.0, self.time_left() - 5)
        out = self.tool("run_experiment", method=r.method, params=r.params, timeout_s=timeout, **args)
        self.state.last_run_s = self.clock() - t0
        return out

    # -- the loop ----------------------------------------------------------------------------------
    def run(self) -> State:
        """Research until the deadline, the submission budget, or nothing is left to try."""
        self.reconcile()
        while self.time_left() > self.s.min_step_seconds:
            if self.state.n_submitted >= self.max_submissions:
                self.log("submission budget used up")
                break
            try:
                if not self.step():
                    break
                errors = 0
            except Exception as e:  # a bug or a surprise in one step must not end the research
                errors = locals().get("errors", 0) + 1
                self.log(f"step failed: {type(e).__name__}: {e}")
                if errors >= 5:
                    break
            self.save()
        self.save()
        return self.state

    def step(self) -> bool:
        """One step of the decision rule; False when there is nothing left to do."""
        self.state.steps += 1
        self.read_forum()
        if self.state.steps % 2 == 1:  # every other step goes to my own starting points while any are left
            self.queue_next_start()
        if not self.state.queue:
            self.propose()
        if not self.state.queue:
            self.log("nothing left to try")
            return False
        key = self.state.queue.pop(0)
        self.screen(key)
        pending = [k for k, r in self.state.records.items() if r["status"] == "pending"]
        if pending:
            best = max(pending, key=lambda k: self.state.records[k]["score"])
            inc = self.state.records.get(self.state.incumbent or "", {}).get("score")
            better = inc is None or self.state.records[best]["score"] > inc
            if better or self.state.since_submit >= self.s.batch:
                self.confirm_and_submit(best)
        return True

    def reconcile(self) -> None:
        """Bring my notes in line with the server: submissions made before a kill are recorded."""
        out = self.tool("my_submissions", limit=100)
        by_run = {r["run_id"]: k for k, r in self.state.records.items() if r.get("run_id")}
        for sub in out.get("items", []):
            m = re.search(r"\(run (r\d+)\)", sub["description"])
            key = by_run.get(m.group(1)) if m else None
            if key is None:
                continue
            r = self.rec(key)
            if r.submission_id is None:
                r.submission_id, r.status = sub["id"], "submitted"
                r.released_pgr, r.improved = sub["released_pgr"], sub["improved"]
                r.artifact = sub["artifact_sha256"]
                self.put(r)
                self.state.n_submitted += 1
                self.learn(key)
        self.state.n_submitted = max(self.state.n_submitted, out.get("total", 0))
        inc = self.state.incumbent
        if inc and (sid := self.state.records[inc].get("submission_id")) and sid not in self.state.posted:
            self.post_finding(inc)

    # -- 1. read -----------------------------------------------------------------------------------
    def read_forum(self) -> None:
        """Queue promising ideas other agents posted (checked against the server's figures)."""
        out = self.tool("forum_list", tag="finding", limit=10)  # newest first: usually all that is new
        items = out.get("items", [])
        oldest = min((p["id"] for p in items), default=0)
        if len(items) < out.get("total", 0) and oldest > self.state.seen_post:
            out = self.tool("forum_list", tag="finding", limit=50)  # more new posts than one small page
        for post in sorted(out.get("items", []), key=lambda p: p["id"]):
            if post["id"] <= self.state.seen_post:
                continue
            self.state.seen_post = post["id"]
            if post["author"] == self.name or not post["submission_ids"]:
                continue
            m = JSON_BLOCK.search(post["body"])
            if not m:
                continue
            try:
                spec = json.loads(m.group(1))
                idea = Config.of(str(spec["method"]), dict(spec.get("params") or {}))
            except (ValueError, KeyError, TypeError):
                continue
            sub = self.tool("submission_info", submission_id=post["submission_ids"][0])
            shown = sub.get("released_pgr")
            if shown is None or (self.state.best_released is not None and shown < self.state.best_released):
                continue
            origin = f"import:post {post['id']} by {post['author']}"
            self.enqueue(idea, origin, front=True)
            if self.state.incumbent:
                mixed = combine(self.rec(self.state.incumbent).config, idea, self.s.max_cost)
                if mixed:
                    self.enqueue(mixed, f"combine:mine+post {post['id']}", front=True)

    # -- 2. propose --------------------------------------------------------------------------------
    def enqueue(self, cfg: Config, origin: str, front: bool = False) -> bool:
        """Queue ``cfg`` unless it was tried or queued already."""
        if cfg.key in self.state.records:
            return False
        self.put(Record(cfg.method, cfg.kwargs, origin))
        if front:
            self.state.queue.insert(0, cfg.key)
        else:
            self.state.queue.append(cfg.key)
        return True

    def queue_next_start(self) -> bool:
        """Put my direction's next untried starting point at the head of the queue, if any is left."""
        starts = [Config.of(s["method"], s.get("params")) for s in self.region.get("seeds", [])]
        while self.state.start_index < len(starts):
            cfg = starts[self.state.start_index]
            self.state.start_index += 1
            if self.enqueue(cfg, f"start {self.state.start_index}", front=True):
                return True
        return False

    def propose(self) -> None:
        """Starting points of my direction first, then mutations of the incumbent (or of a start)."""
        if self.queue_next_start():
            return
        bases = self._bases()
        if not bases:
            return
        knobs = list(self.region.get("knobs", []))
        for attempt in range(60):
            # the incumbent first; then other promising configurations; then wider and longer moves
            base = bases[0] if attempt < 15 else self.rng.choice(bases)
            wide = self.state.wide > 0 or attempt >= 30 or self.rng.random() < self.s.explore
            steps = 1 if attempt < 45 else 2
            new = mutate(base, [] if wide else knobs, self.rng, self.s.max_cost, steps)
            queued = new is not None and self.enqueue(new, f"mutate {base.describe()}")
            if queued and self.state.wide > 0:
                self.state.wide -= 1
            if queued and len(self.state.queue) >= 2:
                return

    def _bases(self) -> list[Config]:
        """The incumbent (or best screened), then the next best screened configurations."""
        scored = sorted(
            ((r["score"], k) for k, r in self.state.records.items() if r["score"] is not None), reverse=True
        )
        keys = [self.state.incumbent] if self.state.incumbent else []
        keys += [k for _, k in scored if k not in keys][:5]
        return [self.rec(k).config for k in keys]

    # -- 3. screen ---------------------------------------------------------------------------------
    def screen(self, key: str) -> None:
        """One cheap run (one seed); keep it as pending unless its diagnostics look degenerate."""
        r = self.rec(key)
        out = self.experiment(r, seeds=[0])
        r.run_id = out.get("run_id")
        if "diagnostics" not in out or not out.get("ok"):
            r.status, r.note = "failed", str(out.get("error", ""))[:300]
            self.put(r)
            self.log(f"screen {r.config.describe()}: failed ({r.note[:120]})")
            return
        d = r.diag = out["diagnostics"]
        lo = self.s.min_balance
        t_bal = d.get("teacher_label_balance")
        teacher_ok = t_bal is None or 2 * lo <= t_bal <= 1 - 2 * lo
        if teacher_ok and not lo <= d["label_balance"] <= 1 - lo:
            r.status, r.note = "rejected", f"collapsed: label balance {d['label_balance']:.2f}"
        elif (d.get("agreement_with_teacher") or 0.0) > 0.995 and r.method != "weak":
            r.status, r.note = "rejected", "copies the teacher"
        else:
            r.status = "pending"
        r.score = screen_score(d)
        self.put(r)
        self.state.since_submit += 1
        self.log(f"screen {r.config.describe()} [{r.origin}]: score {r.score:.3f}, {r.status} {r.note}")

    # -- 4. submit ---------------------------------------------------------------------------------
    def confirm_and_submit(self, key: str) -> None:
        """Check the candidate on a second seed, then submit its first-seed predictions."""
        r = self.rec(key)
        agree = None
        if self.time_left() > 2.5 * self.state.last_run_s + self.s.min_step_seconds:
            out = self.experiment(r, seeds=[1], with_run=r.run_id)
            agree = (out.get("diagnostics") or {}).get("seed_agreement")
            if agree is None or agree < self.s.min_seed_agreement:
                r.seed_agreement, r.status, r.note = agree, "unstable", f"seed agreement {agree}"
                self.put(r)
                self.log(f"confirm {r.config.describe()}: unstable ({agree})")
                return
        else:
            self.log("too little time left to confirm on a second seed: submitting the screened run")
        r.seed_agreement = agree
        desc = (
            f"{r.config.describe()} from {r.origin}; direction {self.direction['name']}; "
            f"screen score {r.score:.3f}, seed agreement {agree} (run {r.run_id})"
        )
        sub = self.tool("submit", run_id=r.run_id, description=desc, method_label=r.method)
        self.state.since_submit = 0
        if "submission_id" not in sub:
            r.status, r.note = "failed", str(sub.get("error"))[:300]
            self.put(r)
            if sub.get("status") == 429:
                self.state.n_submitted = self.max_submissions
            return
        r.status, r.submission_id = "submitted", sub["submission_id"]
        r.released_pgr, r.improved, r.artifact = sub["public_pgr"], sub["improved"], sub["artifact_sha256"]
        self.put(r)
        self.state.n_submitted += 1
        self.log(f"submit {r.config.describe()}: public PGR {r.released_pgr:.3f} improved={r.improved}")
        self.learn(key)
        self.save()

    # -- 5. learn ----------------------------------------------------------------------------------
    def learn(self, key: str) -> None:
        """Update the incumbent from the server's answer; post findings and negative results."""
        r = self.rec(key)
        first = self.state.incumbent is None
        if r.improved or first:
            prev = self.state.incumbent
            self.state.incumbent, self.state.best_released = key, r.released_pgr
            self.state.since_progress = []
            self.post_finding(key, prev)
        else:
            self.state.since_progress.append(key)
            if len(self.state.since_progress) >= self.s.patience:
                self.post_negative()
                self.state.since_progress = []
                self.state.queue = []
                self.state.wide = 2
        self.reply_to_source(r)

    def post_finding(self, key: str, prev: str | None = None) -> None:
        """Post an improvement with its evidence and machine-readable config."""
        r = self.rec(key)
        if r.submission_id is None or r.submission_id in self.state.posted:
            return
        tried = [self.rec(k) for k in self.state.records if self.state.records[k]["status"] != "queued"]
        before = self.rec(prev).config.describe() if prev else "nothing (first submission)"
        diag = r.diag or {}
        lines = [
            f"**Direction:** {self.direction['name']}. **Idea:** `{r.config.describe()}` ({r.origin}).",
            f"**What changed:** previous best was `{before}`.",
            f"**Public figure:** released PGR {r.released_pgr:.3f} (submission {r.submission_id}, "
            f"code `{r.artifact}`).",
            f"**Label-free evidence (seed 0):** agreement with teacher (held-out train_unlabel slice) "
            f"{_num(diag.get('agreement_with_teacher'))}, with the strong prior (dev+test) "
            f"{diag.get('agreement_with_prior', 0):.3f}, "
            f"label balance {diag['label_balance']:.3f} "
            f"(teacher {_num(diag.get('teacher_label_balance'))}), "
            f"mean confidence {diag['mean_confidence']:.3f}, seed agreement {r.seed_agreement}.",
            f"**What I tried so far ({len(tried)}):** "
            + "; ".join(f"`{t.config.describe()}` {t.status}" + _fmt(t.released_pgr) for t in tried[-8:]),
            "",
            "```json",
            json.dumps({"method": r.method, "params": r.params}, sort_keys=True),
            "```",
        ]
        out = self.tool(
            "forum_post",
            title=f"{self.direction['name']}: {r.config.describe()} -> public PGR {r.released_pgr:.3f}"[:200],
            body="\n".join(lines),
            tags=["finding", _tag(self.direction["name"]), _tag(r.method)],
            submission_ids=[r.submission_id],
            artifact_hashes=[r.artifact] if r.artifact else [],
        )
        if "post_id" in out:
            self.state.posted.append(r.submission_id)

    def post_negative(self) -> None:
        """Post the submissions that did not beat my incumbent."""
        rs = [self.rec(k) for k in self.state.since_progress]
        inc = self.rec(self.state.incumbent).config.describe() if self.state.incumbent else "none"
        body = "\n".join(
            [f"These did not beat my best (`{inc}`, public PGR{_fmt(self.state.best_released)}):", ""]
            + [
                f"- `{r.config.describe()}`: released{_fmt(r.released_pgr)}, screen score {r.score}"
                for r in rs
            ]
        )
        self.tool(
            "forum_post",
            title=f"{self.direction['name']}: {len(rs)} ideas that did not help",
            body=body,
            tags=["negative", _tag(self.direction["name"])],
            submission_ids=[r.submission_id for r in rs if r.submission_id],
        )

    def reply_to_source(self, r: Record) -> None:
        """Tell the author of an imported idea how it did here."""
        m = re.search(r"post (\d+)", r.origin)
        if not m or r.submission_id is None:
            return
        pid = int(m.group(1))
        if pid in self.state.replied:
            return
        out = self.tool(
            "forum_reply",
            post_id=pid,
            submission_ids=[r.submission_id],
            body=f"Tried `{r.config.describe()}` ({r.origin}) in direction "
            f"{self.direction['name']}: released public PGR{_fmt(r.released_pgr)}, "
            f"improved my best: {r.improved}.",
        )
        if "post_id" in out:
            self.state.replied.append(pid)


def _fmt(x: float | None) -> str:
    return "" if x is None else f" {x:.3f}"


def _tag(text: str) -> str:
    t = re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-.")
    return (t or "x")[:40]


def _jsonable(obj: Any) -> Any:
    return [_jsonable(x) for x in obj] if isinstance(obj, (list, tuple)) else obj


def _rng_state(obj: Any) -> Any:
    return tuple(_rng_state(x) for x in obj) if isinstance(obj, list) else obj
